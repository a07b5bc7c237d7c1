"""SQL for staff users as referenced by other records."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from db.engine import Db
from db.tables import StaffUser
from domain.enums import Role
from domain.views import StaffUserView

users = StaffUser.__table__  # type: ignore[attr-defined]

STAFF_COLUMNS = (users.c.id, users.c.display_name, users.c.organization_id, users.c.roles, users.c.active,
                 users.c.version, users.c.deactivated_at, users.c.email, users.c.deactivation_reason)


def staff_view(row: Any) -> StaffUserView:
    """The whole account; the use case withholds what the caller may not see (e-mail, reason)."""
    return StaffUserView(id=row.id, display_name=row.display_name, organization_id=row.organization_id,
                         roles=tuple(Role(x) for x in row.roles), active=row.active, version=row.version,
                         deactivated_at=row.deactivated_at, email=row.email,
                         deactivation_reason=row.deactivation_reason)


class SqlStaff:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def staff_by_id(self, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, StaffUserView]:
        if not ids:
            return {}
        rows = await self.db.all(select(*STAFF_COLUMNS).where(users.c.id.in_(list(set(ids)))))
        return {r.id: staff_view(r) for r in rows}
