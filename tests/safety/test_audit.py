"""The audit trail: one row per access (denied ones too), append-only, and tamper-evident."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.audit import write_audit
from db.engine import make_engine
from db.migrate import upgrade
from tests.conftest import create_database, drop_database
from tests.factories import Factory
from tests.flows import WITHDRAW_CONSENT, network, referred_case

IDENTITY = "query($id: ID!) { node(id: $id) { ... on Survivor { identity { legalName } } } }"


async def _audit_rows(engine: AsyncEngine, record_id: str) -> list[tuple[str, str, str]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT action, outcome, record_type FROM audit_event WHERE record_id = :id ORDER BY seq"),
            {"id": record_id})).all()
    return [(r.action, r.outcome, r.record_type) for r in rows]


async def test_reads_of_identity_and_every_change_leave_an_audit_row(factory: Factory,
                                                                     owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True)
    await factory.gql(net.token("manager"), IDENTITY, {"id": case.survivor["id"]})
    rows = await _audit_rows(owner_engine, case.survivor["id"])
    assert ("create", "allowed", "Survivor") in rows
    assert ("read", "allowed", "SurvivorIdentity") in rows
    assert ("create", "allowed", "Referral") in await _audit_rows(owner_engine, case.referral["id"])
    assert ("consent_change", "allowed", "Consent") in await _audit_rows(owner_engine, case.consent["id"])


async def test_an_audit_row_names_actor_client_organization_and_request(factory: Factory,
                                                                        owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    async with owner_engine.connect() as connection:
        row = (await connection.execute(text(
            "SELECT actor, client_id, organization_id, request_id, purpose FROM audit_event "
            "WHERE record_id = :id AND action = 'create'"), {"id": case.referral["id"]})).one()
    assert row.actor == net.manager.gid
    assert row.client_id == "pamoja-tests"
    assert row.organization_id == net.ngo.id
    assert row.request_id and len(row.request_id) >= 8
    assert row.purpose == "REFERRAL"


async def test_a_denied_attempt_is_audited(factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    outsider = await factory.ngo()
    from domain.enums import Role

    intruder = await factory.user(outsider, Role.CASE_MANAGER)
    body = await factory.gql(await factory.token(intruder), WITHDRAW_CONSENT,
                             {"input": {"consentId": case.consent["id"], "reason": "x"}})
    assert body["data"]["withdrawConsent"]["userErrors"][0]["code"] == "NOT_FOUND"
    async with owner_engine.connect() as connection:
        row = (await connection.execute(text(
            "SELECT action, outcome FROM audit_event WHERE actor = :actor"), {"actor": intruder.gid})).one()
    assert (row.action, row.outcome) == ("withdrawConsent", "denied")


@pytest.fixture
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """Tampering is global to a database, so it gets its own."""
    name = f"pamoja_audit_{secrets.token_hex(4)}"
    url = await create_database(server_url, name)
    await asyncio.to_thread(upgrade, url)
    yield url
    await drop_database(server_url, name)


def _verify(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "cli.main", "audit", "verify"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


async def test_audit_verify_catches_an_edit_and_a_deletion(scratch_database: str) -> None:
    engine = make_engine(scratch_database, pool_size=1)
    try:
        async with engine.begin() as connection:
            for n in range(5):
                await write_audit(connection, actor=f"actor-{n}", client_id="c", organization_id=None,
                                  action="read", record_type="Survivor", record_id=str(n), purpose=None,
                                  request_id=None, outcome="allowed")
        intact = _verify(scratch_database)
        assert intact.returncode == 0, intact.stderr
        assert "intact: 5 rows" in intact.stdout

        async with engine.begin() as connection:
            seqs = [r[0] for r in (await connection.execute(text("SELECT seq FROM audit_event ORDER BY seq"))).all()]
            await connection.execute(text("UPDATE audit_event SET actor = 'someone else' WHERE seq = :s"),
                                     {"s": seqs[1]})
        edited = _verify(scratch_database)
        assert edited.returncode == 1
        assert f"broken at row {seqs[1]}" in edited.stdout

        async with engine.begin() as connection:
            await connection.execute(text("UPDATE audit_event SET actor = 'actor-1' WHERE seq = :s"), {"s": seqs[1]})
        assert _verify(scratch_database).returncode == 0
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": seqs[3]})
        deleted = _verify(scratch_database)
        assert deleted.returncode == 1
        assert f"broken at row {seqs[4]}" in deleted.stdout
    finally:
        await engine.dispose()


async def test_fifty_concurrent_writers_keep_the_chain_intact(scratch_database: str) -> None:
    engine = make_engine(scratch_database, pool_size=10)

    async def one(n: int) -> None:
        async with engine.begin() as connection:
            await write_audit(connection, actor=f"a{n}", client_id=None, organization_id=None, action="read",
                              record_type="Referral", record_id=str(n), purpose=None, request_id=None,
                              outcome="allowed")

    try:
        await asyncio.gather(*(one(n) for n in range(50)))
    finally:
        await engine.dispose()
    result = _verify(scratch_database)
    assert result.returncode == 0, result.stdout
    assert "50 rows" in result.stdout


AUDIT_EVENTS = """query($record: ID) { auditEvents(first: 50, filter: {recordId: $record}) {
  totalCount edges { node { action outcome recordType recordId actor } } } }"""


async def test_a_supervisor_pages_through_the_audit_trail_of_a_record(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True)
    body = await factory.gql(net.token("supervisor"), AUDIT_EVENTS, {"record": case.referral["id"]})
    events = body["data"]["auditEvents"]
    assert events["totalCount"] >= 1
    assert {"action": "create", "outcome": "allowed", "recordType": "Referral", "recordId": case.referral["id"],
            "actor": net.manager.gid} in [e["node"] for e in events["edges"]]


async def test_a_case_manager_or_partner_cannot_read_the_audit_trail(factory: Factory) -> None:
    net = await network(factory)
    for who in ("manager", "coordinator"):
        body = await factory.gql(net.token(who), AUDIT_EVENTS, {"record": None}, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert body["data"] is None


async def test_the_partner_side_of_a_referral_is_not_in_the_ngos_audit(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True)
    body = await factory.gql(net.token("supervisor"), AUDIT_EVENTS, {"record": case.referral["id"]})
    actors = {e["node"]["actor"] for e in body["data"]["auditEvents"]["edges"]}
    assert net.coordinator.gid not in actors


async def test_a_read_refused_for_a_missing_scope_is_audited(factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    await factory.gql(net.token("coordinator"), AUDIT_EVENTS, {"record": None}, expect_errors=True)
    async with owner_engine.connect() as connection:
        row = (await connection.execute(text(
            "SELECT action, outcome, purpose FROM audit_event WHERE actor = :actor"),
            {"actor": net.coordinator.gid})).one()
    assert (row.action, row.outcome, row.purpose) == ("query.auditEvents", "denied", "FORBIDDEN")
