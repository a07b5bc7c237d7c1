"""Webhook delivery against a real HTTP receiver on 127.0.0.1 and the session's real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpcore
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from cli.main import main as cli_main
from config.settings import Settings
from db import outbox
from db.crypto import DecryptionFailed, MasterKeys
from db.engine import DatabaseUrls, RowSecurityContext, make_engine, transaction
from db.webhook_secrets import new_webhook_secret, open_webhook_secret, seal_webhook_secret, webhook_secret_key_id
from domain.events import CONSENT_WITHDRAWN, REFERRAL_OVERDUE, REFERRAL_REQUESTED, SAFEGUARDING_RAISED, DeliveryStatus
from domain.ids import to_global_id
from partners.webhooks import (
    DeliveryPolicy,
    ErrorKind,
    PublicAddressesOnly,
    WebhookHostUnresolvable,
    WebhookUrlRefused,
    check_webhook_url,
    http_client,
    post_webhook,
)
from partners.worker import run_once
from tests.factories import Factory, Org
from tests.partners.receiver import Answer, Receiver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def master(settings: Settings) -> MasterKeys:
    return MasterKeys.parse(settings.master_keys.get_secret_value())


@pytest.fixture
def policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy.from_settings(settings)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
async def engines(database_urls: DatabaseUrls) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two independent owner engines: two workers on separate connections."""
    first = make_engine(database_urls.owner, pool_size=2, application_name="pamoja-test-worker-1")
    second = make_engine(database_urls.owner, pool_size=2, application_name="pamoja-test-worker-2")
    yield first, second
    await first.dispose()
    await second.dispose()


@pytest.fixture(autouse=True)
async def retire_test_endpoints(owner_engine: AsyncEngine) -> AsyncIterator[None]:
    """After each test, disable this module's endpoints: a delivery still retrying towards a receiver
    that has shut down ends as DEAD (client_disabled) on the next pass instead of hitting a reused port."""
    yield
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE oauth_client SET disabled = true WHERE client_id LIKE 'hooks-%'"))


# ----------------------------------------------------------------------------- helpers


async def add_client(engine: AsyncEngine, master: MasterKeys, org: Org, url: str | None, *,
                     disabled: bool = False) -> tuple[str, str]:
    """A webhook endpoint as the OAuth engineer stores it: MasterKeys.wrap with the agreed AAD."""
    client_id = f"hooks-{secrets.token_hex(6)}"
    secret = new_webhook_secret()
    _, sealed = master.wrap(secret.encode(), aad=f"oauth_client.webhook_secret_enc:{client_id}")
    async with engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO oauth_client (organization_id, client_id, name, webhook_url, webhook_secret_enc, disabled) "
            "VALUES (:org, :client_id, :name, :url, :sealed, :disabled)"
        ), {"org": org.id, "client_id": client_id, "name": f"system {client_id}", "url": url, "sealed": sealed,
            "disabled": disabled})
    return client_id, secret


async def add_event(engine: AsyncEngine, org: Org, event_type: str = REFERRAL_REQUESTED,
                    data: dict[str, str] | None = None) -> uuid.UUID:
    async with engine.begin() as connection:
        return await outbox.enqueue(connection, event_type=event_type, organization_id=org.id,
                                    data=data or {"referralId": to_global_id("Referral", uuid.uuid4())})


async def deliveries_of(engine: AsyncEngine, event_id: uuid.UUID) -> list[outbox.DeliveryRecord]:
    async with engine.connect() as connection:
        return await outbox.list_deliveries(connection, event_id=event_id)


async def log_of(engine: AsyncEngine, org: Org, event_id: uuid.UUID) -> list[outbox.DeliveryAttemptRecord]:
    async with engine.connect() as connection:
        return sorted(await outbox.delivery_log(connection, organization_id=org.id, event_id=event_id),
                      key=lambda record: record.attempt)


async def drain(engine: AsyncEngine, policy: DeliveryPolicy, master: MasterKeys,
                until: Callable[[], Awaitable[bool]]) -> None:
    """Run worker passes until the condition holds (within 15 s), as `pamoja worker` would."""
    async with asyncio.timeout(15):
        while True:
            await run_once(engine, policy=policy, master_keys=master)
            if await until():
                return
            await asyncio.sleep(0.05)


def status_is(engine: AsyncEngine, event_id: uuid.UUID, status: DeliveryStatus) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        found = await deliveries_of(engine, event_id)
        return bool(found) and all(d.status == status for d in found)
    return check


