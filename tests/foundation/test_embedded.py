"""The default with no DATABASE_URL: an embedded PostgreSQL in a folder of our choosing serves the app.

This is what `make run` does on a fresh machine (under ./var); here the folder is a temporary one, and
the server is stopped at the end so no postgres outlives the test.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.main import create_app
from config.settings import Settings
from db.embedded import start_embedded, stop_embedded
from db.migrate import head_revision, upgrade
from db.urls import plain, to_async_url


async def test_embedded_postgres_starts_in_a_folder_and_the_app_is_ready_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("PAMOJA_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    url = await asyncio.to_thread(start_embedded, tmp_path)
    try:
        assert (tmp_path / "pgdata" / "PG_VERSION").is_file()
        assert to_async_url(url).database == "pamoja"
        connection = await asyncpg.connect(plain(url))
        try:
            assert await connection.fetchval("SELECT current_setting('server_version_num')::int") >= 160000
        finally:
            await connection.close()

        await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
        settings = Settings(env="test", data_dir=tmp_path)
        assert settings.database_url is None
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            assert app.state.pamoja.urls.owner == url, "the app must find the same embedded server"
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                healthz = await http.get("/healthz")
                readyz = await http.get("/readyz")
        assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
        assert (readyz.status_code, readyz.json()) == (200, {"status": "ok", "database": "ok", "migrations": "head"})
        assert head_revision() is not None
    finally:
        await asyncio.to_thread(stop_embedded, tmp_path)

    assert not (tmp_path / "pgdata" / "postmaster.pid").exists(), "the embedded server is still running"
    with pytest.raises(OSError):
        await asyncpg.connect(plain(url), timeout=5)
