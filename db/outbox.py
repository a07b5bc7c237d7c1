"""SQL for the transactional outbox and webhook deliveries.

`enqueue` is called by use cases inside their own transaction, so an event exists exactly when the
change it reports commits. Everything else is the worker's (partners/worker.py) or the operator's:
fan-out of events to endpoints, the overdue scan, claiming due deliveries with
`FOR UPDATE SKIP LOCKED` under a lease, recording attempts, redelivery, and the delivery log.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from db.engine import Db
from db.tables import OAuthClient, Organization, OutboxEvent, WebhookDelivery, WebhookDeliveryAttempt
from domain.enums import OrganizationKind
from domain.events import NGO_ONLY_EVENTS, REFERRAL_OVERDUE, DeliveryStatus, iso_utc, validate_event
from domain.ids import to_global_id

Connection = AsyncConnection | Db

outbox = OutboxEvent.__table__  # type: ignore[attr-defined]
deliveries = WebhookDelivery.__table__  # type: ignore[attr-defined]
attempts = WebhookDeliveryAttempt.__table__  # type: ignore[attr-defined]
clients = OAuthClient.__table__  # type: ignore[attr-defined]
orgs = Organization.__table__  # type: ignore[attr-defined]

# outbox_event.status: PENDING until the worker has created its deliveries, then DISPATCHED.
OUTBOX_PENDING = "PENDING"
OUTBOX_DISPATCHED = "DISPATCHED"

_UUIDS = ARRAY(UUID(as_uuid=True))


def _now() -> Any:
    return func.clock_timestamp(type_=DateTime(timezone=True))


async def _execute(connection: Connection, statement: Any) -> Any:
    return await connection.execute(statement)


async def enqueue(connection: Connection, *, event_type: str, organization_id: uuid.UUID,
                  data: Mapping[str, str]) -> uuid.UUID:
    """Write one outbox event for `organization_id`, in the caller's transaction.

    Raises ValueError for an unknown event type, for data that is not ids / ISO instants / short
    codes (rule 4: no survivor data in webhook bodies), and for an NGO-only event addressed to a
    partner. Returns the event id, which becomes the `webhook-id` of every delivery.
    """
    clean = validate_event(event_type, data)
    if event_type in NGO_ONLY_EVENTS:
        kind = (await _execute(connection, select(orgs.c.kind).where(orgs.c.id == organization_id))).scalar()
        if kind != OrganizationKind.REFERRING_NGO.value:
            raise ValueError("This event type goes to the referring NGO only.")
    # The id is made here rather than RETURNed: under row-level security the writer may address an
    # event to another organization whose outbox rows it cannot read back.
    event_id = uuid.uuid4()
    await _execute(connection, insert(outbox).values(
        id=event_id, event_type=event_type, organization_id=organization_id, payload=clean, status=OUTBOX_PENDING,
    ))
    return event_id


# ----------------------------------------------------------------------------- worker steps

_DUE_OVERDUE = text("""
    SELECT id, receiving_organization_id, referring_organization_id, respond_by
    FROM referral
    WHERE status = 'REQUESTED' AND respond_by < clock_timestamp() AND overdue_notified_at IS NULL
    ORDER BY respond_by, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")


async def flag_overdue(connection: AsyncConnection, *, limit: int = 100) -> int:
    """One `referral.overdue` to each side of every newly overdue referral, and mark it notified.

    Run in one transaction: the rows stay locked until commit and are skipped by other workers, and
    once committed `overdue_notified_at` excludes them, so each referral is announced exactly once.
    `version` is not bumped: this is bookkeeping, and must not fail a person's concurrent edit.
    """
    rows = (await connection.execute(_DUE_OVERDUE, {"limit": limit})).all()
    for row in rows:
        data = {"referralId": to_global_id("Referral", row.id)}
        if row.respond_by is not None:
            data["respondBy"] = iso_utc(row.respond_by)
        for organization_id in dict.fromkeys((row.receiving_organization_id, row.referring_organization_id)):
            await enqueue(connection, event_type=REFERRAL_OVERDUE, organization_id=organization_id, data=data)
    if rows:
        await connection.execute(
            text("UPDATE referral SET overdue_notified_at = clock_timestamp() WHERE id = ANY(:ids)")
            .bindparams(bindparam("ids", type_=_UUIDS)),
            {"ids": [row.id for row in rows]},
        )
    return len(rows)