async def add_referral(engine: AsyncEngine, ngo: Org, partner: Org, *, pseudonym: str | None = None,
                       status: str = "REQUESTED", respond_by: datetime | None = None,
                       notified: bool = False) -> uuid.UUID:
    """A survivor, a consent and a referral, written directly as the owner."""
    async with engine.begin() as connection:
        survivor_id = (await connection.execute(text(
            "INSERT INTO survivor (organization_id, pseudonym, birth_year, sex, county, languages, risk_level) "
            "VALUES (:org, :pseudonym, 2011, 'FEMALE', '003', ARRAY['sw'], 'MEDIUM') RETURNING id"
        ), {"org": ngo.id, "pseudonym": pseudonym or f"Pseudo-{secrets.token_hex(4)}"})).scalar_one()
        consent_id = (await connection.execute(text(
            "INSERT INTO consent (survivor_id, organization_id, recipient_id, purposes, data_categories, given_by) "
            "VALUES (:survivor, :ngo, :partner, ARRAY['REFERRAL'], ARRAY['CASE_SUMMARY'], 'GUARDIAN') RETURNING id"
        ), {"survivor": survivor_id, "ngo": ngo.id, "partner": partner.id})).scalar_one()
        referral_id: uuid.UUID = (await connection.execute(text(
            "INSERT INTO referral (survivor_id, referring_organization_id, receiving_organization_id, consent_id, "
            "service, priority, status, respond_by, overdue_notified_at) VALUES (:survivor, :ngo, :partner, "
            ":consent, 'PSYCHOSOCIAL_COUNSELING', 'URGENT', :status, :respond_by, "
            "CASE WHEN :notified THEN now() END) RETURNING id"
        ), {"survivor": survivor_id, "ngo": ngo.id, "partner": partner.id, "consent": consent_id,
            "status": status, "respond_by": respond_by, "notified": notified})).scalar_one()
    return referral_id


# ----------------------------------------------------------------------------- signing and bodies


async def test_a_delivery_is_signed_per_standard_webhooks_and_carries_ids_only(
        factory: Factory, owner_engine: AsyncEngine, master: MasterKeys, policy: DeliveryPolicy) -> None:
    ngo, partner = await factory.ngo(), await factory.org()
    pseudonym = f"Pseudo-{secrets.token_hex(6)}"
    referral_id = await add_referral(owner_engine, ngo, partner, pseudonym=pseudonym)
    marker = f"echo-{secrets.token_hex(8)}"
    with Receiver(Answer(status=200, body=f"thanks {marker}".encode())) as receiver:
        _, secret = await add_client(owner_engine, master, partner, receiver.url)
        data = {"referralId": to_global_id("Referral", referral_id), "priority": "URGENT"}
        event_id = await add_event(owner_engine, partner, REFERRAL_REQUESTED, data)
        await drain(owner_engine, policy, master, status_is(owner_engine, event_id, DeliveryStatus.DELIVERED))
        [request] = receiver.for_event(event_id)

    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == REFERRAL_REQUESTED
    assert payload["id"] == str(event_id)
    assert payload["data"] == data
    assert datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Pamoja-Webhooks/1"
    assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60
    # The body names the referral and nothing about the survivor.
    assert pseudonym.encode() not in request.body
    assert b"2011" not in request.body and b"FEMALE" not in request.body
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(request.body, request.headers)
    # The log holds attempt, status and latency, never what the receiver answered.
    [attempt] = await log_of(owner_engine, partner, event_id)
    assert (attempt.attempt, attempt.status_code, attempt.error_kind, attempt.outcome) == (1, 200, None, "DELIVERED")
    assert attempt.latency_ms >= 0
    async with owner_engine.connect() as connection:
        stored = (await connection.execute(text(
            "SELECT coalesce(string_agg(row_to_json(a)::text, ''), '') || coalesce((SELECT string_agg("
            "row_to_json(d)::text, '') FROM webhook_delivery d WHERE d.outbox_event_id = :id), '') "
            "FROM webhook_delivery_attempt a WHERE a.outbox_event_id = :id"), {"id": event_id})).scalar_one()
    assert stored and marker not in stored


async def test_enqueue_refuses_anything_but_ids_instants_and_codes(factory: Factory,
                                                                   owner_engine: AsyncEngine) -> None:
    partner = await factory.org()
    referral = to_global_id("Referral", uuid.uuid4())
    refused = [
        ("referral.exploded", {"referralId": referral}),
        (REFERRAL_REQUESTED, {"referralId": "Pseudo Amani"}),
        (REFERRAL_REQUESTED, {"referralId": to_global_id("Survivor", uuid.uuid4())}),
        (REFERRAL_REQUESTED, {"referralId": referral, "pseudonym": "Amani"}),
        (REFERRAL_REQUESTED, {"referralId": referral, "reason": "She told the counselor that..."}),
        (REFERRAL_REQUESTED, {"referralId": referral, "occurredAt": "2026-11-29T10:00:00"}),
        (SAFEGUARDING_RAISED, {"sessionId": to_global_id("CounselingSession", uuid.uuid4())}),
    ]
    async with owner_engine.connect() as connection:
        for event_type, data in refused:
            with pytest.raises(ValueError):
                await outbox.enqueue(connection, event_type=event_type, organization_id=partner.id, data=data)
        count = (await connection.execute(text("SELECT count(*) FROM outbox_event WHERE organization_id = :org"),
                                          {"org": partner.id})).scalar_one()
        await connection.rollback()
    assert count == 0
    ngo = await factory.ngo()
    event_id = await add_event(owner_engine, ngo, SAFEGUARDING_RAISED,
                               {"sessionId": to_global_id("CounselingSession", uuid.uuid4()),
                                "concernLevel": "HIGH", "occurredAt": "2026-11-29T10:00:00+03:00"})
    assert isinstance(event_id, uuid.UUID)


