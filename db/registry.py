"""The operator's list of organizations (registering one is partners.directory.add_organization's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import Organization

orgs = Organization.__table__  # type: ignore[attr-defined]


async def list_organizations(connection: AsyncConnection, *, kind: str | None) -> list[Any]:
    """Every organization (the directory is not confidential), NGO first, then by name: the operator's
    way to find the id `--org` options take."""
    query = select(orgs.c.id, orgs.c.name, orgs.c.kind, orgs.c.counties, orgs.c.active).order_by(
        orgs.c.kind.desc(), orgs.c.name)
    if kind is not None:
        query = query.where(orgs.c.kind == kind)
    return list((await connection.execute(query)).all())

