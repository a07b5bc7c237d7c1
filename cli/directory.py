"""`pamoja org add` and `pamoja user add`: register organizations and staff."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from argon2 import PasswordHasher

from cli.context import Cli, CommandError, emit
from db import registry
from domain.enums import OrganizationKind, Role, ServiceType
from domain.errors import DomainError
from domain.ids import from_global_id, to_global_id
from domain.kenya import county_code, normalize_language


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

    user = sub.add_parser("user", help="Staff users.").add_subparsers(dest="user_command", required=True)
    uadd = user.add_parser("add", help="Register a staff user in an organization.")
    uadd.add_argument("--org", required=True, help="The organization's global id.")
    uadd.add_argument("--email", required=True)
    uadd.add_argument("--name", required=True)
    uadd.add_argument("--role", action="append", required=True, help="Repeatable: " +
                      ", ".join(r.value for r in Role))
    uadd.add_argument("--password-stdin", action="store_true", help="Read a login password from stdin.")
    uadd.add_argument("--json", action="store_true")
    uadd.set_defaults(handler=_user_add)


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
            org_id = await registry.create_organization(
                connection, name=args.name, kind=args.kind, counties=counties, languages=languages,
                services_offered=args.service, min_age=args.min_age, max_age=args.max_age,
            )
            gid = to_global_id("Organization", org_id)
            await cli.audit(connection, action="create", record_type="Organization", record_id=gid)
            return gid

    try:
        gid = asyncio.run(run())
    except DomainError as exc:
        raise CommandError(exc.message) from None
    emit({"id": gid, "name": args.name.strip(), "kind": args.kind}, as_json=args.json,
         human=f"organization {gid}")
    return 0


def _user_add(args: argparse.Namespace) -> int:
    try:
        roles = [Role(r.strip().upper()).value for r in args.role]
    except ValueError:
        raise CommandError("unknown role; use one of " + ", ".join(r.value for r in Role)) from None
    decoded = from_global_id(args.org, "Organization")
    if decoded is None:
        raise CommandError("--org is not an organization id")
    if "@" not in args.email or len(args.email) > 254:
        raise CommandError("--email is not an e-mail address")
    password_hash = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < 12:
            raise CommandError("the password must have at least 12 characters")
        password_hash = PasswordHasher().hash(password)

    async def run() -> str:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            user_id = await registry.create_staff_user(
                connection, organization_id=decoded[1], email=args.email, display_name=args.name,
                roles=roles, password_hash=password_hash,
            )
            gid = to_global_id("StaffUser", user_id)
            await cli.audit(connection, action="create", record_type="StaffUser", record_id=gid)
            return gid

    try:
        gid = asyncio.run(run())
    except DomainError as exc:
        raise CommandError(exc.message) from None
    emit({"id": gid, "email": args.email.strip().lower(), "roles": roles, "organization": args.org},
         as_json=args.json, human=f"staff user {gid}")
    return 0