async def test_a_use_case_enqueues_through_the_runtime_role_for_another_organization(
        factory: Factory, owner_engine: AsyncEngine, app_engine: AsyncEngine, master: MasterKeys,
        policy: DeliveryPolicy, receiver: Receiver) -> None:
    ngo, partner = await factory.ngo(), await factory.org()
    await add_client(owner_engine, master, partner, receiver.url)
    async with transaction(app_engine, RowSecurityContext(organization_id=str(ngo.id))) as db:
        event_id = await outbox.enqueue(db, event_type=REFERRAL_REQUESTED, organization_id=partner.id,
                                        data={"referralId": to_global_id("Referral", uuid.uuid4())})
    await drain(owner_engine, policy, master, status_is(owner_engine, event_id, DeliveryStatus.DELIVERED))
    assert len(receiver.for_event(event_id)) == 1


async def test_a_rolled_back_transaction_produces_no_event_and_no_delivery(
        factory: Factory, owner_engine: AsyncEngine, master: MasterKeys, policy: DeliveryPolicy,
        receiver: Receiver) -> None:
    partner = await factory.org()
    await add_client(owner_engine, master, partner, receiver.url)
    async with owner_engine.connect() as connection:
        transaction_ = await connection.begin()
        event_id = await outbox.enqueue(connection, event_type=CONSENT_WITHDRAWN, organization_id=partner.id,
                                        data={"consentId": to_global_id("Consent", uuid.uuid4())})
        await transaction_.rollback()
    committed = await add_event(owner_engine, partner, CONSENT_WITHDRAWN,
                                {"consentId": to_global_id("Consent", uuid.uuid4())})
    await drain(owner_engine, policy, master, status_is(owner_engine, committed, DeliveryStatus.DELIVERED))
    async with owner_engine.connect() as connection:
        rows = (await connection.execute(text("SELECT count(*) FROM outbox_event WHERE id = :id"),
                                         {"id": event_id})).scalar_one()
    assert rows == 0
    assert receiver.for_event(event_id) == []
    assert await deliveries_of(owner_engine, event_id) == []
    assert len(receiver.for_event(committed)) == 1


# ----------------------------------------------------------------------------- retries, dead letters, redelivery


async def test_a_503_is_retried_with_backoff_and_then_delivered_with_the_same_id_and_body(
        factory: Factory, owner_engine: AsyncEngine, master: MasterKeys, policy: DeliveryPolicy,
        receiver: Receiver) -> None:
    partner = await factory.org()
    _, secret = await add_client(owner_engine, master, partner, receiver.url)
    receiver.program(Answer(status=503))
    event_id = await add_event(owner_engine, partner)
    first = await run_once(owner_engine, policy=policy, master_keys=master)
    assert first.retried >= 1
    [delivery] = await deliveries_of(owner_engine, event_id)
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_status_code == 503
    assert delivery.next_attempt_at is not None
    await drain(owner_engine, policy, master, status_is(owner_engine, event_id, DeliveryStatus.DELIVERED))

    requests = receiver.for_event(event_id)
    assert len(requests) == 2
    assert requests[0].body == requests[1].body
    for request in requests:
        Webhook(secret).verify(request.body, request.headers)
    log = await log_of(owner_engine, partner, event_id)
    assert [(a.attempt, a.status_code, a.error_kind, a.outcome) for a in log] == [
        (1, 503, "http_status", "RETRY"), (2, 200, None, "DELIVERED")]
    # The first retry waits the base delay (0.2 s in tests), give or take the 20% jitter.
    assert (log[1].at - log[0].at) >= timedelta(seconds=0.2 * 0.8)


