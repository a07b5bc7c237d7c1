"""Staff accounts over their lifetime: register, find, change roles, deactivate, reactivate, and hand
over a one-time link to set a password. Administrators do this through GraphQL; the operator's
`pamoja user` commands call the same account functions (the `*_account` and `issue_link` ones),
which carry every rule but the caller's.

- Roles must fit the organization's kind (domain/staff.py), at registration and at every change.
- Deactivation takes effect at once: the account is refused at sign-in, refresh and on the next
  request of any live access token (auth/resource.py re-reads the user per request), its sign-in
  sessions and unused password links end. Referrals assigned to the person stay assigned, so their
  history still says who did the work; being open and assigned to someone inactive, they show under
  `referrals(filter: {needsAssignment: true})` for the partner's coordinator to reassign.
- A password is never chosen by an administrator: she hands over a link to a page where the person
  sets it once (auth/password_reset.py). Only the link token's SHA-256 is stored; a new link ends the
  earlier ones.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from domain import policy
from domain.enums import OrganizationKind, Role
from domain.errors import (
    Duplicate,
    FieldChecks,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    VersionConflict,
)
from domain.ids import to_global_id
from domain.paging import Page, PageRequest
from domain.principal import Principal
from domain.scopes import Action, Resource
from domain.staff import check_roles
from domain.use_cases.common import field_name, text
from domain.views import StaffUserView

MAX_EMAIL_LENGTH = 254
AUDIT_PURPOSE = "STAFF_ADMIN"


@dataclass(frozen=True, slots=True)
class Fields:
    """How the caller names each input, for the messages and the userError's field: GraphQL paths
    by default; the command line passes its option names."""

    organization: tuple[str, ...] = ("input", "organizationId")
    email: tuple[str, ...] = ("input", "email")
    name: tuple[str, ...] = ("input", "displayName")
    roles: tuple[str, ...] = ("input", "roles")
    user: tuple[str, ...] = ("input", "staffUserId")
    reason: tuple[str, ...] = ("input", "reason")
    version: tuple[str, ...] = ("input", "expectedVersion")
    search: tuple[str, ...] = ("filter", "search")


GRAPHQL = Fields()


@dataclass(frozen=True, slots=True)
class StaffFilter:
    organization_id: uuid.UUID | None = None
    role: Role | None = None
    active: bool | None = None
    search: str | None = None  # the start of an e-mail, or part of a name; case does not matter


@dataclass(frozen=True, slots=True)
class NewStaffUser:
    organization_id: uuid.UUID | None
    email: str | None
    display_name: str | None
    roles: tuple[Role, ...]
    password_hash: str | None = None  # only the operator's --password-stdin sets one directly


@dataclass(frozen=True, slots=True)
class PasswordLink:
    """The secret part of a one-time link: shown once to whoever issued it, stored only as a hash."""

    staff_user_id: uuid.UUID
    token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Deactivation:
    staff_user_id: uuid.UUID
    ended_sessions: int  # sign-in sessions (refresh-token families) that were still live


class StaffAccounts(Protocol):
    async def page(self, *, filter: StaffFilter, page: PageRequest) -> Page[StaffUserView]: ...
    async def account(self, staff_user_id: uuid.UUID, *, lock: bool) -> StaffUserView | None: ...
    async def organization_kind(self, organization_id: uuid.UUID) -> OrganizationKind | None: ...
    async def email_taken(self, email: str) -> bool: ...
    async def insert(self, new: NewStaffUser) -> uuid.UUID: ...
    async def set_roles(self, staff_user_id: uuid.UUID, roles: tuple[Role, ...]) -> None: ...
    async def set_details(self, staff_user_id: uuid.UUID, *, email: str, display_name: str) -> None: ...
    async def set_active(self, staff_user_id: uuid.UUID, *, active: bool, reason: str | None) -> None: ...
    async def end_sessions(self, staff_user_id: uuid.UUID) -> int: ...
    async def store_password_link(self, staff_user_id: uuid.UUID, *, token_hash: bytes,
                                  expires_at: datetime) -> None: ...
    async def open_referral_count(self, staff_user_id: uuid.UUID, *,
                                  referring_organization_id: uuid.UUID | None) -> int: ...
    async def audit(self, *, action: str, record_id: str) -> None: ...


def link_token_hash(token: str) -> bytes:
    """How a link token is found again: a random 256-bit token needs no salt or slow hash."""
    return hashlib.sha256(token.encode()).digest()


def normalize_email(value: str | None, *, field: tuple[str, ...]) -> str:
    cleaned = text(value, field=field, max_length=MAX_EMAIL_LENGTH)
    assert cleaned is not None
    local, at, domain = cleaned.lower().rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in cleaned):
        raise InvalidInput(f"{field_name(field)} must be an e-mail address such as amina@ijm.example.", field=field)
    return cleaned.lower()


# ----------------------------------------------------------------------------- the rules, whoever asks


async def _account(store: StaffAccounts, staff_user_id: uuid.UUID | None, fields: Fields, *,
                   expected_version: int | None = None) -> StaffUserView:
    """The account, locked for the change, and no one else's change since the caller read it."""
    account = await store.account(staff_user_id, lock=True) if staff_user_id is not None else None
    if account is None:
        raise NotFound(field=fields.user)
    if expected_version is not None and account.version != expected_version:
        raise VersionConflict("The staff user was changed by someone else; reload it and try again.",
                              field=fields.version)
    return account


