"""A worker keeps the connections its concurrent requests need (PAMOJA_DB_POOL_SIZE) and opens a few more for a
burst (PAMOJA_DB_POOL_OVERFLOW), closed as each is returned: a connection opened per request would start a
PostgreSQL backend and make the compiled reads' functions again each time (db/one_call.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import QueuePool, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.context import configuration_problem
from config.settings import Settings
from db.engine import DatabaseUrls, RowSecurityContext, make_engine, on_connection_beyond_pool, transaction


async def _backends_of_a_burst(engine: AsyncEngine, size: int) -> set[int]:
    """`size` transactions open at once, each on its own connection: their server processes."""
    everyone_in = asyncio.Barrier(size)

    async def one() -> int:
        async with transaction(engine, RowSecurityContext()) as db:
            pid = int(await db.scalar(text("SELECT pg_backend_pid()")))
            await everyone_in.wait()  # no connection goes back before all are out
            return pid

    return set(await asyncio.gather(*(one() for _ in range(size))))


async def test_a_burst_within_the_pool_reuses_its_connections_and_one_beyond_it_is_closed_again(
        database_urls: DatabaseUrls) -> None:
    engine = make_engine(database_urls.app, pool_size=3, overflow=1, application_name="pamoja-pool-test")
    try:
        first = await _backends_of_a_burst(engine, 3)
        assert len(first) == 3
        assert await _backends_of_a_burst(engine, 3) == first  # kept open, none started again
        burst = await _backends_of_a_burst(engine, 4)  # one beyond the pool: the overflow
        assert len(burst) == 4 and len(burst - first) == 1
        pool = engine.sync_engine.pool
        assert isinstance(pool, QueuePool) and pool.checkedin() == 3  # the overflow connection was closed on return
        after = await _backends_of_a_burst(engine, 3)
        assert len(after) == 3 and after <= burst  # the three kept, whichever came back last was closed
    finally:
        await engine.dispose()


async def test_a_connection_beyond_the_pool_is_reported_at_most_once_a_window(database_urls: DatabaseUrls) -> None:
    """The operator's sign that PAMOJA_DB_POOL_SIZE is too small (api/main.py logs it), not once per request."""
    engine = make_engine(database_urls.app, pool_size=2, overflow=2, application_name="pamoja-pool-test")
    reported: list[int] = []
    on_connection_beyond_pool(engine, reported.append, every_seconds=3600)
    try:
        await _backends_of_a_burst(engine, 2)
        assert reported == []  # within the pool
        await _backends_of_a_burst(engine, 3)
        assert reported == [2]  # one beyond it, reported with the pool's size
        await _backends_of_a_burst(engine, 4)
        assert reported == [2]  # again within the window: not reported again
    finally:
        await engine.dispose()


async def test_the_api_pools_as_configured(app: FastAPI, settings: Settings, client: httpx.AsyncClient) -> None:
    assert (settings.db_pool_size, settings.db_pool_overflow) == (16, 4)
    assert (await client.get("/readyz")).json()["database"] == "ok"
    pool = app.state.pamoja.engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow) == (settings.db_pool_size, settings.db_pool_overflow)  # no public getter


@pytest.mark.parametrize(("field", "value"), [("db_pool_size", 0), ("db_pool_size", -7), ("db_pool_overflow", -7)])
def test_a_pool_that_cannot_work_is_refused_naming_the_setting(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(env="test", **{field: value})  # type: ignore[arg-type]
    problem = configuration_problem(refused.value)  # what `pamoja` prints to the operator
    assert f"PAMOJA_{field.upper()}" in problem and str(value) not in problem