async def test_after_max_attempts_a_delivery_is_dead_listed_and_can_be_redelivered(
        factory: Factory, owner_engine: AsyncEngine, master: MasterKeys, policy: DeliveryPolicy,
        receiver: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        database_urls: DatabaseUrls) -> None:
    short = dataclasses.replace(policy, max_attempts=3)
    partner = await factory.org()
    client_id, _ = await add_client(owner_engine, master, partner, receiver.url)
    receiver.program(*[Answer(status=500)] * 3)
    event_id = await add_event(owner_engine, partner)
    await drain(owner_engine, short, master, status_is(owner_engine, event_id, DeliveryStatus.DEAD))
    assert len(receiver.for_event(event_id)) == 3
    log = await log_of(owner_engine, partner, event_id)
    assert [(a.attempt, a.outcome) for a in log] == [(1, "RETRY"), (2, "RETRY"), (3, "DEAD")]

    async with owner_engine.connect() as connection:
        dead = await outbox.list_deliveries(connection, organization_id=partner.id, status=DeliveryStatus.DEAD)
    assert [(d.outbox_event_id, d.client_id, d.attempts) for d in dead] == [(event_id, client_id, 3)]

    monkeypatch.setenv("DATABASE_URL", database_urls.owner)
    code = await asyncio.to_thread(cli_main, ["webhooks", "list", "--org", partner.gid, "--status", "dead", "--json"])
    listed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(d["eventId"], d["clientId"], d["status"]) for d in listed["deliveries"]] == [
        (str(event_id), client_id, "DEAD")]

    code = await asyncio.to_thread(cli_main, ["webhooks", "redeliver", str(event_id), "--client", client_id,
                                              "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"eventId": str(event_id), "queued": 1}
    await drain(owner_engine, short, master, status_is(owner_engine, event_id, DeliveryStatus.DELIVERED))
    requests = receiver.for_event(event_id)
    assert len(requests) == 4 and len({r.headers["webhook-id"] for r in requests}) == 1
    log = await log_of(owner_engine, partner, event_id)
    assert (log[-1].attempt, log[-1].outcome) == (4, "DELIVERED")

    code = await asyncio.to_thread(cli_main, ["webhooks", "redeliver", str(uuid.uuid4())])
    assert code == 2
    assert "nothing to redeliver" in capsys.readouterr().err


async def test_the_partner_reads_its_log_and_redelivers_through_the_runtime_role(
        factory: Factory, owner_engine: AsyncEngine, app_engine: AsyncEngine, master: MasterKeys,
        policy: DeliveryPolicy, receiver: Receiver) -> None:
    partner, other = await factory.org(), await factory.org()
    await add_client(owner_engine, master, partner, receiver.url)
    event_id = await add_event(owner_engine, partner)
    await drain(owner_engine, policy, master, status_is(owner_engine, event_id, DeliveryStatus.DELIVERED))

    async with transaction(app_engine, RowSecurityContext(organization_id=str(partner.id))) as db:
        log = await outbox.delivery_log(db, organization_id=partner.id, event_id=event_id)
        queued = await outbox.redeliver(db, event_id=event_id, organization_id=partner.id)
    assert [(a.attempt, a.outcome) for a in log] == [(1, "DELIVERED")]
    assert queued == 1
    async with transaction(app_engine, RowSecurityContext(organization_id=str(other.id))) as db:
        # Row-level security: another organization sees no log and cannot requeue the event.
        assert await outbox.delivery_log(db, organization_id=partner.id, event_id=event_id) == []
        assert await outbox.redeliver(db, event_id=event_id) == 0
        assert await outbox.redeliver(db, event_id=event_id, organization_id=other.id) == 0
    await drain(owner_engine, policy, master, status_is(owner_engine, event_id, DeliveryStatus.DELIVERED))
    assert len(receiver.for_event(event_id)) == 2


# ----------------------------------------------------------------------------- concurrency


async def test_two_racing_workers_deliver_each_event_exactly_once(
        factory: Factory, engines: tuple[AsyncEngine, AsyncEngine], master: MasterKeys, policy: DeliveryPolicy,
        receiver: Receiver) -> None:
    first, second = engines
    partner = await factory.org()
    await add_client(first, master, partner, receiver.url)
    await add_client(first, master, partner, receiver.url + "/second-endpoint")
    events = [await add_event(first, partner) for _ in range(12)]
    await asyncio.gather(run_once(first, policy=policy, master_keys=master, batch_size=3),
                         run_once(second, policy=policy, master_keys=master, batch_size=3))
    for event_id in events:
        requests = receiver.for_event(event_id)
        # One delivery per endpoint, never two to the same one.
        assert sorted(r.path for r in requests) == ["/hook", "/hook/second-endpoint"]
        deliveries = await deliveries_of(first, event_id)
        assert [(d.status, d.attempts) for d in deliveries] == [(DeliveryStatus.DELIVERED, 1)] * 2


async def test_a_claim_skips_rows_another_worker_holds_instead_of_waiting_or_sharing(
        factory: Factory, engines: tuple[AsyncEngine, AsyncEngine], master: MasterKeys, policy: DeliveryPolicy,
        receiver: Receiver) -> None:
    """The race made deterministic: worker A holds its claim transaction open while worker B claims."""
    first, second = engines
    partner = await factory.org()
    await add_client(first, master, partner, receiver.url)
    events = [await add_event(first, partner) for _ in range(6)]
    async with first.begin() as connection:
        await outbox.fan_out(connection, limit=1000)
    async with first.connect() as connection:
        mine = {row.id for row in (await connection.execute(text(
            "SELECT id FROM webhook_delivery WHERE outbox_event_id = ANY(:ids)"), {"ids": events})).all()}
        cutoff = await outbox.database_now(connection)
    async with first.connect() as holder:
        held_transaction = await holder.begin()
        held = await outbox.claim_due(holder, cutoff=cutoff, limit=3, lease_seconds=60)
        async with second.begin() as other:
            # Must not block on A's locked rows: SKIP LOCKED passes them by.
            taken = await asyncio.wait_for(outbox.claim_due(other, cutoff=cutoff, limit=1000, lease_seconds=60),
                                           timeout=5)
        await held_transaction.commit()
    held_ids, taken_ids = {c.delivery_id for c in held}, {c.delivery_id for c in taken}
    assert len(held_ids) == 3
    assert held_ids.isdisjoint(taken_ids)
    assert mine <= held_ids | taken_ids
    assert all(c.attempt == 1 for c in held + taken if c.delivery_id in mine)


async def test_the_overdue_scan_emits_one_event_per_side_once_with_two_workers(
        factory: Factory, engines: tuple[AsyncEngine, AsyncEngine], master: MasterKeys, policy: DeliveryPolicy,
        receiver: Receiver) -> None:
    first, second = engines
    ngo, partner = await factory.ngo(), await factory.org()
    await add_client(first, master, ngo, receiver.url + "/ngo")
    await add_client(first, master, partner, receiver.url + "/partner")
    past, future = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=4)
    overdue = [await add_referral(first, ngo, partner, respond_by=past) for _ in range(3)]
    quiet = [
        await add_referral(first, ngo, partner, respond_by=future),
        await add_referral(first, ngo, partner, respond_by=past, status="ACCEPTED"),
        await add_referral(first, ngo, partner, respond_by=past, notified=True),
    ]
    await asyncio.gather(run_once(first, policy=policy, master_keys=master, batch_size=1),
                         run_once(second, policy=policy, master_keys=master, batch_size=1))
    await run_once(first, policy=policy, master_keys=master)

    async with first.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT payload->>'referralId' AS referral, organization_id FROM outbox_event "
            "WHERE event_type = :type AND organization_id IN (:ngo, :partner)"),
            {"type": REFERRAL_OVERDUE, "ngo": ngo.id, "partner": partner.id})).all()
        notified: dict[uuid.UUID, bool] = dict((await connection.execute(text(
            "SELECT id, overdue_notified_at IS NOT NULL FROM referral WHERE id = ANY(:ids)"),
            {"ids": overdue + quiet})).all())
    expected = sorted((to_global_id("Referral", r), org) for r in overdue for org in (ngo.id, partner.id))
    assert sorted((row.referral, row.organization_id) for row in rows) == expected
    assert [notified[r] for r in overdue] == [True, True, True]
    assert [notified[r] for r in quiet] == [False, False, True]
    for path in ("/hook/ngo", "/hook/partner"):
        bodies = [json.loads(r.body) for r in receiver.received if r.path == path]
        assert sorted(b["data"]["referralId"] for b in bodies) == sorted(to_global_id("Referral", r) for r in overdue)
        assert {b["type"] for b in bodies} == {REFERRAL_OVERDUE}
        assert all(b["data"]["respondBy"].endswith("Z") for b in bodies)


