"""Every contract mutation, three ways: the right actor in the right state, a wrong actor, a random id.

- allowed: the record comes back with userErrors [] and says what changed;
- refused, the actor can see the record: a top-level FORBIDDEN error (scope or role), or
  INVALID_TRANSITION where the referral state machine is the refusal;
- refused, the actor cannot see the record: userErrors exactly NOT_FOUND "Not found.", the same
  response, byte for byte, as for a random id;
- not found: a random id of the right type, as the allowed actor: NOT_FOUND on that input field.

Every refusal is checked to change nothing: records, versions, history and outbox of the whole
cast are compared before and after. Expectations come from README.md and docs/domain.md (who does
what), written out in MUTATIONS below; they do not consult domain.policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import Factory
from tests.flows import ALL_CATEGORIES, ALL_PURPOSES, survivor_input
from tests.matrix.conftest import (
    FULL,
    RANDOM_IDS,
    Case,
    CaseSpec,
    Cast,
    World,
    build_world,
    care_inputs,
    mutation,
)

STATES = {
    "SURVIVOR": CaseSpec(None),
    "CONSENTED": CaseSpec(FULL),
    "DRAFT": CaseSpec(FULL, "DRAFT"),
    "REQUESTED": CaseSpec(FULL, "REQUESTED"),
    "ACCEPTED": CaseSpec(FULL, "ACCEPTED", care=True),  # counselor assigned, a session, goal, milestone...
    "IN_PROGRESS": CaseSpec(FULL, "IN_PROGRESS"),
    "ON_HOLD": CaseSpec(FULL, "ON_HOLD"),
}
Build = Callable[[Case, Cast], dict[str, Any]]


def _referral(**extra: Any) -> Build:
    return lambda c, cast: {"referralId": c.ids["Referral"], **extra}


def _care(name: str) -> Build:
    return lambda c, cast: care_inputs(c.ids["Referral"])[name]


@dataclass(frozen=True)
class Mutation:
    input_type: str
    record: str
    selection: str
    target: str | None  # the type of the id the input names (None: the input names no record)
    field: str | None
    build: Build
    shown: Callable[[Cast], dict[str, Any]]  # what the returned record says on success
    allowed: tuple[str, str]  # (actor, state)
    refused_visible: tuple[str, str, str] | None  # (actor, state, F or IT): can see the record, may not do this
    refused_hidden: tuple[str, str] | None  # (actor, state): cannot see the record


def _status(status: str) -> Callable[[Cast], dict[str, Any]]:
    return lambda cast: {"status": status}


def _fixed(**values: Any) -> Callable[[Cast], dict[str, Any]]:
    return lambda cast: values


CONSENT_INPUT = {"purposes": ALL_PURPOSES, "dataCategories": ALL_CATEGORIES, "givenBy": "GUARDIAN",
                 "childAssent": True, "formVersion": "IJM-CONSENT-2024-1", "language": "sw"}
REASON = "The family moved to another county."

# Who may do what (README "Who sees what", "Scopes" and the mutation descriptions; domain.md "Who uses it").
MUTATIONS: dict[str, Mutation] = {
    "registerSurvivor": Mutation(
        "RegisterSurvivorInput", "survivor", "id", None, None, lambda c, cast: survivor_input(), _fixed(),
        allowed=("manager", "SURVIVOR"), refused_visible=("coordinator", "SURVIVOR", "F"), refused_hidden=None),
    "recordConsent": Mutation(
        "RecordConsentInput", "consent", "id status", "Survivor", "survivorId",
        lambda c, cast: {"survivorId": c.ids["Survivor"], "recipientId": cast.orgs["partner"].gid, **CONSENT_INPUT},
        _status("ACTIVE"), allowed=("manager", "SURVIVOR"), refused_visible=("coordinator", "REQUESTED", "F"),
        refused_hidden=("other_manager", "SURVIVOR")),
    "withdrawConsent": Mutation(
        "WithdrawConsentInput", "consent", "id status", "Consent", "consentId",
        lambda c, cast: {"consentId": c.ids["Consent"], "reason": "The guardian withdrew consent."},
        _status("WITHDRAWN"), allowed=("supervisor", "REQUESTED"), refused_visible=("coordinator", "REQUESTED", "F"),
        refused_hidden=("other_manager", "REQUESTED")),
    "createReferral": Mutation(
        "CreateReferralInput", "referral", "id status", "Survivor", "survivorId",
        lambda c, cast: {"survivorId": c.ids["Survivor"], "receivingOrganizationId": cast.orgs["partner"].gid,
                         "service": "PSYCHOSOCIAL_COUNSELING", "priority": "URGENT", "reason": "Needs counseling.",
                         "consentId": c.ids["Consent"]},
        _status("REQUESTED"), allowed=("manager", "CONSENTED"), refused_visible=("coordinator", "REQUESTED", "F"),
        refused_hidden=("other_manager", "CONSENTED")),
    "sendReferral": Mutation(
        "ReferralActionInput", "referral", "id status", "Referral", "referralId", _referral(), _status("REQUESTED"),
        allowed=("manager", "DRAFT"), refused_visible=("coordinator", "REQUESTED", "IT"),
        refused_hidden=("coordinator", "DRAFT")),
    "acceptReferral": Mutation(
        "ReferralActionInput", "referral", "id status", "Referral", "referralId", _referral(), _status("ACCEPTED"),
        allowed=("coordinator", "REQUESTED"), refused_visible=("manager", "REQUESTED", "IT"),
        refused_hidden=("counselor", "REQUESTED")),
    "rejectReferral": Mutation(
        "ReferralReasonInput", "referral", "id status", "Referral", "referralId", _referral(reason=REASON),
        _status("REJECTED"), allowed=("system", "REQUESTED"), refused_visible=("manager", "REQUESTED", "IT"),
        refused_hidden=("other_coordinator", "REQUESTED")),
    "assignCounselor": Mutation(
        "AssignCounselorInput", "referral", "id assignedCounselor { id }", "Referral", "referralId",
        lambda c, cast: {"referralId": c.ids["Referral"], "counselorId": cast.users["other_counselor"].gid},
        lambda cast: {"assignedCounselor": {"id": cast.users["other_counselor"].gid}},
        allowed=("coordinator", "ACCEPTED"), refused_visible=("manager", "ACCEPTED", "F"),
        refused_hidden=("other_coordinator", "ACCEPTED")),
    "startReferral": Mutation(
        "ReferralActionInput", "referral", "id status", "Referral", "referralId", _referral(), _status("IN_PROGRESS"),
        allowed=("counselor", "ACCEPTED"), refused_visible=("supervisor", "ACCEPTED", "IT"),
        refused_hidden=("other_counselor", "ACCEPTED")),
    "holdReferral": Mutation(
        "ReferralReasonInput", "referral", "id status", "Referral", "referralId", _referral(reason=REASON),
        _status("ON_HOLD"), allowed=("coordinator", "IN_PROGRESS"), refused_visible=("manager", "IN_PROGRESS", "IT"),
        refused_hidden=("other_system", "IN_PROGRESS")),
    "resumeReferral": Mutation(
        "ReferralActionInput", "referral", "id status", "Referral", "referralId", _referral(), _status("IN_PROGRESS"),
        allowed=("coordinator", "ON_HOLD"), refused_visible=("manager", "ON_HOLD", "IT"),
        refused_hidden=("other_coordinator", "ON_HOLD")),
    "completeReferral": Mutation(
        "CompleteReferralInput", "referral", "id status", "Referral", "referralId",
        _referral(outcome="Back at school and living with her aunt."), _status("COMPLETED"),
        allowed=("coordinator", "IN_PROGRESS"), refused_visible=("manager", "IN_PROGRESS", "IT"),
        refused_hidden=("other_manager", "IN_PROGRESS")),
    "failReferral": Mutation(
        "ReferralReasonInput", "referral", "id status", "Referral", "referralId", _referral(reason=REASON),
        _status("FAILED"), allowed=("system", "IN_PROGRESS"), refused_visible=("supervisor", "IN_PROGRESS", "IT"),
        refused_hidden=("other_counselor", "IN_PROGRESS")),
    "cancelReferral": Mutation(
        "ReferralReasonInput", "referral", "id status", "Referral", "referralId", _referral(reason=REASON),
        _status("CANCELLED"), allowed=("manager", "REQUESTED"), refused_visible=("coordinator", "REQUESTED", "IT"),
        refused_hidden=("other_manager", "REQUESTED")),
    "logSession": Mutation(
        "LogSessionInput", "session", "id attendance", "Referral", "referralId", _care("logSession"),
        _fixed(attendance="ATTENDED"), allowed=("counselor", "ACCEPTED"),
        refused_visible=("coordinator", "ACCEPTED", "F"), refused_hidden=("other_counselor", "ACCEPTED")),
    "setCareGoal": Mutation(
        "SetCareGoalInput", "goal", "id domain", "Referral", "referralId", _care("setCareGoal"),
        _fixed(domain="SOCIAL_SUPPORT"), allowed=("system", "ACCEPTED"), refused_visible=("manager", "ACCEPTED", "F"),
        refused_hidden=("other_system", "ACCEPTED")),
    "updateGoalProgress": Mutation(
        "UpdateGoalProgressInput", "goal", "id achievementStatus", "CareGoal", "goalId",
        lambda c, cast: {"goalId": c.ids["CareGoal"], "achievementStatus": "IMPROVING"},
        _fixed(achievementStatus="IMPROVING"), allowed=("counselor", "ACCEPTED"),
        refused_visible=("coordinator", "ACCEPTED", "F"), refused_hidden=("other_counselor", "ACCEPTED")),
    "recordMilestone": Mutation(
        "RecordMilestoneInput", "milestone", "id title", "Referral", "referralId", _care("recordMilestone"),
        _fixed(title="Returned to school"), allowed=("counselor", "ACCEPTED"),
        refused_visible=("supervisor", "ACCEPTED", "F"), refused_hidden=("other_counselor", "ACCEPTED")),
    "recordAssessment": Mutation(
        "RecordAssessmentInput", "assessment", "id instrument", "Referral", "referralId", _care("recordAssessment"),
        _fixed(instrument="survivor-outcome"), allowed=("system", "ACCEPTED"),
        refused_visible=("coordinator", "ACCEPTED", "F"), refused_hidden=("other_system", "ACCEPTED")),
}
CONTRACT = {
    "registerSurvivor", "recordConsent", "withdrawConsent", "createReferral", "sendReferral", "acceptReferral",
    "rejectReferral", "assignCounselor", "startReferral", "holdReferral", "resumeReferral", "completeReferral",
    "failReferral", "cancelReferral", "logSession", "setCareGoal", "updateGoalProgress", "recordMilestone",
    "recordAssessment",
}
NODE = "query($id: ID!) { node(id: $id) { id } }"


def text_of(name: str, m: Mutation) -> str:
    return mutation(name, m.input_type, f"{m.record} {{ {m.selection} }}")


@pytest.fixture(scope="module")
async def world(matrix_factory: Factory, owner_engine: AsyncEngine) -> World:
    """One cast with a survivor in each state; refusals share them (they change nothing, and say so)."""
    return await build_world(matrix_factory, owner_engine, STATES)


async def _sees(world: World, actor: str, m: Mutation, case: Case) -> bool | None:
    """Whether `actor` sees the record the input names (None when the input names no record)."""
    if m.target is None:
        return None
    body = await world.cast.gql(actor, NODE, {"id": case.ids[m.target]})
    return body["data"]["node"] is not None


async def _refused(world: World, name: str, actor: str, data: dict[str, Any]) -> dict[str, Any]:
    before = await world.cast.snapshot()
    body = await world.cast.gql(actor, text_of(name, MUTATIONS[name]), {"input": data})
    assert await world.cast.snapshot() == before, f"a refused {name} changed something: {body}"
    return body


def _not_found(name: str, m: Mutation) -> dict[str, Any]:
    return {"data": {name: {m.record: None, "userErrors": [
        {"field": ["input", m.field], "code": "NOT_FOUND", "message": "Not found."}]}}}


def forbidden(name: str, m: Mutation, body: dict[str, Any]) -> None:
    assert [e["extensions"]["code"] for e in body.get("errors") or []] == ["FORBIDDEN"], body
    assert (body.get("data") or {}).get(name) is None, body


def invalid_transition(name: str, m: Mutation, body: dict[str, Any]) -> None:
    assert not body.get("errors"), body
    payload = body["data"][name]
    assert payload[m.record] is None, payload
    assert [e["code"] for e in payload["userErrors"]] == ["INVALID_TRANSITION"], payload


REFUSALS = {"F": forbidden, "IT": invalid_transition}


def test_every_contract_mutation_is_covered() -> None:
    assert set(MUTATIONS) == CONTRACT


@pytest.mark.parametrize("name", sorted(MUTATIONS))
async def test_allowed(world: World, name: str) -> None:
    m = MUTATIONS[name]
    actor, state = m.allowed
    case = await world.fresh(state)
    before = await world.cast.snapshot()
    body = await world.cast.gql(actor, text_of(name, m), {"input": m.build(case, world.cast)})
    assert not body.get("errors"), body
    payload = body["data"][name]
    assert payload["userErrors"] == [], payload
    record = payload[m.record]
    assert record is not None and record["id"], payload
    expected = m.shown(world.cast)
    assert {k: record[k] for k in expected} == expected, payload
    assert await world.cast.snapshot() != before


@pytest.mark.parametrize("name", sorted(n for n, m in MUTATIONS.items() if m.refused_visible))
async def test_refused_when_the_actor_sees_the_record(world: World, name: str) -> None:
    m = MUTATIONS[name]
    assert m.refused_visible is not None
    actor, state, outcome = m.refused_visible
    case = world.cases[state]
    assert await _sees(world, actor, m, case) in (True, None), f"{actor} should see this {m.target}"
    body = await _refused(world, name, actor, m.build(case, world.cast))
    REFUSALS[outcome](name, m, body)


@pytest.mark.parametrize("name", sorted(n for n, m in MUTATIONS.items() if m.refused_hidden))
async def test_refused_as_not_found_when_the_actor_cannot_see_the_record(world: World, name: str) -> None:
    m = MUTATIONS[name]
    assert m.refused_hidden is not None and m.target is not None and m.field is not None
    actor, state = m.refused_hidden
    case = world.cases[state]
    assert await _sees(world, actor, m, case) is False, f"{actor} should not see this {m.target}"
    data = m.build(case, world.cast)
    body = await _refused(world, name, actor, data)
    assert body == _not_found(name, m), body
    random = await _refused(world, name, actor, {**data, m.field: RANDOM_IDS[m.target]})
    assert body == random, (body, random)


@pytest.mark.parametrize("name", sorted(n for n, m in MUTATIONS.items() if m.target))
async def test_a_random_id_is_not_found(world: World, name: str) -> None:
    m = MUTATIONS[name]
    assert m.target is not None and m.field is not None
    actor, state = m.allowed
    data = {**m.build(world.cases[state], world.cast), m.field: RANDOM_IDS[m.target]}
    body = await _refused(world, name, actor, data)
    assert body == _not_found(name, m), body
