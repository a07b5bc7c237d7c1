"""Writes to the directory of organizations and staff (operator CLI, admin mutations)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import Organization, OrganizationService, StaffUser
from domain.errors import Duplicate, NotFound

orgs = Organization.__table__  # type: ignore[attr-defined]
services = OrganizationService.__table__  # type: ignore[attr-defined]
users = StaffUser.__table__  # type: ignore[attr-defined]


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


async def create_staff_user(connection: AsyncConnection, *, organization_id: uuid.UUID, email: str,
                            display_name: str, roles: Sequence[str], password_hash: str | None) -> uuid.UUID:
    exists = await connection.scalar(select(orgs.c.id).where(orgs.c.id == organization_id))
    if exists is None:
        raise NotFound("No such organization.", field=("org",))
    normalized = email.strip().lower()
    taken = await connection.scalar(select(users.c.id).where(users.c.email == normalized))
    if taken is not None:
        raise Duplicate("A staff user with that e-mail already exists.", field=("email",))
    user_id: uuid.UUID = (await connection.execute(insert(users).values(
        organization_id=organization_id, email=normalized, display_name=display_name.strip(),
        roles=list(dict.fromkeys(roles)), password_hash=password_hash,
    ).returning(users.c.id))).scalar_one()
    return user_id