async def test_disabled_endpoints_and_missing_secrets(factory: Factory, owner_engine: AsyncEngine,
                                                      master: MasterKeys, policy: DeliveryPolicy,
                                                      receiver: Receiver) -> None:
    partner = await factory.org()
    active, _ = await add_client(owner_engine, master, partner, receiver.url + "/active")
    await add_client(owner_engine, master, partner, receiver.url + "/disabled", disabled=True)
    await add_client(owner_engine, master, partner, None)
    no_secret, _ = await add_client(owner_engine, master, partner, receiver.url + "/no-secret")
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE oauth_client SET webhook_secret_enc = NULL WHERE client_id = :c"),
                                 {"c": no_secret})
    event_id = await add_event(owner_engine, partner)
    async with owner_engine.begin() as connection:
        await outbox.fan_out(connection)
        # Disabled after fan-out: the pending delivery ends without being sent.
        await connection.execute(text("UPDATE oauth_client SET disabled = true WHERE client_id = :c"),
                                 {"c": active})
    await run_once(owner_engine, policy=policy, master_keys=master)
    states = {d.client_id: (d.status, d.last_error_kind) for d in await deliveries_of(owner_engine, event_id)}
    # No delivery at all for the endpoint disabled before fan-out, nor for the client without a URL.
    assert states == {active: (DeliveryStatus.DEAD, "client_disabled"),
                      no_secret: (DeliveryStatus.PENDING, "secret_unavailable")}
    assert receiver.for_event(event_id) == []


# ----------------------------------------------------------------------------- URL policy and failures


async def test_a_redirect_is_not_followed(factory: Factory, owner_engine: AsyncEngine, master: MasterKeys,
                                          policy: DeliveryPolicy, receiver: Receiver) -> None:
    partner = await factory.org()
    await add_client(owner_engine, master, partner, receiver.url)
    receiver.program(Answer(status=302, location=receiver.base + "/elsewhere"))
    event_id = await add_event(owner_engine, partner)
    await run_once(owner_engine, policy=policy, master_keys=master)
    assert [r.path for r in receiver.for_event(event_id)] == ["/hook"]
    [attempt] = await log_of(owner_engine, partner, event_id)
    assert (attempt.status_code, attempt.error_kind, attempt.outcome) == (302, "http_status", "RETRY")


