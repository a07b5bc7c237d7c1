"""`pamoja worker [--once]`, `pamoja webhooks list`, `pamoja webhooks redeliver`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import uuid
from typing import Any

from cli.context import Cli, CommandError, emit, record_id
from cli.housekeeping import sweep_forever
from cli.startup import log_database_in_use
from cli.subject import retention_forever
from config.logging import configure_logging
from db import outbox
from db.crypto import MasterKeys
from db.engine import make_engine
from domain.events import DeliveryStatus
from domain.ids import from_global_id, to_global_id
from partners.webhooks import DeliveryPolicy
from partners.worker import WorkerCounts, run_forever, run_once


def register(sub: Any) -> None:
    worker = sub.add_parser("worker", help="Deliver webhooks, announce overdue referrals, sweep expired rows "
                                           "(pamoja housekeeping) and, with PAMOJA_RETENTION_ENABLED, erase records "
                                           "past retention once a day, until stopped.")
    worker.add_argument("--once", action="store_true", help="Drain what is due now, then exit.")
    worker.add_argument("--json", action="store_true")
    worker.set_defaults(handler=_worker)

    hooks = sub.add_parser("webhooks", help="Webhook deliveries.").add_subparsers(dest="webhooks_command",
                                                                                  required=True)
    listing = hooks.add_parser("list", help="List deliveries, newest first (dead letters with --status dead).")
    listing.add_argument("--org", default=None, help="The addressed organization's global id.")
    listing.add_argument("--status", choices=[s.value.lower() for s in DeliveryStatus], default=None)
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)

    again = hooks.add_parser("redeliver", help="Send an event again, with the same webhook-id.")
    again.add_argument("event_id", metavar="EVENT_ID", help="The event id (the webhook-id header) or its global id.")
    again.add_argument("--client", default=None, help="Only this OAuth client_id (default: all endpoints).")
    again.add_argument("--json", action="store_true")
    again.set_defaults(handler=_redeliver)


def _summary(counts: WorkerCounts) -> str:
    return (f"worker: {counts.delivered} delivered, {counts.retried} to retry, {counts.dead} dead, "
            f"{counts.dispatched} events dispatched, {counts.overdue} referrals overdue")


async def _run_worker(cli: Cli, *, once: bool) -> WorkerCounts:
    # The runtime role, in the worker's row-security context (db.engine.worker_transaction): never the owner.
    await log_database_in_use(cli.settings, cli.urls.app)
    engine = make_engine(cli.urls.app, pool_size=4, statement_timeout_ms=cli.settings.db_statement_timeout_ms,
                         application_name="pamoja-worker")
    policy = DeliveryPolicy.from_settings(cli.settings)
    master_keys = MasterKeys.parse(cli.settings.master_keys.get_secret_value())
    try:
        if once:
            return await run_once(engine, policy=policy, master_keys=master_keys)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            sweeping = asyncio.create_task(sweep_forever(engine, stop, cli.settings.housekeeping_interval_seconds))
            retaining = asyncio.create_task(retention_forever(cli, engine, stop)) \
                if cli.settings.retention_enabled else None
            try:
                return await run_forever(engine, policy=policy, master_keys=master_keys, stop=stop)
            finally:
                stop.set()
                await sweeping
                if retaining is not None:
                    await retaining
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, RuntimeError):
                    loop.remove_signal_handler(signum)
    finally:
        await engine.dispose()


def _worker(args: argparse.Namespace) -> int:
    cli = Cli.load()
    configure_logging(level=cli.settings.log_level, json=cli.settings.log_json)
    try:
        counts = asyncio.run(_run_worker(cli, once=args.once))
    except OSError as exc:
        raise CommandError(f"worker could not reach the database ({type(exc).__name__})") from None
    emit(counts.as_dict(), as_json=args.json, human=_summary(counts))
    return 0


def _organization(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    decoded = from_global_id(value, "Organization")
    if decoded is None:
        raise CommandError("--org must be an organization's global id")
    return decoded[1]


def _event_id(value: str) -> uuid.UUID:
    found = record_id(value, "OutboxEvent")
    if found is None:
        raise CommandError("EVENT_ID must be the event's id (the webhook-id header) or its global id")
    return found


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _list(args: argparse.Namespace) -> int:
    organization_id = _organization(args.org)
    status = DeliveryStatus(args.status.upper()) if args.status else None
    if args.limit < 1:
        raise CommandError("--limit must be at least 1")

    async def run() -> list[outbox.DeliveryRecord]:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            return await outbox.list_deliveries(connection, organization_id=organization_id, status=status,
                                                limit=args.limit)

    records = asyncio.run(run())
    items = [{
        "eventId": str(r.outbox_event_id), "eventType": r.event_type,
        "organization": to_global_id("Organization", r.organization_id), "clientId": r.client_id,
        "status": r.status.value, "attempts": r.attempts, "lastStatusCode": r.last_status_code,
        "lastErrorKind": r.last_error_kind, "nextAttemptAt": _iso(r.next_attempt_at),
        "deliveredAt": _iso(r.delivered_at), "createdAt": _iso(r.created_at),
    } for r in records]
    lines = [f"{i['eventId']}  {i['eventType']:<20} {i['clientId']:<24} {i['status']:<9} "
             f"attempts={i['attempts']} last={i['lastStatusCode'] or i['lastErrorKind'] or '-'}" for i in items]
    emit({"deliveries": items}, as_json=args.json, human="\n".join(lines) if lines else "no deliveries")
    return 0


def _redeliver(args: argparse.Namespace) -> int:
    event_id = _event_id(args.event_id)

    async def run() -> int:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            queued = await outbox.redeliver(connection, event_id=event_id, client_id=args.client)
            if queued:
                await cli.audit(connection, action="redeliver", record_type="OutboxEvent",
                                record_id=to_global_id("OutboxEvent", event_id))
            return queued

    queued = asyncio.run(run())
    if not queued:
        raise CommandError("nothing to redeliver: no such event, or no enabled endpoint for it")
    emit({"eventId": str(event_id), "queued": queued}, as_json=args.json,
         human=f"queued {queued} deliver{'y' if queued == 1 else 'ies'} of event {event_id}")
    return 0
