"""Rule 6: a retried mutation does not double its effect; a concurrent edit is detected."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import Factory
from tests.flows import (
    CREATE_REFERRAL,
    REGISTER,
    act,
    network,
    record_consent,
    referred_case,
    register_survivor,
    survivor_input,
)


async def test_twenty_concurrent_retries_create_one_referral_and_one_event(factory: Factory,
                                                                           owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    survivor = await register_survivor(factory, net.token("manager"))
    consent = await record_consent(factory, net.token("manager"), survivor["id"], net.partner.gid)
    data = {"idempotencyKey": "retry-create-1", "survivorId": survivor["id"],
            "receivingOrganizationId": net.partner.gid,
            "service": "PSYCHOSOCIAL_COUNSELING", "priority": "ROUTINE", "reason": "Counseling.",
            "consentId": consent["id"]}
    bodies = await asyncio.gather(*(factory.gql(net.token("manager"), CREATE_REFERRAL, {"input": data})
                                    for _ in range(20)))
    ids = {b["data"]["createReferral"]["referral"]["id"] for b in bodies}
    assert len(ids) == 1
    assert all(b["data"]["createReferral"]["userErrors"] == [] for b in bodies)
    async with owner_engine.connect() as connection:
        referrals = (await connection.execute(text(
            "SELECT count(*) FROM referral WHERE survivor_id = (SELECT survivor_id FROM consent WHERE id = "
            "(SELECT consent_id FROM referral r WHERE r.receiving_organization_id = :org LIMIT 1))"),
            {"org": net.partner.id})).scalar_one()
        events = (await connection.execute(text(
            "SELECT count(*) FROM outbox_event WHERE organization_id = :org AND event_type = 'referral.requested'"),
            {"org": net.partner.id})).scalar_one()
    assert (referrals, events) == (1, 1)


async def test_the_same_key_with_another_input_is_refused_and_changes_nothing(factory: Factory) -> None:
    net = await network(factory)
    first = await factory.gql(net.token("manager"), REGISTER,
                              {"input": {**survivor_input(), "idempotencyKey": "reg-1"}})
    assert first["data"]["registerSurvivor"]["userErrors"] == []
    again = await factory.gql(net.token("manager"), REGISTER,
                              {"input": {**survivor_input(), "idempotencyKey": "reg-1"}})
    payload = again["data"]["registerSurvivor"]
    assert payload["survivor"] is None
    assert payload["userErrors"] == [{"field": ["input", "idempotencyKey"], "code": "IDEMPOTENCY_KEY_REUSED",
                                      "message": "This idempotency key was already used with a different input."}]


async def test_a_retry_returns_the_first_result(factory: Factory) -> None:
    net = await network(factory)
    data = {**survivor_input(), "idempotencyKey": "reg-2"}
    first = await factory.gql(net.token("manager"), REGISTER, {"input": data})
    second = await factory.gql(net.token("manager"), REGISTER, {"input": data})
    assert second["data"]["registerSurvivor"]["survivor"]["id"] == first["data"]["registerSurvivor"]["survivor"]["id"]


async def test_keys_are_per_caller(factory: Factory) -> None:
    net = await network(factory)
    data = {**survivor_input(), "idempotencyKey": "shared-key"}
    mine = await factory.gql(net.token("manager"), REGISTER, {"input": data})
    theirs = await factory.gql(net.token("supervisor"), REGISTER, {"input": {**data, **survivor_input(
        pseudonym="Other")}})
    assert mine["data"]["registerSurvivor"]["userErrors"] == []
    assert theirs["data"]["registerSurvivor"]["userErrors"] == []


async def test_a_stale_expected_version_is_a_conflict_and_changes_nothing(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    stale = case.referral["version"]
    accepted = await act(factory, net.token("coordinator"), "acceptReferral", "ReferralActionInput",
                         referralId=case.referral["id"], expectedVersion=stale)
    assert accepted["referral"]["version"] == stale + 1
    again = await act(factory, net.token("manager"), "cancelReferral", "ReferralReasonInput",
                      referralId=case.referral["id"], expectedVersion=stale, reason="Duplicate")
    assert again["referral"] is None
    assert again["userErrors"][0]["code"] == "VERSION_CONFLICT"
    assert again["userErrors"][0]["field"] == ["input", "expectedVersion"]


async def test_two_concurrent_writers_with_the_same_version_one_wins(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True)
    version = case.referral["version"]
    results = await asyncio.gather(
        act(factory, net.token("coordinator"), "startReferral", "ReferralActionInput",
            referralId=case.referral["id"], expectedVersion=version),
        act(factory, net.token("manager"), "cancelReferral", "ReferralReasonInput",
            referralId=case.referral["id"], expectedVersion=version, reason="Family moved away"),
    )
    outcomes = sorted("ok" if r["referral"] else r["userErrors"][0]["code"] for r in results)
    assert outcomes == ["VERSION_CONFLICT", "ok"]