async def test_a_slow_receiver_times_out_and_a_closed_port_fails_to_connect(
        factory: Factory, owner_engine: AsyncEngine, master: MasterKeys, policy: DeliveryPolicy,
        receiver: Receiver) -> None:
    quick = dataclasses.replace(policy, timeout_seconds=0.3)
    slow_partner, gone_partner = await factory.org(), await factory.org()
    await add_client(owner_engine, master, slow_partner, receiver.url)
    with Receiver() as closed:
        gone_url = closed.url
    await add_client(owner_engine, master, gone_partner, gone_url)
    receiver.program(Answer(status=200, delay=1.0))
    slow = await add_event(owner_engine, slow_partner)
    gone = await add_event(owner_engine, gone_partner)
    await run_once(owner_engine, policy=quick, master_keys=master)
    [timed_out] = await log_of(owner_engine, slow_partner, slow)
    [refused] = await log_of(owner_engine, gone_partner, gone)
    assert (timed_out.status_code, timed_out.error_kind, timed_out.outcome) == (None, "timeout", "RETRY")
    assert (refused.status_code, refused.error_kind, refused.outcome) == (None, "connect", "RETRY")


async def test_production_refuses_a_private_address_before_connecting(
        factory: Factory, owner_engine: AsyncEngine, master: MasterKeys, policy: DeliveryPolicy) -> None:
    production = dataclasses.replace(policy, production=True)
    partner = await factory.org()
    await add_client(owner_engine, master, partner, "http://10.0.0.1/")
    event_id = await add_event(owner_engine, partner)
    await run_once(owner_engine, policy=production, master_keys=master)
    [attempt] = await log_of(owner_engine, partner, event_id)
    assert (attempt.status_code, attempt.error_kind, attempt.outcome) == (None, "refused_url", "RETRY")
    assert attempt.latency_ms < 1000  # refused by the check, not by a connect timeout


async def test_production_connects_only_to_the_addresses_it_checked_so_dns_rebinding_fails(
        policy: DeliveryPolicy, receiver: Receiver) -> None:
    """The name resolves to a public address for the check and to 127.0.0.1 when connecting (rebinding):
    the connection is refused before any byte reaches the local service."""
    production = dataclasses.replace(policy, production=True, timeout_seconds=2)
    port = urlsplit(receiver.url).port

    async def rebinding(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async with http_client(production, resolve=rebinding) as http:
        with pytest.raises(WebhookUrlRefused):
            await http.post(f"https://partner.example:{port}/hook", content=b"{}")
        # Through the delivery path: the pre-check passes (a public literal address), the connect-time
        # resolution says private, and the attempt is recorded as a refused URL, not a connection error.
        result = await post_webhook(http, url=f"https://93.184.215.14:{port}/hook", body=b"{}", headers={},
                                    production=True)
    assert result.error_kind is ErrorKind.REFUSED_URL and result.status_code is None
    assert receiver.received == []


async def test_the_checked_addresses_are_tried_in_order_and_the_host_is_never_resolved_again() -> None:
    attempts: list[str] = []
    connected = object()

    class Inner:
        async def connect_tcp(self, host: str, port: int, **_: object) -> object:
            attempts.append(host)
            if host == "93.184.215.14":
                raise httpcore.ConnectError("unreachable")
            return connected

    async def resolve(host: str, port: int) -> list[str]:
        assert (host, port) == ("partner.example", 443)
        return ["93.184.215.14", "2606:4700:4700::1111"]

    backend = PublicAddressesOnly(Inner(), resolve)  # type: ignore[arg-type]
    assert await backend.connect_tcp("partner.example", 443) is connected
    assert attempts == ["93.184.215.14", "2606:4700:4700::1111"]

    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]  # one private answer spoils the lot

    attempts.clear()
    with pytest.raises(WebhookUrlRefused):
        await PublicAddressesOnly(Inner(), mixed).connect_tcp("partner.example", 443)  # type: ignore[arg-type]
    assert attempts == []


@pytest.mark.parametrize(("url", "production", "allowed"), [
    ("http://10.0.0.1/", True, False),
    ("https://10.0.0.1/", True, False),
    ("https://127.0.0.1/hook", True, False),
    ("https://localhost/hook", True, False),
    ("https://[::1]/hook", True, False),
    ("https://[::ffff:10.1.2.3]/hook", True, False),
    ("https://169.254.169.254/latest/meta-data", True, False),
    ("https://100.64.0.1/", True, False),
    ("https://192.168.1.20/", True, False),
    ("https://224.0.0.1/", True, False),
    ("http://93.184.215.14/hook", True, False),
    ("https://user:secret@93.184.215.14/hook", True, False),
    ("ftp://93.184.215.14/hook", True, False),
    ("https:///hook", True, False),
    ("https://93.184.215.14/hook", True, True),
    ("https://[2606:4700:4700::1111]/hook", True, True),
    ("http://127.0.0.1:8080/hook", False, True),
    ("http://localhost/hook", False, True),
    ("https://10.0.0.1/hook", False, True),
    ("http://10.0.0.1/", False, False),
    ("http://partner.example/hook", False, False),
])
def test_webhook_url_policy(url: str, production: bool, allowed: bool) -> None:
    if allowed:
        check_webhook_url(url, production=production)
    else:
        with pytest.raises(WebhookUrlRefused):
            check_webhook_url(url, production=production)


