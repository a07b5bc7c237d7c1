"""`pamoja housekeeping`: delete rows whose purpose has passed (db/housekeeping.py says which and why).

`pamoja worker` also sweeps every PAMOJA_HOUSEKEEPING_INTERVAL_SECONDS; the command is for cron or
for an operator who wants it now.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.context import Cli, CommandError, emit
from config.logging import get_logger
from db.engine import make_engine, worker_transaction
from db.housekeeping import sweep

log = get_logger("pamoja.housekeeping")


def register(sub: Any) -> None:
    command = sub.add_parser("housekeeping", help="Delete expired idempotency records, revoked tokens, "
                                                  "used assertions and codes, and stale login throttles.")
    command.add_argument("--json", action="store_true")
    command.set_defaults(handler=_housekeeping)


async def sweep_once(engine: AsyncEngine) -> dict[str, int]:
    """One sweep in one transaction, at the database's clock (the one the rows were stamped with)."""
    async with worker_transaction(engine) as connection:
        now = (await connection.execute(select(func.now()))).scalar_one()
        return await sweep(connection, now=now)


async def sweep_forever(engine: AsyncEngine, stop: asyncio.Event, interval_seconds: float) -> None:
    """Sweep now and then every interval until `stop`; a failed sweep is logged and tried next time."""
    while not stop.is_set():
        try:
            swept = await sweep_once(engine)
        except Exception as exc:  # the database restarting must not end the worker
            log.warning("housekeeping sweep failed; trying again next interval", error_type=type(exc).__name__)
        else:
            if any(swept.values()):
                log.info("housekeeping", **swept)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)


async def _run(cli: Cli) -> dict[str, int]:
    engine = make_engine(cli.urls.app, pool_size=1, statement_timeout_ms=cli.settings.db_statement_timeout_ms,
                         application_name="pamoja-housekeeping")
    try:
        return await sweep_once(engine)
    finally:
        await engine.dispose()


def _housekeeping(args: argparse.Namespace) -> int:
    cli = Cli.load()
    try:
        swept = asyncio.run(_run(cli))
    except OSError as exc:
        raise CommandError(f"housekeeping could not reach the database ({type(exc).__name__})") from None
    emit(swept, as_json=args.json,
         human="housekeeping: " + ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in swept.items()))
    return 0
