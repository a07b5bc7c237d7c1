"""A request's transaction (db.engine.transaction) is asyncpg's own on the pooled connection, with SQLAlchemy
driven in AUTOCOMMIT inside it: its statements, a compiled read's and the row-security context must share one
transaction, and no connection may go back to the pool still inside it (the next request would inherit this
one's organization)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import DatabaseUrls, RowSecurityContext, make_engine, transaction

CONTEXT = RowSecurityContext(organization_id="00000000-0000-0000-0000-00000000000a", user_id="someone",
                             client_id="a-client", roles="COUNSELOR")


@pytest.fixture
async def one_connection(database_urls: DatabaseUrls) -> AsyncIterator[AsyncEngine]:
    """pool_size=1 and no overflow: every transaction here reuses the same pooled connection."""
    engine = make_engine(database_urls.app, pool_size=1, application_name="pamoja-transaction-test")
    engine.sync_engine.pool._max_overflow = 0  # type: ignore[attr-defined]
    yield engine
    await engine.dispose()


async def _left_behind(engine: AsyncEngine) -> tuple[str | None, str]:
    """What the next user of the pooled connection finds: the user setting, and the transaction status of a
    statement sent on its own (`idle` unless something was left open)."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        setting = (await connection.execute(text("SELECT current_setting('app.user_id', true)"))).scalar()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        status = "in transaction" if driver.is_in_transaction() else "idle"
    return setting, status


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
async def test_sqlalchemy_statements_and_a_compiled_read_share_the_transaction_and_its_context(
        one_connection: AsyncEngine, isolation: str) -> None:
    async with transaction(one_connection, CONTEXT, isolation=isolation) as db:
        through_sqlalchemy = (await db.execute(text(
            "SELECT txid_current(), current_setting('transaction_isolation'), current_setting('app.user_id')"))).one()
        compiled = await db.compiled_row(
            "SELECT txid_current(), current_setting('transaction_isolation'), current_setting('app.roles')", [])
    assert through_sqlalchemy[0] == compiled[0]  # one transaction
    assert through_sqlalchemy[1] == compiled[1] == isolation.lower()
    assert (through_sqlalchemy[2], compiled[2]) == ("someone", "COUNSELOR")
    assert await _left_behind(one_connection) == ("", "idle")


async def test_an_error_in_the_request_rolls_back_and_leaves_nothing_on_the_pooled_connection(
        one_connection: AsyncEngine) -> None:
    with pytest.raises(RuntimeError, match="the resolver failed"):
        async with transaction(one_connection, CONTEXT) as db:
            await db.execute(text("SELECT 1"))
            raise RuntimeError("the resolver failed")
    assert await _left_behind(one_connection) == ("", "idle")


async def test_a_failed_statement_leaves_nothing_on_the_pooled_connection(one_connection: AsyncEngine) -> None:
    with pytest.raises(DBAPIError):
        async with transaction(one_connection, CONTEXT) as db:
            await db.execute(text("SELECT 1 / 0"))
    assert await _left_behind(one_connection) == ("", "idle")
    with pytest.raises(Exception, match="division by zero"):  # a compiled read's statement, past SQLAlchemy
        async with transaction(one_connection, CONTEXT) as db:
            await db.compiled_row("SELECT 1 / 0", [])
    assert await _left_behind(one_connection) == ("", "idle")


async def test_a_failed_commit_leaves_nothing_on_the_pooled_connection(one_connection: AsyncEngine) -> None:
    """A deferred constraint fails at COMMIT: the request fails, and the next user of the connection finds
    no transaction and no setting."""
    with pytest.raises(Exception, match="duplicate key"):
        async with transaction(one_connection, CONTEXT) as db:
            await db.execute(text("CREATE TEMP TABLE t (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)"))
            await db.execute(text("INSERT INTO t VALUES (1), (1)"))
    assert await _left_behind(one_connection) == ("", "idle")


async def test_a_savepoint_inside_the_transaction_undoes_only_its_own_work(one_connection: AsyncEngine) -> None:
    """Mutations keep a user error's work out with Db.savepoint, SQLAlchemy's SAVEPOINT inside our transaction."""
    async with transaction(one_connection, CONTEXT) as db:
        with pytest.raises(ValueError, match="a user error"):
            async with db.savepoint():
                await db.execute(text("SELECT set_config('app.user_id', 'changed', true)"))
                raise ValueError("a user error")
        kept = await db.scalar(text("SELECT current_setting('app.user_id')"))
        async with db.savepoint():
            await db.execute(text("SELECT set_config('app.roles', 'CHANGED', true)"))
        changed = await db.scalar(text("SELECT current_setting('app.roles')"))
    assert (kept, changed) == ("someone", "CHANGED")
    assert await _left_behind(one_connection) == ("", "idle")
