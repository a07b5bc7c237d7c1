"""SQL for staff users as referenced by other records."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy import select

from db.engine import Db
from db.tables import StaffUser
from domain.enums import Role
from domain.views import StaffUserView

users = StaffUser.__table__  # type: ignore[attr-defined]


class SqlStaff:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def staff_by_id(self, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, StaffUserView]:
        if not ids:
            return {}
        rows = await self.db.all(
            select(users.c.id, users.c.display_name, users.c.organization_id, users.c.roles)
            .where(users.c.id.in_(list(set(ids))))
        )
        return {
            r.id: StaffUserView(id=r.id, display_name=r.display_name, organization_id=r.organization_id,
                                roles=tuple(Role(x) for x in r.roles))
            for r in rows
        }
