"""Per-request DataLoaders, one per relation, named `<thing>_by_<key>` / `<thing>_ref`.

Each batch function calls a use case (so a nested field gets the same policy and audit as a
top-level read) and returns results in key order.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from strawberry.dataloader import DataLoader

from db.directory import SqlDirectory
from db.staff import SqlStaff
from domain.use_cases import staff as staff_cases
from domain.views import OrganizationView, StaffUserView
from partners import directory

if TYPE_CHECKING:
    from api.graphql.context import Context

K = TypeVar("K")
V = TypeVar("V")


def batch(fetch: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]]) -> Callable[[list[K]], Awaitable[list[V | None]]]:
    async def load(keys: list[K]) -> list[V | None]:
        found = await fetch(keys)
        return [found.get(k) for k in keys]

    return load


class Loaders:
    def __init__(self, context: Context) -> None:
        self.context = context
        principal = context.principal

        async def organizations(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, OrganizationView]:
            return await directory.organizations_by_id(
                store=SqlDirectory(context.db), principal=principal, ids=ids, direct=False
            )

        async def staff(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, StaffUserView]:
            return await staff_cases.staff_by_id(store=SqlStaff(context.db), principal=principal, ids=ids,
                                                 direct=False)

        self.organization_ref: DataLoader[uuid.UUID, Any] = DataLoader(batch(organizations))
        self.staff_ref: DataLoader[uuid.UUID, Any] = DataLoader(batch(staff))
