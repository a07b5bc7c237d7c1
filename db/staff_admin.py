"""SQL for staff accounts (domain.use_cases.staff_admin.StaffAccounts) and their password links.

The same store serves administrators through GraphQL (the runtime role, in the request's
transaction) and the operator's `pamoja user` commands (the owner connection wrapped in a `Db`);
each passes how its changes are audited. staff_user and staff_password_link hold no survivor data
and have no row-level security: who may touch them is decided in the use case.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, select, update

from db import oauth
from db.cursors import fetch_page
from db.engine import Db
from db.staff import STAFF_COLUMNS, staff_view, users
from db.tables import OAuthRefreshToken, Organization, Referral, StaffPasswordLink
from domain.enums import OrganizationKind, Role
from domain.paging import Page, PageRequest
from domain.referrals import UNDER_WAY
from domain.use_cases.staff_admin import NewStaffUser, StaffFilter
from domain.views import StaffUserView

orgs = Organization.__table__  # type: ignore[attr-defined]
links = StaffPasswordLink.__table__  # type: ignore[attr-defined]
refresh = OAuthRefreshToken.__table__  # type: ignore[attr-defined]
referrals = Referral.__table__  # type: ignore[attr-defined]

Audit = Callable[[str, str], Awaitable[None]]  # (action, record id)


class SqlStaffAccounts:
    def __init__(self, db: Db, *, audit: Audit) -> None:
        self.db = db
        self._audit = audit

    async def page(self, *, filter: StaffFilter, page: PageRequest) -> Page[StaffUserView]:
        conditions: list[Any] = []
        if filter.organization_id is not None:
            conditions.append(users.c.organization_id == filter.organization_id)
        if filter.role is not None:
            conditions.append(users.c.roles.any_() == filter.role.value)
        if filter.active is not None:
            conditions.append(users.c.active.is_(filter.active))
        if filter.search:
            needle = filter.search.lower()
            conditions.append(or_(users.c.email.startswith(needle, autoescape=True),
                                  func.lower(users.c.display_name).contains(needle, autoescape=True)))
        statement = select(*STAFF_COLUMNS).where(*conditions)
        rows, skeleton = await fetch_page(self.db, statement, order=[users.c.email, users.c.id],
                                          key_parsers=[str, uuid.UUID], page=page)
        return Page(items=[staff_view(r) for r in rows], keys=skeleton.keys, has_next=skeleton.has_next,
                    has_previous=skeleton.has_previous, total_count=skeleton.total_count)

    async def account(self, staff_user_id: uuid.UUID, *, lock: bool) -> StaffUserView | None:
        statement = select(*STAFF_COLUMNS).where(users.c.id == staff_user_id)
        row = await self.db.first(statement.with_for_update() if lock else statement)
        return staff_view(row) if row is not None else None

    async def organization_kind(self, organization_id: uuid.UUID) -> OrganizationKind | None:
        kind = await self.db.scalar(select(orgs.c.kind).where(orgs.c.id == organization_id))
        return OrganizationKind(kind) if kind is not None else None

    async def email_taken(self, email: str) -> bool:
        return await self.account_id_by_email(email) is not None

    async def account_id_by_email(self, email: str) -> uuid.UUID | None:
        found: uuid.UUID | None = await self.db.scalar(select(users.c.id).where(users.c.email == email))
        return found

    async def organization_names(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        rows = await self.db.all(select(orgs.c.id, orgs.c.name).where(orgs.c.id.in_(list(ids))))
        return {row.id: row.name for row in rows}

    async def insert(self, new: NewStaffUser) -> uuid.UUID:
        staff_user_id: uuid.UUID = (await self.db.execute(insert(users).values(
            organization_id=new.organization_id, email=new.email, display_name=new.display_name,
            roles=[r.value for r in new.roles], password_hash=new.password_hash,
        ).returning(users.c.id))).scalar_one()
        return staff_user_id

    async def set_roles(self, staff_user_id: uuid.UUID, roles: tuple[Role, ...]) -> None:
        await self.db.execute(update(users).where(users.c.id == staff_user_id)
                              .values(roles=[r.value for r in roles], version=users.c.version + 1))

    async def set_details(self, staff_user_id: uuid.UUID, *, email: str, display_name: str) -> None:
        await self.db.execute(update(users).where(users.c.id == staff_user_id)
                              .values(email=email, display_name=display_name, version=users.c.version + 1))

    async def set_active(self, staff_user_id: uuid.UUID, *, active: bool, reason: str | None) -> None:
        signed_out = {} if active else {"signed_out_at": func.clock_timestamp()}
        await self.db.execute(update(users).where(users.c.id == staff_user_id).values(
            active=active, deactivated_at=None if active else func.now(), deactivation_reason=reason,
            version=users.c.version + 1, **signed_out))

    async def end_sessions(self, staff_user_id: uuid.UUID) -> int:
        """End every sign-in session (refresh-token family, and the access tokens it issued) and every
        unused password link; returns how many sessions were still live."""
        live = await self.db.scalar(select(func.count(refresh.c.family_id.distinct())).where(
            refresh.c.user_id == staff_user_id, refresh.c.revoked_at.is_(None), refresh.c.used_at.is_(None),
            refresh.c.expires_at > func.now()))
        await oauth.revoke_families(self.db, user_id=staff_user_id)
        await self._spend_links(staff_user_id)
        return int(live or 0)

    async def _spend_links(self, staff_user_id: uuid.UUID) -> None:
        await self.db.execute(update(links).where(links.c.staff_user_id == staff_user_id, links.c.used_at.is_(None))
                              .values(used_at=func.now()))

    async def store_password_link(self, staff_user_id: uuid.UUID, *, token_hash: bytes, expires_at: datetime) -> None:
        """The new link, and no other: links issued before it stop working."""
        await self._spend_links(staff_user_id)
        await self.db.execute(insert(links).values(token_hash=token_hash, staff_user_id=staff_user_id,
                                                   expires_at=expires_at))

    async def open_referral_count(self, staff_user_id: uuid.UUID, *,
                                  referring_organization_id: uuid.UUID | None) -> int:
        statement = select(func.count()).select_from(referrals).where(
            referrals.c.assigned_counselor_id == staff_user_id,
            referrals.c.status.in_([s.value for s in UNDER_WAY]))
        if referring_organization_id is not None:
            statement = statement.where(referrals.c.referring_organization_id == referring_organization_id)
        return int(await self.db.scalar(statement) or 0)

    async def audit(self, *, action: str, record_id: str) -> None:
        await self._audit(action, record_id)


# ----------------------------------------------------------------------------- redeeming a link (the page)


async def live_link(db: Db, token_hash: bytes, *, lock: bool) -> Any:
    """The account a link sets the password of, while the link is unused and unexpired and the account
    and its organization are active; None otherwise (unknown, used, expired and deactivated alike)."""
    statement = (
        select(links.c.token_hash, users.c.id, users.c.email, users.c.display_name, users.c.organization_id)
        .join(users, users.c.id == links.c.staff_user_id).join(orgs, orgs.c.id == users.c.organization_id)
        .where(links.c.token_hash == token_hash, links.c.used_at.is_(None), links.c.expires_at > func.now(),
               users.c.active.is_(True), orgs.c.active.is_(True))
    )
    return await db.first(statement.with_for_update(of=links) if lock else statement)


async def set_password(db: Db, *, staff_user_id: uuid.UUID, token_hash: bytes, password_hash: str) -> None:
    """The new password, the link spent, and every sign-in session of the account ended: whoever held
    one (a thief, or the person on a lost phone) signs in again with the new password."""
    await db.execute(update(users).where(users.c.id == staff_user_id).values(
        password_hash=password_hash, signed_out_at=func.clock_timestamp(), version=users.c.version + 1))
    await db.execute(update(links).where(links.c.token_hash == token_hash).values(used_at=func.now()))
    await oauth.revoke_families(db, user_id=staff_user_id)
