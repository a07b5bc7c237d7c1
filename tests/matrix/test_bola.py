"""BOLA over every id-taking field: another organization's id answers exactly like a random one.

Organization A (an NGO and its partner) holds real records. Users and systems of organization B (another
NGO and another partner, with records of their own so every other input is valid) send each id-taking
query argument and mutation input with (a) A's real id, (b) a malformed id, (c) an id of the right
type naming no UUID and (d) A's id of another type; each answer must be identical, byte for byte, to
the answer for a random id of the right type (itself checked to be a refusal or an empty result),
and nothing may change in either organization.

The set of id-taking fields is read from the schema itself; `ID_USES` must name every one of them,
so a new id-taking field fails `test_every_id_taking_field_is_covered` until it is added here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
)
from graphql import build_schema as parse_sdl
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.graphql.schema import build_schema
from domain.ids import from_global_id, to_global_id
from tests.factories import Factory
from tests.flows import ALL_CATEGORIES, ALL_PURPOSES
from tests.matrix.conftest import (
    FULL,
    MALFORMED_ID,
    RANDOM_IDS,
    CaseSpec,
    World,
    build_world,
    care_inputs,
    mutation,
)

STATES = {
    "CONSENTED": CaseSpec(FULL),
    "DRAFT": CaseSpec(FULL, "DRAFT"),
    "REQUESTED": CaseSpec(FULL, "REQUESTED"),
    "ACCEPTED": CaseSpec(FULL, "ACCEPTED", care=True),
}


def id_taking_fields() -> set[str]:
    """Every argument (or input field, however deeply nested) of type ID or [ID], as Type.field.arg.path."""
    schema = parse_sdl(build_schema(production=False).as_str())
    found: set[str] = set()

    def walk(kind: GraphQLInputType, path: str, seen: frozenset[str]) -> None:
        named = get_named_type(kind)
        if isinstance(named, GraphQLScalarType) and named.name == "ID":
            found.add(path)
        elif isinstance(named, GraphQLInputObjectType) and named.name not in seen:
            for name, item in named.fields.items():
                walk(item.type, f"{path}.{name}", seen | {named.name})

    for type_name, kind in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(kind, GraphQLObjectType):
            continue
        for field_name, item in kind.fields.items():
            for arg_name, arg in item.args.items():
                walk(arg.type, f"{type_name}.{field_name}.{arg_name}", frozenset())
    return found


# ----------------------------------------------------------------------------- A's records, by name

# Target name → (the state in A holding it, the record type). "org:ngo" etc. name organizations,
# "user:counselor" A's counselor.
TARGETS: dict[str, tuple[str, str]] = {
    "survivor": ("ACCEPTED", "Survivor"),
    "consent": ("ACCEPTED", "Consent"),
    "referral": ("ACCEPTED", "Referral"),
    "requested referral": ("REQUESTED", "Referral"),
    "draft referral": ("DRAFT", "Referral"),
    "session": ("ACCEPTED", "CounselingSession"),
    "goal": ("ACCEPTED", "CareGoal"),
    "milestone": ("ACCEPTED", "Milestone"),
    "assessment": ("ACCEPTED", "Assessment"),
    "unreferred consent": ("CONSENTED", "Consent"),
    "unreferred survivor": ("CONSENTED", "Survivor"),
    "user:counselor": ("", "StaffUser"),
    "org:ngo": ("", "Organization"),
    "org:partner": ("", "Organization"),
    "client:system": ("", "OAuthClient"),
    "duplicate review": ("CONSENTED", "DuplicateReview"),
}
NODE_TARGETS = ("survivor", "consent", "referral", "requested referral", "draft referral", "session", "goal",
                "milestone", "assessment", "user:counselor")


def real_id(a: World, target: str) -> str:
    state, kind = TARGETS[target]
    if target.startswith("user:"):
        return a.cast.users[target[5:]].gid
    if target.startswith("org:"):
        return a.cast.orgs[target[4:]].gid
    if target.startswith("client:"):
        return a.cast.client_gids[target[7:]]
    return a.cases[state].ids[kind]


def wrong_type_id(a: World, target: str) -> str:
    """A's real id of another type than the field expects."""
    other = "Referral" if TARGETS[target][1] == "Survivor" else "Survivor"
    return a.cases["ACCEPTED"].ids[other]


