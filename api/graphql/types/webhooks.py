"""Webhook delivery log and redelivery, for the organization's own systems."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from api.graphql.errors import UserError, to_user_errors
from api.graphql.inputs import check_input
from db.outbox import SqlWebhookDeliveries
from domain.errors import DomainError
from domain.use_cases import webhook_deliveries


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


def _store(info: strawberry.Info) -> SqlWebhookDeliveries:
    context = info.context

    async def audit(event_id: uuid.UUID | None, queued: int) -> None:
        await context.unit.audit(action="redeliverWebhook", record_type="OutboxEvent",
                                 record_id=str(event_id) if event_id else None,
                                 outcome="allowed" if queued else "denied")

    return SqlWebhookDeliveries(context.db, audit)


async def deliveries(info: strawberry.Info, event_id: str | None, first: int) -> list[WebhookDeliveryAttempt]:
    records = await webhook_deliveries.log(store=_store(info), principal=info.context.principal, event_id=event_id,
                                           first=first)
    return [WebhookDeliveryAttempt(event_id=str(r.outbox_event_id), event_type=r.event_type, client_id=r.client_id,
                                   attempt=r.attempt, at=r.at, status_code=r.status_code, latency_ms=r.latency_ms,
                                   error_kind=r.error_kind, outcome=r.outcome) for r in records]


async def redeliver(info: strawberry.Info, input: RedeliverWebhookInput) -> RedeliverWebhookPayload:
    try:
        check_input(input, ("input",))
        queued = await webhook_deliveries.redeliver(store=_store(info), principal=info.context.principal,
                                                    event_id=input.event_id, client_id=input.client_id)
    except DomainError as error:
        return RedeliverWebhookPayload(queued=0, user_errors=to_user_errors(error))
    return RedeliverWebhookPayload(queued=queued, user_errors=[])