# Where a webhook may connect in production. IPv6 forms that carry an IPv4 address (mapped, SIIT,
# compatible, NAT64, 6to4, ISATAP) are as public as that IPv4; local-use NAT64 and Teredo never are.
PUBLIC_ADDRESSES = {
    "public-ipv4": ("93.184.215.14", True),
    "public-ipv6": ("2606:4700:4700::1111", True),
    "nat64-of-public": ("64:ff9b::93.184.215.14", True),
    "6to4-of-public": ("2002:5db8:d70e::1", True),
    "mapped-public": ("::ffff:93.184.215.14", True),
    "private": ("10.0.0.1", False),
    "loopback": ("127.0.0.1", False),
    "unspecified": ("0.0.0.0", False),  # noqa: S104 (an address refused, not one bound)
    "cloud-metadata": ("169.254.169.254", False),
    "shared": ("100.64.0.1", False),
    "benchmarking": ("198.18.0.1", False),
    "multicast": ("224.0.0.1", False),
    "broadcast": ("255.255.255.255", False),
    "ipv6-loopback": ("::1", False),
    "ipv6-unspecified": ("::", False),
    "ipv6-unique-local": ("fd00::1", False),
    "ipv6-link-local": ("fe80::1", False),
    "ipv6-link-local-with-zone": ("fe80::1%eth0", False),
    "public-ipv6-with-zone": ("2606:4700:4700::1111%eth0", False),
    "ipv6-multicast": ("ff02::1", False),
    "ipv6-documentation": ("2001:db8::1", False),
    "mapped-private": ("::ffff:10.0.0.1", False),
    "mapped-loopback": ("::ffff:127.0.0.1", False),
    "siit-loopback": ("::ffff:0:127.0.0.1", False),
    "compatible-private": ("::10.0.0.1", False),
    "compatible-loopback": ("::127.0.0.1", False),
    "compatible-metadata": ("::169.254.169.254", False),
    "nat64-private": ("64:ff9b::10.0.0.1", False),
    "nat64-loopback": ("64:ff9b::7f00:1", False),
    "nat64-metadata": ("64:ff9b::a9fe:a9fe", False),
    "local-nat64": ("64:ff9b:1::5db8:d70e", False),
    "6to4-private": ("2002:a00:1::1", False),
    "6to4-loopback": ("2002:7f00:1::", False),
    "6to4-metadata": ("2002:a9fe:a9fe::1", False),
    "teredo-private-client": ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),
    "teredo-public-client": ("2001:0:4136:e378:8000:63bf:a247:28f1", False),
    "isatap-private": ("2606:4700::5efe:10.0.0.1", False),
    "isatap-private-universal-bit": ("2606:4700::200:5efe:a00:1", False),
}


