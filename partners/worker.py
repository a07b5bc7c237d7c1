"""The outbox relay: announce overdue referrals, fan events out to endpoints, deliver, retry, give up.

Which connection: the runtime role, never the owner. The worker is a system process, not a principal:
it must read every organization's outbox and OAuth clients and mark any referral overdue, which
row-level security forbids a principal of one organization. Each of its transactions is marked as
the worker's (db.engine.worker_transaction), and migration 0008 gives that context exactly those
rows and nothing of survivors, identities or care records. Outbox payloads hold ids only.

Concurrency: every step runs in a short transaction and takes rows with `FOR UPDATE SKIP LOCKED`,
so any number of workers can run side by side. A claimed delivery is leased (its next_attempt_at
moves past the HTTP timeout plus a margin) and only the holder of the claim token may record the
outcome; if a worker dies mid-send the delivery falls due again after the lease (at least once,
with the same `webhook-id` for the receiver to deduplicate). Order between events is not
guaranteed; receivers fetch the current state.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from config.logging import get_logger
from db import outbox
from db.crypto import DecryptionFailed, MasterKeys
from db.engine import worker_transaction
from db.webhook_secrets import open_webhook_secret
from domain.events import DeliveryStatus
from partners.webhooks import (
    AttemptResult,
    DeliveryPolicy,
    ErrorKind,
    build_body,
    http_client,
    post_webhook,
    signed_headers,
)

log = get_logger("pamoja.webhooks")


@dataclass(slots=True)
class WorkerCounts:
    """What one pass (or a whole run) did; `retried` counts failed attempts that will be retried."""

    overdue: int = 0
    dispatched: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0

    def add(self, other: WorkerCounts) -> None:
        self.overdue += other.overdue
        self.dispatched += other.dispatched
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def _attempt(http: httpx.AsyncClient, claimed: outbox.ClaimedDelivery, *, policy: DeliveryPolicy,
                   master_keys: MasterKeys) -> tuple[AttemptResult, bool]:
    """Send once; the bool says whether a failure is final regardless of the attempt count."""
    if claimed.client_disabled or not claimed.webhook_url:
        return AttemptResult(None, 0, ErrorKind.CLIENT_DISABLED), True
    if claimed.webhook_secret_enc is None:
        return AttemptResult(None, 0, ErrorKind.SECRET_UNAVAILABLE), False
    try:
        secret = open_webhook_secret(master_keys, client_id=claimed.client_id, sealed=claimed.webhook_secret_enc)
        message_id = str(claimed.outbox_event_id)
        body = build_body(event_id=message_id, event_type=claimed.event_type,
                          created_at=claimed.event_created_at, data=claimed.payload)
        headers = signed_headers(secret=secret, message_id=message_id, body=body)
    except (DecryptionFailed, ValueError, UnicodeDecodeError):
        # ValueError covers a secret that is not valid base64 (binascii.Error is one).
        return AttemptResult(None, 0, ErrorKind.SECRET_UNAVAILABLE), False
    result = await post_webhook(http, url=claimed.webhook_url, body=body, headers=headers,
                                production=policy.production)
    return result, False


async def _deliver(engine: AsyncEngine, http: httpx.AsyncClient, claimed: outbox.ClaimedDelivery, *,
                   policy: DeliveryPolicy, master_keys: MasterKeys) -> DeliveryStatus:
    result, final = await _attempt(http, claimed, policy=policy, master_keys=master_keys)
    retry_in: float | None = None
    if result.delivered:
        status = DeliveryStatus.DELIVERED
    elif final or claimed.round_attempt >= policy.max_attempts:
        status = DeliveryStatus.DEAD
    else:
        status = DeliveryStatus.PENDING
        retry_in = policy.retry_delay(claimed.round_attempt)
    async with worker_transaction(engine) as connection:
        await outbox.record_attempt(
            connection, claimed, status=status, status_code=result.status_code, latency_ms=result.latency_ms,
            error_kind=result.error_kind.value if result.error_kind else None, retry_in_seconds=retry_in,
        )
    fields = {"outbox_event_id": str(claimed.outbox_event_id), "event_type": claimed.event_type,
              "client_id": claimed.client_id, "attempt": claimed.attempt, "status_code": result.status_code,
              "latency_ms": result.latency_ms,
              "error_kind": result.error_kind.value if result.error_kind else None}
    if status == DeliveryStatus.DELIVERED:
        log.info("webhook delivered", **fields)
    elif status == DeliveryStatus.DEAD:
        log.warning("webhook delivery dead, no more retries", **fields)
    else:
        log.info("webhook attempt failed, will retry", **fields)
    return status


async def run_once(engine: AsyncEngine, *, policy: DeliveryPolicy, master_keys: MasterKeys,
                   http: httpx.AsyncClient | None = None, batch_size: int = 50, concurrency: int = 16,
                   stop: asyncio.Event | None = None) -> WorkerCounts:
    """One pass: overdue scan, fan-out, then every delivery due when the pass began, once each.

    Retries scheduled during the pass wait for a later pass, so a pass always ends. `engine` connects
    as the runtime role (or the owner); each step runs in the worker's context (module docstring).
    """
    counts = WorkerCounts()
    while True:
        async with worker_transaction(engine) as connection:
            flagged = await outbox.flag_overdue(connection, limit=batch_size)
        counts.overdue += flagged
        if flagged < batch_size:
            break
    while True:
        async with worker_transaction(engine) as connection:
            dispatched = await outbox.fan_out(connection, limit=batch_size * 4)
        counts.dispatched += dispatched
        if dispatched < batch_size * 4:
            break
    async with engine.connect() as connection:
        cutoff = await outbox.database_now(connection)

    own_client = http is None
    client = http or http_client(policy)
    gate = asyncio.Semaphore(concurrency)

    async def one(claimed: outbox.ClaimedDelivery) -> DeliveryStatus:
        async with gate:
            return await _deliver(engine, client, claimed, policy=policy, master_keys=master_keys)

    try:
        while stop is None or not stop.is_set():
            async with worker_transaction(engine) as connection:
                claimed = await outbox.claim_due(connection, cutoff=cutoff, limit=batch_size,
                                                 lease_seconds=policy.lease_seconds)
            if not claimed:
                break
            for status in await asyncio.gather(*(one(c) for c in claimed)):
                if status == DeliveryStatus.DELIVERED:
                    counts.delivered += 1
                elif status == DeliveryStatus.DEAD:
                    counts.dead += 1
                else:
                    counts.retried += 1
    finally:
        if own_client:
            await client.aclose()
    return counts


async def run_forever(engine: AsyncEngine, *, policy: DeliveryPolicy, master_keys: MasterKeys,
                      stop: asyncio.Event | None = None, poll_seconds: float = 1.0) -> WorkerCounts:
    """Pass after pass until `stop` is set (the CLI sets it on SIGINT/SIGTERM) or the task is cancelled.

    A failed pass (database restarting, network down) is logged and retried after the poll
    interval rather than ending the worker; deliveries claimed by it fall due again after their lease.
    """
    stop = stop or asyncio.Event()
    totals = WorkerCounts()
    async with http_client(policy) as http:
        while not stop.is_set():
            try:
                counts = await run_once(engine, policy=policy, master_keys=master_keys, http=http, stop=stop)
            except Exception:
                log.exception("worker pass failed; retrying after the poll interval")
            else:
                totals.add(counts)
                if counts.as_dict() != WorkerCounts().as_dict():
                    log.info("worker pass", overdue=counts.overdue, dispatched=counts.dispatched,
                             delivered=counts.delivered, retried=counts.retried, dead=counts.dead)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
    return totals
