"""Engines and the per-request database handle.

Two connections exist: the owner (migrations, operator CLI) and the runtime role the API uses,
which is not the owner of any table and has no BYPASSRLS, so PostgreSQL row-level security applies
to every query the API makes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy import Executable, QueuePool, Row, event
from sqlalchemy.engine import Result
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from db.embedded import start_embedded
from db.urls import to_async_url, with_role

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DatabaseUrls:
    """Never in a repr: either URL may carry a password."""

    owner: str = field(repr=False)
    app: str = field(repr=False)


def resolve_urls(
    *,
    database_url: str | None,
    app_database_url: str | None,
    app_role: str,
    app_password: str | None,
    data_dir: Path,
    keep_embedded_running: bool = False,
) -> DatabaseUrls:
    """DATABASE_URL when set; otherwise an embedded PostgreSQL under data_dir."""
    owner = database_url or start_embedded(data_dir, keep_running=keep_embedded_running)
    app = app_database_url or with_role(owner, app_role, app_password)
    return DatabaseUrls(owner=owner, app=app)


def make_engine(url: str, *, pool_size: int = 10, overflow: int | None = None, statement_timeout_ms: int = 10_000,
                application_name: str = "pamoja-api") -> AsyncEngine:
    """`pool_size` connections kept open, and `overflow` (unset: as many again) opened for a burst and
    closed as each is returned."""
    engine = create_async_engine(
        to_async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size if overflow is None else overflow,
        connect_args={
            "server_settings": {
                "application_name": application_name,
                "statement_timeout": str(statement_timeout_ms),
                "TimeZone": "UTC",
            }
        },
    )
    event.listen(engine.sync_engine.pool, "checkout", _closed_connection_discarded)
    return engine


def on_connection_beyond_pool(engine: AsyncEngine, report: Callable[[int], None], *,
                              every_seconds: float = 60.0) -> None:
    """Call `report(pool size)` when the pool opens a connection beyond its size, at most once per
    `every_seconds`: the sign that a worker sees more concurrent requests than PAMOJA_DB_POOL_SIZE, each
    such connection a PostgreSQL backend started and closed again."""
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)  # make_engine's pool
    last = -every_seconds

    def opened(*_: Any) -> None:
        nonlocal last
        now = time.monotonic()
        if pool.overflow() > 0 and now - last >= every_seconds:  # counted before the connect event
            last = now
            report(pool.size())

    event.listen(pool, "connect", opened)


def _closed_connection_discarded(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Survive a database restart between requests (security.md row 25) without a round trip per checkout.

    A connection whose server went away (a restart, `pg_terminate_backend`) has been closed on this side
    too: asyncpg saw the socket end. The pool discards it and hands out a fresh one, as asyncpg's own pool
    does; SQLAlchemy's `pool_pre_ping` asked the server instead, one more round trip for every request.
    A connection that dies between this check and its first statement is tried again by `transaction`.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


@dataclass(frozen=True, slots=True)
class RowSecurityContext:
    """What PostgreSQL's row-level security policies read, set per transaction (never per session)."""

    organization_id: str = ""
    user_id: str = ""
    client_id: str = ""
    roles: str = ""
    # "worker" for the webhook worker's own steps (migration 0008); empty for every principal.
    system: str = ""

    def settings(self) -> Mapping[str, str]:
        return {
            "app.organization_id": self.organization_id,
            "app.user_id": self.user_id,
            "app.client_id": self.client_id,
            "app.roles": self.roles,
            "app.system": self.system,
        }


WORKER_CONTEXT = RowSecurityContext(system="worker")


class CompiledRows(Protocol):
    """Where a compiled read's one row comes from (api/graphql/compiler.ReadCompiler.run)."""

    async def compiled_row(self, sql: str, parameters: Sequence[Any]) -> tuple[Any, ...]: ...


