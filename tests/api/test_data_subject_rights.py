"""A survivor's rights (issue 14): export, correction, legal hold and erasure, possible duplicates.

Each test builds its own network and survivors with words found nowhere else, so a search of every table
for them says whether anything of her is left.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from db.crypto import MasterKeys
from domain.enums import Role
from domain.ids import from_global_id, to_global_id
from partners.webhooks import DeliveryPolicy
from partners.worker import run_once
from tests.api.test_care import MIXED, RECORD_ASSESSMENT, _scores
from tests.api.test_staff_lifecycle import readme_example
from tests.factories import Factory
from tests.flows import (
    LOG_SESSION,
    RECORD_MILESTONE,
    SET_GOAL,
    Network,
    act,
    create_referral,
    network,
    record_consent,
    register_survivor,
    survivor_input,
)
from tests.partners.receiver import Receiver
from tests.partners.test_webhooks import add_client

EXPORT = """mutation($input: ExportSurvivorRecordInput!) { exportSurvivorRecord(input: $input) {
  document userErrors { field code message } } }"""
HOLD = """mutation($input: PlaceLegalHoldInput!) { placeLegalHold(input: $input) {
  survivor { id version dataProtection { legalHold { since reason } erasureRequestedAt } }
  userErrors { field code message } } }"""
LIFT = """mutation($input: LiftLegalHoldInput!) { liftLegalHold(input: $input) {
  survivor { id version dataProtection { legalHold { reason } erasureRequestedAt } }
  userErrors { field code message } } }"""
ERASE = """mutation($input: RequestSurvivorErasureInput!) { requestSurvivorErasure(input: $input) {
  survivor { id pseudonym erasedAt identity { legalName } dataProtection { legalHold { reason } erasureRequestedAt } }
  erasure { status explanation } userErrors { field code message } } }"""
CORRECT = """mutation($input: CorrectSurvivorIdentityInput!) { correctSurvivorIdentity(input: $input) {
  survivor { id version identity { legalName phone guardianName guardianPhone location } }
  userErrors { field code message } } }"""
REGISTER = """mutation($input: RegisterSurvivorInput!) { registerSurvivor(input: $input) {
  survivor { id } possibleDuplicates { id pseudonym } userErrors { field code message } } }"""
REVIEWS = """query($resolved: Boolean) { duplicateReviews(first: 100, filter: {resolved: $resolved}) {
  totalCount edges { node { id matchedOn resolution version survivor { id } possibleDuplicate { id } } } } }"""
RESOLVE = """mutation($input: ResolveDuplicateReviewInput!) { resolveDuplicateReview(input: $input) {
  review { id resolution resolvedAt } userErrors { field code message } } }"""
SURVIVOR = """query($id: ID!) { node(id: $id) { ... on Survivor { id pseudonym erasedAt version
  identity { legalName phone } dataProtection { legalHold { reason } } } } }"""


def _words(prefix: str) -> dict[str, str]:
    tag = secrets.token_hex(5)
    return {"legalName": f"{prefix} Legalname {tag}", "guardianName": f"{prefix} Guardian {tag}",
            "location": f"{prefix} Behind the {tag} market", "pseudonym": f"{prefix}-{tag}",
            "phone": f"+2547{secrets.randbelow(10**8):08d}", "guardianPhone": f"+2541{secrets.randbelow(10**8):08d}",
            "referralReason": f"{prefix} referral reason {tag}", "witness": f"{prefix} Witness {tag}",
            "notes": f"{prefix} session notes {tag}", "concern": f"{prefix} concern {tag}",
            "goal": f"{prefix} goal description {tag}", "milestone": f"{prefix} milestone title {tag}",
            "milestoneNote": f"{prefix} milestone note {tag}"}


@dataclass
class Story:
    survivor_id: str
    referral_id: str
    consent_id: str
    session_id: str
    words: dict[str, str]


async def _story(factory: Factory, net: Network, prefix: str, *, open_referral: bool = True) -> Story:
    """A survivor with a consent (witnessed), a referral in progress, a session with notes and a concern,
    a goal, a milestone and an assessment; her identity read by the counselor (an audited read)."""
    w = _words(prefix)
    survivor = await register_survivor(factory, net.token("manager"), **{k: w[k] for k in (
        "legalName", "guardianName", "location", "pseudonym", "phone", "guardianPhone")})
    consent = await record_consent(factory, net.token("manager"), survivor["id"], net.partner.gid, witness=w["witness"])
    referral = await create_referral(factory, net.token("manager"), survivor["id"], net.partner.gid, consent["id"],
                                     reason=w["referralReason"])
    for name, token, extra in (("acceptReferral", "coordinator", {}),
                               ("assignCounselor", "coordinator", {"counselorId": net.counselor.gid}),
                               ("startReferral", "counselor", {})):
        payload = await act(factory, net.token(token), name, "AssignCounselorInput" if extra else
                            "ReferralActionInput", referralId=referral["id"], **extra)
        assert payload["userErrors"] == [], payload
    counselor = net.token("counselor")
    session = (await factory.gql(counselor, LOG_SESSION, {"input": {
        "referralId": referral["id"], "startedAt": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "durationMinutes": 50, "modality": "INDIVIDUAL", "sessionType": "THERAPY", "attendance": "ATTENDED",
        "notes": w["notes"], "safeguardingConcern": {"level": "HIGH", "description": w["concern"]}}})
    )["data"]["logSession"]
    assert session["userErrors"] == [], session
    goal = (await factory.gql(counselor, SET_GOAL, {"input": {
        "referralId": referral["id"], "domain": "SAFETY", "description": w["goal"]}}))["data"]["setCareGoal"]["goal"]
    milestone = (await factory.gql(counselor, RECORD_MILESTONE, {"input": {
        "referralId": referral["id"], "goalId": goal["id"], "title": w["milestone"], "note": w["milestoneNote"],
        "achievedOn": datetime.now(UTC).date().isoformat()}}))["data"]["recordMilestone"]
    assert milestone["userErrors"] == [], milestone
    assessment = (await factory.gql(counselor, RECORD_ASSESSMENT, {"input": {
        "referralId": referral["id"], "instrument": "survivor-outcome",
        "administeredOn": datetime.now(UTC).date().isoformat(), "scores": _scores(MIXED)}}))["data"]["recordAssessment"]
    assert assessment["userErrors"] == [], assessment
    seen = await factory.gql(counselor, SURVIVOR, {"id": survivor["id"]})
    assert seen["data"]["node"]["identity"]["legalName"] == w["legalName"]
    if not open_referral:
        done = await act(factory, counselor, "completeReferral", "CompleteReferralInput", referralId=referral["id"],
                         outcome="Completed the programme.")
        assert done["userErrors"] == [], done
    return Story(survivor_id=survivor["id"], referral_id=referral["id"], consent_id=consent["id"],
                 session_id=session["session"]["id"], words=w)


async def _everything(engine: AsyncEngine) -> str:
    """Every row of every table of the database, as text: what a dump would show."""
    async with engine.connect() as connection:
        tables = (await connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).scalars().all()
        parts = []
        for table in tables:
            rows = await connection.execute(text(f'SELECT t::text FROM "{table}" t'))  # noqa: S608
            parts.extend(rows.scalars().all())
    return "\n".join(parts)


async def _export(factory: Factory, token: str, survivor_id: str) -> dict[str, Any]:
    body = await factory.gql(token, EXPORT, {"input": {"survivorId": survivor_id}})
    payload = body["data"]["exportSurvivorRecord"]
    assert payload["userErrors"] == [], payload
    document: dict[str, Any] = json.loads(payload["document"])
    return document


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(sql), params)).all())


# ----------------------------------------------------------------------------- access


async def test_the_export_holds_every_category_of_her_record_and_nothing_of_anyone_else(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    story = await _story(factory, net, "Export")
    other = await _story(factory, net, "Sibling")
    document = await _export(factory, net.token("supervisor"), story.survivor_id)

    assert document["format"] == "pamoja.subject-export" and document["version"] == 1
    survivor = document["survivor"]
    assert survivor["id"] == story.survivor_id and survivor["pseudonym"] == story.words["pseudonym"]
    assert survivor["identity"] == {k: story.words[k] for k in ("legalName", "phone", "guardianName",
                                                                "guardianPhone", "location")}
    assert [c["id"] for c in document["consents"]] == [story.consent_id]
    assert document["consents"][0]["witness"] == story.words["witness"]
    referral = document["referrals"][0]
    assert referral["id"] == story.referral_id and referral["reason"] == story.words["referralReason"]
    assert [h["to"] for h in referral["history"]][:3] == ["REQUESTED", "ACCEPTED", "IN_PROGRESS"]
    assert document["sessions"][0]["notes"] == story.words["notes"]
    raised = document["sessions"][0]["safeguardingConcern"]["raisedAt"]
    assert document["safeguardingConcerns"] == [{"session": story.session_id, "level": "HIGH", "raisedAt": raised,
                                                  "description": story.words["concern"]}]
    assert document["goals"][0]["description"] == story.words["goal"]
    assert document["milestones"][0]["title"] == story.words["milestone"]
    assert document["assessments"][0]["instrument"]["key"] == "survivor-outcome"
    trail = document["auditTrail"]
    # who read or changed her record: the NGO's and the partner's people, the export itself last
    assert {(e["action"], e["recordType"], e["organization"]) for e in trail} >= {
        ("create", "Survivor", net.ngo.gid), ("read", "SurvivorIdentity", net.partner.gid),
        ("update", "Referral", net.partner.gid)}
    assert (trail[-1]["action"], trail[-1]["purpose"]) == ("export", "SUBJECT_ACCESS")

    text_of = json.dumps(document)
    for word in other.words.values():
        assert word not in text_of
    for record_id in (other.survivor_id, other.referral_id, other.consent_id, other.session_id):
        assert record_id not in text_of
    audited = await _rows(owner_engine, "SELECT actor FROM audit_event WHERE record_id = :id AND action = 'export'",
                          id=story.survivor_id)
    assert [a.actor for a in audited] == [net.supervisor.gid]


async def test_only_a_supervisor_of_her_organization_may_export(factory: Factory) -> None:
    net, elsewhere = await network(factory), await network(factory)
    story = await _story(factory, net, "Guarded")
    for token in (net.token("manager"), net.token("coordinator"), net.token("counselor")):
        body = await factory.gql(token, EXPORT, {"input": {"survivorId": story.survivor_id}}, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
        assert body["data"] is None or body["data"]["exportSurvivorRecord"] is None
    body = await factory.gql(elsewhere.token("supervisor"), EXPORT, {"input": {"survivorId": story.survivor_id}})
    payload = body["data"]["exportSurvivorRecord"]
    assert payload["document"] is None and [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]


# ----------------------------------------------------------------------------- rectification


async def test_a_correction_changes_the_identity_and_leaves_only_an_audited_fact(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    old = _words("Typo")
    survivor = await register_survivor(factory, net.token("manager"), legalName=old["legalName"], phone=old["phone"],
                                       location=old["location"])
    new_name, new_phone = f"Corrected Name {secrets.token_hex(4)}", f"+2547{secrets.randbelow(10**8):08d}"
    body = await factory.gql(net.token("manager"), CORRECT, {"input": {
        "survivorId": survivor["id"], "reason": "SPELLING", "legalName": new_name, "phone": new_phone,
        "location": " \t ", "idempotencyKey": secrets.token_hex(8)}})  # blank, however spelled, clears
    payload = body["data"]["correctSurvivorIdentity"]
    assert payload["userErrors"] == [], payload
    assert payload["survivor"]["identity"]["legalName"] == new_name
    assert payload["survivor"]["identity"]["phone"] == new_phone and payload["survivor"]["identity"]["location"] is None

    search = """query($s: String!) { survivors(filter: {search: $s}) { edges { node { id } } } }"""
    found = await factory.gql(net.token("manager"), search, {"s": old["phone"]})
    assert found["data"]["survivors"]["edges"] == []
    found = await factory.gql(net.token("manager"), search, {"s": new_phone})
    assert [e["node"]["id"] for e in found["data"]["survivors"]["edges"]] == [survivor["id"]]

    audit = await _rows(owner_engine, "SELECT action, record_type, purpose, actor FROM audit_event "
                        "WHERE record_id = :id AND action = 'correct'", id=survivor["id"])
    assert [(a.record_type, a.purpose, a.actor) for a in audit] == [("SurvivorIdentity", "SPELLING",
                                                                      net.manager.gid)]
    dump = await _everything(owner_engine)
    for word in (old["legalName"], old["phone"], old["location"]):
        assert word not in dump
    document = await _export(factory, net.token("supervisor"), survivor["id"])
    assert old["legalName"] not in json.dumps(document)


async def test_a_correction_is_refused_field_by_field_without_repeating_the_value(factory: Factory) -> None:
    net = await network(factory)
    survivor = await register_survivor(factory, net.token("manager"))
    body = await factory.gql(net.token("manager"), CORRECT, {"input": {
        "survivorId": survivor["id"], "reason": "CONTACT_CHANGED", "phone": "call SENTINEL-77", "legalName": " "}})
    errors = body["data"]["correctSurvivorIdentity"]["userErrors"]
    assert sorted(tuple(e["field"]) for e in errors) == [("input", "legalName"), ("input", "phone")]
    assert "SENTINEL" not in str(body)
    body = await factory.gql(net.token("counselor"), CORRECT, {"input": {
        "survivorId": survivor["id"], "reason": "SPELLING", "legalName": "Someone Else"}}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # a partner holds no SurvivorIdentity.u
    elsewhere = await network(factory)
    body = await factory.gql(elsewhere.token("manager"), CORRECT, {"input": {
        "survivorId": survivor["id"], "reason": "SPELLING", "legalName": "Someone Else"}})
    assert [e["code"] for e in body["data"]["correctSurvivorIdentity"]["userErrors"]] == ["NOT_FOUND"]
    body = await factory.gql(net.token("manager"), CORRECT, {"input": {
        "survivorId": survivor["id"], "reason": "SPELLING", "legalName": "Some One", "expectedVersion": 99}})
    assert [e["code"] for e in body["data"]["correctSurvivorIdentity"]["userErrors"]] == ["VERSION_CONFLICT"]


# ----------------------------------------------------------------------------- legal hold and erasure


async def test_a_legal_hold_makes_erasure_wait_and_erasure_leaves_only_the_skeleton(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    story = await _story(factory, net, "Erase")
    keep = await _story(factory, net, "Keep")
    supervisor = net.token("supervisor")
    counts_sql = ("SELECT (SELECT count(*) FROM counseling_session WHERE referral_id = r.id) AS sessions, "
                  "(SELECT count(*) FROM milestone WHERE referral_id = r.id) AS milestones, "
                  "(SELECT count(*) FROM assessment WHERE referral_id = r.id) AS assessments, "
                  "(SELECT count(*) FROM care_goal WHERE referral_id = r.id) AS goals, "
                  "s.county, s.birth_year, s.sex FROM referral r JOIN survivor s ON s.id = r.survivor_id "
                  "WHERE r.id = :id")
    before = (await _rows(owner_engine, counts_sql, id=str(_uuid(story.referral_id))))[0]

    # a case manager may not hold or erase
    body = await factory.gql(net.token("manager"), HOLD, {"input": {"survivorId": story.survivor_id,
                                                                    "reason": "PROSECUTION"}}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    held = (await factory.gql(supervisor, HOLD, {"input": {"survivorId": story.survivor_id,
                                                           "reason": "PROSECUTION"}}))["data"]["placeLegalHold"]
    assert held["userErrors"] == [] and held["survivor"]["dataProtection"]["legalHold"]["reason"] == "PROSECUTION"
    held_list = await factory.gql(supervisor, """query { survivors(first: 100, filter: {underLegalHold: true}) {
        edges { node { id } } } }""")
    listed = [e["node"]["id"] for e in held_list["data"]["survivors"]["edges"]]
    assert story.survivor_id in listed and keep.survivor_id not in listed
    refused = await factory.gql(net.token("coordinator"), """query { survivors(filter: {underLegalHold: true}) {
        totalCount } }""", expect_errors=True)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    waiting = (await factory.gql(supervisor, ERASE, {"input": {"survivorId": story.survivor_id,
                                                               "reason": "SUBJECT_REQUEST"}}))["data"]
    waiting = waiting["requestSurvivorErasure"]
    assert waiting["userErrors"] == [] and waiting["erasure"]["status"] == "WAITING_FOR_LEGAL_HOLD"
    assert "legal hold" in waiting["erasure"]["explanation"]
    assert waiting["survivor"]["erasedAt"] is None
    assert waiting["survivor"]["identity"]["legalName"] == story.words["legalName"]
    assert waiting["survivor"]["dataProtection"]["erasureRequestedAt"]
    # partners never see the hold
    as_partner = (await factory.gql(net.token("coordinator"), SURVIVOR, {"id": story.survivor_id}))["data"]["node"]
    assert as_partner["dataProtection"] is None

    lifted = (await factory.gql(supervisor, LIFT, {"input": {"survivorId": story.survivor_id,
                                                             "reason": "PROCEEDINGS_CONCLUDED"}}))["data"]
    assert lifted["liftLegalHold"]["userErrors"] == []
    erased = (await factory.gql(supervisor, ERASE, {"input": {"survivorId": story.survivor_id,
                                                              "reason": "SUBJECT_REQUEST"}}))["data"]
    erased = erased["requestSurvivorErasure"]
    assert erased["userErrors"] == [] and erased["erasure"]["status"] == "ERASED"
    assert erased["survivor"]["erasedAt"] and erased["survivor"]["identity"] is None
    assert erased["survivor"]["pseudonym"] == "Erased"

    dump = await _everything(owner_engine)
    for name, word in story.words.items():
        assert word not in dump, name
    assert keep.words["pseudonym"] in dump  # the other survivor is untouched
    after = (await _rows(owner_engine, counts_sql, id=str(_uuid(story.referral_id))))[0]
    assert tuple(after) == tuple(before)  # indicators count the same sessions, goals, milestones
    referral = await _rows(owner_engine, "SELECT status FROM referral WHERE id = :id", id=str(_uuid(story.referral_id)))
    assert referral[0].status == "CANCELLED"
    events = await _rows(owner_engine, "SELECT event_type, organization_id, payload::text AS body FROM outbox_event "
                         "WHERE payload->>'survivorId' = :id OR payload->>'referralId' = :ref",
                         id=story.survivor_id, ref=story.referral_id)
    told = {(e.event_type, e.organization_id) for e in events}
    assert {("survivor.erased", net.partner.id), ("survivor.erased", net.ngo.id),
            ("referral.cancelled", net.partner.id)} <= told
    cancelled = [json.loads(e.body) for e in events if e.event_type == "referral.cancelled"]
    assert cancelled and all(c["reason"] == "SURVIVOR_ERASED" for c in cancelled)
    audit = await _rows(owner_engine, "SELECT action, purpose, outcome FROM audit_event WHERE record_id = :id "
                        "AND action IN ('erase', 'erasure_request', 'legal_hold') ORDER BY seq", id=story.survivor_id)
    assert [(a.action, a.purpose, a.outcome) for a in audit] == [
        ("legal_hold", "PLACED_PROSECUTION", "allowed"), ("erasure_request", "SUBJECT_REQUEST", "deferred"),
        ("legal_hold", "LIFTED_PROCEEDINGS_CONCLUDED", "allowed"), ("erase", "SUBJECT_REQUEST", "allowed")]
    # nothing can be added or read any more; the counselor's caseload no longer shows her words
    session = await factory.gql(net.token("counselor"), """query($id: ID!) { node(id: $id) {
        ... on CounselingSession { notes } } }""", {"id": story.session_id})
    node = session["data"]["node"]
    assert node is None or node["notes"] is None
    again = (await factory.gql(supervisor, ERASE, {"input": {"survivorId": story.survivor_id,
                                                             "reason": "SUBJECT_REQUEST"}}))["data"]
    assert [e["code"] for e in again["requestSurvivorErasure"]["userErrors"]] == ["INVALID_TRANSITION"]


def _uuid(global_id: str) -> Any:
    decoded = from_global_id(global_id)
    assert decoded is not None
    return decoded[1]


async def test_erasure_is_refused_outside_her_organization_and_to_partners(factory: Factory) -> None:
    net, elsewhere = await network(factory), await network(factory)
    story = await _story(factory, net, "Refused")
    body = await factory.gql(elsewhere.token("supervisor"), ERASE, {"input": {"survivorId": story.survivor_id,
                                                                              "reason": "SUBJECT_REQUEST"}})
    assert [e["code"] for e in body["data"]["requestSurvivorErasure"]["userErrors"]] == ["NOT_FOUND"]
    for token in (net.token("coordinator"), net.token("manager")):
        body = await factory.gql(token, ERASE, {"input": {"survivorId": story.survivor_id,
                                                          "reason": "SUBJECT_REQUEST"}}, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await factory.gql(net.token("supervisor"), ERASE, {"input": {"survivorId": story.survivor_id,
                                                                        "reason": "RETENTION_EXPIRED"}})
    assert [e["field"] for e in body["data"]["requestSurvivorErasure"]["userErrors"]] == [["input", "reason"]]
    still = (await factory.gql(net.token("supervisor"), SURVIVOR, {"id": story.survivor_id}))["data"]["node"]
    assert still["erasedAt"] is None and still["identity"]["legalName"] == story.words["legalName"]


# ----------------------------------------------------------------------------- possible duplicates


async def _register(factory: Factory, token: str, **data: Any) -> dict[str, Any]:
    body = await factory.gql(token, REGISTER, {"input": survivor_input(**data)})
    payload: dict[str, Any] = body["data"]["registerSurvivor"]
    assert payload["userErrors"] == [], payload
    return payload


async def test_siblings_sharing_a_household_phone_are_both_registered_and_matches_stay_within_sight(
        factory: Factory) -> None:
    net, elsewhere = await network(factory), await network(factory)
    colleague = await factory.user(net.ngo, Role.CASE_MANAGER)
    colleague_token = await factory.token(colleague)
    household = f"+2547{secrets.randbelow(10**8):08d}"
    first = await _register(factory, net.token("manager"), guardianPhone=household)
    assert first["possibleDuplicates"] == []
    # her sibling: the same household phone, as the guardian's number; registered, the first one shown
    sibling = await _register(factory, net.token("manager"), guardianPhone=household)
    assert [s["id"] for s in sibling["possibleDuplicates"]] == [first["survivor"]["id"]]
    # a colleague who manages neither sees no match, and learns nothing of the phone's owner
    third = await _register(factory, colleague_token, phone=household)
    assert third["possibleDuplicates"] == []
    assert household not in json.dumps(third)
    # another NGO with the same number: no match across organizations
    other = await _register(factory, elsewhere.token("manager"), phone=household)
    assert other["possibleDuplicates"] == []

    reviews = (await factory.gql(net.token("supervisor"), REVIEWS, {"resolved": False}))["data"]["duplicateReviews"]
    pairs = {(e["node"]["survivor"]["id"], e["node"]["possibleDuplicate"]["id"], tuple(e["node"]["matchedOn"]))
             for e in reviews["edges"]}
    assert pairs == {(sibling["survivor"]["id"], first["survivor"]["id"], ("GUARDIAN_PHONE",)),
                     (third["survivor"]["id"], first["survivor"]["id"], ("GUARDIAN_PHONE",)),
                     (third["survivor"]["id"], sibling["survivor"]["id"], ("GUARDIAN_PHONE",))}
    assert (await factory.gql(elsewhere.token("supervisor"), REVIEWS, {}))["data"]["duplicateReviews"][
        "totalCount"] == 0
    body = await factory.gql(net.token("manager"), REVIEWS, {}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    review = next(e["node"] for e in reviews["edges"] if e["node"]["survivor"]["id"] == sibling["survivor"]["id"])
    resolved = (await factory.gql(net.token("supervisor"), RESOLVE, {"input": {
        "reviewId": review["id"], "resolution": "DIFFERENT_PEOPLE"}}))["data"]["resolveDuplicateReview"]
    assert resolved["userErrors"] == [] and resolved["review"]["resolution"] == "DIFFERENT_PEOPLE"
    left = (await factory.gql(net.token("supervisor"), REVIEWS, {"resolved": False}))["data"]["duplicateReviews"]
    assert left["totalCount"] == 2
    other_review = (await factory.gql(elsewhere.token("supervisor"), RESOLVE, {"input": {
        "reviewId": review["id"], "resolution": "SAME_PERSON"}}))["data"]["resolveDuplicateReview"]
    assert [e["code"] for e in other_review["userErrors"]] == ["NOT_FOUND"]


async def test_a_survivor_id_of_another_type_is_not_found(factory: Factory) -> None:
    net = await network(factory)
    body = await factory.gql(net.token("supervisor"), ERASE, {"input": {
        "survivorId": to_global_id("Referral", "00000000-0000-0000-0000-000000000000"), "reason": "SUBJECT_REQUEST"}})
    assert [e["code"] for e in body["data"]["requestSurvivorErasure"]["userErrors"]] == ["NOT_FOUND"]


async def test_the_readme_data_protection_examples_run_as_written(factory: Factory) -> None:
    net = await network(factory)
    story = await _story(factory, net, "Readme")
    body = await factory.gql(net.token("supervisor"), readme_example("subject-erasure"), {"id": story.survivor_id})
    assert body["data"]["requestSurvivorErasure"]["erasure"]["status"] == "ERASED"
    shared = f"+2547{secrets.randbelow(10**8):08d}"
    await register_survivor(factory, net.token("manager"), phone=shared)
    await register_survivor(factory, net.token("manager"), guardianPhone=shared)
    body = await factory.gql(net.token("supervisor"), readme_example("duplicate-reviews"))
    assert body["data"]["duplicateReviews"]["totalCount"] == 1
    assert body["data"]["duplicateReviews"]["edges"][0]["node"]["matchedOn"] == ["PHONE"]


async def test_the_partners_system_receives_survivor_erased_with_ids_only(
        factory: Factory, owner_engine: AsyncEngine, settings: Settings) -> None:
    net = await network(factory)
    story = await _story(factory, net, "Hook")
    master = MasterKeys.parse(settings.master_keys.get_secret_value())
    with Receiver() as receiver:
        await add_client(owner_engine, master, net.partner, receiver.url + "/partner")
        body = await factory.gql(net.token("supervisor"), ERASE, {"input": {"survivorId": story.survivor_id,
                                                                            "reason": "GUARDIAN_REQUEST"}})
        assert body["data"]["requestSurvivorErasure"]["erasure"]["status"] == "ERASED"
        await run_once(owner_engine, policy=DeliveryPolicy.from_settings(settings), master_keys=master)
        bodies = [json.loads(r.body) for r in receiver.received if r.path == "/hook/partner"]
    erased = [b for b in bodies if b["type"] == "survivor.erased"]
    assert [b["data"]["survivorId"] for b in erased] == [story.survivor_id]
    assert set(erased[0]["data"]) == {"survivorId", "occurredAt"}
    cancelled = [b for b in bodies if b["type"] == "referral.cancelled"]
    assert [(b["data"]["referralId"], b["data"]["reason"]) for b in cancelled] == [(story.referral_id,
                                                                                   "SURVIVOR_ERASED")]
    for word in story.words.values():
        assert word not in json.dumps(bodies)
