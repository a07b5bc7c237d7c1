"""`pamoja audit verify`: check the whole hash chain of the audit trail.

Exit 0 when every row's hash covers its content and links to the previous row; exit 1 naming the
first broken row otherwise (an edited row fails its own hash, a deleted row breaks the next link).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from sqlalchemy import text

from cli.context import Cli, emit


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="The tamper-evident audit trail.").add_subparsers(
        dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="Verify the hash chain; exit 1 naming the first broken row.")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=_verify)


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
