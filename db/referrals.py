"""SQL for referrals and their append-only status history.

The needs summary (`reason`), the status reason, the outcome and the reasons in the history are
sealed under the survivor's data key (db/sealed.py): every read joins the survivor's key (a page
only for the rows it returns) so a resolver can reveal them without another statement.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, literal, select, update

from db import values
from db.crypto import encrypt_field
from db.cursors import after_values, fetch_page
from db.engine import Db
from db.scopes import in_force as consent_in_force_at
from db.scopes import referral_visible
from db.sealed import ERASED, KEY_COLUMNS, DataKeys, with_key
from db.survivors import referral_access
from db.tables import Consent, Referral, ReferralStatusChange, StaffUser
from domain import policy
from domain.enums import ReferralPriority, ReferralStatus, Role, ServiceType
from domain.errors import InvalidInput
from domain.paging import Page, PageRequest
from domain.policy import RowScope
from domain.ports import NewReferral, ReferralChange, ReferralFilter
from domain.referrals import OPEN_STATUSES, UNDER_WAY, is_overdue
from domain.views import ReferralView, StatusChangeView

referral_t = Referral.__table__  # type: ignore[attr-defined]
consent_t = Consent.__table__  # type: ignore[attr-defined]
history_t = ReferralStatusChange.__table__  # type: ignore[attr-defined]
staff_t = StaffUser.__table__  # type: ignore[attr-defined]


_STATUS = values.members(ReferralStatus)


def needs_assignment_of(referral: Any = referral_t) -> Any:
    """Under way (domain.referrals.UNDER_WAY) and without an active counselor of the receiving
    partner: never assigned, or assigned to someone since deactivated or no longer counseling there."""
    counselor = staff_t.alias("counselor")
    carried = select(counselor.c.id).where(
        counselor.c.id == referral.c.assigned_counselor_id, counselor.c.active.is_(True),
        counselor.c.organization_id == referral.c.receiving_organization_id,
        counselor.c.roles.any_() == Role.COUNSELOR.value).exists()
    return and_(referral.c.status.in_([s.value for s in UNDER_WAY]), ~carried)
_SERVICE = values.members(ServiceType)
_PRIORITY = values.members(ReferralPriority)

REFERRAL_TABLE = "referral"
HISTORY_TABLE = "referral_status_change"
SEALED_CHANGES = ("status_reason", "outcome")  # free text a ReferralChange may set
NEXT_HISTORY_ID = func.nextval(func.pg_get_serial_sequence(HISTORY_TABLE, "id"))


def _columns(scope: RowScope) -> list[Any]:
    at = scope.at
    in_force = consent_in_force_at(consent_t, at) if at is not None else literal(False)
    return [
        referral_t.c.id, referral_t.c.survivor_id, referral_t.c.referring_organization_id,
        referral_t.c.receiving_organization_id, referral_t.c.consent_id, referral_t.c.service, referral_t.c.priority,
        referral_t.c.status, referral_t.c.status_reason_enc, referral_t.c.reason_enc,
        referral_t.c.assigned_counselor_id, referral_t.c.respond_by, referral_t.c.outcome_enc, referral_t.c.created_at,
        referral_t.c.last_activity_at, referral_t.c.version, consent_t.c.data_categories, consent_t.c.purposes,
        in_force.label("in_force"),
    ]


def _from(*, keys: bool) -> Any:
    joined = referral_t.join(consent_t, consent_t.c.id == referral_t.c.consent_id)
    return with_key(joined, referral_t.c.survivor_id) if keys else joined


def _select(scope: RowScope, *, keys: bool = True) -> Any:
    """Visible referrals; with `keys=False` for pages, which join the keys to the rows they return only."""
    columns = [*_columns(scope), *KEY_COLUMNS] if keys else _columns(scope)
    return select(*columns).select_from(_from(keys=keys)).where(referral_visible(scope, referral_t, consent_t))


def _with_keys(limited: Any, *order: str) -> Any:
    """The rows of a limited statement, each with its survivor's key, in the same order."""
    rows = limited.subquery("shown")
    return select(rows, *KEY_COLUMNS).select_from(with_key(rows, rows.c.survivor_id)).order_by(
        *(rows.c[name] for name in order))


