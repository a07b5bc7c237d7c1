"""Rule 6: a retried mutation does not double its effect and is answered with its first response; a
concurrent edit is detected."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.crypto import MasterKeys
from db.idempotency import open_first_response
from db.keyring import keys_still_on, rotate_master
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


ACCEPT = """mutation($input: ReferralActionInput!) { acceptReferral(input: $input) {
  referral { id status version survivor { pseudonym } } userErrors { field code message } } }"""
CURRENT = """query($id: ID!) { node(id: $id) { ... on Referral { status version } } }"""


async def test_a_replay_after_the_record_changed_returns_the_first_response(factory: Factory) -> None:
    net = await network(factory)
    survivor = await register_survivor(factory, net.token("manager"))
    consent = await record_consent(factory, net.token("manager"), survivor["id"], net.partner.gid)
    data = {"idempotencyKey": "create-then-change", "survivorId": survivor["id"],
            "receivingOrganizationId": net.partner.gid, "service": "PSYCHOSOCIAL_COUNSELING",
            "priority": "URGENT", "reason": "Counseling after rescue.", "consentId": consent["id"]}
    first = await factory.gql(net.token("manager"), CREATE_REFERRAL, {"input": data})
    created = first["data"]["createReferral"]["referral"]
    assert created["status"] == "REQUESTED"
    accepted = await act(factory, net.token("coordinator"), "acceptReferral", "ReferralActionInput",
                         referralId=created["id"])
    assert accepted["referral"]["status"] == "ACCEPTED"

    replay = await factory.gql(net.token("manager"), CREATE_REFERRAL, {"input": data})
    assert replay == first  # REQUESTED at its first version, not today's ACCEPTED


async def test_a_replayed_action_answers_its_first_response_with_nested_fields(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    data = {"referralId": case.referral["id"], "expectedVersion": case.referral["version"],
            "idempotencyKey": "accept-then-start"}
    first = await factory.gql(net.token("coordinator"), ACCEPT, {"input": data})
    assert first["data"]["acceptReferral"]["referral"]["status"] == "ACCEPTED"
    assert first["data"]["acceptReferral"]["referral"]["survivor"]["pseudonym"] == case.survivor["pseudonym"]
    started = await act(factory, net.token("coordinator"), "startReferral", "ReferralActionInput",
                        referralId=case.referral["id"])
    assert started["referral"]["status"] == "IN_PROGRESS"

    replay = await factory.gql(net.token("coordinator"), ACCEPT, {"input": data})
    assert replay == first
    current = await factory.gql(net.token("coordinator"), CURRENT, {"id": case.referral["id"]})
    assert current["data"]["node"] == {"status": "IN_PROGRESS", "version": started["referral"]["version"]}


async def test_a_replay_of_a_refused_first_attempt_returns_the_same_user_errors(factory: Factory) -> None:
    net = await network(factory)
    survivor = await register_survivor(factory, net.token("manager"))
    consent = await record_consent(factory, net.token("manager"), survivor["id"], net.partner.gid)
    draft = (await factory.gql(net.token("manager"), CREATE_REFERRAL, {"input": {
        "survivorId": survivor["id"], "receivingOrganizationId": net.partner.gid,
        "service": "PSYCHOSOCIAL_COUNSELING", "priority": "ROUTINE", "reason": "Counseling.",
        "consentId": consent["id"], "draft": True}}))["data"]["createReferral"]["referral"]
    data = {"referralId": draft["id"], "idempotencyKey": "accept-a-draft"}
    first = await factory.gql(net.token("coordinator"), ACCEPT, {"input": data})
    assert first["data"]["acceptReferral"] == {"referral": None, "userErrors": [
        {"field": ["input", "referralId"], "code": "NOT_FOUND", "message": "Not found."}]}
    sent = await act(factory, net.token("manager"), "sendReferral", "ReferralActionInput", referralId=draft["id"])
    assert sent["referral"]["status"] == "REQUESTED"

    replay = await factory.gql(net.token("coordinator"), ACCEPT, {"input": data})
    assert replay == first  # the first answer, not a second attempt that would now accept the referral
    current = await factory.gql(net.token("coordinator"), CURRENT, {"id": draft["id"]})
    assert current["data"]["node"] == {"status": "REQUESTED", "version": sent["referral"]["version"]}


SPELLINGS = [
    # whitespace and an alias on the mutation itself
    """mutation($input: ReferralActionInput!) {
         again: acceptReferral(input: $input) { referral { id   status version survivor { pseudonym } }
                                                userErrors { field code message } } }""",
    # named fragments
    """mutation($input: ReferralActionInput!) { acceptReferral(input: $input) { ...P } }
       fragment P on ReferralPayload { referral { ...R survivor { pseudonym } } userErrors { field code message } }
       fragment R on Referral { id status version }""",
    # an inline fragment and a field selected twice
    """mutation($input: ReferralActionInput!) { acceptReferral(input: $input) {
         ... on ReferralPayload { referral { id status } } referral { id version survivor { pseudonym } }
         userErrors { field code message } } }""",
    # directives resolved with variables
    """mutation($input: ReferralActionInput!, $yes: Boolean!) { acceptReferral(input: $input) {
         referral { id status version survivor @include(if: $yes) { pseudonym } pseudo: id @skip(if: $yes) }
         userErrors { field code message } } }""",
]


async def test_a_replay_may_spell_the_same_selection_differently(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    data = {"referralId": case.referral["id"], "idempotencyKey": "accept-spellings"}
    first = (await factory.gql(net.token("coordinator"), ACCEPT, {"input": data}))["data"]["acceptReferral"]
    await act(factory, net.token("coordinator"), "startReferral", "ReferralActionInput", referralId=case.referral["id"])
    for query in SPELLINGS:
        body = await factory.gql(net.token("coordinator"), query, {"input": data, "yes": True})
        assert list(body["data"].values()) == [first], query


REFUSED = {"field": ["input", "idempotencyKey"], "code": "IDEMPOTENCY_KEY_REUSED",
           "message": "This idempotency key was first used with another selection of payload fields: select the "
                      "same fields to get the first response again, or read the record with a query."}


@pytest.mark.parametrize(("selection", "expected"), [
    ("referral { id status } userErrors { field code message }", REFUSED),
    ("referral { id status version survivor { pseudonym ageBand } } userErrors { field code message }", REFUSED),
    ("referral { id state: status version survivor { pseudonym } } userErrors { field code message }", REFUSED),
    ("referral { id status version survivor { pseudonym } } userErrors { code }", {"code": REFUSED["code"]}),
])
async def test_a_replay_selecting_other_fields_is_refused_clearly(factory: Factory, selection: str,
                                                                  expected: dict[str, Any]) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    data = {"referralId": case.referral["id"], "idempotencyKey": "accept-then-select-other"}
    await factory.gql(net.token("coordinator"), ACCEPT, {"input": data})
    body = await factory.gql(net.token("coordinator"), "mutation($input: ReferralActionInput!) { "
                             f"acceptReferral(input: $input) {{ {selection} }} }}", {"input": data})
    assert body["data"]["acceptReferral"] == {"referral": None, "userErrors": [expected]}


async def test_a_replay_shows_nothing_the_caller_can_no_longer_see(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    data = {"referralId": case.referral["id"], "idempotencyKey": "accept-then-withdraw"}
    first = await factory.gql(net.token("coordinator"), ACCEPT, {"input": data})
    assert first["data"]["acceptReferral"]["referral"]["survivor"]["pseudonym"] == case.survivor["pseudonym"]
    withdrawn = await factory.gql(net.token("manager"), """mutation($input: WithdrawConsentInput!) {
        withdrawConsent(input: $input) { userErrors { code } } }""", {"input": {
        "consentId": case.consent["id"], "reason": "The family asked to stop."}})
    assert withdrawn["data"]["withdrawConsent"]["userErrors"] == []

    replay = await factory.gql(net.token("coordinator"), ACCEPT, {"input": data})
    assert replay["data"]["acceptReferral"] == {"referral": None, "userErrors": [
        {"field": None, "code": "NOT_FOUND", "message": "Not found."}]}


IDENTITY = """mutation($input: RegisterSurvivorInput!) { registerSurvivor(input: $input) {
  survivor { id pseudonym identity { legalName phone } } userErrors { field code message } } }"""


async def test_a_replay_with_a_narrower_token_answers_within_that_token(factory: Factory) -> None:
    net = await network(factory)
    data = {**survivor_input(), "idempotencyKey": "register-then-narrow"}
    first = await factory.gql(net.token("manager"), IDENTITY, {"input": data})
    assert first["data"]["registerSurvivor"]["survivor"]["identity"]["legalName"] == data["legalName"]
    narrow = await factory.token(net.manager, scopes=["user/Survivor.crus"])
    replay = await factory.gql(narrow, IDENTITY, {"input": data}, expect_errors=True)
    assert [e["extensions"]["code"] for e in replay["errors"]] == ["FORBIDDEN"]
    assert replay["data"]["registerSurvivor"]["survivor"]["identity"] is None
    assert data["legalName"] not in str(replay) and data["phone"] not in str(replay)


async def test_the_stored_first_response_is_sealed_and_survives_master_key_rotation(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    data = {**survivor_input(), "idempotencyKey": "register-sealed"}
    first = await factory.gql(net.token("manager"), IDENTITY, {"input": data})
    principal_key = f"{net.ngo.id}:{net.manager.id}"
    query = text("SELECT response FROM idempotency_record WHERE principal_key = :principal AND key = :key")
    params = {"principal": principal_key, "key": "register-sealed"}
    async with owner_engine.connect() as connection:
        stored = (await connection.execute(query, params)).scalar_one()
    for plain in (data["pseudonym"], data["legalName"], data["phone"], data["phone"].removeprefix("+")):
        assert plain not in str(stored)

    current = MasterKeys.parse(factory.settings.master_keys.get_secret_value())
    rotated = MasterKeys(keys=(("rotated", os.urandom(32)), *current.keys))
    async with owner_engine.connect() as connection:
        transaction = await connection.begin()
        try:  # rotated in a transaction that is rolled back, so the other tests keep the app's key
            await rotate_master(connection, rotated)
            assert await keys_still_on(connection, current.current_id) == 0
            opened = open_first_response(MasterKeys(keys=rotated.keys[:1]), principal_key=principal_key,
                                         key="register-sealed", stored=(await connection.execute(query, params))
                                         .scalar_one())
        finally:
            await transaction.rollback()
    assert opened.data == first["data"]["registerSurvivor"]