class Serialised:
    """Calls on one connection, one at a time, each run to its end in a task of its own.

    GraphQL resolves sibling fields concurrently; asyncpg refuses concurrent operations on one
    connection, so every call is serialised with a lock (architecture.md, "a pitfall none handles").

    A resolver may be cancelled while its statement runs: graphql-core cancels the siblings of a
    field that failed (a FORBIDDEN deep in a list), and SQLAlchemy closes a connection whose
    statement was interrupted, after which the whole request fails at commit. So each call runs to
    its end in a task of its own, whoever stops waiting for it, and the transaction waits for those
    tasks (`settle`) before it commits. `statements` counts round trips so tests can prove there is
    no N+1.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._running: set[asyncio.Task[Any]] = set()
        self._ended = False
        self.statements = 0

    async def _serialised(self, work: Callable[[], Awaitable[T]]) -> T:
        if self._ended:
            raise RuntimeError("The request's transaction has ended: nothing more runs on it.")
        task = asyncio.ensure_future(self._locked(work))
        self._running.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    async def _locked(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            return await work()

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # its caller may have been cancelled: the outcome is taken here, not lost

    async def settle(self) -> None:
        """Refuse further calls and wait for those already asked for, so the transaction ends on a
        connection nothing else is using."""
        self._ended = True
        while self._running:
            await asyncio.wait(set(self._running))


class Db(Serialised):
    """One connection and one transaction, shared by a request's resolvers and loaders."""

    def __init__(self, connection: AsyncConnection, driver: asyncpg.Connection | None = None) -> None:
        super().__init__()
        self.connection = connection
        # The connection's asyncpg connection, inside `transaction`'s own transaction: what a compiled read
        # and the row-security context are sent through, without SQLAlchemy's execution layers.
        self._driver = driver
        self.still_valid = True

    async def set_row_security(self, context: RowSecurityContext) -> None:
        """Set the row-security context again (the caller was read again in this transaction)."""
        await self._serialised(lambda: _set_row_security(self.driver, context))

    @property
    def driver(self) -> asyncpg.Connection:
        if self._driver is None:
            raise RuntimeError("Only a request's transaction (db.engine.transaction) sends statements past SQLAlchemy.")
        return self._driver

    async def abandon(self) -> None:
        """The transaction is being rolled back (an error, a timeout): refuse further calls, and close
        the connection rather than wait if a statement is still running on it."""
        self._ended = True
        if self._running:
            await self.connection.invalidate()

    async def execute(self, statement: Executable, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
                      | None = None) -> Result[Any]:
        async def run() -> Result[Any]:
            self.statements += 1
            return await self.connection.execute(statement, params)

        return await self._serialised(run)

    async def compiled_row(self, sql: str, parameters: Sequence[Any]) -> tuple[Any, ...]:
        """A compiled read's one row (db/compiled_reads.py): SQL already in PostgreSQL's `$n` form, so
        nothing is compiled here; asyncpg prepares it once per connection."""
        async def run() -> tuple[Any, ...]:
            self.statements += 1
            return tuple(await self.driver.fetchrow(sql, *parameters))

        return await self._serialised(run)

    async def all(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        return (await self.execute(statement, params)).all()

    async def first(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Row[Any] | None:
        return (await self.execute(statement, params)).first()

    async def scalar(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        return (await self.execute(statement, params)).scalar()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A mutation that fails with a user error changes nothing: its work is rolled back here."""
        nested = await self._serialised(self.connection.begin_nested().start)
        try:
            yield
        except BaseException:
            await self._serialised(nested.rollback)
            raise
        else:
            await self._serialised(nested.commit)


@asynccontextmanager
async def worker_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction of the worker's: the runtime role sees, across organizations, only the rows the
    worker's steps need (migration 0008); as the owner (`pamoja housekeeping`) the setting is inert."""
    async with engine.begin() as connection:
        await connection.exec_driver_sql(SET_ROW_SECURITY, tuple(WORKER_CONTEXT.settings().values()))
        yield connection


# The row-security context, in the order RowSecurityContext.settings() gives it ($1..$5). Fixed text: the
# driver prepares it once per connection, and no statement is built per request.
SET_ROW_SECURITY = ("SELECT set_config('app.organization_id', $1, true), set_config('app.user_id', $2, true), "
                    "set_config('app.client_id', $3, true), set_config('app.roles', $4, true), "
                    "set_config('app.system', $5, true)")


@dataclass(frozen=True, slots=True)
class StillValid:
    """A SQL condition asked in the statement that sets the row-security context, its parameters numbered
    from $6 (auth.resource: is a caller remembered from an earlier request still who it was?)."""

    sql: str
    parameters: tuple[Any, ...]


async def _set_row_security(driver: asyncpg.Connection, context: RowSecurityContext,
                            check: StillValid | None = None) -> bool:
    settings = tuple(context.settings().values())
    if check is None:
        await driver.fetchrow(SET_ROW_SECURITY, *settings)
        return True
    row = await driver.fetchrow(f"{SET_ROW_SECURITY}, ({check.sql}) AS still_valid", *settings, *check.parameters)
    return bool(row["still_valid"])


@asynccontextmanager
async def transaction(engine: AsyncEngine, context: RowSecurityContext, *,
                      isolation: str = "READ COMMITTED", check: StillValid | None = None) -> AsyncIterator[Db]:
    """Begin, set the row-security context with set_config(..., true), yield, let the statements still
    running finish (Db.settle), commit; on an error, roll back (Db.abandon).

    `set_config(name, value, true)` is transaction-local: a pooled connection cannot carry one
    request's organization into the next (security.md §3, verified leak with session-level SET).
    `check` is asked in the same statement (auth.resource.Credentials: is the caller
    remembered from an earlier request still who it was?); its answer is `Db.still_valid`.

    The transaction is asyncpg's own on the pooled connection, which SQLAlchemy drives in AUTOCOMMIT (it
    sends no BEGIN or COMMIT of its own; its statements run inside this transaction): begin, set_config,
    a compiled read and commit cost the worker ~0.25 ms less than through SQLAlchemy's transaction and
    execution layers (README, benchmark). A connection that leaves here still inside a transaction is
    closed, never pooled: the next request must not inherit this one's row-security context.
    """
    connection, driver, begun, still_valid = await _begun(engine, context, isolation, check)
    db = Db(connection, driver)
    db.still_valid = still_valid
    try:
        try:
            yield db
        except BaseException:
            await db.abandon()
            if not driver.is_closed():
                await begun.rollback()
            raise
        await db.settle()
        await begun.commit()
    finally:
        if not driver.is_closed() and driver.is_in_transaction():
            await connection.invalidate()
        await connection.close()


# asyncpg's names of the isolation levels the callers ask for.
ISOLATION = {"READ COMMITTED": "read_committed", "REPEATABLE READ": "repeatable_read"}
# What a pooled connection the server closed raises at its first statement.
GONE = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError)


async def _begun(engine: AsyncEngine, context: RowSecurityContext, isolation: str, check: StillValid | None,
                 ) -> tuple[AsyncConnection, asyncpg.Connection, Any, bool]:
    """A connection in a transaction with the row-security context set. A connection the server closed
    after the pool handed it out fails at its first statement, before the caller has done anything: that
    one is tried once more on a fresh connection rather than failing the request."""
    retries = 1
    while True:
        connection = await engine.connect()
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None  # the pool's connection is open (a closed one was discarded at checkout)
            begun = driver.transaction(isolation=ISOLATION[isolation])  # an asyncpg Transaction (untyped)
            await begun.start()
            try:
                return connection, driver, begun, await _set_row_security(driver, context, check)
            except BaseException:
                if not driver.is_closed():
                    await begun.rollback()
                raise
        except GONE:
            await connection.invalidate()
            await connection.close()
            if not retries:
                raise
            retries -= 1
        except BaseException:
            await connection.close()
            raise


# Statements that begin or end a transaction (or a savepoint), as the observers below see them.
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def statements_observed(engine: AsyncEngine, seen: Callable[[str, float], None]) -> Iterator[None]:
    """While open, `seen(text, seconds)` for each statement the engine's connections finish, in order:
    SQLAlchemy's (its cursor events) and those `transaction` sends on the asyncpg connection itself
    (asyncpg's query loggers, on connections checked out meanwhile: BEGIN and COMMIT among them). For the
    tests and the benchmark, which count a request's statements."""
    sync = engine.sync_engine
    started: dict[int, float] = {}

    def before(connection: Any, *_args: Any) -> None:
        started[id(connection)] = time.perf_counter()

    def after(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen(statement, time.perf_counter() - started.pop(id(connection), time.perf_counter()))

    def logged(record: Any) -> None:
        seen(record.query, record.elapsed)

    attached: list[Any] = []

    def checked_out(dbapi_connection: Any, *_args: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(logged)
        attached.append(dbapi_connection.driver_connection)

    listeners = [(sync, "before_cursor_execute", before), (sync, "after_cursor_execute", after),
                 (sync.pool, "checkout", checked_out)]
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    try:
        yield
    finally:
        for target, name, listener in listeners:
            event.remove(target, name, listener)
        for driver in attached:
            driver.remove_query_logger(logged)
