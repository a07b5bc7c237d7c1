"""The partner and service directory (Open Referral HSDS names): who offers what, where, for whom."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from domain import policy
from domain.enums import OrganizationKind, ServiceType
from domain.paging import Page, PageRequest
from domain.principal import Principal
from domain.scopes import Action, Resource
from domain.views import OrganizationView


@dataclass(frozen=True, slots=True)
class OrganizationFilter:
    kind: OrganizationKind | None = None
    service: ServiceType | None = None
    county: str | None = None
    language: str | None = None


class DirectoryStore(Protocol):
    async def organizations(self, *, scope: policy.DirectoryScope, filter: OrganizationFilter,
                            page: PageRequest) -> Page[OrganizationView]: ...

    async def organizations_by_id(self, *, scope: policy.DirectoryScope,
                                  ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, OrganizationView]: ...


async def list_organizations(*, store: DirectoryStore, principal: Principal, filter: OrganizationFilter,
                             page: PageRequest) -> Page[OrganizationView]:
    policy.require(principal, Resource.ORGANIZATION, Action.SEARCH)
    return await store.organizations(scope=policy.directory_scope(principal), filter=filter, page=page)


async def organizations_by_id(*, store: DirectoryStore, principal: Principal, ids: Sequence[uuid.UUID],
                              direct: bool) -> Mapping[uuid.UUID, OrganizationView]:
    """Batch read; an organization the caller may not see is absent.

    `direct` is a lookup by id (`node`), which needs the Organization read scope. A reference from
    a record the caller already sees (a referral's receiving organization, the viewer's own
    organization) is part of that record and needs no further scope.
    """
    if not direct:
        return await store.organizations_by_id(scope=policy.DirectoryScope(include_inactive=True), ids=ids)
    if not principal.allows(Resource.ORGANIZATION, Action.READ):
        return {}
    return await store.organizations_by_id(scope=policy.directory_scope(principal), ids=ids)
