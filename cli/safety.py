"""`pamoja audit verify`: check the whole hash chain of the audit trail; `pamoja audit report`: breach answers.

Exit 0 when every row's hash covers its content and links to the previous row; exit 1 naming the
first broken row otherwise (an edited row fails its own hash, a deleted row breaks the next link).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from cli.context import Cli, CommandError, emit, record_id
from db.crypto import MasterKeys
from db.keyring import keys_still_on, rotate_master
from domain.ids import from_global_id, to_global_id


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="The tamper-evident audit trail.").add_subparsers(
        dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="Verify the hash chain; exit 1 naming the first broken row.")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=_verify)
    register_report(audit)


def register_keys(keys: Any) -> None:
    """`pamoja keys rotate-master`, registered inside the `keys` group that cli/oauth.py creates."""
    rotate = keys.add_parser(
        "rotate-master",
        help="Re-wrap survivor data keys, signing keys and webhook secrets under the current (first) "
             "master key of PAMOJA_MASTER_KEYS; no record is re-encrypted.")
    rotate.add_argument("--retire", metavar="KEY_ID", default=None,
                        help="Afterwards, check that no row still needs this old master key id.")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(handler=_rotate_master)


def _rotate_master(args: argparse.Namespace) -> int:
    async def run() -> tuple[dict[str, int], int | None]:
        cli = Cli.load()
        master = MasterKeys.parse(cli.settings.master_keys.get_secret_value())
        async with cli.owner_transaction() as connection:
            counts = await rotate_master(connection, master)
            remaining = await keys_still_on(connection, args.retire) if args.retire else None
            await cli.audit(connection, action="rotate_master_key", record_type="MasterKey",
                            record_id=master.current_id)
        return counts, remaining

    counts, remaining = asyncio.run(run())
    data: dict[str, Any] = {"rewrapped": counts}
    if args.retire:
        data["still_on_retired_key"] = remaining
    emit(data, as_json=args.json, human=", ".join(f"{k}: {v}" for k, v in counts.items()) + " re-wrapped")
    if remaining:
        raise CommandError(f"{remaining} keys still wrapped under {args.retire}; do not remove it yet")
    return 0


async def verify_chain(cli: Cli) -> tuple[int, dict[str, Any] | None]:
    async with cli.owner_transaction() as connection:
        total = int((await connection.execute(text("SELECT count(*) FROM audit_event"))).scalar_one())
        broken = (await connection.execute(text(
            "SELECT seq, link_ok, hash_ok FROM audit_verify WHERE NOT (link_ok AND hash_ok) ORDER BY seq LIMIT 1"
        ))).first()
    if broken is None:
        return total, None
    problem = "content does not match its hash" if not broken.hash_ok else "previous row missing or changed"
    return total, {"seq": broken.seq, "problem": problem}


def _verify(args: argparse.Namespace) -> int:
    total, broken = asyncio.run(verify_chain(Cli.load()))
    if broken is None:
        emit({"ok": True, "rows": total}, as_json=args.json, human=f"audit chain intact: {total} rows")
        return 0
    emit({"ok": False, "rows": total, "first_broken_seq": broken["seq"], "problem": broken["problem"]},
         as_json=args.json, human=f"audit chain broken at row {broken['seq']}: {broken['problem']}")
    sys.stderr.write(f"pamoja: audit chain broken at row {broken['seq']}\n")
    return 1


# ----------------------------------------------------------------------------- breach answers

RECORD_TABLES = {"Consent": "consent", "Referral": "referral", "CounselingSession": "counseling_session",
                 "CareGoal": "care_goal", "Milestone": "milestone", "Assessment": "assessment"}


def register_report(audit: Any) -> None:
    report = audit.add_parser(
        "report", help="Who saw a survivor's record, or what a person or client read: from the audit trail, "
                       "for a breach notice (ids and counts only).")
    which = report.add_mutually_exclusive_group(required=True)
    which.add_argument("--survivor", metavar="ID", help="A survivor's global id or UUID: every event on her "
                                                        "record and on her consents, referrals and care records.")
    which.add_argument("--actor", metavar="USER", help="A staff user's global id, UUID or e-mail address.")
    which.add_argument("--client", metavar="CLIENT_ID", help="An OAuth client_id.")
    report.add_argument("--since", metavar="T", help="Only events at or after T, e.g. 2026-12-01T00:00:00+03:00 "
                                                     "or 2026-12-01 (midnight UTC).")
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=_report)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError("--since takes an ISO 8601 instant such as 2026-12-01T00:00:00+03:00, or a date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _actor_id(connection: Any, value: str) -> str:
    known = record_id(value, "StaffUser")
    if known is not None:
        return to_global_id("StaffUser", known)
    found = (await connection.execute(text("SELECT id FROM staff_user WHERE lower(email) = lower(:email)"),
                                      {"email": value.strip()})).scalar()
    if found is None:
        raise CommandError("--actor: no staff user has that id or e-mail address (pamoja user list finds one)")
    return to_global_id("StaffUser", found)


async def _survivors_of(connection: Any, record_ids: set[str]) -> list[str]:
    """The survivors the records belong to, by type: ids only, looked up by primary key."""
    survivors: set[str] = set()
    by_table: dict[str, list[uuid.UUID]] = {}
    for audited in record_ids:
        decoded = from_global_id(audited)
        if decoded is None:
            continue
        kind, key = decoded
        if kind == "Survivor":
            survivors.add(to_global_id("Survivor", key))
        elif kind in RECORD_TABLES:
            by_table.setdefault(RECORD_TABLES[kind], []).append(key)
    for table, keys in by_table.items():
        rows = await connection.execute(text(f"SELECT DISTINCT survivor_id FROM {table} WHERE id = ANY(:ids)"),  # noqa: S608
                                        {"ids": keys})
        survivors.update(to_global_id("Survivor", row.survivor_id) for row in rows)
    return sorted(survivors)


async def audit_report(cli: Cli, *, survivor: uuid.UUID | None, actor: str | None, client: str | None,
                       since: datetime | None) -> dict[str, Any]:
    params: dict[str, Any]
    asked: dict[str, str | None]
    async with cli.owner_transaction() as connection:
        if survivor is not None:
            where, params = "record_id IN (SELECT subject_record_ids(:survivor))", {"survivor": survivor}
            asked = {"survivor": to_global_id("Survivor", survivor)}
        elif actor is not None:
            actor_id = await _actor_id(connection, actor)
            where, params, asked = "actor = :actor", {"actor": actor_id}, {"actor": actor_id}
        else:
            where, params, asked = "client_id = :client", {"client": client}, {"client": client}
        if since is not None:
            where += " AND at >= :since"
            params["since"] = since
        rows = (await connection.execute(text(  # fixed text; every value is bound
            "SELECT seq, at, actor, client_id, organization_id, action, record_type, record_id, purpose, outcome "  # noqa: S608
            f"FROM audit_event WHERE {where} ORDER BY seq"), params)).all()
        survivors = await _survivors_of(connection, {r.record_id for r in rows
                                                     if r.record_id and r.outcome == "allowed"})
        await cli.audit(connection, action="audit_report", record_type="AuditEvent", record_id=None,
                        purpose="BREACH_ANSWER")
    who: dict[tuple[str, str | None], dict[str, Any]] = {}
    for r in rows:
        entry = who.setdefault((r.actor, r.client_id), {
            "actor": r.actor, "client": r.client_id,
            "organization": to_global_id("Organization", r.organization_id) if r.organization_id else None,
            "reads": 0, "changes": 0, "refused": 0, "first": r.at.isoformat(), "last": r.at.isoformat()})
        if r.outcome != "allowed":
            entry["refused"] += 1
        elif r.action in ("read", "export"):
            entry["reads"] += 1
        else:
            entry["changes"] += 1
        entry["last"] = r.at.isoformat()
    return {
        "query": {**asked, "since": since.isoformat() if since else None}, "events": len(rows),
        "byActor": list(who.values()), "survivors": survivors,
        "rows": [{"seq": r.seq, "at": r.at.isoformat(), "actor": r.actor, "client": r.client_id,
                  "action": r.action, "recordType": r.record_type, "recordId": r.record_id, "purpose": r.purpose,
                  "outcome": r.outcome} for r in rows],
    }


def _report(args: argparse.Namespace) -> int:
    from cli.subject import survivor_id

    survivor = survivor_id(args.survivor) if args.survivor else None
    since = _since(args.since)
    report = asyncio.run(audit_report(Cli.load(), survivor=survivor, actor=args.actor, client=args.client,
                                      since=since))
    lines = [f"{report['events']} audit events; {len(report['survivors'])} survivors' records involved"]
    if report["byActor"]:
        lines.append("actor | client | organization | reads | changes | refused | first | last")
        lines += [f"{w['actor']} | {w['client'] or '-'} | {w['organization'] or '-'} | {w['reads']} | "
                  f"{w['changes']} | {w['refused']} | {w['first']} | {w['last']}" for w in report["byActor"]]
    if args.survivor is None and report["survivors"]:
        lines.append("survivors: " + " ".join(report["survivors"]))
    emit(report, as_json=args.json, human="\n".join(lines))
    return 0
