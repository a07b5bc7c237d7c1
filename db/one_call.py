"""A compiled read in one round trip: the row-security context, the remembered caller's re-check and the
read, in one call of a temporary PL/pgSQL function the connection made for that statement.

Why: a compiled read in `db.engine.transaction` is four round trips (BEGIN, set_config with the re-check,
the read, COMMIT). On this machine the three beside the read cost the worker more CPU than the read
itself (README, benchmark: 0.29 against 0.08 ms of client CPU, 0.24 against 0.15 ms of PostgreSQL's, for a
referral by id). asyncpg sends each statement on its own, so they cannot share a round trip; one
statement that calls a function can.

What keeps each rule of `db.engine.transaction`:
- The settings are `set_config(..., true)`, parameterized, and local to the transaction, which here is
  the call's own implicit one: they end with the call, and the next request on the pooled connection sees
  none (security.md §3; tests/safety).
- PL/pgSQL runs its statements in order: the read's executor starts after `set_config` and the re-check
  finished, so row-level security reads this caller's settings. (A `set_config` inside the read's own
  SELECT has no such promise.)
- The function is SECURITY INVOKER, made by and run as the API's role: row-level security applies as it
  does to the statement itself. Its text is the compiler's, with every value a parameter; the function is
  temporary (`pg_temp`), visible to this connection only, and gone with it.
- A re-check that fails returns no row: the caller changed or is gone, and the full pipeline reads it again.

A role without the TEMPORARY privilege, or a read-only server, cannot make the function: the caller
(`api/graphql/lane.py`) then reads in `db.engine.transaction`, as before.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from db.engine import SET_ROW_SECURITY, RowSecurityContext, Serialised, StillValid

# The connection's functions ((read's text, re-check's text) -> the call), in the pool record's `info`:
# kept while the connection lives, gone with it (SQLAlchemy clears a record's `info` when it reconnects).
FUNCTIONS = "pamoja.read_functions"
MAX_FUNCTIONS = 256  # per connection; the oldest is dropped past it
BODY_TAG = "$pamoja_read$"  # the function body's dollar quote; a text holding it is never wrapped
# Types by their OIDs, as DDL names them (qualified and quoted where it must be: an enum, `text[]`).
TYPE_NAMES = "SELECT array_agg(format_type(o, NULL) ORDER BY n) FROM unnest($1::oid[]) WITH ORDINALITY AS t(o, n)"
# What PostgreSQL says when the function cannot be made at all: no TEMPORARY privilege, a read-only server.
REFUSED = (asyncpg.InsufficientPrivilegeError, asyncpg.ReadOnlySQLTransactionError)


class StaleCaller(Exception):
    """The remembered caller's re-check failed: it changed or is gone."""


class TemporaryFunctionsRefused(Exception):
    """This database does not let the API's role make a temporary function."""


class ReadInOneCall(Serialised):
    """A request's handle for one compiled read, sent as one call (CompiledRows); nothing else runs on it."""

    def __init__(self, pooled: PoolProxiedConnection, driver: asyncpg.Connection, context: RowSecurityContext,
                 check: StillValid | None) -> None:
        super().__init__()
        self._pooled = pooled
        self._driver = driver
        self._settings = tuple(context.settings().values())
        self._check = check
        # The connection's functions, by the read's text and the re-check's: each request's lookup hashes
        # nothing new (the compiler hands out the same text objects), the digest is taken once per function.
        self._functions: OrderedDict[tuple[str, str], str] = pooled.info.setdefault(FUNCTIONS, OrderedDict())

    async def compiled_row(self, sql: str, parameters: Sequence[Any]) -> tuple[Any, ...]:
        """The read's row, as `Db.compiled_row` returns it; StaleCaller when the re-check fails."""
        check_parameters = self._check.parameters if self._check is not None else ()

        async def run() -> tuple[Any, ...]:
            self.statements += 1
            call = await self._function(sql, len(parameters))
            arguments = (*parameters, *self._settings, *check_parameters)
            try:
                row = await self._driver.fetchrow(call, *arguments)
            except asyncpg.UndefinedFunctionError:  # the session lost it (DISCARD TEMP): made again, once
                self._functions.pop(self._key(sql), None)
                row = await self._driver.fetchrow(await self._function(sql, len(parameters)), *arguments)
            if row is None:
                raise StaleCaller
            return tuple(row)

        return await self._serialised(run)

    def _key(self, sql: str) -> tuple[str, str]:
        return sql, self._check.sql if self._check is not None else ""

    async def _function(self, sql: str, count: int) -> str:
        key = self._key(sql)
        call = self._functions.get(key)
        if call is not None:
            self._functions.move_to_end(key)
            return call
        name = _name(*key)
        try:
            await self._driver.execute(await _definition(self._driver, name, sql, count, self._check))
        except REFUSED as exc:
            raise TemporaryFunctionsRefused from exc
        arguments = count + len(self._settings) + (len(self._check.parameters) if self._check else 0)
        numbers = ", ".join(f"${n}" for n in range(1, arguments + 1))
        call = self._functions[key] = f"SELECT * FROM pg_temp.{name}({numbers})"  # noqa: S608 (name: a digest)
        while len(self._functions) > MAX_FUNCTIONS:
            oldest, _ = self._functions.popitem(last=False)
            await self._driver.execute(f"DROP FUNCTION IF EXISTS pg_temp.{_name(*oldest)}")
        return call

    def abandon(self) -> None:
        """An error or a timeout: refuse further calls, and close the connection rather than wait if the
        call is still running on it."""
        self._ended = True
        if self._running:
            self._pooled.invalidate()


