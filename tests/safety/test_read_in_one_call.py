"""A compiled read in one call (db/one_call.py): the row-security context it sets holds for its read and ends
with it, a failed re-check returns nothing, and a database that refuses temporary functions says so."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import RowSecurityContext, StillValid, make_engine, statements_observed
from db.one_call import StaleCaller, TemporaryFunctionsRefused, read_in_one_call
from tests.factories import Factory
from tests.flows import network, referred_case

# What the read sees: the survivors row security lets it count, its organization setting, a parameter.
SEEN = ("SELECT (SELECT count(*) FROM survivor), current_setting('app.organization_id', true), $1::text, "
        "$2::uuid[]")


@pytest.fixture
async def one_connection(database_urls: object) -> AsyncIterator[AsyncEngine]:
    """pool_size=1: each checkout, one at a time, is the same connection."""
    engine = make_engine(database_urls.app, pool_size=1)  # type: ignore[attr-defined]
    yield engine
    await engine.dispose()


async def _read(engine: AsyncEngine, context: RowSecurityContext, check: StillValid | None = None,
                sql: str = SEEN) -> tuple[object, ...]:
    async with read_in_one_call(engine, context, check) as db:
        return await db.compiled_row(sql, ["echo", []])


async def test_the_context_holds_for_the_read_and_ends_with_the_call(
    factory: Factory, one_connection: AsyncEngine
) -> None:
    net = await network(factory)
    await referred_case(factory, net)
    own = RowSecurityContext(organization_id=str(net.ngo.id))
    assert await _read(one_connection, own) == (1, str(net.ngo.id), "echo", [])
    outsider = RowSecurityContext(organization_id=str((await factory.ngo()).id))
    assert await _read(one_connection, outsider) == (0, outsider.organization_id, "echo", [])  # the same function
    async with one_connection.connect() as connection:  # the very connection, back from the pool
        driver = (await connection.get_raw_connection()).driver_connection
        in_transaction = driver is None or driver.is_in_transaction()
        setting = (await connection.execute(text("SELECT current_setting('app.organization_id', true)"))).scalar()
        leaked = (await connection.execute(text("SELECT count(*) FROM survivor"))).scalar_one()
    assert setting in (None, "") and leaked == 0 and not in_transaction


async def test_one_round_trip_once_the_connection_has_the_function(one_connection: AsyncEngine) -> None:
    sent: list[str] = []
    with statements_observed(one_connection, lambda statement, _seconds: sent.append(statement)):
        await _read(one_connection, RowSecurityContext())
        first = list(sent)
        sent.clear()
        await _read(one_connection, RowSecurityContext())
    # the first time: the types asked (and asyncpg's introspection of types it has not met), the function made
    assert [s.split(None, 2)[:2] for s in first].count(["CREATE", "FUNCTION"]) == 1, first
    assert first[-1].startswith("SELECT * FROM pg_temp.pamoja_read_"), first
    assert len(sent) == 1 and sent[0].startswith("SELECT * FROM pg_temp.pamoja_read_"), sent  # no BEGIN, no COMMIT


async def test_the_recheck_runs_after_the_context_is_set_and_a_failed_one_returns_nothing(
    factory: Factory, one_connection: AsyncEngine
) -> None:
    org = str((await factory.ngo()).id)
    context = RowSecurityContext(organization_id=org)
    holds = StillValid("current_setting('app.organization_id', true) = $6", (org,))
    assert (await _read(one_connection, context, holds))[1] == org
    with pytest.raises(StaleCaller):
        await _read(one_connection, context, StillValid("current_setting('app.organization_id', true) = $6",
                                                        (str(uuid.uuid4()),)))
    with pytest.raises(StaleCaller):
        await _read(one_connection, context, StillValid("$6::boolean", (None,)))


async def test_a_function_the_session_lost_is_made_again(one_connection: AsyncEngine) -> None:
    await _read(one_connection, RowSecurityContext())
    async with one_connection.connect() as connection:
        await connection.execute(text("DISCARD TEMP"))
    assert (await _read(one_connection, RowSecurityContext()))[2] == "echo"


async def test_a_database_that_refuses_temporary_objects_is_reported(
    database_urls: object, temporary_objects_refused: None
) -> None:
    engine = make_engine(database_urls.app, pool_size=1)  # type: ignore[attr-defined]
    try:
        with pytest.raises(TemporaryFunctionsRefused):
            await _read(engine, RowSecurityContext())
    finally:
        await engine.dispose()
