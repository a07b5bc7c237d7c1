"""The worker runs as the runtime role (compose.yaml, `pamoja worker`), not the owner (issue 11.7).

Its transactions are marked as the worker's (db.engine.worker_transaction) and migration 0008 gives
that mark what its steps need across organizations — outbox, deliveries, referrals to flag overdue,
expired housekeeping rows — and nothing of survivors. Without the mark the runtime role sees none of
another organization's outbox and deletes nothing.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.housekeeping import sweep_once
from config.settings import Settings
from db.crypto import MasterKeys
from db.engine import DatabaseUrls, make_engine, worker_transaction
from domain.events import REFERRAL_OVERDUE
from domain.ids import to_global_id
from partners.webhooks import DeliveryPolicy
from partners.worker import run_once
from tests.factories import Factory
from tests.partners.receiver import Receiver
from tests.partners.test_webhooks import add_client, add_referral


@pytest.fixture
async def runtime_engine(database_urls: DatabaseUrls) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_urls.app, pool_size=2, application_name="pamoja-test-worker")
    yield engine
    await engine.dispose()


async def test_the_worker_as_runtime_role_flags_overdue_referrals_and_delivers_to_both_sides(
        factory: Factory, owner_engine: AsyncEngine, runtime_engine: AsyncEngine, settings: Settings) -> None:
    master = MasterKeys.parse(settings.master_keys.get_secret_value())
    ngo, partner = await factory.ngo(), await factory.org()
    with Receiver() as receiver:
        await add_client(owner_engine, master, ngo, receiver.url + "/ngo")
        await add_client(owner_engine, master, partner, receiver.url + "/partner")
        referral = await add_referral(owner_engine, ngo, partner, respond_by=datetime.now(UTC) - timedelta(hours=1))
        counts = await run_once(runtime_engine, policy=DeliveryPolicy.from_settings(settings), master_keys=master)
        bodies = {r.path: json.loads(r.body) for r in receiver.received
                  if json.loads(r.body)["data"].get("referralId") == to_global_id("Referral", referral)}
    assert counts.overdue >= 1 and counts.delivered >= 2
    assert set(bodies) == {"/hook/ngo", "/hook/partner"}
    assert {b["type"] for b in bodies.values()} == {REFERRAL_OVERDUE}
    async with owner_engine.connect() as connection:
        notified = (await connection.execute(text(
            "SELECT overdue_notified_at IS NOT NULL FROM referral WHERE id = :id"), {"id": referral})).scalar_one()
    assert notified


async def test_the_worker_context_reads_no_survivor_data(factory: Factory, owner_engine: AsyncEngine,
                                                         runtime_engine: AsyncEngine) -> None:
    ngo, partner = await factory.ngo(), await factory.org()
    await add_referral(owner_engine, ngo, partner, respond_by=datetime.now(UTC) + timedelta(hours=4))
    async with worker_transaction(runtime_engine) as connection:
        for table in ("survivor", "survivor_identity", "survivor_key", "consent", "counseling_session",
                      "care_goal", "milestone", "assessment", "audit_event"):
            seen = (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()  # noqa: S608
            assert seen == 0, f"the worker's context reads {table}"
        assert (await connection.execute(text("SELECT count(*) FROM referral"))).scalar_one() >= 1


async def test_without_the_worker_mark_the_runtime_role_sees_no_outbox_and_deletes_nothing(
        factory: Factory, owner_engine: AsyncEngine, runtime_engine: AsyncEngine) -> None:
    partner = await factory.org()
    jti = f"worker-role-{secrets.token_hex(6)}"
    async with owner_engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO outbox_event (event_type, organization_id, payload, status) "
            "VALUES ('referral.requested', :org, '{}'::jsonb, 'DISPATCHED')"), {"org": partner.id})
        await connection.execute(text(
            "INSERT INTO revoked_token (jti, expires_at) VALUES (:jti, now() - interval '1 day')"), {"jti": jti})
    async with runtime_engine.begin() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM outbox_event"))).scalar_one() == 0
        deleted = await connection.execute(text("DELETE FROM revoked_token WHERE jti = :jti"), {"jti": jti})
        assert deleted.rowcount == 0


async def test_housekeeping_as_runtime_role_deletes_expired_rows_and_never_a_live_revocation(
        owner_engine: AsyncEngine, runtime_engine: AsyncEngine) -> None:
    expired, live = f"expired-{secrets.token_hex(6)}", f"live-{secrets.token_hex(6)}"
    async with owner_engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO revoked_token (jti, expires_at) VALUES (:expired, now() - interval '1 day'), "
            "(:live, now() + interval '10 minutes')"), {"expired": expired, "live": live})
    swept = await sweep_once(runtime_engine)
    assert swept["revoked_tokens"] >= 1
    async with worker_transaction(runtime_engine) as connection:
        # Even in the worker's context a revocation that still protects a live token cannot be deleted.
        refused = await connection.execute(text("DELETE FROM revoked_token WHERE jti = :jti"), {"jti": live})
        assert refused.rowcount == 0
    async with owner_engine.connect() as connection:
        left = set((await connection.execute(text(
            "SELECT jti FROM revoked_token WHERE jti IN (:expired, :live)"),
            {"expired": expired, "live": live})).scalars())
    assert left == {live}
