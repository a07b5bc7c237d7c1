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

from cli.context import Cli, CommandError, emit
from db.crypto import MasterKeys
from db.keyring import keys_still_on, rotate_master


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="The tamper-evident audit trail.").add_subparsers(
        dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="Verify the hash chain; exit 1 naming the first broken row.")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=_verify)


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
