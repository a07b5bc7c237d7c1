"""GraphQL building blocks for tests: register a survivor, record consent, refer, move a referral.

They go through the public API exactly as a case manager or partner would, so every test that uses
them also exercises policy, audit and the outbox.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.enums import Role
from tests.factories import Factory, Org, User, unique

REGISTER = """mutation($input: RegisterSurvivorInput!) { registerSurvivor(input: $input) {
  survivor { id pseudonym birthYear ageBand sex county languages riskLevel }
  userErrors { field code message } } }"""
RECORD_CONSENT = """mutation($input: RecordConsentInput!) { recordConsent(input: $input) {
  consent { id status purposes dataCategories version } userErrors { field code message } } }"""
WITHDRAW_CONSENT = """mutation($input: WithdrawConsentInput!) { withdrawConsent(input: $input) {
  consent { id status withdrawnAt version } userErrors { field code message } } }"""
CREATE_REFERRAL = """mutation($input: CreateReferralInput!) { createReferral(input: $input) {
  referral { id status priority respondBy version reason } userErrors { field code message } } }"""
REFERRAL_FIELDS = "id status statusReason version overdue respondBy outcome assignedCounselor { id }"


def action_mutation(name: str, input_type: str) -> str:
    return (f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ referral {{ {REFERRAL_FIELDS} }} "
            "userErrors { field code message } } }")


ALL_CATEGORIES = ["IDENTITY", "CONTACT", "CASE_SUMMARY", "SESSION_ATTENDANCE", "SESSION_NOTES", "ASSESSMENTS"]
ALL_PURPOSES = ["REFERRAL", "SERVICE_DELIVERY", "FEEDBACK_TO_REFERRER"]


@dataclass
class Network:
    """An NGO with a case manager and supervisor, and a partner with a coordinator and two counselors."""

    ngo: Org
    partner: Org
    manager: User
    supervisor: User
    coordinator: User
    counselor: User
    other_counselor: User
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, who: str) -> str:
        return self.tokens[who]


async def network(factory: Factory) -> Network:
    ngo = await factory.ngo()
    partner = await factory.org(counties=("001", "003"), services=("PSYCHOSOCIAL_COUNSELING", "SHELTER"))
    net = Network(
        ngo=ngo, partner=partner,
        manager=await factory.user(ngo, Role.CASE_MANAGER),
        supervisor=await factory.user(ngo, Role.SUPERVISOR),
        coordinator=await factory.user(partner, Role.PARTNER_COORDINATOR),
        counselor=await factory.user(partner, Role.COUNSELOR),
        other_counselor=await factory.user(partner, Role.COUNSELOR),
    )
    for name in ("manager", "supervisor", "coordinator", "counselor", "other_counselor"):
        net.tokens[name] = await factory.token(getattr(net, name))
    return net


# Every identifying value the suite sends; tests/conftest.py fails the session if one reaches a log line.
SEEDED_PII: list[str] = []


def survivor_input(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "pseudonym": f"Nyota-{secrets.token_hex(3)}", "legalName": f"Amina Wanjiru {secrets.token_hex(3)}",
        "birthYear": 2011, "sex": "FEMALE", "county": "Kilifi", "languages": ["sw", "nyf"], "riskLevel": "HIGH",
        "phone": f"+2547{secrets.randbelow(10**8):08d}", "guardianName": "Mama Wanjiru",
        "guardianPhone": f"+2541{secrets.randbelow(10**8):08d}", "location": "Near the old mosque, Mtwapa",
    }
    data.update(overrides)
    SEEDED_PII.extend(str(data[k]) for k in ("legalName", "phone", "guardianPhone", "location") if data.get(k))
    return data


async def register_survivor(factory: Factory, token: str, **overrides: Any) -> dict[str, Any]:
    body = await factory.gql(token, REGISTER, {"input": survivor_input(**overrides)})
    payload = body["data"]["registerSurvivor"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload["survivor"]


async def record_consent(factory: Factory, token: str, survivor_id: str, recipient_id: str,
                         **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"survivorId": survivor_id, "recipientId": recipient_id, "purposes": ALL_PURPOSES,
                            "dataCategories": ALL_CATEGORIES, "givenBy": "GUARDIAN", "childAssent": True,
                            "formVersion": "IJM-CONSENT-2024-1", "language": "sw"}
    data.update(overrides)
    body = await factory.gql(token, RECORD_CONSENT, {"input": data})
    payload = body["data"]["recordConsent"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload["consent"]


async def create_referral(factory: Factory, token: str, survivor_id: str, partner_id: str, consent_id: str,
                          **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"survivorId": survivor_id, "receivingOrganizationId": partner_id,
                            "service": "PSYCHOSOCIAL_COUNSELING", "priority": "URGENT",
                            "reason": "Needs trauma-informed counseling after rescue.", "consentId": consent_id}
    data.update(overrides)
    body = await factory.gql(token, CREATE_REFERRAL, {"input": data})
    payload = body["data"]["createReferral"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload["referral"]


async def act(factory: Factory, token: str, name: str, input_type: str, **data: Any) -> dict[str, Any]:
    body = await factory.gql(token, action_mutation(name, input_type), {"input": data})
    return body["data"][name]


@dataclass
class Case:
    survivor: dict[str, Any]
    consent: dict[str, Any]
    referral: dict[str, Any]


async def referred_case(factory: Factory, net: Network, *, accept: bool = False, assign: bool = False,
                        consent: dict[str, Any] | None = None) -> Case:
    """A survivor with a consent naming the partner and a REQUESTED referral (optionally accepted/assigned)."""
    survivor = await register_survivor(factory, net.token("manager"))
    given = await record_consent(factory, net.token("manager"), survivor["id"], net.partner.gid, **(consent or {}))
    referral = await create_referral(factory, net.token("manager"), survivor["id"], net.partner.gid, given["id"])
    if accept:
        payload = await act(factory, net.token("coordinator"), "acceptReferral", "ReferralActionInput",
                            referralId=referral["id"])
        assert payload["userErrors"] == [], payload
        referral = payload["referral"]
    if assign:
        payload = await act(factory, net.token("coordinator"), "assignCounselor", "AssignCounselorInput",
                            referralId=referral["id"], counselorId=net.counselor.gid)
        assert payload["userErrors"] == [], payload
        referral = payload["referral"]
    return Case(survivor=survivor, consent=given, referral=referral)


LOG_SESSION = """mutation($input: LogSessionInput!) { logSession(input: $input) {
  session { id } userErrors { field code message } } }"""
SET_GOAL = """mutation($input: SetCareGoalInput!) { setCareGoal(input: $input) {
  goal { id } userErrors { field code message } } }"""
RECORD_MILESTONE = """mutation($input: RecordMilestoneInput!) { recordMilestone(input: $input) {
  milestone { id } userErrors { field code message } } }"""
WITHDRAW = """mutation($input: WithdrawConsentInput!) { withdrawConsent(input: $input) {
  consent { id } userErrors { field code message } } }"""


async def _care(factory: Factory, net: Network, referral_id: str) -> None:
    token = net.token("counselor")
    for hours, attendance in ((3, "ATTENDED"), (2, "MISSED"), (1, "ATTENDED")):
        body = await factory.gql(token, LOG_SESSION, {"input": {
            "referralId": referral_id, "startedAt": (datetime.now(UTC) - timedelta(hours=hours)).isoformat(),
            "durationMinutes": 45 + hours, "modality": "INDIVIDUAL", "sessionType": "THERAPY",
            "attendance": attendance}})
        assert body["data"]["logSession"]["userErrors"] == []
    goal = (await factory.gql(token, SET_GOAL, {"input": {
        "referralId": referral_id, "domain": "SAFETY", "description": "Knows her safety plan."}})
    )["data"]["setCareGoal"]["goal"]
    body = await factory.gql(token, RECORD_MILESTONE, {"input": {
        "referralId": referral_id, "goalId": goal["id"], "title": "First session attended",
        "achievedOn": datetime.now(UTC).date().isoformat()}})
    assert body["data"]["recordMilestone"]["userErrors"] == []


async def care_network(factory: Factory) -> tuple[Network, list[str]]:
    """Two referrals in care (one with feedback withheld) with sessions, a goal and a milestone each,
    one still REQUESTED, one whose consent was withdrawn; returns the network and the referral ids."""
    net = await network(factory)
    in_care = await referred_case(factory, net, accept=True, assign=True)
    private = await referred_case(factory, net, accept=True, assign=True,
                                  consent={"purposes": ["REFERRAL", "SERVICE_DELIVERY"]})
    for case in (in_care, private):
        started = await act(factory, net.token("counselor"), "startReferral", "ReferralActionInput",
                            referralId=case.referral["id"])
        assert started["userErrors"] == []
        await _care(factory, net, case.referral["id"])
    requested = await referred_case(factory, net)
    withdrawn = await referred_case(factory, net, accept=True, assign=True)
    body = await factory.gql(net.token("manager"), WITHDRAW, {"input": {
        "consentId": withdrawn.consent["id"], "reason": "The family asked to stop."}})
    assert body["data"]["withdrawConsent"]["userErrors"] == []
    return net, [in_care.referral["id"], private.referral["id"], requested.referral["id"], withdrawn.referral["id"]]


@dataclass(frozen=True)
class EveryWay:
    """One query answered by each engine: the body, and whether the read compiler answered the first run."""

    body: dict[str, Any]
    compiled: int  # answered by the read compiler
    compiled_stepped_aside: int  # compiled, then handed to the resolver path (graphql-core) at run time


def unseen_text(query: str) -> str:
    """The document under a text of its own: the compiled-read lane knows documents by their text (across
    tests), so the whole pipeline answers this one."""
    return f"{query}\n# {unique('unseen')}"


async def every_way(factory: Factory, app: Any, token: str, query: str,
                    variables: dict[str, Any] | None = None) -> EveryWay:
    """Run a query with the read compiler on, then off (the resolver path: graphql-core and the resolvers);
    the two HTTP responses must be identical: status and body, byte for byte."""
    compiler = app.state.graphql_schema.compiler
    before = compiler.completed, compiler.stepped_aside
    compiled = await factory.gql_response(token, query, variables)
    ran = compiler.completed - before[0], compiler.stepped_aside - before[1]
    compiler.enabled = False
    try:
        resolved = await factory.gql_response(token, query, variables)
    finally:
        compiler.enabled = True
    assert (compiled.status_code, compiled.content) == (resolved.status_code, resolved.content), \
        (query, compiled.text, resolved.text)
    return EveryWay(body=compiled.json(), compiled=ran[0], compiled_stepped_aside=ran[1])