async def register_account(*, store: StaffAccounts, new: NewStaffUser, fields: Fields = GRAPHQL) -> uuid.UUID:
    kind = await store.organization_kind(new.organization_id) if new.organization_id is not None else None
    if kind is None or new.organization_id is None:
        raise NotFound("No such organization.", field=fields.organization)
    checks = FieldChecks()  # every refused field at once, so the caller fixes them in one round trip
    email = checks.check(lambda: normalize_email(new.email, field=fields.email))
    name = checks.check(lambda: text(new.display_name, field=fields.name, max_length=200))
    roles = checks.check(lambda: check_roles(kind, new.roles, field=fields.roles))
    checks.done()
    assert email is not None and roles is not None
    if await store.email_taken(email):
        raise Duplicate("A staff user with that e-mail already exists.", field=fields.email)
    staff_user_id = await store.insert(NewStaffUser(organization_id=new.organization_id, email=email,
                                                    display_name=name, roles=roles,
                                                    password_hash=new.password_hash))
    await store.audit(action="create", record_id=to_global_id("StaffUser", staff_user_id))
    return staff_user_id


async def change_roles(*, store: StaffAccounts, staff_user_id: uuid.UUID | None, roles: tuple[Role, ...],
                       expected_version: int | None, fields: Fields = GRAPHQL) -> StaffUserView:
    """Set the account's roles to exactly these; a role taken away is refused on the next request of
    any live token (the resource server keeps only the roles the account still holds)."""
    account = await _account(store, staff_user_id, fields, expected_version=expected_version)
    kind = await store.organization_kind(account.organization_id)
    assert kind is not None  # the foreign key holds
    await store.set_roles(account.id, check_roles(kind, roles, field=fields.roles))
    await store.audit(action="set_roles", record_id=to_global_id("StaffUser", account.id))
    return account


async def change_details(*, store: StaffAccounts, staff_user_id: uuid.UUID | None, display_name: str | None,
                         email: str | None, expected_version: int | None, fields: Fields = GRAPHQL) -> uuid.UUID:
    """Correct a person's name or sign-in e-mail (a typo, a new address); what is not given stays. Both
    are checked together; an e-mail another account holds is refused. The audit row says that the
    account's details changed, not what they were."""
    checks = FieldChecks()
    name = checks.check(lambda: text(display_name, field=fields.name, max_length=200, required=False))
    address = checks.check(lambda: normalize_email(email, field=fields.email) if email is not None else None)
    checks.done()
    if name is None and address is None:
        raise InvalidInput(f"Give {field_name(fields.name)} or {field_name(fields.email)} (or both): the details "
                           "to correct.", field=fields.name)
    account = await _account(store, staff_user_id, fields, expected_version=expected_version)
    if address is not None and address != account.email and await store.email_taken(address):
        raise Duplicate(f"{field_name(fields.email)}: another staff user already signs in with that address.",
                        field=fields.email)
    await store.set_details(account.id, email=address or account.email or "",
                            display_name=name or account.display_name)
    await store.audit(action="update_details", record_id=to_global_id("StaffUser", account.id))
    return account.id


async def deactivate_account(*, store: StaffAccounts, staff_user_id: uuid.UUID | None, reason: str | None,
                             expected_version: int | None, fields: Fields = GRAPHQL) -> Deactivation:
    why = text(reason, field=fields.reason, max_length=500, required=False, multiline=True)
    account = await _account(store, staff_user_id, fields, expected_version=expected_version)
    if not account.active:
        raise InvalidTransition("This account is already deactivated.", field=fields.user)
    await store.set_active(account.id, active=False, reason=why)
    ended = await store.end_sessions(account.id)
    await store.audit(action="deactivate", record_id=to_global_id("StaffUser", account.id))
    return Deactivation(staff_user_id=account.id, ended_sessions=ended)


