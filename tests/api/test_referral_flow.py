"""The closed loop through the public API: register, consent, refer, accept, assign, progress."""

from __future__ import annotations

from tests.factories import Factory
from tests.flows import act, network, referred_case

REFERRAL = """query($id: ID!) { node(id: $id) { ... on Referral { id status reason version
  survivor { pseudonym birthYear ageBand identity { legalName phone } }
  consent { status } receivingOrganization { id } referringOrganization { id }
  assignedCounselor { id displayName } history { from to reason actor } } } }"""


async def test_a_referral_goes_round_the_loop(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    assert case.referral["status"] == "ACCEPTED"
    assert case.referral["assignedCounselor"] == {"id": net.counselor.gid}

    started = await act(factory, net.token("counselor"), "startReferral", "ReferralActionInput",
                        referralId=case.referral["id"], expectedVersion=case.referral["version"])
    assert started["userErrors"] == []
    assert started["referral"]["status"] == "IN_PROGRESS"

    held = await act(factory, net.token("counselor"), "holdReferral", "ReferralReasonInput",
                     referralId=case.referral["id"], reason="Survivor travelling to family")
    assert held["referral"]["status"] == "ON_HOLD"
    assert held["referral"]["statusReason"] == "Survivor travelling to family"

    completed = await act(factory, net.token("coordinator"), "completeReferral", "CompleteReferralInput",
                          referralId=case.referral["id"], outcome="Completed twelve sessions.")
    assert completed["referral"]["status"] == "COMPLETED"
    assert completed["referral"]["outcome"] == "Completed twelve sessions."

    body = await factory.gql(net.token("manager"), REFERRAL, {"id": case.referral["id"]})
    referral = body["data"]["node"]
    assert [(h["from"], h["to"]) for h in referral["history"]] == [
        (None, "REQUESTED"), ("REQUESTED", "ACCEPTED"), ("ACCEPTED", "IN_PROGRESS"), ("IN_PROGRESS", "ON_HOLD"),
        ("ON_HOLD", "COMPLETED")]
    assert referral["survivor"]["identity"]["legalName"].startswith("Amina Wanjiru")


async def test_partner_sees_a_minimal_summary_before_acceptance(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    body = await factory.gql(net.token("coordinator"), REFERRAL, {"id": case.referral["id"]})
    referral = body["data"]["node"]
    assert referral["survivor"]["pseudonym"] == case.survivor["pseudonym"]
    assert referral["survivor"]["ageBand"] == case.survivor["ageBand"]
    assert referral["survivor"]["birthYear"] is None
    assert referral["survivor"]["identity"] is None
    assert referral["reason"] == "Needs trauma-informed counseling after rescue."


async def test_counselor_sees_only_assigned_referrals(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    mine = await factory.gql(net.token("counselor"), REFERRAL, {"id": case.referral["id"]})
    theirs = await factory.gql(net.token("other_counselor"), REFERRAL, {"id": case.referral["id"]})
    assert mine["data"]["node"]["id"] == case.referral["id"]
    assert theirs["data"]["node"] is None


async def test_withdrawal_cancels_and_cuts_access_at_once(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True)
    body = await factory.gql(net.token("manager"), """mutation($input: WithdrawConsentInput!) {
        withdrawConsent(input: $input) { consent { status withdrawnAt } userErrors { code } } }""",
                             {"input": {"consentId": case.consent["id"], "reason": "Guardian asked to stop"}})
    assert body["data"]["withdrawConsent"]["consent"]["status"] == "WITHDRAWN"
    as_partner = await factory.gql(net.token("coordinator"), REFERRAL, {"id": case.referral["id"]})
    assert as_partner["data"]["node"] is None
    as_manager = await factory.gql(net.token("manager"), REFERRAL, {"id": case.referral["id"]})
    assert as_manager["data"]["node"]["status"] == "CANCELLED"
    assert as_manager["data"]["node"]["history"][-1]["reason"] == "CONSENT_WITHDRAWN"


async def test_counties_are_stored_as_codes_and_shown_with_their_names(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    body = await factory.gql(net.token("manager"), """query($id: ID!) { node(id: $id) { ... on Survivor {
        county countyName } } }""", {"id": case.survivor["id"]})
    assert body["data"]["node"] == {"county": "003", "countyName": "Kilifi"}
    partner = await factory.gql(net.token("manager"), """query($id: ID!) { node(id: $id) {
        ... on Organization { counties countyNames } } }""", {"id": net.partner.gid})
    assert partner["data"]["node"] == {"counties": ["001", "003"], "countyNames": ["Mombasa", "Kilifi"]}