# ----------------------------------------------------------------------------- how each field is used

Variables = Callable[[str, World], dict[str, Any]]


@dataclass(frozen=True)
class IdUse:
    """How an actor of B legitimately sends this field, every other input being B's own and valid."""

    actors: tuple[str, ...]
    targets: tuple[str, ...]
    query: str
    variables: Variables
    refused: Callable[[dict[str, Any]], bool]  # the answer is a refusal/absence, not something else
    # What is compared: the answer, less what B's own probing wrote (auditEvents: B's refused reads)
    compared: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: body


def _input(build: Callable[[str, World], dict[str, Any]]) -> Variables:
    return lambda value, b: {"input": build(value, b)}


def not_found(name: str, field: str) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        errors = ((body.get("data") or {}).get(name) or {}).get("userErrors") or []
        return [(e["field"], e["code"]) for e in errors] == [(["input", field], "NOT_FOUND")]

    return check


def forbidden(body: dict[str, Any]) -> bool:
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []] == ["FORBIDDEN"]


def null_node(body: dict[str, Any]) -> bool:
    return body == {"data": {"node": None}}


def null_nodes(body: dict[str, Any]) -> bool:
    return body == {"data": {"nodes": [None]}}


def empty(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: body == {"data": {name: {"totalCount": 0, "edges": []}}}


def without_own_probes(body: dict[str, Any], name: str) -> dict[str, Any]:
    """B's audit trail holds the reads of these ids B's own actors were refused (tests/safety/
    test_probe_audit.py); anything else there about another organization's id would be a leak."""
    edges = [e for e in body["data"][name]["edges"] if e["node"]["purpose"] != "NOT_VISIBLE"]
    return {**body, "data": {name: {"edges": edges}}}


def query_not_found(body: dict[str, Any]) -> bool:
    return [e.get("message") for e in body.get("errors") or []] == ["Not found."]


def ref(b: World, state: str, kind: str = "Referral") -> str:
    return b.cases[state].ids[kind]


def action(name: str, input_type: str, selection: str = "referral { id }", **extra: Any) -> tuple[str, Variables]:
    return (mutation(name, input_type, selection),
            _input(lambda value, b: {"referralId": value, **extra}))


def referral_use(name: str, input_type: str, actors: tuple[str, ...], target: str = "referral",
                 **extra: Any) -> IdUse:
    query, variables = action(name, input_type, **extra)
    return IdUse(actors, (target,), query, variables, not_found(name, "referralId"))


def care_use(name: str, record: str, actors: tuple[str, ...]) -> IdUse:
    return IdUse(actors, ("referral",), mutation(name, f"{name[0].upper()}{name[1:]}Input", f"{record} {{ id }}"),
                 _input(lambda value, b: {**care_inputs(ref(b, "ACCEPTED"))[name], "referralId": value}),
                 not_found(name, "referralId"))


CONSENT = {"purposes": ALL_PURPOSES, "dataCategories": ALL_CATEGORIES, "givenBy": "GUARDIAN", "childAssent": True,
           "formVersion": "IJM-CONSENT-2024-1", "language": "sw"}
REASON = "Family moved away."
READERS = ("manager", "coordinator", "counselor", "system")
CONNECTION = "{ totalCount edges { node { id } } }"


def _referral_input(b: World, **overrides: Any) -> dict[str, Any]:
    return {"survivorId": ref(b, "CONSENTED", "Survivor"), "receivingOrganizationId": b.cast.orgs["partner"].gid,
            "service": "PSYCHOSOCIAL_COUNSELING", "priority": "URGENT", "reason": "Needs counseling.",
            "consentId": ref(b, "CONSENTED", "Consent"), **overrides}


ID_USES: dict[str, IdUse] = {
    "Query.node.id": IdUse(READERS, NODE_TARGETS, "query($id: ID!) { node(id: $id) { id } }",
                           lambda value, b: {"id": value}, null_node),
    "Query.nodes.ids": IdUse(READERS, NODE_TARGETS, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
                             lambda value, b: {"ids": [value]}, null_nodes),
    "Query.referrals.filter.survivorId": IdUse(
        ("manager", "coordinator", "system"), ("survivor",),
        f"query($f: ReferralFilter) {{ referrals(first: 10, filter: $f) {CONNECTION} }}",
        lambda value, b: {"f": {"survivorId": value}}, empty("referrals")),
    "Query.referrals.filter.receivingOrganizationId": IdUse(
        ("manager", "coordinator"), ("org:partner",),
        f"query($f: ReferralFilter) {{ referrals(first: 10, filter: $f) {CONNECTION} }}",
        lambda value, b: {"f": {"receivingOrganizationId": value}}, empty("referrals")),
    "Query.auditEvents.filter.recordId": IdUse(
        ("supervisor",), ("referral", "survivor"),
        "query($f: AuditEventFilter) { auditEvents(first: 100, filter: $f) { edges { node { seq purpose } } } }",
        lambda value, b: {"f": {"recordId": value}}, lambda body: body == {"data": {"auditEvents": {"edges": []}}},
        compared=lambda body: without_own_probes(body, "auditEvents")),
    "Query.partnerMatches.input.survivorId": IdUse(
        ("manager",), ("survivor",),
        "query($i: PartnerMatchInput!) { partnerMatches(input: $i) { score } }",
        lambda value, b: {"i": {"survivorId": value, "service": "PSYCHOSOCIAL_COUNSELING"}}, query_not_found),
    "Mutation.recordConsent.input.survivorId": IdUse(
        ("manager", "supervisor"), ("unreferred survivor", "survivor"),
        mutation("recordConsent", "RecordConsentInput", "consent { id }"),
        _input(lambda value, b: {"survivorId": value, "recipientId": b.cast.orgs["partner"].gid, **CONSENT}),
        not_found("recordConsent", "survivorId")),
    "Mutation.recordConsent.input.recipientId": IdUse(
        ("manager",), ("org:ngo",), mutation("recordConsent", "RecordConsentInput", "consent { id }"),
        _input(lambda value, b: {"survivorId": ref(b, "CONSENTED", "Survivor"), "recipientId": value, **CONSENT}),
        not_found("recordConsent", "recipientId")),
    "Mutation.withdrawConsent.input.consentId": IdUse(
        ("manager", "supervisor"), ("consent", "unreferred consent"),
        mutation("withdrawConsent", "WithdrawConsentInput", "consent { id }"),
        _input(lambda value, b: {"consentId": value, "reason": "The guardian withdrew consent."}),
        not_found("withdrawConsent", "consentId")),
    "Mutation.createReferral.input.survivorId": IdUse(
        ("manager",), ("unreferred survivor",), mutation("createReferral", "CreateReferralInput", "referral { id }"),
        _input(lambda value, b: _referral_input(b, survivorId=value)), not_found("createReferral", "survivorId")),
    "Mutation.createReferral.input.receivingOrganizationId": IdUse(
        ("manager",), ("org:ngo",), mutation("createReferral", "CreateReferralInput", "referral { id }"),
        _input(lambda value, b: _referral_input(b, receivingOrganizationId=value)),
        not_found("createReferral", "receivingOrganizationId")),
    "Mutation.createReferral.input.consentId": IdUse(
        ("manager",), ("unreferred consent",), mutation("createReferral", "CreateReferralInput", "referral { id }"),
        _input(lambda value, b: _referral_input(b, consentId=value)), not_found("createReferral", "consentId")),
    "Mutation.sendReferral.input.referralId": referral_use("sendReferral", "ReferralActionInput", ("manager",),
                                                           "draft referral"),
    "Mutation.acceptReferral.input.referralId": referral_use("acceptReferral", "ReferralActionInput",
                                                             ("coordinator", "system"), "requested referral"),
    "Mutation.rejectReferral.input.referralId": referral_use("rejectReferral", "ReferralReasonInput",
                                                             ("coordinator",), "requested referral", reason=REASON),
    "Mutation.assignCounselor.input.referralId": IdUse(
        ("coordinator",), ("referral",), mutation("assignCounselor", "AssignCounselorInput", "referral { id }"),
        _input(lambda value, b: {"referralId": value, "counselorId": b.cast.users["other_counselor"].gid}),
        not_found("assignCounselor", "referralId")),
    "Mutation.assignCounselor.input.counselorId": IdUse(
        ("coordinator", "system"), ("user:counselor",),
        mutation("assignCounselor", "AssignCounselorInput", "referral { id }"),
        _input(lambda value, b: {"referralId": ref(b, "ACCEPTED"), "counselorId": value}),
        not_found("assignCounselor", "counselorId")),
    "Mutation.startReferral.input.referralId": referral_use("startReferral", "ReferralActionInput",
                                                            ("coordinator", "counselor")),
    "Mutation.holdReferral.input.referralId": referral_use("holdReferral", "ReferralReasonInput", ("coordinator",),
                                                           reason=REASON),
    "Mutation.resumeReferral.input.referralId": referral_use("resumeReferral", "ReferralActionInput",
                                                             ("coordinator",)),
    "Mutation.completeReferral.input.referralId": referral_use("completeReferral", "CompleteReferralInput",
                                                               ("coordinator",), outcome="Back at school."),
    "Mutation.failReferral.input.referralId": referral_use("failReferral", "ReferralReasonInput", ("system",),
                                                           reason=REASON),
    "Mutation.cancelReferral.input.referralId": referral_use("cancelReferral", "ReferralReasonInput",
                                                             ("manager", "coordinator"), reason=REASON),
    "Mutation.logSession.input.referralId": care_use("logSession", "session", ("counselor", "system")),
    "Mutation.setCareGoal.input.referralId": care_use("setCareGoal", "goal", ("counselor",)),
    "Mutation.recordMilestone.input.referralId": care_use("recordMilestone", "milestone", ("counselor",)),
    "Mutation.recordAssessment.input.referralId": care_use("recordAssessment", "assessment", ("counselor", "system")),
    "Mutation.recordMilestone.input.goalId": IdUse(
        ("counselor",), ("goal",), mutation("recordMilestone", "RecordMilestoneInput", "milestone { id }"),
        _input(lambda value, b: {**care_inputs(ref(b, "ACCEPTED"))["recordMilestone"], "goalId": value}),
        not_found("recordMilestone", "goalId")),
    "Mutation.updateGoalProgress.input.goalId": IdUse(
        ("counselor", "system"), ("goal",), mutation("updateGoalProgress", "UpdateGoalProgressInput", "goal { id }"),
        _input(lambda value, b: {"goalId": value, "achievementStatus": "IMPROVING"}),
        not_found("updateGoalProgress", "goalId")),
    # Directory entries are public, but only an administrator, or the partner itself, changes one:
    # another partner's coordinator or system is refused the same way for a real, random or bad id.
    "Mutation.updateOrganization.input.organizationId": IdUse(
        ("coordinator", "system"), ("org:partner",),
        mutation("updateOrganization", "UpdateOrganizationInput", "organization { id }"),
        _input(lambda value, b: {"organizationId": value, "description": "Counseling in Kilifi."}), forbidden),
    "Mutation.setService.input.organizationId": IdUse(
        ("coordinator", "system"), ("org:partner",), mutation("setService", "SetServiceInput", "organization { id }"),
        _input(lambda value, b: {"organizationId": value, "service": "PSYCHOSOCIAL_COUNSELING", "openSlots": 0}),
        forbidden),
    # Staff accounts are the network administrator's alone: anyone else is refused alike for any id.
    "Query.staffUsers.filter.organizationId": IdUse(
        ("coordinator", "system"), ("org:partner",),
        "query($f: StaffUserFilter) { staffUsers(filter: $f) { totalCount } }",
        lambda value, b: {"f": {"organizationId": value}}, forbidden),
    "Mutation.registerStaffUser.input.organizationId": IdUse(
        ("coordinator", "system"), ("org:partner",),
        mutation("registerStaffUser", "RegisterStaffUserInput", "staffUser { id }"),
        _input(lambda value, b: {"organizationId": value, "email": "bola.probe@example.org", "displayName": "P",
                                 "roles": ["COUNSELOR"]}), forbidden),
    **{f"Mutation.{name}.input.staffUserId": IdUse(
        ("coordinator", "system"), ("user:counselor",), mutation(name, input_type, "staffUser { id }"),
        _input(lambda value, b, extra=extra: {"staffUserId": value, **extra}), forbidden)
       for name, input_type, extra in (("setStaffRoles", "SetStaffRolesInput", {"roles": ["COUNSELOR"]}),
                                       ("updateStaffUser", "UpdateStaffUserInput", {"displayName": "Probe"}),
                                       ("deactivateStaffUser", "DeactivateStaffUserInput", {}),
                                       ("reactivateStaffUser", "ReactivateStaffUserInput", {}),
                                       ("issuePasswordReset", "IssuePasswordResetInput", {}))},
    # So are OAuth clients: a partner's system may not read or change even its own client.
    "Query.oauthClients.filter.organizationId": IdUse(
        ("coordinator", "system"), ("org:partner",),
        "query($f: OAuthClientFilter) { oauthClients(filter: $f) { totalCount } }",
        lambda value, b: {"f": {"organizationId": value}}, forbidden),
    "Mutation.correctSurvivorIdentity.input.survivorId": IdUse(
        ("manager", "supervisor"), ("survivor", "unreferred survivor"),
        mutation("correctSurvivorIdentity", "CorrectSurvivorIdentityInput", "survivor { id }"),
        _input(lambda value, b: {"survivorId": value, "reason": "SPELLING", "legalName": "Probe Name"}),
        not_found("correctSurvivorIdentity", "survivorId")),
    "Mutation.placeLegalHold.input.survivorId": IdUse(
        ("supervisor",), ("survivor", "unreferred survivor"),
        mutation("placeLegalHold", "PlaceLegalHoldInput", "survivor { id }"),
        _input(lambda value, b: {"survivorId": value, "reason": "PROSECUTION"}),
        not_found("placeLegalHold", "survivorId")),
    "Mutation.liftLegalHold.input.survivorId": IdUse(
        ("supervisor",), ("survivor", "unreferred survivor"),
        mutation("liftLegalHold", "LiftLegalHoldInput", "survivor { id }"),
        _input(lambda value, b: {"survivorId": value, "reason": "PLACED_IN_ERROR"}),
        not_found("liftLegalHold", "survivorId")),
    "Mutation.requestSurvivorErasure.input.survivorId": IdUse(
        ("supervisor",), ("survivor", "unreferred survivor"),
        mutation("requestSurvivorErasure", "RequestSurvivorErasureInput", "survivor { id } erasure { status }"),
        _input(lambda value, b: {"survivorId": value, "reason": "SUBJECT_REQUEST"}),
        not_found("requestSurvivorErasure", "survivorId")),
    "Mutation.exportSurvivorRecord.input.survivorId": IdUse(
        ("supervisor",), ("survivor", "unreferred survivor"),
        mutation("exportSurvivorRecord", "ExportSurvivorRecordInput", "document"),
        _input(lambda value, b: {"survivorId": value}), not_found("exportSurvivorRecord", "survivorId")),
    "Mutation.resolveDuplicateReview.input.reviewId": IdUse(
        ("supervisor",), ("duplicate review",),
        mutation("resolveDuplicateReview", "ResolveDuplicateReviewInput", "review { id }"),
        _input(lambda value, b: {"reviewId": value, "resolution": "SAME_PERSON"}),
        not_found("resolveDuplicateReview", "reviewId")),
    "Mutation.updateOAuthClient.input.clientId": IdUse(
        ("coordinator", "system"), ("client:system",),
        mutation("updateOAuthClient", "UpdateOAuthClientInput", "client { id }"),
        _input(lambda value, b: {"clientId": value, "name": "Probe"}), forbidden),
}


# The ways of naming a record B may not see; each must answer exactly like a random id of the right type.
VARIANTS: dict[str, Callable[[World, str], str]] = {
    "real": real_id,  # A's real id
    "malformed": lambda a, target: MALFORMED_ID,
    "typed-broken": lambda a, target: to_global_id(TARGETS[target][1], "not-a-uuid"),
    "wrong-type": wrong_type_id,  # A's real id of another type
}


def bola_cases() -> list[Any]:
    return [pytest.param(key, actor, target, variant, id=f"{key}-{actor}-{target}-{variant}")
            for key, use in ID_USES.items() for actor in use.actors for target in use.targets for variant in VARIANTS]


async def asked(a: World, b: World, actor: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """B's answer, memoised (the random, malformed and wrong-type answers repeat across cases); the
    first time it is asked, nothing may change in either organization."""
    key = (actor, query, json.dumps(variables, sort_keys=True))
    if key not in b.memo:
        before = (await a.cast.snapshot(), await b.cast.snapshot())
        b.memo[key] = await b.cast.gql(actor, query, variables)
        assert (await a.cast.snapshot(), await b.cast.snapshot()) == before, b.memo[key]
    return b.memo[key]


@pytest.fixture(scope="module")
async def organizations(matrix_factory: Factory, owner_engine: AsyncEngine) -> tuple[World, World]:
    """A: the records under attack. B: the attackers, each with valid records of their own."""
    a = await build_world(matrix_factory, owner_engine, STATES)
    b = await build_world(matrix_factory, owner_engine, STATES)
    # A's supervisors have a possible duplicate to review (two of its survivors sharing a phone)
    async with owner_engine.begin() as connection:
        review = (await connection.execute(text(
            "INSERT INTO duplicate_review (organization_id, survivor_id, matched_survivor_id, matched_on) "
            "VALUES (:org, :new, :old, ARRAY['PHONE']) RETURNING id"), {
                "org": a.cast.orgs["ngo"].id, "new": _uuid(a.cases["CONSENTED"].ids["Survivor"]),
                "old": _uuid(a.cases["ACCEPTED"].ids["Survivor"])})).scalar_one()
    a.cases["CONSENTED"].ids["DuplicateReview"] = to_global_id("DuplicateReview", review)
    return a, b


def _uuid(global_id: str) -> Any:
    decoded = from_global_id(global_id)
    assert decoded is not None
    return decoded[1]


def test_every_id_taking_field_is_covered() -> None:
    assert id_taking_fields() == set(ID_USES)


@pytest.mark.parametrize(("key", "actor", "target", "variant"), bola_cases())
async def test_another_organizations_id_answers_like_a_random_one(
        organizations: tuple[World, World], key: str, actor: str, target: str, variant: str) -> None:
    a, b = organizations
    use = ID_USES[key]
    random = use.compared(await asked(a, b, actor, use.query, use.variables(RANDOM_IDS[TARGETS[target][1]], b)))
    assert use.refused(random), random
    body = use.compared(await asked(a, b, actor, use.query, use.variables(VARIANTS[variant](a, target), b)))
    assert body == random, (body, random)
