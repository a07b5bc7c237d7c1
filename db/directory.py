"""SQL for the partner directory (the store of partners.directory.DirectoryStore)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from db.cursors import fetch_page
from db.engine import Db
from db.tables import Organization, OrganizationService, Referral, StaffUser
from domain.directory import OrganizationFilter
from domain.enums import CapacityStatus, OrganizationKind, ServiceType
from domain.paging import Page, PageRequest
from domain.policy import DirectoryScope
from domain.referrals import UNDER_WAY
from domain.views import OrganizationView

org = Organization.__table__  # type: ignore[attr-defined]
svc = OrganizationService.__table__  # type: ignore[attr-defined]
users_t = StaffUser.__table__  # type: ignore[attr-defined]
referral_t = Referral.__table__  # type: ignore[attr-defined]

CAPACITY_RANK = {CapacityStatus.CAPACITY: 2, CapacityStatus.WAITLIST: 1, CapacityStatus.NO_CAPACITY: 0}


def _services_summary() -> Any:
    """Per organization: its active services, best capacity and total open slots, in one lateral."""
    rank = case(
        (svc.c.capacity_status == "CAPACITY", 2), (svc.c.capacity_status == "WAITLIST", 1), else_=0
    )
    return (
        select(
            func.array_agg(aggregate_order_by(svc.c.service_type, svc.c.service_type)).label("services"),
            func.max(rank).label("capacity_rank"),
            func.sum(svc.c.open_slots).label("open_slots"),
        )
        .where(svc.c.organization_id == org.c.id, svc.c.status == "ACTIVE")
        .lateral("services_summary")
    )


def organization_rows(scope: DirectoryScope) -> tuple[Select[Any], Any]:
    """Organizations with their active services summarised (also rendered into compiled reads)."""
    summary = _services_summary()
    statement = select(
        org.c.id, org.c.name, org.c.kind, org.c.counties, org.c.languages, org.c.min_age, org.c.max_age,
        org.c.active, org.c.version, summary.c.services, summary.c.capacity_rank, summary.c.open_slots,
    ).select_from(org.join(summary, literal(True)))
    if not scope.include_inactive:
        statement = statement.where(org.c.active.is_(True))
    return statement, summary


def organization_conditions(*, kind: Any, service: Any, county: Any, language: Any) -> list[ColumnElement[bool]]:
    """The directory filter's conditions, each value an SQL expression (a bound value here, a parameter of
    a compiled read): None leaves that filter out."""
    conditions: list[ColumnElement[bool]] = []
    if kind is not None:
        conditions.append(org.c.kind == kind)
    if county is not None:
        conditions.append(org.c.counties.any_() == county)
    if language is not None:
        conditions.append(org.c.languages.any_() == language)
    if service is not None:
        conditions.append(select(svc.c.id).where(svc.c.organization_id == org.c.id, svc.c.status == "ACTIVE",
                                                 svc.c.service_type == service).exists())
    return conditions


def counselor_rows(organization_id: Any) -> Select[Any]:
    """An organization's active counselors with their open caseloads, by name (whom assignCounselor names)."""
    open_referrals = (select(func.count()).select_from(referral_t).where(
        referral_t.c.assigned_counselor_id == users_t.c.id,
        referral_t.c.status.in_([s.value for s in UNDER_WAY])).scalar_subquery())
    return (select(users_t.c.id, users_t.c.display_name, open_referrals.label("open_referrals"))
            .where(users_t.c.organization_id == organization_id, users_t.c.active.is_(True),
                   users_t.c.roles.any_() == "COUNSELOR")
            .order_by(users_t.c.display_name, users_t.c.id))


def _view(row: Any) -> OrganizationView:
    rank = row.capacity_rank
    capacity = next((c for c, r in CAPACITY_RANK.items() if r == rank), CapacityStatus.NO_CAPACITY)
    services = tuple(ServiceType(s) for s in (row.services or []) if s is not None)
    return OrganizationView(
        id=row.id, name=row.name, kind=OrganizationKind(row.kind), counties=tuple(row.counties),
        languages=tuple(row.languages), services=services, min_age=row.min_age, max_age=row.max_age,
        capacity_status=capacity, open_slots=int(row.open_slots) if row.open_slots is not None else None,
        active=row.active, version=row.version,
    )


class SqlDirectory:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def organizations(self, *, scope: DirectoryScope, filter: OrganizationFilter,
                            page: PageRequest) -> Page[OrganizationView]:
        statement, _ = organization_rows(scope)
        conditions = organization_conditions(
            kind=literal(filter.kind.value) if filter.kind is not None else None,
            service=literal(filter.service.value) if filter.service is not None else None,
            county=literal(filter.county) if filter.county is not None else None,
            language=literal(filter.language) if filter.language is not None else None)
        if conditions:
            statement = statement.where(and_(*conditions))
        rows, skeleton = await fetch_page(self.db, statement, order=[org.c.name, org.c.id],
                                          key_parsers=[str, uuid.UUID], page=page)
        return Page(items=[_view(r) for r in rows], keys=skeleton.keys, has_next=skeleton.has_next,
                    has_previous=skeleton.has_previous, total_count=skeleton.total_count)

    async def organizations_by_id(self, *, scope: DirectoryScope,
                                  ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, OrganizationView]:
        if not ids:
            return {}
        statement, _ = organization_rows(scope)
        rows = await self.db.all(statement.where(org.c.id.in_(list(set(ids)))))
        return {row.id: _view(row) for row in rows}