@asynccontextmanager
async def read_in_one_call(engine: AsyncEngine, context: RowSecurityContext, check: StillValid | None,
                           ) -> AsyncIterator[ReadInOneCall]:
    """A pooled connection for one compiled read (ReadInOneCall.compiled_row), taken from the pool itself:
    the read sends no statement through SQLAlchemy, so it needs none of a SQLAlchemy connection's
    bookkeeping (26 against 60 µs of the worker's CPU per request, checkout to return). As in
    `db.engine.transaction`, a connection left with a call running or inside a transaction is closed,
    never pooled."""
    pooled = await engine.raw_connection()
    try:
        driver = pooled.driver_connection
        assert driver is not None  # the pool's connection is open (a closed one was discarded at checkout)
        db = ReadInOneCall(pooled, driver, context, check)
        try:
            yield db
        except BaseException:
            db.abandon()
            raise
        await db.settle()
        if not driver.is_closed() and driver.is_in_transaction():
            pooled.invalidate()
    finally:
        await greenlet_spawn(pooled.close)


def _name(sql: str, check: str) -> str:
    digest = hashlib.sha256(sql.encode() + b"\0" + check.encode()).hexdigest()
    return f"pamoja_read_{digest[:32]}"


async def _definition(driver: asyncpg.Connection, name: str, sql: str, count: int, check: StillValid | None,
                      ) -> str:
    """The function's CREATE statement. The argument and column types are those PostgreSQL infers for the
    read (and for the re-check, in the statement `db.engine.transaction` sends): the read's own `$1..$n`,
    then the settings, then the re-check's parameters, renumbered past the read's."""
    if BODY_TAG in sql or (check is not None and BODY_TAG in check.sql):
        raise ValueError("the statement holds the function body's quote")
    read = await driver.prepare(sql)
    given = read.get_parameters()
    if len(given) != count:
        raise ValueError("the read's parameters are not those given")
    settings = list(RowSecurityContext().settings())
    set_context = ", ".join(f"set_config('{setting}', ${count + i}, true)" for i, setting in enumerate(settings, 1))
    checked: Sequence[Any] = ()
    recheck = ""
    if check is not None:
        probe = await driver.prepare(f"{SET_ROW_SECURITY}, ({check.sql}) AS still_valid")
        checked = probe.get_parameters()[len(settings):]
        shifted = re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + count}", check.sql)
        recheck = f"IF NOT coalesce(({shifted}), false) THEN RETURN; END IF;\n"
    row = [a.type for a in read.get_attributes()]
    names = await driver.fetchval(TYPE_NAMES, [t.oid for t in (*given, *checked, *row)])
    types = [*names[:count], *["text"] * len(settings), *names[count:count + len(checked)]]
    returned = ", ".join(f"pamoja_column_{i} {t}" for i, t in enumerate(names[count + len(checked):]))
    return (f"CREATE FUNCTION pg_temp.{name}({', '.join(types)}) RETURNS TABLE ({returned}) "
            f"LANGUAGE plpgsql AS {BODY_TAG}\n#variable_conflict use_column\nBEGIN\n"
            f"PERFORM {set_context};\n{recheck}RETURN QUERY {sql};\nEND\n{BODY_TAG}")