class RecordingBackend:
    """Stands for the real network: records where PublicAddressesOnly lets a connection go."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    async def connect_tcp(self, host: str, port: int, **_: object) -> object:
        self.attempts.append(host)
        return object()


@pytest.mark.parametrize(("address", "public"), PUBLIC_ADDRESSES.values(), ids=PUBLIC_ADDRESSES.keys())
async def test_the_same_address_rule_holds_before_and_at_connect_time(address: str, public: bool) -> None:
    async def resolves_to(host: str, port: int) -> list[str]:
        return [address]

    backend = RecordingBackend()
    connect = PublicAddressesOnly(backend, resolves_to).connect_tcp("partner.example", 443)  # type: ignore[arg-type]
    url = f"https://[{address.replace('%', '%25')}]/hook" if ":" in address else f"https://{address}/hook"
    if public:
        await connect
        check_webhook_url(url, production=True)
        assert backend.attempts == [address]
        return
    with pytest.raises(WebhookUrlRefused):
        await connect
    with pytest.raises(WebhookUrlRefused) as caught:
        check_webhook_url(url, production=True)
    assert not isinstance(caught.value, WebhookHostUnresolvable)
    assert backend.attempts == []


# Other spellings of an address in a URL: resolvers read integer, octal, hex and short IPv4 forms, and
# IDNA folds full-width digits and dots, so each must be refused for what it names, not for failing DNS.
HOST_SPELLINGS = [
    "https://2130706433/hook",
    "https://017700000001/hook",
    "https://0x7f000001/hook",
    "https://0x7f.1/hook",
    "https://127.1/hook",
    "https://0177.0.0.1/hook",
    "https://0x5db8d70e/hook",  # a public address, but not written as four decimal numbers
    "https://127.0.0.1./hook",
    "https://10.0.0.1.:443/hook",
    "https://localhost./hook",
    "https://LOCALHOST/hook",
    "https://127\u3002\u0030\u3002\u0030\u30021/hook",
    "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook",
    "https://[::ffff:7f00:1]/hook",
    "https://[::127.0.0.1]:8443/hook",
    "https://[fe80::1%25eth0]/hook",
    "https://[2606:4700:4700::1111%25eth0]/hook",
]


@pytest.mark.parametrize("url", HOST_SPELLINGS)
async def test_every_spelling_of_an_internal_host_is_refused_before_and_at_connect_time(url: str) -> None:
    with pytest.raises(WebhookUrlRefused) as caught:
        check_webhook_url(url, production=True)
    assert not isinstance(caught.value, WebhookHostUnresolvable)
    backend = RecordingBackend()
    host = urlsplit(url).hostname
    assert host is not None
    with pytest.raises(WebhookUrlRefused):
        await PublicAddressesOnly(backend).connect_tcp(host, 443)  # type: ignore[arg-type]
    assert backend.attempts == []


def test_a_public_address_with_a_trailing_dot_is_still_that_address() -> None:
    check_webhook_url("https://93.184.215.14./hook", production=True)


def test_webhook_secrets_are_sealed_per_client_and_survive_a_master_key_rotation() -> None:
    old_keys = MasterKeys.parse("old:" + "A" * 43)
    rotated = MasterKeys.parse("new:" + "B" * 43 + ",old:" + "A" * 43)
    secret = new_webhook_secret()
    assert secret.startswith("whsec_") and Webhook(secret)
    sealed = seal_webhook_secret(old_keys, client_id="pmj_one", secret=secret)
    # The agreed convention: MasterKeys.wrap of the secret's bytes, AAD naming the column and client_id.
    assert old_keys.unwrap("old", sealed, aad="oauth_client.webhook_secret_enc:pmj_one") == secret.encode()
    assert open_webhook_secret(rotated, client_id="pmj_one", sealed=sealed) == secret
    assert webhook_secret_key_id(rotated, client_id="pmj_one", sealed=sealed) == "old"
    resealed = seal_webhook_secret(rotated, client_id="pmj_one", secret=secret)
    assert webhook_secret_key_id(rotated, client_id="pmj_one", sealed=resealed) == "new"
    with pytest.raises(DecryptionFailed):
        open_webhook_secret(rotated, client_id="pmj_two", sealed=sealed)  # bound to its client


def test_the_retry_schedule_spans_about_four_hours_over_eight_attempts() -> None:
    schedule = DeliveryPolicy(retry_base_seconds=30, max_attempts=8)
    waits = [schedule.nominal_delay(n) for n in range(1, 8)]
    assert waits[0] == 30
    assert 3.5 * 3600 < sum(waits) < 4.5 * 3600
    assert schedule.retry_delay(1, rand=lambda: 0.0) == pytest.approx(24)
    assert schedule.retry_delay(1, rand=lambda: 1.0) == pytest.approx(36)


# ----------------------------------------------------------------------------- the command line


async def test_pamoja_worker_once_runs_as_a_process(factory: Factory, owner_engine: AsyncEngine,
                                                    master: MasterKeys, receiver: Receiver,
                                                    database_urls: DatabaseUrls) -> None:
    partner = await factory.org()
    await add_client(owner_engine, master, partner, receiver.url)
    event_id = await add_event(owner_engine, partner)
    env = dict(os.environ)
    env.update(DATABASE_URL=database_urls.owner, PAMOJA_ENV="test", PAMOJA_WEBHOOK_RETRY_BASE_SECONDS="0.2",
               PAMOJA_LOG_LEVEL="WARNING")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "worker", "--once", "--json", cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    summary = json.loads(stdout)
    assert set(summary) == {"overdue", "dispatched", "delivered", "retried", "dead"}
    assert summary["delivered"] >= 1
    assert len(receiver.for_event(event_id)) == 1


async def test_pamoja_worker_runs_until_sigterm(factory: Factory, owner_engine: AsyncEngine, master: MasterKeys,
                                               receiver: Receiver, database_urls: DatabaseUrls) -> None:
    partner = await factory.org()
    await add_client(owner_engine, master, partner, receiver.url)
    env = dict(os.environ)
    env.update(DATABASE_URL=database_urls.owner, PAMOJA_ENV="test", PAMOJA_WEBHOOK_RETRY_BASE_SECONDS="0.2",
               PAMOJA_LOG_LEVEL="WARNING")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "worker", "--json", cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        await asyncio.sleep(0.5)
        event_id = await add_event(owner_engine, partner)  # written while the worker is already running
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not receiver.for_event(event_id):
            assert process.returncode is None, "the worker exited on its own"
            assert loop.time() < deadline, "the running worker did not deliver"
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout)["delivered"] >= 1
