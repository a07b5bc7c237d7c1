"""Registering an organization from the operator CLI (staff accounts are db/staff_admin.py's)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import Organization, OrganizationService
from domain.errors import Duplicate

orgs = Organization.__table__  # type: ignore[attr-defined]
services = OrganizationService.__table__  # type: ignore[attr-defined]


async def create_organization(connection: AsyncConnection, *, name: str, kind: str, counties: Sequence[str],
                              languages: Sequence[str], services_offered: Sequence[str],
                              min_age: int | None, max_age: int | None) -> uuid.UUID:
    taken = await connection.scalar(select(orgs.c.id).where(func.lower(orgs.c.name) == name.strip().lower()))
    if taken is not None:
        raise Duplicate("An organization with that name already exists.", field=("name",))
    org_id: uuid.UUID = (await connection.execute(insert(orgs).values(
        name=name.strip(), kind=kind, counties=list(counties), languages=list(languages),
        min_age=min_age, max_age=max_age,
    ).returning(orgs.c.id))).scalar_one()
    for service in dict.fromkeys(services_offered):
        await connection.execute(insert(services).values(
            organization_id=org_id, service_type=service, min_age=min_age, max_age=max_age,
        ))
    return org_id


async def list_organizations(connection: AsyncConnection, *, kind: str | None) -> list[Any]:
    """Every organization (the directory is not confidential), NGO first, then by name: the operator's
    way to find the id `--org` options take."""
    query = select(orgs.c.id, orgs.c.name, orgs.c.kind, orgs.c.counties, orgs.c.active).order_by(
        orgs.c.kind.desc(), orgs.c.name)
    if kind is not None:
        query = query.where(orgs.c.kind == kind)
    return list((await connection.execute(query)).all())

