"""Webhook delivery log and redelivery, for the organization's own systems."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from api.graphql.errors import UserError, to_user_errors
from api.graphql.inputs import check_input
from db import outbox
from domain import policy
from domain.enums import Role
from domain.errors import DomainError, Forbidden, InvalidInput, NotFound
from domain.principal import Principal
from domain.scopes import Action, Resource


@strawberry.type(description="One delivery attempt of a webhook: no response bodies are kept.")
class WebhookDeliveryAttempt:
    event_id: str = strawberry.field(description="The outbox event id, sent as the `webhook-id` header.")
    event_type: str
    client_id: str
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    error_kind: str | None = strawberry.field(description="timeout, connect, http_status or refused_url.")
    outcome: str = strawberry.field(description="DELIVERED, RETRY or DEAD.")


@strawberry.input
class RedeliverWebhookInput:
    idempotency_key: str | None = None
    event_id: str = strawberry.field(description="The `webhook-id` of the event to send again.")
    client_id: str | None = strawberry.field(default=None, description="One endpoint; all of yours when null.")


@strawberry.type
class RedeliverWebhookPayload:
    queued: int
    user_errors: list[UserError]


def _may_manage(principal: Principal) -> bool:
    return principal.is_system or principal.has_role(Role.PARTNER_COORDINATOR, Role.SUPERVISOR, Role.ADMIN)


def _event_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


async def deliveries(info: strawberry.Info, event_id: str | None, first: int) -> list[WebhookDeliveryAttempt]:
    principal: Principal = info.context.principal
    policy.require(principal, Resource.REFERRAL, Action.READ)
    if not _may_manage(principal):
        raise Forbidden("Only coordinators, supervisors, administrators and systems read webhook deliveries.")
    if not 1 <= first <= 100:
        raise InvalidInput("first must be between 1 and 100.", field=("first",))
    records = await outbox.delivery_log(info.context.db, organization_id=principal.organization_id,
                                        event_id=_event_uuid(event_id) or uuid.UUID(int=0) if event_id else None,
                                        limit=first)
    return [WebhookDeliveryAttempt(event_id=str(r.outbox_event_id), event_type=r.event_type, client_id=r.client_id,
                                   attempt=r.attempt, at=r.at, status_code=r.status_code, latency_ms=r.latency_ms,
                                   error_kind=r.error_kind, outcome=r.outcome) for r in records]


async def redeliver(info: strawberry.Info, input: RedeliverWebhookInput) -> RedeliverWebhookPayload:
    principal: Principal = info.context.principal
    try:
        check_input(input, ("input",))
    except DomainError as error:
        return RedeliverWebhookPayload(queued=0, user_errors=to_user_errors(error))
    policy.require(principal, Resource.REFERRAL, Action.UPDATE)
    if not _may_manage(principal):
        raise Forbidden("Only coordinators, supervisors, administrators and systems redeliver webhooks.")
    event_id = _event_uuid(input.event_id)
    queued = 0
    if event_id is not None:
        async with info.context.db.savepoint():
            queued = await outbox.redeliver(info.context.db, event_id=event_id, client_id=input.client_id,
                                            organization_id=principal.organization_id)
    await info.context.unit.audit(action="redeliverWebhook", record_type="OutboxEvent",
                                  record_id=str(event_id) if event_id else None,
                                  outcome="allowed" if queued else "denied")
    if not queued:
        return RedeliverWebhookPayload(queued=0, user_errors=to_user_errors(NotFound(
            "No such event with an enabled endpoint of yours.", field=("input", "eventId"))))
    return RedeliverWebhookPayload(queued=queued, user_errors=[])