async def reactivate_account(*, store: StaffAccounts, staff_user_id: uuid.UUID | None,
                             expected_version: int | None, fields: Fields = GRAPHQL) -> uuid.UUID:
    """The person may sign in again with the password they had, or through a new link; sessions and
    links ended at deactivation stay ended."""
    account = await _account(store, staff_user_id, fields, expected_version=expected_version)
    if account.active:
        raise InvalidTransition("This account is active already.", field=fields.user)
    await store.set_active(account.id, active=True, reason=None)
    await store.audit(action="reactivate", record_id=to_global_id("StaffUser", account.id))
    return account.id


async def issue_link(*, store: StaffAccounts, staff_user_id: uuid.UUID | None, now: datetime,
                     lifetime: timedelta, fields: Fields = GRAPHQL) -> PasswordLink:
    account = await _account(store, staff_user_id, fields)
    if not account.active:
        raise InvalidTransition("This account is deactivated; reactivate it before sending a password link.",
                                field=fields.user)
    token = secrets.token_urlsafe(32)
    expires_at = now + lifetime
    await store.store_password_link(account.id, token_hash=link_token_hash(token), expires_at=expires_at)
    await store.audit(action="issue_password_link", record_id=to_global_id("StaffUser", account.id))
    return PasswordLink(staff_user_id=account.id, token=token, expires_at=expires_at)


# ----------------------------------------------------------------------------- administrators (GraphQL)


def _require(principal: Principal, action: Action) -> None:
    policy.require(principal, Resource.STAFF_USER, action)
    if not policy.may_administer_staff(principal, action):
        raise Forbidden("Only the NGO's administrators manage staff accounts.")


async def list_staff(*, store: StaffAccounts, principal: Principal, filter: StaffFilter,
                     page: PageRequest) -> Page[StaffUserView]:
    _require(principal, Action.SEARCH)
    search = text(filter.search, field=GRAPHQL.search, max_length=MAX_EMAIL_LENGTH, required=False)
    return await store.page(filter=StaffFilter(organization_id=filter.organization_id, role=filter.role,
                                               active=filter.active, search=search), page=page)


async def register_staff(*, store: StaffAccounts, principal: Principal, new: NewStaffUser) -> uuid.UUID:
    _require(principal, Action.CREATE)
    return await register_account(store=store, new=NewStaffUser(
        organization_id=new.organization_id, email=new.email, display_name=new.display_name, roles=new.roles))


async def set_roles(*, store: StaffAccounts, principal: Principal, staff_user_id: uuid.UUID | None,
                    roles: tuple[Role, ...], expected_version: int | None) -> uuid.UUID:
    _require(principal, Action.UPDATE)
    if not policy.keeps_own_admin_role(principal, staff_user_id=staff_user_id, roles=roles):
        raise InvalidInput("roles must keep your own ADMIN role: another administrator (or the operator's "
                           "`pamoja user roles`) can take it away.", field=GRAPHQL.roles)
    account = await change_roles(store=store, staff_user_id=staff_user_id, roles=roles,
                                 expected_version=expected_version)
    return account.id


async def update_details(*, store: StaffAccounts, principal: Principal, staff_user_id: uuid.UUID | None,
                         display_name: str | None, email: str | None, expected_version: int | None) -> uuid.UUID:
    _require(principal, Action.UPDATE)
    return await change_details(store=store, staff_user_id=staff_user_id, display_name=display_name, email=email,
                                expected_version=expected_version)


async def deactivate(*, store: StaffAccounts, principal: Principal, staff_user_id: uuid.UUID | None,
                     reason: str | None, expected_version: int | None) -> Deactivation:
    _require(principal, Action.UPDATE)
    if not policy.may_deactivate_account(principal, staff_user_id=staff_user_id):
        raise InvalidInput("staffUserId must not be your own account: another administrator (or the operator's "
                           "`pamoja user deactivate`) can deactivate it.", field=GRAPHQL.user)
    return await deactivate_account(store=store, staff_user_id=staff_user_id, reason=reason,
                                    expected_version=expected_version)


async def reactivate(*, store: StaffAccounts, principal: Principal, staff_user_id: uuid.UUID | None,
                     expected_version: int | None) -> uuid.UUID:
    _require(principal, Action.UPDATE)
    return await reactivate_account(store=store, staff_user_id=staff_user_id, expected_version=expected_version)


async def issue_password_link(*, store: StaffAccounts, principal: Principal, staff_user_id: uuid.UUID | None,
                              now: datetime, lifetime: timedelta) -> PasswordLink:
    _require(principal, Action.UPDATE)
    return await issue_link(store=store, staff_user_id=staff_user_id, now=now, lifetime=lifetime)


async def open_referral_count(*, store: StaffAccounts, principal: Principal, staff_user_id: uuid.UUID) -> int:
    """Open referrals of the administrator's own organization assigned to this person: what their
    coordinator has to reassign after a deactivation."""
    _require(principal, Action.READ)
    return await store.open_referral_count(staff_user_id, referring_organization_id=principal.organization_id)
