"""An organization's webhook deliveries: the log of attempts, and sending an event again. Its own
systems, coordinators, supervisors and administrators (policy.may_manage_webhooks); never another
organization's deliveries."""

from __future__ import annotations

import uuid
from typing import Protocol, TypeVar

from domain import policy
from domain.errors import Forbidden, InvalidInput, NotFound
from domain.principal import Principal
from domain.scopes import Action, Resource

MAX_LOG = 100
Attempt = TypeVar("Attempt")


class DeliveryStore(Protocol[Attempt]):
    async def delivery_log(self, *, organization_id: uuid.UUID, event_id: uuid.UUID | None,
                           limit: int) -> list[Attempt]: ...

    async def redeliver(self, *, event_id: uuid.UUID, client_id: str | None, organization_id: uuid.UUID) -> int: ...

    async def audit(self, *, event_id: uuid.UUID | None, queued: int) -> None: ...


def event_uuid(value: str | None) -> uuid.UUID | None:
    """An event id as partners see it (`webhook-id`); anything else names no event."""
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _require(principal: Principal, action: Action, doing: str) -> None:
    policy.require(principal, Resource.REFERRAL, action)
    if not policy.may_manage_webhooks(principal):
        raise Forbidden(f"Only coordinators, supervisors, administrators and systems {doing}.")


async def log(*, store: DeliveryStore[Attempt], principal: Principal, event_id: str | None,
              first: int) -> list[Attempt]:
    _require(principal, Action.READ, "read webhook deliveries")
    if not 1 <= first <= MAX_LOG:
        raise InvalidInput(f"first must be between 1 and {MAX_LOG}.", field=("first",))
    named = event_uuid(event_id) if event_id else None
    if event_id and named is None:
        return []  # a malformed id names no event
    return await store.delivery_log(organization_id=principal.organization_id, event_id=named, limit=first)


async def redeliver(*, store: DeliveryStore[Attempt], principal: Principal, event_id: str,
                    client_id: str | None) -> int:
    """Queue the event again for one endpoint or all of the organization's; audited either way."""
    _require(principal, Action.UPDATE, "redeliver webhooks")
    named = event_uuid(event_id)
    queued = await store.redeliver(event_id=named, client_id=client_id,
                                   organization_id=principal.organization_id) if named else 0
    await store.audit(event_id=named, queued=queued)
    if not queued:
        raise NotFound("No such event with an enabled endpoint of yours.", field=("input", "eventId"))
    return queued