def _view(row: Any, scope: RowScope, now: datetime, keys: DataKeys) -> ReferralView:
    assert scope.organization_id is not None
    access = referral_access(row)
    categories = policy.visible_categories(scope.organization_id, access)
    status = _STATUS[row.status]
    return ReferralView(
        id=row.id, survivor_id=row.survivor_id, referring_organization_id=row.referring_organization_id,
        receiving_organization_id=row.receiving_organization_id, consent_id=row.consent_id,
        service=_SERVICE[row.service], priority=_PRIORITY[row.priority], status=status,
        status_reason=keys.sealed(row, "status_reason", table=REFERRAL_TABLE, row_id=row.id),
        reason=keys.sealed(row, "reason", table=REFERRAL_TABLE, row_id=row.id),
        assigned_counselor_id=row.assigned_counselor_id, respond_by=row.respond_by,
        overdue=is_overdue(status=status, respond_by=row.respond_by, now=now),
        outcome=keys.sealed(row, "outcome", table=REFERRAL_TABLE, row_id=row.id), created_at=row.created_at,
        updated_at=row.last_activity_at, version=row.version, categories=categories, access=access,
    )


class SqlReferrals:
    def __init__(self, db: Db, *, keys: DataKeys, now: datetime) -> None:
        self.db = db
        self.keys = keys
        self.now = now

    def _views(self, rows: Sequence[Any], scope: RowScope) -> list[ReferralView]:
        self.keys.offer(rows)
        return [_view(r, scope, self.now, self.keys) for r in rows]

    async def insert(self, new: NewReferral) -> uuid.UUID:
        """The id is made here: the needs summary is sealed bound to it before the row exists."""
        data_key = await self.keys.load(new.survivor_id)
        if data_key is None:
            raise InvalidInput(ERASED, field=("input", "survivorId"))
        referral_id = uuid.uuid4()
        await self.db.execute(insert(referral_t).values(
            id=referral_id, survivor_id=new.survivor_id, referring_organization_id=new.referring_organization_id,
            receiving_organization_id=new.receiving_organization_id, consent_id=new.consent_id, service=new.service,
            priority=new.priority, status=new.status.value, respond_by=new.respond_by, created_by_id=new.created_by_id,
            reason_enc=encrypt_field(data_key, new.reason, table=REFERRAL_TABLE, column="reason", row_id=referral_id),
        ))
        return referral_id

    async def by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, ReferralView]:
        if not ids or scope.is_empty:
            return {}
        rows = await self.db.all(_select(scope).where(referral_t.c.id.in_(list(set(ids)))))
        return {v.id: v for v in self._views(rows, scope)}

    def _filtered(self, scope: RowScope, filter: ReferralFilter) -> Any:
        statement = _select(scope, keys=False)
        if filter.statuses:
            statement = statement.where(referral_t.c.status.in_([s.value for s in filter.statuses]))
        if filter.receiving_organization_id is not None:
            statement = statement.where(referral_t.c.receiving_organization_id == filter.receiving_organization_id)
        if filter.survivor_id is not None:
            statement = statement.where(referral_t.c.survivor_id == filter.survivor_id)
        if filter.assigned_to is not None:
            statement = statement.where(referral_t.c.assigned_counselor_id == filter.assigned_to)
        if filter.overdue is not None:
            overdue = and_(referral_t.c.status == ReferralStatus.REQUESTED.value,
                           referral_t.c.respond_by < self.now)
            statement = statement.where(overdue if filter.overdue else ~overdue)
        if filter.updated_since is not None:
            statement = statement.where(referral_t.c.last_activity_at >= filter.updated_since)
        if filter.needs_assignment is not None:
            statement = statement.where(needs_assignment_of() if filter.needs_assignment else ~needs_assignment_of())
        return statement

    async def page(self, scope: RowScope, filter: ReferralFilter, page: PageRequest) -> Page[ReferralView]:
        if scope.is_empty:
            return Page(items=[], keys=[], has_next=False, has_previous=False, total_count=0)
        # Pollers (updatedSince) page in change order so they never miss a change; others by creation.
        sort = referral_t.c.last_activity_at if filter.updated_since is not None else referral_t.c.created_at
        rows, skeleton = await fetch_page(self.db, self._filtered(scope, filter), order=[sort, referral_t.c.id],
                                          key_parsers=[datetime.fromisoformat, uuid.UUID], page=page,
                                          shown=lambda limited: _with_keys(limited, sort.key, "id"))
        return Page(items=self._views(rows, scope), keys=skeleton.keys, has_next=skeleton.has_next,
                    has_previous=skeleton.has_previous, total_count=skeleton.total_count)

    async def by_survivor(self, scope: RowScope, survivor_ids: Sequence[uuid.UUID],
                          page: PageRequest) -> Mapping[uuid.UUID, Page[ReferralView]]:
        """One statement for many survivors' pages (window functions per survivor): the count covers every
        referral of the survivor the caller sees, the rank only those after the cursor (past the last
        page, a second statement counts them)."""
        if not survivor_ids or scope.is_empty:
            return {}
        wanted = list(set(survivor_ids))
        counted = _select(scope, keys=False).where(referral_t.c.survivor_id.in_(wanted)).add_columns(
            func.count().over(partition_by=referral_t.c.survivor_id).label("_count")).subquery()
        statement = select(counted, func.row_number().over(
            partition_by=counted.c.survivor_id, order_by=(counted.c.created_at, counted.c.id)).label("_rank"))
        if page.after_key is not None:
            after = after_values(page.after_key, [datetime.fromisoformat, uuid.UUID])
            statement = statement.where(func.row(counted.c.created_at, counted.c.id) > func.row(*after))
        ranked = statement.subquery()
        rows = await self.db.all(_with_keys(select(ranked).where(ranked.c._rank <= page.first + 1),
                                            "survivor_id", "_rank"))
        grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for r in rows:
            grouped[r.survivor_id].append(r)
        counts = {survivor_id: int(items[0]._count) for survivor_id, items in grouped.items()}
        if page.after_key is not None and len(grouped) < len(wanted):
            counts.update({r.survivor_id: int(r.total) for r in await self.db.all(
                select(referral_t.c.survivor_id, func.count().label("total"))
                .where(referral_t.c.survivor_id.in_([s for s in wanted if s not in grouped]),
                       referral_visible(scope, referral_t))
                .group_by(referral_t.c.survivor_id))})
        result: dict[uuid.UUID, Page[ReferralView]] = {}
        for survivor_id in survivor_ids:
            items = grouped.get(survivor_id, [])
            shown = items[: page.first]
            result[survivor_id] = Page(
                items=self._views(shown, scope),
                keys=[(str(r.created_at), str(r.id)) for r in shown], has_next=len(items) > page.first,
                has_previous=page.after_key is not None, total_count=counts.get(survivor_id, 0),
            )
        return result

    async def lock(self, scope: RowScope, referral_id: uuid.UUID) -> ReferralView | None:
        if scope.is_empty:
            return None
        row = await self.db.first(_select(scope).where(referral_t.c.id == referral_id)
                                  .with_for_update(of=referral_t))
        return self._views([row], scope)[0] if row else None

    async def _data_key(self, referral_id: uuid.UUID, *extra: Any) -> tuple[Any, bytes]:
        """The data key of the referral's survivor (and `extra` columns), to seal text written about it."""
        row, data_key = await self.keys.of_row(
            select(referral_t.c.survivor_id, *extra, *KEY_COLUMNS)
            .select_from(with_key(referral_t, referral_t.c.survivor_id)).where(referral_t.c.id == referral_id))
        if data_key is None:
            raise InvalidInput(ERASED, field=("input", "referralId"))
        return row, data_key

    async def change(self, change: ReferralChange) -> bool:
        """Free text among the values (status reason, outcome) is sealed under the survivor's key."""
        changed = dict(change.values)
        texts = {column: changed.pop(column) for column in SEALED_CHANGES if column in changed}
        if any(value is not None for value in texts.values()):
            _, data_key = await self._data_key(change.referral_id)
            changed.update({f"{column}_enc": encrypt_field(data_key, value, table=REFERRAL_TABLE, column=column,
                                                           row_id=change.referral_id)
                            for column, value in texts.items()})
        else:
            changed.update({f"{column}_enc": None for column in texts})
        statement = update(referral_t).where(referral_t.c.id == change.referral_id)
        if change.expected_version is not None:
            statement = statement.where(referral_t.c.version == change.expected_version)
        row = await self.db.first(statement.values(
            **changed, version=referral_t.c.version + 1, updated_at=func.now(),
            last_activity_at=func.clock_timestamp(),
        ).returning(referral_t.c.id))
        return row is not None

    async def touch(self, referral_id: uuid.UUID) -> None:
        """Sessions, goals and milestones count as changes of their referral for pollers (updatedSince)."""
        await self.db.execute(update(referral_t).where(referral_t.c.id == referral_id)
                              .values(last_activity_at=func.clock_timestamp()))

    async def record_status(self, *, referral_id: uuid.UUID, organization_id: uuid.UUID,
                            from_status: ReferralStatus | None, to_status: ReferralStatus, reason: str | None,
                            actor: str, actor_user_id: uuid.UUID | None, actor_client_id: str | None) -> None:
        """A reason is sealed bound to the row's id, so the id comes from the sequence first (with the key)."""
        sealed: dict[str, Any] = {}
        if reason is not None:
            row, data_key = await self._data_key(referral_id, NEXT_HISTORY_ID.label("id"))
            sealed = {"id": row.id, "reason_enc": encrypt_field(data_key, reason, table=HISTORY_TABLE,
                                                                column="reason", row_id=row.id)}
        await self.db.execute(insert(history_t).values(
            referral_id=referral_id, organization_id=organization_id,
            from_status=from_status.value if from_status else None, to_status=to_status.value,
            actor=actor, actor_user_id=actor_user_id, actor_client_id=actor_client_id, **sealed,
        ))

    async def history(self, referral_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[StatusChangeView]]:
        if not referral_ids:
            return {}
        h = history_t.c
        rows = await self.db.all(
            select(h.id, h.referral_id, h.from_status, h.to_status, h.at, h.reason_enc, h.actor,
                   referral_t.c.survivor_id, *KEY_COLUMNS)
            .select_from(with_key(history_t.join(referral_t, referral_t.c.id == h.referral_id),
                                  referral_t.c.survivor_id))
            .where(h.referral_id.in_(list(set(referral_ids)))).order_by(h.id))
        self.keys.offer(rows)
        found: dict[uuid.UUID, list[StatusChangeView]] = defaultdict(list)
        for r in rows:
            found[r.referral_id].append(StatusChangeView(
                from_status=ReferralStatus(r.from_status) if r.from_status else None,
                to_status=ReferralStatus(r.to_status), at=r.at,
                reason=self.keys.sealed(r, "reason", table=HISTORY_TABLE, row_id=r.id), actor=r.actor,
            ))
        return found

    async def open_relying_on(self, consent_id: uuid.UUID) -> Sequence[ReferralView]:
        """Open referrals on a consent being withdrawn, locked; read as their referrer."""
        rows = await self.db.all(
            select(*_columns(RowScope(side=policy.Side.REFERRER, at=self.now)), *KEY_COLUMNS)
            .select_from(_from(keys=True))
            .where(referral_t.c.consent_id == consent_id,
                   referral_t.c.status.in_([s.value for s in OPEN_STATUSES]))
            .order_by(referral_t.c.id).with_for_update(of=referral_t)
        )
        self.keys.offer(rows)
        return [_view(r, RowScope(side=policy.Side.REFERRER, organization_id=r.referring_organization_id,
                                  at=self.now), self.now, self.keys) for r in rows]

