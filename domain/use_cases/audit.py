"""Reading the audit trail: supervisors and admins, their own organization's rows, AuditEvent scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain import policy
from domain.errors import Forbidden
from domain.paging import Page, PageRequest
from domain.principal import Principal
from domain.scopes import Action, Resource
from domain.views import AuditEventView


@dataclass(frozen=True, slots=True)
class AuditFilter:
    record_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditStore(Protocol):
    async def page(self, *, organization_id: object, filter: AuditFilter,
                   request: PageRequest) -> Page[AuditEventView]: ...


async def page(*, store: AuditStore, principal: Principal, filter: AuditFilter,
               request: PageRequest) -> Page[AuditEventView]:
    policy.require(principal, Resource.AUDIT_EVENT, Action.SEARCH)
    if not policy.may_read_audit(principal):
        raise Forbidden("Only supervisors and administrators read the audit trail.")
    return await store.page(organization_id=principal.organization_id, filter=filter, request=request)
