"""`pamoja user ...`: staff accounts from the operator's side.

add, list, roles, deactivate, reactivate and reset-password call the same account rules as the
administrators' GraphQL mutations (domain/use_cases/staff_admin.py) in one owner transaction, audited
as `operator:cli`. A person is named by e-mail. A password is never typed on the command line: `add`
and `reset-password` print a one-time link (the last line, or `password_link` with --json) for the
person to set it; `--password-stdin` remains for scripts and tests.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncConnection

from auth.password_reset import link_url
from cli.context import Cli, CommandError, emit
from db.engine import Db
from db.staff_admin import SqlStaffAccounts
from domain.enums import Role
from domain.errors import DomainError
from domain.ids import from_global_id, to_global_id
from domain.paging import MAX_PAGE_SIZE, PageRequest
from domain.staff import password_problem
from domain.use_cases import staff_admin
from domain.use_cases.staff_admin import AUDIT_PURPOSE, Fields, NewStaffUser, PasswordLink, StaffFilter
from domain.views import StaffUserView

T = TypeVar("T")
OPTIONS = Fields(organization=("--org",), email=("--email",), name=("--name",), roles=("--role",),
                 user=("EMAIL",), reason=("--reason",))
ROLE_NAMES = ", ".join(r.value for r in Role)
NEXT_STEP = ("their partner's coordinator finds them with referrals(filter: {needsAssignment: true}) and "
             "reassigns them with assignCounselor")


def register(sub: Any) -> None:
    user = sub.add_parser("user", help="Staff users.").add_subparsers(dest="user_command", required=True)

    add = user.add_parser("add", help="Register a staff user; prints a one-time link to set the password.")
    add.add_argument("--org", required=True, help="The organization's global id.")
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--role", action="append", required=True,
                     help=f"Repeatable: {ROLE_NAMES} (the NGO: CASE_MANAGER, SUPERVISOR, ANALYST, ADMIN; a partner: "
                          "PARTNER_COORDINATOR, COUNSELOR).")
    secret = add.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true",
                        help="Read a password from stdin instead of printing a link (scripts, tests).")
    secret.add_argument("--no-password-link", action="store_true",
                        help="No password at all: the person signs in through the NGO's identity provider.")
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=_add)

    listing = user.add_parser("list", help="List staff users (a table; --json for one object).")
    listing.add_argument("--org", default=None, help="Only this organization's (global id).")
    listing.add_argument("--role", default=None, help=f"Only holders of this role: {ROLE_NAMES}.")
    state = listing.add_mutually_exclusive_group()
    state.add_argument("--active", dest="active", action="store_const", const=True, default=None)
    state.add_argument("--inactive", dest="active", action="store_const", const=False)
    listing.add_argument("--search", default=None, help="The start of an e-mail, or part of a name.")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)

    roles = user.add_parser("roles", help="Change a staff user's roles (effective on their next request).")
    roles.add_argument("email")
    change = roles.add_mutually_exclusive_group(required=True)
    change.add_argument("--set", metavar="ROLE[,ROLE]", help="Replace the roles with these.")
    change.add_argument("--add", metavar="ROLE", help="Add one role.")
    change.add_argument("--remove", metavar="ROLE", help="Remove one role.")
    roles.add_argument("--json", action="store_true")
    roles.set_defaults(handler=_roles)

    update = user.add_parser("update", help="Correct a staff user's name or sign-in e-mail.")
    update.add_argument("email", help="Their current e-mail.")
    update.add_argument("--name", default=None, help="The corrected display name.")
    update.add_argument("--new-email", default=None, help="The address they will sign in with from now on.")
    update.add_argument("--json", action="store_true")
    update.set_defaults(handler=_update)

    deactivate = user.add_parser("deactivate", help="Refuse a staff user from now on: sign-in, refresh and live "
                                                    "tokens; prints their open referrals' count.")
    deactivate.add_argument("email")
    deactivate.add_argument("--reason", default=None, help="Why, for other administrators.")
    deactivate.add_argument("--json", action="store_true")
    deactivate.set_defaults(handler=_deactivate)

    reactivate = user.add_parser("reactivate", help="Let a deactivated staff user sign in again.")
    reactivate.add_argument("email")
    reactivate.add_argument("--json", action="store_true")
    reactivate.set_defaults(handler=_reactivate)

    reset = user.add_parser("reset-password", help="Print a one-time link for the person to set a new password "
                                                   "(the last line); earlier links stop working.")
    reset.add_argument("email")
    reset.add_argument("--json", action="store_true")
    reset.set_defaults(handler=_reset_password)


# ----------------------------------------------------------------------------- plumbing


def _run(work: Callable[[Cli, SqlStaffAccounts], Awaitable[T]]) -> tuple[Cli, T]:
    """`work` in one owner transaction, its changes audited as the operator; a refusal is one line."""
    async def run() -> tuple[Cli, T]:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            return cli, await work(cli, SqlStaffAccounts(Db(connection), audit=_auditor(cli, connection)))

    try:
        return asyncio.run(run())
    except DomainError as exc:
        raise CommandError(exc.message) from None


def _auditor(cli: Cli, connection: AsyncConnection) -> Callable[[str, str], Awaitable[None]]:
    async def audit(action: str, record_id: str) -> None:
        await cli.audit(connection, action=action, record_type="StaffUser", record_id=record_id,
                        purpose=AUDIT_PURPOSE)

    return audit


async def _by_email(store: SqlStaffAccounts, email: str) -> StaffUserView:
    found = await store.account_id_by_email(email.strip().lower())
    account = await store.account(found, lock=False) if found is not None else None
    if account is None:
        raise CommandError("no staff user with that e-mail; `pamoja user list --search` finds one")
    return account


def _role(value: str, option: str) -> Role:
    try:
        return Role(value.strip().upper())
    except ValueError:
        raise CommandError(f"{option}: unknown role; use one of {ROLE_NAMES}") from None


def _lifetime(cli: Cli) -> timedelta:
    return timedelta(seconds=cli.settings.password_link_ttl_seconds)


def _link_fields(cli: Cli, link: PasswordLink) -> dict[str, str]:
    return {"password_link": link_url(cli.settings.public_url, link.token),
            "password_link_expires_at": link.expires_at.isoformat()}


def _link_lines(fields: dict[str, str]) -> str:
    """The link last, so `... | tail -n 1` captures it."""
    return f"one-time password link, valid until {fields['password_link_expires_at']}:\n{fields['password_link']}"


# ----------------------------------------------------------------------------- commands


def _add(args: argparse.Namespace) -> int:
    roles = tuple(_role(r, "--role") for r in args.role)
    decoded = from_global_id(args.org, "Organization")
    if decoded is None:
        raise CommandError("--org is not an organization id")
    password_hash = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        problem = password_problem(password, email=args.email)
        if problem is not None:
            raise CommandError(problem)
        password_hash = PasswordHasher().hash(password)

    async def work(cli: Cli, store: SqlStaffAccounts) -> tuple[StaffUserView, PasswordLink | None]:
        staff_user_id = await staff_admin.register_account(store=store, fields=OPTIONS, new=NewStaffUser(
            organization_id=decoded[1], email=args.email, display_name=args.name, roles=roles,
            password_hash=password_hash))
        registered = await store.account(staff_user_id, lock=False)
        assert registered is not None
        if password_hash is not None or args.no_password_link:
            return registered, None
        return registered, await staff_admin.issue_link(store=store, staff_user_id=staff_user_id,
                                                        now=datetime.now(UTC), lifetime=_lifetime(cli), fields=OPTIONS)

    cli, (registered, link) = _run(work)
    gid = to_global_id("StaffUser", registered.id)
    out: dict[str, Any] = {"id": gid, "email": registered.email, "roles": [r.value for r in registered.roles],
                           "organization": args.org}
    human = f"staff user {gid}"
    if link is not None:
        out.update(_link_fields(cli, link))
        human += "\n" + _link_lines(_link_fields(cli, link))
    emit(out, as_json=args.json, human=human)
    return 0


def _list(args: argparse.Namespace) -> int:
    organization_id = None
    if args.org is not None:
        decoded = from_global_id(args.org, "Organization")
        if decoded is None:
            raise CommandError("--org is not an organization id")
        organization_id = decoded[1]
    role = _role(args.role, "--role") if args.role is not None else None

    async def work(cli: Cli, store: SqlStaffAccounts) -> tuple[list[StaffUserView], dict[uuid.UUID, str]]:
        found: list[StaffUserView] = []
        after: tuple[str, ...] | None = None
        while True:
            page = await store.page(filter=StaffFilter(organization_id=organization_id, role=role, active=args.active,
                                                       search=(args.search or "").strip() or None),
                                    page=PageRequest(first=MAX_PAGE_SIZE, after_key=after))
            found.extend(page.items)
            if not page.has_next:
                return found, await store.organization_names({v.organization_id for v in found})
            after = page.keys[-1]

    _, (found, names) = _run(work)
    rows = [{"id": to_global_id("StaffUser", v.id), "email": v.email or "", "name": v.display_name,
             "roles": [r.value for r in v.roles], "organization": to_global_id("Organization", v.organization_id),
             "organization_name": names.get(v.organization_id, ""), "active": v.active,
             "deactivated_at": v.deactivated_at.isoformat() if v.deactivated_at else None} for v in found]
    emit({"users": rows, "count": len(rows)}, as_json=args.json, human=_table(rows))
    return 0


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "no staff users match"
    header = ("EMAIL", "NAME", "ROLES", "ORGANIZATION", "STATUS", "ID")
    cells = [(r["email"], r["name"], ",".join(r["roles"]), r["organization_name"],
              "active" if r["active"] else "deactivated", r["id"]) for r in rows]
    widths = [max(len(str(line[i])) for line in (header, *cells)) for i in range(len(header))]
    return "\n".join("  ".join(str(value).ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
                     for line in (header, *cells))


def _roles(args: argparse.Namespace) -> int:
    async def work(cli: Cli, store: SqlStaffAccounts) -> StaffUserView:
        account = await _by_email(store, args.email)
        if args.set is not None:
            roles = tuple(_role(r, "--set") for r in args.set.split(",") if r.strip())
        elif args.add is not None:
            roles = (*account.roles, _role(args.add, "--add"))
        else:
            removed = _role(args.remove, "--remove")
            roles = tuple(r for r in account.roles if r is not removed)
        await staff_admin.change_roles(store=store, staff_user_id=account.id, roles=roles, expected_version=None,
                                       fields=Fields(roles=("roles",), user=OPTIONS.user))
        changed = await store.account(account.id, lock=False)
        assert changed is not None
        return changed

    _, account = _run(work)
    names = [r.value for r in account.roles]
    emit({"id": to_global_id("StaffUser", account.id), "email": account.email, "roles": names}, as_json=args.json,
         human=f"{account.email}: {', '.join(names)}")
    return 0


def _update(args: argparse.Namespace) -> int:
    async def work(cli: Cli, store: SqlStaffAccounts) -> StaffUserView:
        account = await _by_email(store, args.email)
        await staff_admin.change_details(store=store, staff_user_id=account.id, display_name=args.name,
                                         email=args.new_email, expected_version=None,
                                         fields=Fields(name=("--name",), email=("--new-email",), user=OPTIONS.user))
        changed = await store.account(account.id, lock=False)
        assert changed is not None
        return changed

    _, account = _run(work)
    emit({"id": to_global_id("StaffUser", account.id), "email": account.email, "name": account.display_name},
         as_json=args.json, human=f"{account.email}: {account.display_name}")
    return 0


def _deactivate(args: argparse.Namespace) -> int:
    async def work(cli: Cli, store: SqlStaffAccounts) -> tuple[StaffUserView, int, int]:
        account = await _by_email(store, args.email)
        done = await staff_admin.deactivate_account(store=store, staff_user_id=account.id, reason=args.reason,
                                                    expected_version=None, fields=OPTIONS)
        open_referrals = await store.open_referral_count(account.id, referring_organization_id=None)
        return account, done.ended_sessions, open_referrals

    _, (account, sessions, open_referrals) = _run(work)
    out = {"id": to_global_id("StaffUser", account.id), "email": account.email, "active": False,
           "ended_sessions": sessions, "open_referrals": open_referrals}
    human = f"{account.email} deactivated; {sessions} sign-in session(s) ended"
    if open_referrals:
        human += f"\n{open_referrals} open referral(s) are still assigned to them: {NEXT_STEP}"
    emit(out, as_json=args.json, human=human)
    return 0


def _reactivate(args: argparse.Namespace) -> int:
    async def work(cli: Cli, store: SqlStaffAccounts) -> StaffUserView:
        account = await _by_email(store, args.email)
        await staff_admin.reactivate_account(store=store, staff_user_id=account.id, expected_version=None,
                                             fields=OPTIONS)
        return account

    _, account = _run(work)
    emit({"id": to_global_id("StaffUser", account.id), "email": account.email, "active": True},
         as_json=args.json, human=f"{account.email} reactivated")
    return 0


def _reset_password(args: argparse.Namespace) -> int:
    async def work(cli: Cli, store: SqlStaffAccounts) -> tuple[StaffUserView, PasswordLink]:
        account = await _by_email(store, args.email)
        return account, await staff_admin.issue_link(store=store, staff_user_id=account.id, now=datetime.now(UTC),
                                                      lifetime=_lifetime(cli), fields=OPTIONS)

    cli, (account, link) = _run(work)
    fields = _link_fields(cli, link)
    emit({"id": to_global_id("StaffUser", account.id), "email": account.email, **fields}, as_json=args.json,
         human=f"for {account.email}, {_link_lines(fields)}")
    return 0