_CLAIM_EVENTS = text("""
    SELECT id FROM outbox_event WHERE status = 'PENDING'
    ORDER BY created_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")

_FAN_OUT = text("""
    INSERT INTO webhook_delivery (outbox_event_id, oauth_client_id, organization_id, next_attempt_at)
    SELECT e.id, c.id, e.organization_id, clock_timestamp()
    FROM outbox_event e
    JOIN oauth_client c ON c.organization_id = e.organization_id
    WHERE e.id = ANY(:ids) AND NOT c.disabled AND coalesce(c.webhook_url, '') <> ''
      AND c.created_at <= e.created_at
    ON CONFLICT (outbox_event_id, oauth_client_id) DO NOTHING
""").bindparams(bindparam("ids", type_=_UUIDS))


async def fan_out(connection: AsyncConnection, *, limit: int = 200) -> int:
    """Turn pending outbox events into one delivery per enabled endpoint of the addressed organization
    that was registered when the event happened: a system registered later was not entitled to it
    (it may belong to a partner's new integration that should start from its own registration).

    Done by the worker rather than in the use case's transaction because the endpoints of another
    organization are not visible to the caller under row-level security.
    """
    ids = [row.id for row in (await connection.execute(_CLAIM_EVENTS, {"limit": limit})).all()]
    if not ids:
        return 0
    await connection.execute(_FAN_OUT, {"ids": ids})
    await connection.execute(update(outbox).where(outbox.c.id.in_(ids)).values(status=OUTBOX_DISPATCHED))
    return len(ids)


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    delivery_id: uuid.UUID
    claim_token: uuid.UUID
    attempt: int  # this attempt's number, counting every attempt ever made
    round_attempt: int  # the number within the current (re)queue, compared with max attempts
    outbox_event_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    event_created_at: datetime
    organization_id: uuid.UUID
    oauth_client_id: uuid.UUID
    client_id: str
    webhook_url: str | None
    webhook_secret_enc: bytes | None
    client_disabled: bool


_CLAIM = text("""
    WITH due AS (
      SELECT d.id FROM webhook_delivery d
      WHERE d.status = 'PENDING' AND d.next_attempt_at <= :cutoff
      ORDER BY d.next_attempt_at, d.id
      LIMIT :limit
      FOR UPDATE SKIP LOCKED
    )
    UPDATE webhook_delivery d
    SET attempts = d.attempts + 1, claim_token = :token, last_attempt_at = clock_timestamp(),
        next_attempt_at = clock_timestamp() + make_interval(secs => :lease), updated_at = clock_timestamp()
    FROM due, outbox_event e, oauth_client c
    WHERE d.id = due.id AND e.id = d.outbox_event_id AND c.id = d.oauth_client_id
      AND d.status = 'PENDING' AND d.next_attempt_at <= :cutoff
    RETURNING d.id, d.attempts, d.attempts_base, d.outbox_event_id, d.organization_id, d.oauth_client_id,
              e.event_type, e.payload, e.created_at AS event_created_at,
              c.client_id, c.webhook_url, c.webhook_secret_enc, c.disabled
""")


async def database_now(connection: AsyncConnection) -> datetime:
    value: datetime = (await connection.execute(select(_now()))).scalar_one()
    return value


async def claim_due(connection: AsyncConnection, *, cutoff: datetime, limit: int,
                    lease_seconds: float) -> list[ClaimedDelivery]:
    """Claim deliveries due by `cutoff` in a short transaction; the lease doubles as crash recovery.

    The claim moves next_attempt_at past the lease, so no other worker sees the rows as due while
    this one sends; if this worker dies, they fall due again when the lease ends (at least once).
    """
    token = uuid.uuid4()
    rows = (await connection.execute(_CLAIM, {"cutoff": cutoff, "limit": limit, "token": token,
                                              "lease": float(lease_seconds)})).all()
    return [
        ClaimedDelivery(
            delivery_id=row.id, claim_token=token, attempt=row.attempts,
            round_attempt=row.attempts - row.attempts_base, outbox_event_id=row.outbox_event_id,
            event_type=row.event_type, payload=dict(row.payload), event_created_at=row.event_created_at,
            organization_id=row.organization_id, oauth_client_id=row.oauth_client_id, client_id=row.client_id,
            webhook_url=row.webhook_url, webhook_secret_enc=row.webhook_secret_enc, client_disabled=row.disabled,
        )
        for row in rows
    ]


async def record_attempt(connection: AsyncConnection, claimed: ClaimedDelivery, *, status: DeliveryStatus,
                         status_code: int | None, latency_ms: int, error_kind: str | None,
                         retry_in_seconds: float | None) -> bool:
    """Log the attempt and move the delivery on; False if the claim was lost (redelivered meanwhile)."""
    await connection.execute(insert(attempts).values(
        delivery_id=claimed.delivery_id, outbox_event_id=claimed.outbox_event_id,
        organization_id=claimed.organization_id, oauth_client_id=claimed.oauth_client_id, attempt=claimed.attempt,
        status_code=status_code, latency_ms=latency_ms, error_kind=error_kind,
        outcome=status.value if status != DeliveryStatus.PENDING else "RETRY",
    ))
    values: dict[str, Any] = {
        "status": status.value, "last_status_code": status_code, "last_error_kind": error_kind,
        "claim_token": None, "updated_at": _now(),
    }
    if status == DeliveryStatus.DELIVERED:
        values["delivered_at"] = _now()
    if status == DeliveryStatus.PENDING:
        values["next_attempt_at"] = _now() + timedelta(seconds=retry_in_seconds or 0)
    result = await connection.execute(
        update(deliveries)
        .where(deliveries.c.id == claimed.delivery_id, deliveries.c.claim_token == claimed.claim_token)
        .values(**values)
    )
    return bool(result.rowcount)


# ----------------------------------------------------------------------------- redelivery and reads

_REDELIVER = text("""
    INSERT INTO webhook_delivery (outbox_event_id, oauth_client_id, organization_id, next_attempt_at)
    SELECT e.id, c.id, e.organization_id, clock_timestamp()
    FROM outbox_event e
    JOIN oauth_client c ON c.organization_id = e.organization_id
    WHERE e.id = :event_id
      AND (CAST(:organization_id AS uuid) IS NULL OR e.organization_id = CAST(:organization_id AS uuid))
      AND (CAST(:client_id AS text) IS NULL OR c.client_id = CAST(:client_id AS text))
      AND NOT c.disabled AND coalesce(c.webhook_url, '') <> '' AND c.created_at <= e.created_at
    ON CONFLICT (outbox_event_id, oauth_client_id) DO UPDATE
      SET status = 'PENDING', next_attempt_at = clock_timestamp(), attempts_base = webhook_delivery.attempts,
          claim_token = NULL, delivered_at = NULL, updated_at = clock_timestamp()
    RETURNING id
""")


async def redeliver(connection: Connection, *, event_id: uuid.UUID, client_id: str | None = None,
                    organization_id: uuid.UUID | None = None) -> int:
    """Queue the event again for one endpoint (client_id) or all of the organization's endpoints.

    Same `webhook-id` as before. A delivery gets a fresh budget of attempts; an endpoint registered
    after the event was first sent gets it too. With `organization_id`, only an event addressed to
    that organization is touched (the partner's own `redeliverWebhook`). Returns how many
    deliveries were queued; 0 means no such event or no enabled endpoint.
    """
    result = await _execute(connection, _REDELIVER.bindparams(
        event_id=event_id, organization_id=organization_id, client_id=client_id))
    return len(result.all())


@dataclass(frozen=True, slots=True)
class DeliveryAttemptRecord:
    """One line of the delivery log; `id` orders the log and serves as a keyset cursor."""

    id: int
    outbox_event_id: uuid.UUID
    event_type: str
    client_id: str
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    error_kind: str | None
    outcome: str  # DELIVERED, RETRY or DEAD


async def delivery_log(connection: Connection, *, organization_id: uuid.UUID, event_id: uuid.UUID | None = None,
                       limit: int = 50, before_id: int | None = None) -> list[DeliveryAttemptRecord]:
    """The organization's delivery attempts, newest first (attempt, status code, latency, error kind)."""
    statement = (
        select(attempts.c.id, attempts.c.outbox_event_id, outbox.c.event_type, clients.c.client_id,
               attempts.c.attempt, attempts.c.at, attempts.c.status_code, attempts.c.latency_ms,
               attempts.c.error_kind, attempts.c.outcome)
        .select_from(attempts.join(outbox, outbox.c.id == attempts.c.outbox_event_id)
                     .join(clients, clients.c.id == attempts.c.oauth_client_id))
        .where(attempts.c.organization_id == organization_id)
        .order_by(attempts.c.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    if event_id is not None:
        statement = statement.where(attempts.c.outbox_event_id == event_id)
    if before_id is not None:
        statement = statement.where(attempts.c.id < before_id)
    rows = (await _execute(connection, statement)).all()
    return [DeliveryAttemptRecord(
        id=row.id, outbox_event_id=row.outbox_event_id, event_type=row.event_type, client_id=row.client_id,
        attempt=row.attempt, at=row.at, status_code=row.status_code, latency_ms=row.latency_ms,
        error_kind=row.error_kind, outcome=row.outcome,
    ) for row in rows]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: uuid.UUID
    outbox_event_id: uuid.UUID
    event_type: str
    organization_id: uuid.UUID
    client_id: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error_kind: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


async def list_deliveries(connection: Connection, *, organization_id: uuid.UUID | None = None,
                          status: DeliveryStatus | None = None, event_id: uuid.UUID | None = None,
                          limit: int = 100) -> list[DeliveryRecord]:
    """Delivery states, newest first; the operator's dead-letter list with status=DEAD."""
    statement = (
        select(deliveries, outbox.c.event_type, clients.c.client_id)
        .select_from(deliveries.join(outbox, outbox.c.id == deliveries.c.outbox_event_id)
                     .join(clients, clients.c.id == deliveries.c.oauth_client_id))
        .order_by(deliveries.c.created_at.desc(), deliveries.c.id)
        .limit(max(1, min(limit, 1000)))
    )
    if organization_id is not None:
        statement = statement.where(deliveries.c.organization_id == organization_id)
    if status is not None:
        statement = statement.where(deliveries.c.status == status.value)
    if event_id is not None:
        statement = statement.where(deliveries.c.outbox_event_id == event_id)
    rows: Sequence[Any] = (await _execute(connection, statement)).all()
    return [DeliveryRecord(
        id=row.id, outbox_event_id=row.outbox_event_id, event_type=row.event_type,
        organization_id=row.organization_id, client_id=row.client_id, status=DeliveryStatus(row.status),
        attempts=row.attempts, last_status_code=row.last_status_code, last_error_kind=row.last_error_kind,
        next_attempt_at=row.next_attempt_at if row.status == DeliveryStatus.PENDING.value else None,
        delivered_at=row.delivered_at, created_at=row.created_at,
    ) for row in rows]


class SqlWebhookDeliveries:
    """The store of domain/use_cases/webhook_deliveries.py, in the request's transaction."""

    def __init__(self, db: Db, audit: Callable[[uuid.UUID | None, int], Awaitable[None]]) -> None:
        self.db = db
        self._audit = audit

    async def delivery_log(self, *, organization_id: uuid.UUID, event_id: uuid.UUID | None,
                           limit: int) -> list[DeliveryAttemptRecord]:
        return await delivery_log(self.db, organization_id=organization_id, event_id=event_id, limit=limit)

    async def redeliver(self, *, event_id: uuid.UUID, client_id: str | None, organization_id: uuid.UUID) -> int:
        async with self.db.savepoint():
            return await redeliver(self.db, event_id=event_id, client_id=client_id, organization_id=organization_id)

    async def audit(self, *, event_id: uuid.UUID | None, queued: int) -> None:
        await self._audit(event_id, queued)
