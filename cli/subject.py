"""`pamoja subject …` and `pamoja retention run`: a survivor's data subject rights from the operator's seat.

The same use cases as the supervisor's GraphQL mutations (domain/use_cases/subject_rights.py), run as
the owner in one transaction and audited as `operator:cli`. Nothing here prints a survivor's data: the
export goes to the file named by --out (created 0600), the commands print ids, counts and reason codes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cli.context import Cli, CommandError, emit, record_id
from config.logging import get_logger
from db.audit import write_audit
from db.crypto import MasterKeys, blind_index_key
from db.engine import Db, worker_transaction
from db.outbox import enqueue
from db.subject_rights import SqlSubjectRecords
from db.survivors import SqlSurvivors
from domain.enums import ErasureReason, LegalHoldReason, LegalHoldRelease
from domain.errors import DomainError, Forbidden
from domain.ids import to_global_id
from domain.use_cases import subject_rights
from domain.use_cases.subject_rights import RetentionCandidate, RetentionPlan

YEAR = timedelta(days=365.25)


def register(sub: Any) -> None:
    subject = sub.add_parser("subject", help="A survivor's data subject rights: export, legal hold, erasure.")
    commands = subject.add_subparsers(dest="subject_command", required=True)
    export = commands.add_parser("export", help="Write everything kept about one survivor to a JSON file "
                                                "(format pamoja.subject-export, version 1); audited.")
    _survivor_argument(export)
    export.add_argument("--out", required=True, metavar="FILE", help="Where to write it (created 0600; an "
                                                                     "existing file is not overwritten).")
    export.add_argument("--json", action="store_true")
    export.set_defaults(handler=_export)
    hold = commands.add_parser("hold", help="Place a legal hold: the record outlives any erasure request.")
    _survivor_argument(hold)
    hold.add_argument("--reason", required=True, choices=[r.value for r in LegalHoldReason])
    hold.add_argument("--json", action="store_true")
    hold.set_defaults(handler=_hold)
    release = commands.add_parser("release", help="Lift a legal hold.")
    _survivor_argument(release)
    release.add_argument("--reason", required=True, choices=[r.value for r in LegalHoldRelease])
    release.add_argument("--json", action="store_true")
    release.set_defaults(handler=_release)
    erase = commands.add_parser("erase", help="Erase a survivor's record now (under a legal hold the request "
                                              "is recorded and waits).")
    _survivor_argument(erase)
    erase.add_argument("--reason", required=True,
                       choices=[r.value for r in ErasureReason if r is not ErasureReason.RETENTION_EXPIRED])
    erase.add_argument("--json", action="store_true")
    erase.set_defaults(handler=_erase)

    retention = sub.add_parser("retention", help="The retention period of survivors' records.").add_subparsers(
        dest="retention_command", required=True)
    run = retention.add_parser("run", help="List the survivors whose records are due for erasure (ids and reasons "
                                           "only); --apply erases them. A legal hold wins and is listed.")
    run.add_argument("--apply", action="store_true", help="Erase them (default: a dry run that changes nothing).")
    run.add_argument("--years", type=float, default=None,
                     help="The period after the last referral closed (default PAMOJA_RETENTION_YEARS, 7).")
    run.add_argument("--json", action="store_true")
    run.set_defaults(handler=_retention)


def _survivor_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--survivor", required=True, metavar="ID",
                        help="The survivor's global id (its `id` in GraphQL) or database UUID.")


def survivor_id(value: str) -> uuid.UUID:
    found = record_id(value, "Survivor")
    if found is None:
        raise CommandError("--survivor takes a Survivor's global id (as GraphQL shows it) or its UUID")
    return found


def store(cli: Cli, connection: AsyncConnection, *, now: datetime, actor: str = "operator:cli") -> SqlSubjectRecords:
    """The subject rights store on a connection (the owner's, or the worker's): audited as `actor`, events to
    the outbox in the same transaction."""
    settings = cli.settings
    master = MasterKeys.parse(settings.master_keys.get_secret_value())
    index_key = blind_index_key(settings.blind_index_key.get_secret_value())
    db = Db(connection)

    async def audit(*, action: str, record_type: str, record_id: str | None, outcome: str = "allowed",
                    purpose: str | None = None) -> None:
        await write_audit(connection, actor=actor, client_id="pamoja-cli" if actor == "operator:cli" else None,
                          organization_id=None, action=action, record_type=record_type,
                          record_id=record_id, purpose=purpose, request_id=None, outcome=outcome)

    async def announce(*, event_type: str, organization_id: uuid.UUID, data: Mapping[str, str]) -> None:
        await enqueue(db, event_type=event_type, organization_id=organization_id,
                      data={**data, "occurredAt": now.isoformat()})

    return SqlSubjectRecords(db, survivors=SqlSurvivors(db, master=master, index_key=index_key, now=now),
                             master=master, index_key=index_key, now=now, audit=audit, emit=announce)


@asynccontextmanager
async def _records(cli: Cli) -> AsyncIterator[SqlSubjectRecords]:
    async with cli.owner_transaction() as connection:
        now = (await connection.execute(select(func.now()))).scalar_one()
        yield store(cli, connection, now=now)


def _run(work: Any) -> Any:
    try:
        return asyncio.run(work)
    except DomainError as error:  # NOT_FOUND has no message of its own: say which option
        field = "--survivor" if error.field == ("input", "survivorId") else None
        message = error.message or "no such survivor"
        raise CommandError(f"{field}: {message}" if field else message) from None
    except Forbidden as error:
        raise CommandError(error.message) from None


def _export(args: argparse.Namespace) -> int:
    target = Path(args.out)
    wanted = survivor_id(args.survivor)

    async def run() -> dict[str, Any]:
        cli = Cli.load()
        async with _records(cli) as records:
            return await subject_rights.export(store=records, principal=None, survivor_id=wanted)

    document = _run(run())
    try:  # O_EXCL: never overwrite a file (another child's export, say); 0600: the operator's eyes only
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError("--out: that file already exists; name a new file") from None
    except OSError as exc:
        raise CommandError(f"--out: cannot create the file ({exc.strerror})") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=2)
        handle.write("\n")
    counts = {key: len(document[key]) for key in ("consents", "referrals", "sessions", "goals", "milestones",
                                                  "assessments", "safeguardingConcerns", "auditTrail")}
    emit({"survivor": document["survivor"]["id"], "out": str(target), "counts": counts}, as_json=args.json,
         human=f"wrote {target}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _change(args: argparse.Namespace, action: Any, done: str) -> int:
    wanted = survivor_id(args.survivor)

    async def run() -> Any:
        cli = Cli.load()
        async with _records(cli) as records:
            return await action(records, wanted)

    result = _run(run())
    gid = to_global_id("Survivor", wanted)
    data: dict[str, Any] = {"survivor": gid}
    if isinstance(result, subject_rights.ErasureOutcome):
        data["status"] = result.status.value
        done = result.explanation
    emit(data, as_json=args.json, human=f"{gid}: {done}")
    return 0


def _hold(args: argparse.Namespace) -> int:
    return _change(args, lambda records, wanted: subject_rights.place_legal_hold(
        store=records, principal=None, survivor_id=wanted, reason=LegalHoldReason(args.reason),
        expected_version=None), f"legal hold placed ({args.reason})")


def _release(args: argparse.Namespace) -> int:
    return _change(args, lambda records, wanted: subject_rights.lift_legal_hold(
        store=records, principal=None, survivor_id=wanted, reason=LegalHoldRelease(args.reason),
        expected_version=None), f"legal hold lifted ({args.reason})")


def _erase(args: argparse.Namespace) -> int:
    return _change(args, lambda records, wanted: subject_rights.request_erasure(
        store=records, principal=None, survivor_id=wanted, reason=ErasureReason(args.reason),
        expected_version=None), "erased")


def _listed(candidate: RetentionCandidate, *, held: bool) -> dict[str, Any]:
    return {"survivor": to_global_id("Survivor", candidate.survivor_id), "survivorUuid": str(candidate.survivor_id),
            "organization": to_global_id("Organization", candidate.organization_id),
            "reason": "LEGAL_HOLD" if held else candidate.reason.value,
            "lastClosedAt": candidate.last_closed_at.isoformat() if candidate.last_closed_at else None}


async def run_retention(records: SqlSubjectRecords, *, years: float, apply: bool) -> tuple[RetentionPlan, int]:
    plan = await subject_rights.plan_retention(store=records, period=YEAR * years)
    erased = await subject_rights.apply_retention(store=records, plan=plan) if apply else 0
    return plan, erased


def _retention(args: argparse.Namespace) -> int:
    async def run() -> tuple[RetentionPlan, int, float]:
        cli = Cli.load()
        years = args.years if args.years is not None else cli.settings.retention_years
        if years <= 0:
            raise CommandError("--years must be more than 0")
        async with _records(cli) as records:
            plan, erased = await run_retention(records, years=years, apply=args.apply)
        return plan, erased, years

    plan, erased, years = _run(run())
    data = {"applied": args.apply, "years": years, "cutoff": plan.cutoff.astimezone(UTC).isoformat(),
            "erase": [_listed(c, held=False) for c in plan.erase],
            "skipped": [_listed(c, held=True) for c in plan.held],
            "erased": erased}
    lines = [f"{'erased' if args.apply else 'would erase'} {len(plan.erase)}, skipped {len(plan.held)} "
             f"under legal hold (retention {years:g} years: last referral closed before "
             f"{plan.cutoff.date().isoformat()})"]
    lines += [f"  {item['survivor']} ({item['survivorUuid']})  {item['reason']}" for item in data["erase"]]
    lines += [f"  {item['survivor']} ({item['survivorUuid']})  skipped: LEGAL_HOLD" for item in data["skipped"]]
    emit(data, as_json=args.json, human="\n".join(lines))
    return 0


RETENTION_INTERVAL_SECONDS = 24 * 3600
log = get_logger("pamoja.retention")


async def retention_once(cli: Cli, engine: AsyncEngine) -> int:
    """One retention run as the worker (runtime role, worker's mark), in one transaction."""
    async with worker_transaction(engine) as connection:
        now = (await connection.execute(select(func.now()))).scalar_one()
        records = store(cli, connection, now=now, actor="system:retention")
        plan, erased = await run_retention(records, years=cli.settings.retention_years, apply=True)
    if erased or plan.held:
        log.info("retention", erased=erased, held=len(plan.held))
    return erased


async def retention_forever(cli: Cli, engine: AsyncEngine, stop: asyncio.Event) -> None:
    """Apply retention now and then once a day until `stop`; a failed run is logged and tried next day."""
    while not stop.is_set():
        try:
            await retention_once(cli, engine)
        except Exception as exc:  # the database restarting must not end the worker
            log.warning("retention run failed; trying again tomorrow", error_type=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=RETENTION_INTERVAL_SECONDS)
