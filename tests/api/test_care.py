"""Care through the public API: sessions and safeguarding (rule 7), goals, milestones, assessments.

Each test builds its own NGO and partner (tests/flows.py) and checks what every side sees, what the
database holds (ciphertext only), what the outbox and the audit trail record, and that nested care
fields are batched (the same number of SQL statements for a few referrals as for more).
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.assessments import SURVIVOR_OUTCOME_ASSESSMENT
from domain.ids import from_global_id
from tests.factories import Factory
from tests.flows import ALL_CATEGORIES, ALL_PURPOSES, Case, Network, act, network, referred_case
from tests.statements import sent_statements

SESSION_FIELDS = """id startedAt durationMinutes modality sessionType attendance notes version
  safeguardingConcern { level raisedAt } counselor { id } referral { id }"""
LOG_SESSION = f"""mutation($input: LogSessionInput!) {{ logSession(input: $input) {{
  session {{ {SESSION_FIELDS} }} userErrors {{ field code message }} }} }}"""
SESSION_NODE = f"""query($id: ID!) {{ node(id: $id) {{ ... on CounselingSession {{ {SESSION_FIELDS} }} }} }}"""
REFERRAL_CARE = """query($id: ID!) { node(id: $id) { ... on Referral { id updatedAt version
  sessions(first: 10) { totalCount edges { node { id attendance notes safeguardingConcern { level } } } }
  safeguardingConcerns { level raisedAt }
  goals { id } milestones { id } } } }"""
GOAL_FIELDS = """id domain description targetDate lifecycleStatus achievementStatus version
  history { at achievementStatus note } survivor { id } referral { id }"""
SET_GOAL = f"""mutation($input: SetCareGoalInput!) {{ setCareGoal(input: $input) {{
  goal {{ {GOAL_FIELDS} }} userErrors {{ field code message }} }} }}"""
UPDATE_GOAL = f"""mutation($input: UpdateGoalProgressInput!) {{ updateGoalProgress(input: $input) {{
  goal {{ {GOAL_FIELDS} }} userErrors {{ field code message }} }} }}"""
GOAL_NODE = f"""query($id: ID!) {{ node(id: $id) {{ ... on CareGoal {{ {GOAL_FIELDS} }} }} }}"""
RECORD_MILESTONE = """mutation($input: RecordMilestoneInput!) { recordMilestone(input: $input) {
  milestone { id title achievedOn note goal { id } referral { id } } userErrors { field code message } } }"""
ASSESSMENT_FIELDS = """id instrument administeredOn overallScore meetsRestorationThreshold
  domainScores { domain score } survivor { id }"""
RECORD_ASSESSMENT = f"""mutation($input: RecordAssessmentInput!) {{ recordAssessment(input: $input) {{
  assessment {{ {ASSESSMENT_FIELDS} }} userErrors {{ field code message }} }} }}"""
SURVIVOR_CARE = f"""query($id: ID!) {{ node(id: $id) {{ ... on Survivor {{
  goals {{ id achievementStatus }} assessments {{ {ASSESSMENT_FIELDS} }} }} }} }}"""
NODE_ID = "query($id: ID!) { node(id: $id) { id } }"

FEEDBACK_WITHOUT_NOTES = [c for c in ALL_CATEGORIES if c != "SESSION_NOTES"]
NO_FEEDBACK = {"purposes": ["REFERRAL", "SERVICE_DELIVERY"]}


def _iso(value: datetime) -> str:
    return value.isoformat()


def _session_input(case: Case, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "referralId": case.referral["id"], "startedAt": _iso(datetime.now(UTC) - timedelta(hours=2)),
        "durationMinutes": 50, "modality": "INDIVIDUAL", "sessionType": "INTAKE", "attendance": "ATTENDED",
    }
    data.update(overrides)
    return data


async def _log(factory: Factory, token: str, case: Case, **overrides: Any) -> dict[str, Any]:
    body = await factory.gql(token, LOG_SESSION, {"input": _session_input(case, **overrides)})
    payload: dict[str, Any] = body["data"]["logSession"]
    return payload


async def _logged(factory: Factory, token: str, case: Case, **overrides: Any) -> dict[str, Any]:
    payload = await _log(factory, token, case, **overrides)
    assert payload["userErrors"] == [], payload["userErrors"]
    session: dict[str, Any] = payload["session"]
    return session


async def _node(factory: Factory, token: str, query: str, node_id: str) -> Any:
    return (await factory.gql(token, query, {"id": node_id}))["data"]["node"]


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(sql), params)).all())


def _raw_id(global_id: str) -> uuid.UUID:
    decoded = from_global_id(global_id)
    assert decoded is not None
    return decoded[1]


# ----------------------------------------------------------------------------- sessions and rule 7


async def test_a_concern_reaches_the_referrer_whatever_the_consent_but_notes_stay_with_the_counselor(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True, consent=NO_FEEDBACK)
    notes = f"Disclosed night work at a bar in Mtwapa; sleeps badly {secrets.token_hex(6)}"
    description = f"Exploiter phoned the survivor twice this week {secrets.token_hex(6)}"
    session = await _logged(factory, net.token("counselor"), case, notes=notes,
                            safeguardingConcern={"level": "HIGH", "description": description})
    assert session["notes"] == notes
    assert session["safeguardingConcern"]["level"] == "HIGH"
    assert session["counselor"] == {"id": net.counselor.gid}
    assert session["referral"] == {"id": case.referral["id"]} and session["version"] == 1

    # The coordinator sees the session and the concern, never the clinical notes.
    as_coordinator = await _node(factory, net.token("coordinator"), SESSION_NODE, session["id"])
    assert as_coordinator["id"] == session["id"] and as_coordinator["attendance"] == "ATTENDED"
    assert as_coordinator["notes"] is None
    assert as_coordinator["safeguardingConcern"]["level"] == "HIGH"

    # The referring case manager: no sessions (no FEEDBACK_TO_REFERRER), but the concern, always.
    assert await _node(factory, net.token("manager"), SESSION_NODE, session["id"]) is None
    referral = await _node(factory, net.token("manager"), REFERRAL_CARE, case.referral["id"])
    assert referral["sessions"] == {"totalCount": 0, "edges": []}
    assert [c["level"] for c in referral["safeguardingConcerns"]] == ["HIGH"]
    assert referral["safeguardingConcerns"][0]["raisedAt"]

    # The outbox tells the NGO (and nobody else), with ids and the level only.
    events = await _rows(owner_engine, "SELECT event_type, organization_id, payload::text AS body FROM outbox_event "
                         "WHERE payload->>'sessionId' = :id", id=session["id"])
    assert [(e.event_type, e.organization_id) for e in events] == [("safeguarding.raised", net.ngo.id)]
    payload = json.loads(events[0].body)
    assert set(payload) == {"referralId", "sessionId", "concernLevel", "occurredAt"}
    assert payload["concernLevel"] == "HIGH" and payload["referralId"] == case.referral["id"]
    assert description not in events[0].body and notes not in events[0].body

    # Audit: the counselor's reads of the notes, and the rule-7 disclosure to the NGO.
    audit = await _rows(owner_engine, "SELECT action, record_type, purpose, organization_id FROM audit_event "
                        "WHERE record_id = :id ORDER BY seq", id=session["id"])
    reads = [a for a in audit if (a.action, a.record_type) == ("read", "SessionNote")]
    assert reads and all(a.organization_id == net.partner.id for a in reads)
    assert ("disclose", "SafeguardingConcern", "SAFEGUARDING_RULE_7", net.ngo.id) in [tuple(a) for a in audit]
    assert ("create", "CounselingSession", "SERVICE_DELIVERY", net.partner.id) in [tuple(a) for a in audit]

    # At rest: ciphertext only.
    stored = await _rows(owner_engine, "SELECT notes_enc, concern_description_enc FROM counseling_session "
                         "WHERE id = :id", id=_raw_id(session["id"]))
    assert len(stored) == 1
    notes_enc, description_enc = bytes(stored[0].notes_enc), bytes(stored[0].concern_description_enc)
    assert notes.encode() not in notes_enc and b"Mtwapa" not in notes_enc
    assert description.encode() not in description_enc and b"Exploiter" not in description_enc


async def test_feedback_consent_shows_attendance_to_the_referrer_and_notes_only_with_session_notes(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    without_notes = await referred_case(factory, net, accept=True, assign=True,
                                        consent={"purposes": ALL_PURPOSES, "dataCategories": FEEDBACK_WITHOUT_NOTES})
    with_notes = await referred_case(factory, net, accept=True, assign=True)
    first = await _logged(factory, net.token("counselor"), without_notes, notes="Attended with her aunt.")
    second = await _logged(factory, net.token("counselor"), with_notes, notes="Talked about returning to school.",
                           attendance="MISSED")

    shown = await _node(factory, net.token("manager"), REFERRAL_CARE, without_notes.referral["id"])
    assert shown["sessions"]["totalCount"] == 1
    assert shown["sessions"]["edges"][0]["node"] == {"id": first["id"], "attendance": "ATTENDED", "notes": None,
                                                     "safeguardingConcern": None}
    assert shown["safeguardingConcerns"] == []

    shared = await _node(factory, net.token("supervisor"), SESSION_NODE, second["id"])
    assert shared["attendance"] == "MISSED" and shared["notes"] == "Talked about returning to school."
    audit = await _rows(owner_engine, "SELECT purpose, organization_id FROM audit_event WHERE record_id = :id "
                        "AND action = 'read' AND record_type = 'SessionNote'", id=second["id"])
    assert ("FEEDBACK_TO_REFERRER", net.ngo.id) in [tuple(a) for a in audit]


async def test_only_the_assigned_counselor_logs_and_only_while_the_referral_is_in_care(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    theirs = await _log(factory, net.token("other_counselor"), case)
    assert theirs["session"] is None
    assert theirs["userErrors"] == [{"field": ["input", "referralId"], "code": "NOT_FOUND", "message": "Not found."}]
    unknown = await _log(factory, net.token("counselor"), case, referralId="not-an-id")
    assert unknown["userErrors"][0]["code"] == "NOT_FOUND"

    # The NGO has no scope to log sessions: a top-level FORBIDDEN, not a user error.
    body = await factory.gql(net.token("manager"), LOG_SESSION, {"input": _session_input(case)}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    done = await act(factory, net.token("coordinator"), "completeReferral", "CompleteReferralInput",
                     referralId=case.referral["id"], outcome="Completed the programme.")
    assert done["referral"]["status"] == "COMPLETED"
    closed = await _log(factory, net.token("counselor"), case)
    assert closed["userErrors"][0]["code"] == "INVALID_TRANSITION"


async def test_bad_session_input_is_refused_with_the_field_and_changes_nothing(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    now = datetime.now(UTC)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"durationMinutes": 0}, ["input", "durationMinutes"]),
        ({"durationMinutes": 481}, ["input", "durationMinutes"]),
        ({"startedAt": _iso(now + timedelta(days=2))}, ["input", "startedAt"]),
        ({"startedAt": _iso(now - timedelta(days=3))}, ["input", "startedAt"]),
        ({"startedAt": "2026-01-05T10:00:00"}, ["input", "startedAt"]),
        ({"notes": "x" * 20_001}, ["input", "notes"]),
    ]
    for overrides, field in cases:
        payload = await _log(factory, net.token("counselor"), case, **overrides)
        assert payload["session"] is None
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, "INVALID")], overrides
    assert (await _logged(factory, net.token("counselor"), case, durationMinutes=480))["durationMinutes"] == 480
    referral = await _node(factory, net.token("counselor"), REFERRAL_CARE, case.referral["id"])
    assert referral["sessions"]["totalCount"] == 1


async def test_sessions_page_newest_first_with_a_stable_total(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    now = datetime.now(UTC)
    logged = [(await _logged(factory, net.token("counselor"), case, startedAt=_iso(now - timedelta(hours=h))))["id"]
              for h in (3, 1, 2)]
    page = """query($id: ID!, $after: String) { node(id: $id) { ... on Referral {
      sessions(first: 2, after: $after) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
        edges { node { id } } } } } }"""
    first = (await factory.gql(net.token("counselor"), page, {"id": case.referral["id"]}))["data"]["node"]["sessions"]
    assert [e["node"]["id"] for e in first["edges"]] == [logged[1], logged[2]]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"] is True
    second = (await factory.gql(net.token("counselor"), page, {"id": case.referral["id"],
                                                                "after": first["pageInfo"]["endCursor"]})
              )["data"]["node"]["sessions"]
    assert [e["node"]["id"] for e in second["edges"]] == [logged[0]]
    assert second["totalCount"] == 3
    assert (second["pageInfo"]["hasNextPage"], second["pageInfo"]["hasPreviousPage"]) == (False, True)


async def test_a_partner_system_logs_for_the_assigned_counselor(factory: Factory,
                                                                owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    client_id = f"partner-sys-{secrets.token_hex(4)}"
    async with owner_engine.begin() as connection:
        await connection.execute(text("INSERT INTO oauth_client (organization_id, client_id, name) "
                                      "VALUES (:org, :client_id, :name)"),
                                 {"org": net.partner.id, "client_id": client_id, "name": client_id})
    system = await factory.system_token(net.partner, client_id)
    case = await referred_case(factory, net, accept=True)
    refused = await _log(factory, system, case)
    assert refused["userErrors"][0]["field"] == ["input", "referralId"]
    assert refused["userErrors"][0]["code"] == "INVALID"
    await act(factory, net.token("coordinator"), "assignCounselor", "AssignCounselorInput",
              referralId=case.referral["id"], counselorId=net.counselor.gid)
    session = await _logged(factory, system, case, sessionType="THERAPY", modality="REMOTE")
    assert session["counselor"] == {"id": net.counselor.gid}
    assert session["notes"] is None  # no notes given; a system reads notes only by consent


async def test_polling_with_updated_since_picks_up_a_referral_after_a_session(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    before = await _node(factory, net.token("coordinator"), REFERRAL_CARE, case.referral["id"])
    since = _iso(datetime.fromisoformat(before["updatedAt"]) + timedelta(microseconds=1))
    poll = """query($since: DateTime!) { referrals(first: 100, filter: {updatedSince: $since}) {
      edges { node { id version } } } }"""

    async def polled() -> list[str]:
        body = await factory.gql(net.token("coordinator"), poll, {"since": since})
        return [e["node"]["id"] for e in body["data"]["referrals"]["edges"]]

    assert case.referral["id"] not in await polled()
    await _logged(factory, net.token("counselor"), case)
    assert case.referral["id"] in await polled()
    after = await _node(factory, net.token("coordinator"), REFERRAL_CARE, case.referral["id"])
    assert after["version"] == before["version"]  # activity, not an edit of the referral itself
    assert after["updatedAt"] > before["updatedAt"]


async def test_idempotent_retry_logs_one_session_and_one_event(factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    key = f"log-{secrets.token_hex(6)}"
    same = {"idempotencyKey": key, "startedAt": _iso(datetime.now(UTC) - timedelta(hours=1)),
            "safeguardingConcern": {"level": "IMMEDIATE"}}
    first = await _logged(factory, net.token("counselor"), case, **same)
    again = await _logged(factory, net.token("counselor"), case, **same)
    assert again["id"] == first["id"]
    reused = await _log(factory, net.token("counselor"), case, **{**same, "durationMinutes": 30})
    assert reused["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    events = await _rows(owner_engine, "SELECT id FROM outbox_event WHERE payload->>'referralId' = :id "
                         "AND event_type = 'safeguarding.raised'", id=case.referral["id"])
    assert len(events) == 1


# ----------------------------------------------------------------------------- goals and milestones


async def test_goal_progress_is_a_versioned_dated_history(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    target = (date.today() + timedelta(days=90)).isoformat()
    body = await factory.gql(net.token("counselor"), SET_GOAL, {"input": {
        "referralId": case.referral["id"], "domain": "ECONOMIC_EMPOWERMENT_AND_EDUCATION",
        "description": "Re-enrol in Form 2 at a day school near the shelter.", "targetDate": target}})
    set_payload = body["data"]["setCareGoal"]
    assert set_payload["userErrors"] == []
    goal = set_payload["goal"]
    assert (goal["lifecycleStatus"], goal["achievementStatus"], goal["version"]) == ("ACTIVE", "IN_PROGRESS", 1)
    assert goal["targetDate"] == target and len(goal["history"]) == 1
    assert goal["survivor"] == {"id": case.survivor["id"]} and goal["referral"] == {"id": case.referral["id"]}

    async def update(**data: Any) -> dict[str, Any]:
        result = await factory.gql(net.token("counselor"), UPDATE_GOAL, {"input": {"goalId": goal["id"], **data}})
        payload: dict[str, Any] = result["data"]["updateGoalProgress"]
        return payload

    improving = await update(expectedVersion=1, achievementStatus="IMPROVING", note="Attends three days a week.")
    assert improving["userErrors"] == [] and improving["goal"]["version"] == 2
    achieved = await update(expectedVersion=2, achievementStatus="ACHIEVED", lifecycleStatus="COMPLETED")
    assert achieved["userErrors"] == []
    assert (achieved["goal"]["lifecycleStatus"], achieved["goal"]["achievementStatus"]) == ("COMPLETED", "ACHIEVED")
    history = achieved["goal"]["history"]
    assert [h["achievementStatus"] for h in history] == ["IN_PROGRESS", "IMPROVING", "ACHIEVED"]
    assert history[1]["note"] == "Attends three days a week."
    assert history[0]["at"] < history[1]["at"] < history[2]["at"]

    stale = await update(expectedVersion=1, achievementStatus="WORSENING")
    assert stale["goal"] is None
    assert [(e["field"], e["code"]) for e in stale["userErrors"]] == [(["input", "expectedVersion"],
                                                                       "VERSION_CONFLICT")]
    unchanged = await _node(factory, net.token("counselor"), GOAL_NODE, goal["id"])
    assert unchanged["version"] == 3 and unchanged["achievementStatus"] == "ACHIEVED"
    assert len(unchanged["history"]) == 3

    contradictory = await update(achievementStatus="IMPROVING", lifecycleStatus="ACTIVE")
    assert contradictory["userErrors"][0]["code"] == "INVALID_TRANSITION"
    assert (await _node(factory, net.token("other_counselor"), GOAL_NODE, goal["id"])) is None
    assert (await update_as(factory, net.token("other_counselor"), goal["id"]))["code"] == "NOT_FOUND"

    # The referrer sees goals as feedback (the default consent names FEEDBACK_TO_REFERRER and ASSESSMENTS).
    survivor = await _node(factory, net.token("manager"), SURVIVOR_CARE, case.survivor["id"])
    assert survivor["goals"] == [{"id": goal["id"], "achievementStatus": "ACHIEVED"}]


async def update_as(factory: Factory, token: str, goal_id: str) -> dict[str, Any]:
    body = await factory.gql(token, UPDATE_GOAL, {"input": {"goalId": goal_id, "achievementStatus": "IMPROVING"}})
    error: dict[str, Any] = body["data"]["updateGoalProgress"]["userErrors"][0]
    return error


async def test_milestones_are_dated_facts_linked_to_a_goal(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    goal = (await factory.gql(net.token("counselor"), SET_GOAL, {"input": {
        "referralId": case.referral["id"], "domain": "SOCIAL_SUPPORT",
        "description": "Rebuild contact with her grandmother."}}))["data"]["setCareGoal"]["goal"]
    today = datetime.now(UTC).date()

    async def record(**data: Any) -> dict[str, Any]:
        body = await factory.gql(net.token("counselor"), RECORD_MILESTONE, {"input": {
            "referralId": case.referral["id"], "title": "Reunited with family", "achievedOn": today.isoformat(),
            **data}})
        payload: dict[str, Any] = body["data"]["recordMilestone"]
        return payload

    recorded = await record(goalId=goal["id"], note="Visit supervised by the children's officer.")
    assert recorded["userErrors"] == []
    milestone = recorded["milestone"]
    assert milestone["goal"] == {"id": goal["id"]} and milestone["referral"] == {"id": case.referral["id"]}
    assert milestone["achievedOn"] == today.isoformat()

    future = await record(achievedOn=(today + timedelta(days=3)).isoformat())
    assert [(e["field"], e["code"]) for e in future["userErrors"]] == [(["input", "achievedOn"], "INVALID")]
    other = await referred_case(factory, net, accept=True, assign=True)
    other_goal = (await factory.gql(net.token("counselor"), SET_GOAL, {"input": {
        "referralId": other.referral["id"], "domain": "SAFETY", "description": "Safety plan."}}))
    wrong_goal = await record(goalId=other_goal["data"]["setCareGoal"]["goal"]["id"])
    assert [(e["field"], e["code"]) for e in wrong_goal["userErrors"]] == [(["input", "goalId"], "NOT_FOUND")]
    bad_goal = await record(goalId="garbage")
    assert bad_goal["userErrors"][0]["code"] == "NOT_FOUND"

    referral = await _node(factory, net.token("counselor"), REFERRAL_CARE, case.referral["id"])
    assert referral["milestones"] == [{"id": milestone["id"]}]
    assert referral["goals"] == [{"id": goal["id"]}]
    as_manager = await _node(factory, net.token("manager"), REFERRAL_CARE, case.referral["id"])
    assert as_manager["milestones"] == [{"id": milestone["id"]}]


# ----------------------------------------------------------------------------- assessments


def _scores(values: dict[str, int]) -> list[dict[str, Any]]:
    return [{"subdomain": key, "score": score} for key, score in values.items()]


# Hand-computed: SAFETY (4+3+3)/3 = 3.33, LEGAL (2+2+3)/3 = 2.33, MENTAL (3+2+2+3)/4 = 2.5,
# ECONOMIC (1+2+2)/3 = 1.67, SOCIAL (4+4+3)/3 = 3.67, PHYSICAL (3+4)/2 = 3.5;
# overall = (10/3 + 7/3 + 5/2 + 5/3 + 11/3 + 7/2) / 6 = 17/6 = 2.83, below the 3.0 threshold.
MIXED = {
    "safety.housing_stable": 4, "safety.free_from_exploiter_contact": 3, "safety.safety_plan": 3,
    "legal.case_status": 2, "legal.protection_order": 2, "legal.documentation": 3,
    "mental.trauma_symptoms": 3, "mental.coping_skills": 2, "mental.self_worth": 2, "mental.substance_use": 3,
    "economic.education_enrolment": 1, "economic.income": 2, "economic.basic_needs": 2,
    "social.family_relationships": 4, "social.trusted_adult": 4, "social.community_acceptance": 3,
    "physical.health_care_access": 3, "physical.sexual_reproductive_health": 4,
}


async def test_assessments_are_scored_exactly_and_their_reads_audited(factory: Factory,
                                                                      owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    today = datetime.now(UTC).date().isoformat()

    async def record(scores: dict[str, int], **data: Any) -> dict[str, Any]:
        body = await factory.gql(net.token("counselor"), RECORD_ASSESSMENT, {"input": {
            "referralId": case.referral["id"], "instrument": "survivor-outcome", "administeredOn": today,
            "scores": _scores(scores), **data}})
        payload: dict[str, Any] = body["data"]["recordAssessment"]
        return payload

    mixed = await record(MIXED)
    assert mixed["userErrors"] == []
    assessment = mixed["assessment"]
    assert assessment["instrument"] == SURVIVOR_OUTCOME_ASSESSMENT["key"]
    assert assessment["domainScores"] == [
        {"domain": "SAFETY", "score": 3.33}, {"domain": "LEGAL_PROTECTION", "score": 2.33},
        {"domain": "MENTAL_WELLBEING", "score": 2.5}, {"domain": "ECONOMIC_EMPOWERMENT_AND_EDUCATION", "score": 1.67},
        {"domain": "SOCIAL_SUPPORT", "score": 3.67}, {"domain": "PHYSICAL_WELLBEING", "score": 3.5},
    ]
    assert assessment["overallScore"] == 2.83 and assessment["meetsRestorationThreshold"] is False

    at_threshold = await record({key: 3 for key in MIXED})
    assert at_threshold["assessment"]["overallScore"] == 3.0
    assert at_threshold["assessment"]["meetsRestorationThreshold"] is True

    unknown = await record(MIXED, instrument="phq-9")
    assert [(e["field"], e["code"]) for e in unknown["userErrors"]] == [(["input", "instrument"], "INVALID")]
    partial = await record({k: v for k, v in MIXED.items() if not k.startswith("physical.")})
    assert [(e["field"], e["code"]) for e in partial["userErrors"]] == [(["input", "scores"], "INVALID")]
    out_of_scale = await record({**MIXED, "safety.safety_plan": 5})
    assert out_of_scale["userErrors"][0]["field"] == ["input", "scores"]
    future = await record(MIXED, administeredOn=(datetime.now(UTC).date() + timedelta(days=2)).isoformat())
    assert future["userErrors"][0]["field"] == ["input", "administeredOn"]

    as_counselor = await _node(factory, net.token("counselor"), SURVIVOR_CARE, case.survivor["id"])
    assert [a["id"] for a in as_counselor["assessments"]] == [assessment["id"], at_threshold["assessment"]["id"]]
    as_manager = await _node(factory, net.token("manager"), SURVIVOR_CARE, case.survivor["id"])
    assert [a["overallScore"] for a in as_manager["assessments"]] == [2.83, 3.0]

    audit = await _rows(owner_engine, "SELECT purpose, organization_id FROM audit_event WHERE record_id = :id "
                        "AND action = 'read' AND record_type = 'Assessment'", id=assessment["id"])
    assert ("SERVICE_DELIVERY", net.partner.id) in [tuple(a) for a in audit]
    assert ("FEEDBACK_TO_REFERRER", net.ngo.id) in [tuple(a) for a in audit]


async def test_without_feedback_consent_the_referrer_sees_no_care_records(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True, consent=NO_FEEDBACK)
    goal = (await factory.gql(net.token("counselor"), SET_GOAL, {"input": {
        "referralId": case.referral["id"], "domain": "MENTAL_WELLBEING",
        "description": "Sleep through the night."}}))["data"]["setCareGoal"]["goal"]
    assessment = (await factory.gql(net.token("counselor"), RECORD_ASSESSMENT, {"input": {
        "referralId": case.referral["id"], "instrument": "survivor-outcome",
        "administeredOn": datetime.now(UTC).date().isoformat(), "scores": _scores(MIXED)}})
    )["data"]["recordAssessment"]["assessment"]
    survivor = await _node(factory, net.token("manager"), SURVIVOR_CARE, case.survivor["id"])
    assert survivor == {"goals": [], "assessments": []}
    for node_id in (goal["id"], assessment["id"]):
        assert await _node(factory, net.token("manager"), NODE_ID, node_id) is None
        assert await _node(factory, net.token("coordinator"), NODE_ID, node_id) == {"id": node_id}

    # Another partner's staff see none of it, exactly as if it did not exist.
    stranger = await network(factory)
    for node_id in (goal["id"], assessment["id"]):
        assert await _node(factory, stranger.token("coordinator"), NODE_ID, node_id) is None


# ----------------------------------------------------------------------------- no N+1


DASHBOARD = """query { referrals(first: 50, filter: {assignedToMe: true, status: [ACCEPTED, IN_PROGRESS]}) {
  edges { node { id status survivor { pseudonym ageBand goals { id } assessments { overallScore } }
    sessions(first: 5) { totalCount edges { node { startedAt durationMinutes attendance notes
      safeguardingConcern { level } counselor { displayName } } } }
    goals { domain achievementStatus history { achievementStatus } }
    milestones { title achievedOn goal { id } }
    safeguardingConcerns { level } } } } }"""


async def _busy_case(factory: Factory, net: Network) -> None:
    case = await referred_case(factory, net, accept=True, assign=True)
    token = net.token("counselor")
    await _logged(factory, token, case, notes="Session notes.", safeguardingConcern={"level": "LOW"})
    await _logged(factory, token, case, attendance="MISSED")
    goal = (await factory.gql(token, SET_GOAL, {"input": {
        "referralId": case.referral["id"], "domain": "SAFETY", "description": "Knows her safety plan."}})
    )["data"]["setCareGoal"]["goal"]
    await factory.gql(token, RECORD_MILESTONE, {"input": {
        "referralId": case.referral["id"], "goalId": goal["id"], "title": "First session attended",
        "achievedOn": datetime.now(UTC).date().isoformat()}})
    await factory.gql(token, RECORD_ASSESSMENT, {"input": {
        "referralId": case.referral["id"], "instrument": "survivor-outcome",
        "administeredOn": datetime.now(UTC).date().isoformat(), "scores": _scores(MIXED)}})


async def test_the_care_dashboard_runs_the_same_statements_for_more_referrals(factory: Factory,
                                                                             app: FastAPI) -> None:
    net = await network(factory)
    counts: list[int] = []
    for wanted in (2, 4):
        while len((await factory.gql(net.token("counselor"), DASHBOARD))["data"]["referrals"]["edges"]) < wanted:
            await _busy_case(factory, net)
        with sent_statements(app.state.pamoja.engine) as statements:
            body = await factory.gql(net.token("counselor"), DASHBOARD)
        edges = body["data"]["referrals"]["edges"]
        assert len(edges) == wanted
        assert all(e["node"]["sessions"]["totalCount"] == 2 and e["node"]["sessions"]["edges"][-1]["node"]["notes"]
                   == "Session notes." for e in edges)
        assert all(e["node"]["safeguardingConcerns"] == [{"level": "LOW"}] for e in edges)
        counts.append(len(statements))
    assert counts[0] == counts[1], counts
