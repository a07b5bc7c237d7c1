"""SQL for registering and updating organizations and their services (partners.directory.DirectoryWriter)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.engine import Db
from db.tables import Organization, OrganizationService
from domain.directory import OrganizationDetails, ServiceDetails

orgs = Organization.__table__  # type: ignore[attr-defined]
services = OrganizationService.__table__  # type: ignore[attr-defined]

_ORG_COLUMNS = {"name": "name", "description": "description", "min_age": "min_age", "max_age": "max_age",
                "referral_email": "referral_email", "referral_phone": "referral_phone", "active": "active"}


def _org_values(details: OrganizationDetails) -> dict[str, Any]:
    values: dict[str, Any] = {column: getattr(details, attr) for attr, column in _ORG_COLUMNS.items()
                              if getattr(details, attr) is not None}
    if details.kind is not None:
        values["kind"] = details.kind.value
    for attr in ("counties", "languages", "sexes_served"):
        if getattr(details, attr) is not None:
            values[attr] = list(getattr(details, attr))
    return values


class SqlDirectoryWriter:
    """In the caller's transaction: an administrator's request, or the operator's command. Changes are
    audited through `audit` (the request's principal, or `operator:cli`)."""

    def __init__(self, db: Db, audit: Callable[[str, str], Awaitable[None]]) -> None:
        self.db = db
        self._audit = audit

    async def name_taken(self, name: str, *, other_than: uuid.UUID | None) -> bool:
        statement = select(orgs.c.id).where(func.lower(orgs.c.name) == name.strip().lower())
        if other_than is not None:
            statement = statement.where(orgs.c.id != other_than)
        return await self.db.scalar(statement) is not None

    async def insert_organization(self, details: OrganizationDetails) -> uuid.UUID:
        organization_id: uuid.UUID = (await self.db.execute(
            insert(orgs).values(**_org_values(details)).returning(orgs.c.id))).scalar_one()
        return organization_id

    async def update_organization(self, organization_id: uuid.UUID, details: OrganizationDetails,
                                  *, expected_version: int | None) -> bool | None:
        exists = await self.db.scalar(select(orgs.c.version).where(orgs.c.id == organization_id).with_for_update())
        if exists is None:
            return None
        statement = update(orgs).where(orgs.c.id == organization_id)
        if expected_version is not None:
            statement = statement.where(orgs.c.version == expected_version)
        row = await self.db.first(statement.values(**_org_values(details), version=orgs.c.version + 1,
                                                   updated_at=func.now()).returning(orgs.c.id))
        return row is not None

    async def upsert_service(self, organization_id: uuid.UUID, details: ServiceDetails,
                             *, expected_version: int | None) -> bool | None:
        if await self.db.scalar(select(orgs.c.id).where(orgs.c.id == organization_id)) is None:
            return None
        values: dict[str, Any] = {"organization_id": organization_id, "service_type": details.service_type.value}
        if details.status is not None:
            values["status"] = details.status.value
        if details.capacity_status is not None:
            values["capacity_status"] = details.capacity_status.value
        for attr in ("open_slots", "eligibility_description", "min_age", "max_age"):
            if getattr(details, attr) is not None:
                values[attr] = getattr(details, attr)
        changes = {k: v for k, v in values.items() if k not in ("organization_id", "service_type")}
        statement = pg_insert(services).values(**values).on_conflict_do_update(
            index_elements=[services.c.organization_id, services.c.service_type],
            set_={**changes, "version": services.c.version + 1, "updated_at": func.now()},
            where=(services.c.version == expected_version) if expected_version is not None else None,
        ).returning(services.c.id)
        return await self.db.first(statement) is not None

    async def audit(self, *, action: str, record_id: str) -> None:
        await self._audit(action, record_id)
