"""Test infrastructure: a real PostgreSQL, a fresh database per test session, the app in-process.

Isolation: every test creates its own organizations, people and records (tests/factories.py) with
unique names, and every read in the system is scoped to an organization, so tests cannot see each
other's data. This was measured against an outer transaction with savepoints per test and picked
because many tests here need real commits (concurrent requests, idempotency races, the webhook
worker, RLS across connections), which a per-test outer transaction cannot give.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.main import create_app
from config.settings import Settings
from db.engine import DatabaseUrls, make_engine
from db.migrate import upgrade
from db.urls import plain, with_database, with_role
from tests.factories import Factory
from tests.flows import SEEDED_PII

APP_ROLE = "pamoja_app"


def _server_url() -> tuple[str, object | None]:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, None
    from db.embedded import start_embedded

    folder = Path(tempfile.mkdtemp(prefix="pamoja-test-pg-"))
    return start_embedded(folder), folder


async def create_database(server_url: str, name: str) -> str:
    connection = await asyncpg.connect(plain(server_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(plain(server_url))
    try:
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    url, _folder = _server_url()
    yield url


@pytest.fixture(scope="session")
async def database_urls(server_url: str) -> AsyncIterator[DatabaseUrls]:
    name = f"pamoja_test_{secrets.token_hex(4)}"
    owner = await create_database(server_url, name)
    await asyncio.to_thread(upgrade, owner, app_role=APP_ROLE)
    yield DatabaseUrls(owner=owner, app=with_role(owner, APP_ROLE, None))
    await drop_database(server_url, name)


@pytest.fixture(scope="session")
def settings(database_urls: DatabaseUrls) -> Settings:
    return Settings(
        env="test",
        database_url=database_urls.owner,
        app_database_url=database_urls.app,
        public_url="http://testserver",
        log_json=True,
        webhook_retry_base_seconds=0.2,
    )


class LogSink(logging.Handler):
    """Every log line the app writes during the session, rendered exactly as production renders it."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    sink = LogSink(root.handlers[0].formatter if root.handlers else None)
    root.addHandler(sink)
    async with application.router.lifespan_context(application):
        yield application
    root.removeHandler(sink)
    # Rule 4, checked over the whole session's traffic: no seeded name or phone in any log line.
    leaked = [value for value in SEEDED_PII for line in sink.lines if value in line]
    assert sink.lines, "the log sink captured nothing: the check would be vacuous"
    assert not leaked, f"{len(leaked)} identifying values reached the logs"


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture(scope="session")
async def owner_engine(database_urls: DatabaseUrls) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_urls.owner, pool_size=2, application_name="pamoja-tests")
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def app_engine(database_urls: DatabaseUrls) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_urls.app, pool_size=2, application_name="pamoja-tests-app")
    yield engine
    await engine.dispose()


@pytest.fixture
async def temporary_objects_refused(owner_engine: AsyncEngine) -> AsyncIterator[None]:
    """The test database refuses TEMPORARY to PUBLIC, so to the API's role, while the test runs: a session
    that has made no temporary object yet cannot make one (db/one_call.py's fallback)."""
    async with owner_engine.begin() as connection:
        name = (await connection.execute(text("SELECT current_database()"))).scalar_one()
        await connection.execute(text(f'REVOKE TEMPORARY ON DATABASE "{name}" FROM PUBLIC'))
    try:
        yield
    finally:
        async with owner_engine.begin() as connection:
            await connection.execute(text(f'GRANT TEMPORARY ON DATABASE "{name}" TO PUBLIC'))


@pytest.fixture
def factory(owner_engine: AsyncEngine, settings: Settings, client: httpx.AsyncClient, app: FastAPI) -> Factory:
    return Factory(engine=owner_engine, settings=settings, client=client, app=app)
