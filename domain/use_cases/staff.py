"""Staff users as other records reference them (a referral's counselor, the viewer)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Protocol

from domain.principal import Principal
from domain.views import StaffUserView


class StaffStore(Protocol):
    async def staff_by_id(self, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, StaffUserView]: ...


async def staff_by_id(*, store: StaffStore, principal: Principal, ids: Sequence[uuid.UUID],
                      direct: bool) -> Mapping[uuid.UUID, StaffUserView]:
    """Looked up by id (`node`), only colleagues of the caller's own organization are visible;
    as a reference from a record the caller already sees (an assigned counselor), the person is."""
    found = await store.staff_by_id(ids)
    if not direct:
        return found
    return {k: v for k, v in found.items() if v.organization_id == principal.organization_id}
