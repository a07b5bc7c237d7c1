"""`pamoja org add` and `org list`: register organizations and find their ids (staff users are cli/staff.py's)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from cli.context import Cli, CommandError, emit
from db import registry
from db.directory_writes import SqlDirectoryWriter
from db.engine import Db
from domain.directory import OrganizationDetails
from domain.enums import OrganizationKind, ServiceType
from domain.errors import DomainError
from domain.ids import to_global_id
from domain.kenya import county_code, normalize_language
from partners import directory


def register(sub: Any) -> None:
    org = sub.add_parser("org", help="Organizations.").add_subparsers(dest="org_command", required=True)
    add = org.add_parser("add", help="Register the NGO or a partner organization.")
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, choices=[k.value for k in OrganizationKind])
    add.add_argument("--county", action="append", default=[], help="County code or name; repeatable.")
    add.add_argument("--service", action="append", default=[], choices=[s.value for s in ServiceType])
    add.add_argument("--language", action="append", default=[], help="BCP 47 tag; repeatable.")
    add.add_argument("--min-age", type=int, default=None)
    add.add_argument("--max-age", type=int, default=None)
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=_org_add)

    listing = org.add_parser("list", help="List organizations with the ids that --org options take.")
    listing.add_argument("--kind", default=None, choices=[k.value for k in OrganizationKind])
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_org_list)


def _org_list(args: argparse.Namespace) -> int:
    async def run() -> list[dict[str, Any]]:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            found = await registry.list_organizations(connection, kind=args.kind)
        return [{"id": to_global_id("Organization", row.id), "name": row.name, "kind": row.kind,
                 "counties": list(row.counties or []), "active": row.active} for row in found]

    rows = asyncio.run(run())
    header = ("NAME", "KIND", "STATUS", "ID")
    cells = [(r["name"], r["kind"], "active" if r["active"] else "inactive", r["id"]) for r in rows]
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
    table = "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
                      for line in (header, *cells)) if rows else "no organizations yet: `pamoja org add` registers one"
    emit({"organizations": rows, "count": len(rows)}, as_json=args.json, human=table)
    return 0


def _org_add(args: argparse.Namespace) -> int:
    try:
        counties = [county_code(c, field=("county",)) for c in args.county]
        languages = [normalize_language(lang, field=("language",)) for lang in args.language]
    except DomainError as exc:
        raise CommandError(exc.message) from None
    if args.min_age is not None and args.max_age is not None and args.min_age > args.max_age:
        raise CommandError("--min-age must not exceed --max-age")
    if not args.name.strip():
        raise CommandError("--name must not be empty")

    async def run() -> str:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            async def audit(action: str, record_id: str) -> None:
                await cli.audit(connection, action=action, record_type="Organization", record_id=record_id,
                                purpose=directory.AUDIT_PURPOSE)

            org_id = await directory.add_organization(
                writer=SqlDirectoryWriter(Db(connection), audit),
                details=OrganizationDetails(
                    name=args.name, kind=OrganizationKind(args.kind), counties=tuple(counties),
                    languages=tuple(languages), min_age=args.min_age, max_age=args.max_age),
                services=[ServiceType(s) for s in args.service])
            return to_global_id("Organization", org_id)

    try:
        gid = asyncio.run(run())
    except DomainError as exc:
        raise CommandError(exc.message) from None
    emit({"id": gid, "name": args.name.strip(), "kind": args.kind}, as_json=args.json,
         human=f"organization {gid}")
    return 0

