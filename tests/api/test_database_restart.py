"""A database restart between requests costs no request (security.md row 25), and no request pays a round
trip to check its connection first (db/engine.py: the pool discards connections the server closed)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import DatabaseUrls, RowSecurityContext, _closed_connection_discarded, make_engine, transaction
from tests.factories import Factory
from tests.flows import network, register_survivor

VIEWER = "{ viewer { clientId roles } }"
REFERRALS = "{ referrals(first: 5) { totalCount edges { node { id status } } } }"


async def _terminate(owner_engine: AsyncEngine, application_name: str) -> int:
    """End the named application's server processes, as a restart does, and wait until they are gone."""
    async with owner_engine.connect() as connection:
        ended = (await connection.execute(text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = :name"), {"name": application_name})).scalar()
    return int(ended or 0)


@contextmanager
def pings_counted(engine: AsyncEngine) -> Iterator[list[int]]:
    dialect = engine.sync_engine.dialect
    pinged = [0]
    original = dialect.do_ping

    def counting(dbapi_connection: Any) -> bool:
        pinged[0] += 1
        return original(dbapi_connection)

    dialect.do_ping = counting  # type: ignore[method-assign]
    try:
        yield pinged
    finally:
        dialect.do_ping = original  # type: ignore[method-assign]


async def test_every_request_after_a_restart_succeeds_without_pinging(factory: Factory, app: FastAPI,
                                                                       owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    manager, counselor = net.token("manager"), net.token("counselor")
    engine = app.state.pamoja.engine
    # Several connections in the pool, each caller remembered (its next request is one transaction).
    await asyncio.gather(*(factory.gql(t, VIEWER) for t in (manager, counselor) * 3))

    assert await _terminate(owner_engine, "pamoja-api") >= 2
    with pings_counted(engine) as pinged:
        # Not every request runs in a GraphQL transaction (which would try a dead connection again): the
        # pool itself must hand out only live ones.
        assert (await factory.client.get("/readyz")).json()["database"] == "ok"
        answers = await asyncio.gather(
            factory.gql(counselor, REFERRALS), factory.gql(manager, REFERRALS), factory.gql(manager, VIEWER),
            register_survivor(factory, manager),
        )
    assert answers[0]["data"]["referrals"]["totalCount"] == 0
    assert answers[2]["data"]["viewer"]["roles"] == ["CASE_MANAGER"]
    assert answers[3]["id"]  # a mutation too
    assert pinged[0] == 0  # no round trip asked whether a connection was alive


async def test_a_connection_that_dies_after_checkout_is_replaced_before_the_transaction_starts(
        database_urls: DatabaseUrls, owner_engine: AsyncEngine) -> None:
    engine = make_engine(database_urls.app, pool_size=1, application_name="pamoja-restart-test")
    try:
        async with transaction(engine, RowSecurityContext()) as db:
            first = await db.scalar(text("SELECT pg_backend_pid()"))
        # As if the server went away after the pool's check: the pool hands out the dead connection.
        event.remove(engine.sync_engine.pool, "checkout", _closed_connection_discarded)
        assert await _terminate(owner_engine, "pamoja-restart-test") == 1
        async with transaction(engine, RowSecurityContext(user_id="someone")) as db:
            second = await db.scalar(text("SELECT pg_backend_pid()"))
            assert await db.scalar(text("SELECT current_setting('app.user_id')")) == "someone"
        assert second != first
    finally:
        await engine.dispose()
