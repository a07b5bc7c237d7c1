"""Worlds for the access matrix, built once per session, and the case counts printed at the end.

Building a referral with care records costs about ten API calls; asking what one actor sees costs
one. So each world (one NGO, the receiving partner, another partner, eleven actors, one survivor per
consent state) is built once, and many cheap queries run against it. Identical reads (same actor,
query and variables) are answered from a per-world memo: a read changes nothing another read can
observe, and the memo keeps the whole matrix well under a minute and a half on two cores.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from domain.enums import Role
from domain.ids import from_global_id, to_global_id
from domain.kenya import EAT
from tests.factories import Factory, Org, User
from tests.flows import act, create_referral, record_consent, register_survivor

# ----------------------------------------------------------------------------- actors

ACTORS = (
    "manager",            # NGO case manager who registered every survivor of the world
    "other_manager",      # NGO case manager of the same office, managing none of them
    "supervisor",         # NGO supervisor
    "coordinator",        # the receiving partner's coordinator
    "counselor",          # the partner counselor assigned to each accepted referral
    "other_counselor",    # a counselor of the same partner, never assigned
    "system",             # the receiving partner's system (client credentials)
    "other_coordinator",  # another partner's coordinator
    "other_system",       # another partner's system
    "analyst",            # NGO analyst
    "admin",              # NGO administrator
)
STAFF_ROLES: dict[str, tuple[str, Role]] = {
    "manager": ("ngo", Role.CASE_MANAGER),
    "other_manager": ("ngo", Role.CASE_MANAGER),
    "supervisor": ("ngo", Role.SUPERVISOR),
    "analyst": ("ngo", Role.ANALYST),
    "admin": ("ngo", Role.ADMIN),
    "coordinator": ("partner", Role.PARTNER_COORDINATOR),
    "counselor": ("partner", Role.COUNSELOR),
    "other_counselor": ("partner", Role.COUNSELOR),
    "other_coordinator": ("other_partner", Role.PARTNER_COORDINATOR),
}
SYSTEMS = {"system": "partner", "other_system": "other_partner"}
TOKEN_REFRESH_SECONDS = 120.0  # system tokens live 300 s; re-mint well before

NODE_TYPES = ("Survivor", "Consent", "Referral", "CounselingSession", "CareGoal", "Milestone", "Assessment")
# A SHARED case also holds the other partner's consent and referral for the same survivor.
GRAPHQL_TYPE = {**{t: t for t in NODE_TYPES}, "OtherPartnerConsent": "Consent", "OtherPartnerReferral": "Referral"}
# One id per type that names nothing, for the whole session: a hidden record must answer like it.
RANDOM_IDS = {t: to_global_id(t, uuid.uuid4()) for t in (*NODE_TYPES, "StaffUser", "Organization", "OAuthClient",
                                                          "DuplicateReview")}
MALFORMED_ID = "bm90LWFuLWlk"  # base64url of "not-an-id": decodes, names no type


def mutation(name: str, input_type: str, selection: str) -> str:
    return (f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {selection} "
            "userErrors { field code message } } }")


LOG_SESSION = mutation("logSession", "LogSessionInput", "session { id }")
SET_GOAL = mutation("setCareGoal", "SetCareGoalInput", "goal { id }")
RECORD_MILESTONE = mutation("recordMilestone", "RecordMilestoneInput", "milestone { id }")
RECORD_ASSESSMENT = mutation("recordAssessment", "RecordAssessmentInput", "assessment { id }")
WITHDRAW = mutation("withdrawConsent", "WithdrawConsentInput", "consent { id status }")

# Hand-checked scores for every sub-domain of the stored survivor-outcome instrument (see tests/api/test_care.py).
SCORES = {
    "safety.housing_stable": 4, "safety.free_from_exploiter_contact": 3, "safety.safety_plan": 3,
    "legal.case_status": 2, "legal.protection_order": 2, "legal.documentation": 3,
    "mental.trauma_symptoms": 3, "mental.coping_skills": 2, "mental.self_worth": 2, "mental.substance_use": 3,
    "economic.education_enrolment": 1, "economic.income": 2, "economic.basic_needs": 2,
    "social.family_relationships": 4, "social.trusted_adult": 4, "social.community_acceptance": 3,
    "physical.health_care_access": 3, "physical.sexual_reproductive_health": 4,
}


def today_eat() -> str:
    return datetime.now(EAT).date().isoformat()


def care_inputs(referral_id: str) -> dict[str, dict[str, Any]]:
    """Valid inputs for every care mutation on an accepted referral (no notes: a system may log too)."""
    return {
        "logSession": {"referralId": referral_id,
                       "startedAt": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
                       "durationMinutes": 45, "modality": "INDIVIDUAL", "sessionType": "THERAPY",
                       "attendance": "ATTENDED"},
        "setCareGoal": {"referralId": referral_id, "domain": "SOCIAL_SUPPORT",
                        "description": "Rebuild contact with a trusted adult."},
        "recordMilestone": {"referralId": referral_id, "title": "Returned to school", "achievedOn": today_eat()},
        "recordAssessment": {"referralId": referral_id, "instrument": "survivor-outcome",
                             "administeredOn": today_eat(),
                             "scores": [{"subdomain": k, "score": v} for k, v in SCORES.items()]},
    }


def raw_id(global_id: str) -> uuid.UUID:
    decoded = from_global_id(global_id)
    assert decoded is not None, global_id
    return decoded[1]


# ----------------------------------------------------------------------------- the cast


@dataclass
class Cast:
    """One NGO, the receiving partner and another partner, with the eleven actors of the matrix."""

    factory: Factory
    engine: AsyncEngine
    orgs: dict[str, Org]
    users: dict[str, User]
    clients: dict[str, str]
    client_gids: dict[str, str]  # the OAuthClient global ids of the systems' clients
    compiled: int = 0  # reads the read compiler answered (each compared with the resolver path)
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    async def token(self, actor: str) -> str:
        cached = self._tokens.get(actor)
        if cached is not None and time.monotonic() - cached[1] < TOKEN_REFRESH_SECONDS:
            return cached[0]
        if actor in self.clients:
            token = await self.factory.system_token(self.orgs[SYSTEMS[actor]], self.clients[actor])
        else:
            token = await self.factory.token(self.users[actor])
        self._tokens[actor] = (token, time.monotonic())
        return token

    def org_of(self, actor: str) -> Org:
        return self.orgs[SYSTEMS[actor]] if actor in SYSTEMS else self.users[actor].org

    async def gql(self, actor: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The answer; when the read compiler gave it, the resolver path must give the same, byte for byte
        (so every read of the access and BOLA matrices compares the two engines)."""
        token = await self.token(actor)
        compiler = self.factory.app.state.graphql_schema.compiler
        answered = compiler.completed
        response = await self.factory.gql_response(token, query, variables)
        assert response.status_code in (200, 400, 422), response.text
        if compiler.completed > answered:
            self.compiled += 1
            compiler.enabled = False
            try:
                resolved = await self.factory.gql_response(token, query, variables)
            finally:
                compiler.enabled = True
            assert (response.status_code, response.content) == (resolved.status_code, resolved.content), \
                (actor, query, variables, response.text, resolved.text)
        body: dict[str, Any] = response.json()
        return body

    async def done(self, actor: str, name: str, query: str, data: dict[str, Any]) -> dict[str, Any]:
        """Run a mutation that must succeed; the payload."""
        body = await self.gql(actor, query, {"input": data})
        assert not body.get("errors"), body
        payload: dict[str, Any] = body["data"][name]
        assert payload["userErrors"] == [], payload
        return payload

    async def snapshot(self) -> dict[str, Any]:
        """Everything a mutation could change in this cast's organizations, as comparable values."""
        ngo = self.orgs["ngo"].id
        orgs = [o.id for o in self.orgs.values()]
        sql = """SELECT
          (SELECT count(*) FROM survivor WHERE organization_id = :ngo) AS survivors,
          (SELECT md5(coalesce(string_agg(id::text || status || version || coalesce(withdrawn_at::text, ''), ','
             ORDER BY id), '')) FROM consent WHERE organization_id = :ngo) AS consents,
          (SELECT md5(coalesce(string_agg(id::text || status || version
             || coalesce(assigned_counselor_id::text, ''), ',' ORDER BY id), ''))
             FROM referral WHERE referring_organization_id = :ngo) AS referrals,
          (SELECT count(*) FROM referral_status_change WHERE organization_id = :ngo) AS history,
          (SELECT count(*) FROM counseling_session WHERE referring_organization_id = :ngo) AS sessions,
          (SELECT md5(coalesce(string_agg(id::text || lifecycle_status || achievement_status || version, ','
             ORDER BY id), '')) FROM care_goal WHERE referring_organization_id = :ngo) AS goals,
          (SELECT count(*) FROM goal_progress WHERE referring_organization_id = :ngo) AS progress,
          (SELECT count(*) FROM milestone WHERE referring_organization_id = :ngo) AS milestones,
          (SELECT count(*) FROM assessment WHERE referring_organization_id = :ngo) AS assessments,
          (SELECT count(*) FROM outbox_event WHERE organization_id IN (:o1, :o2, :o3)) AS events"""
        async with self.engine.connect() as connection:
            row = (await connection.execute(text(sql), {"ngo": ngo, "o1": orgs[0], "o2": orgs[1],
                                                        "o3": orgs[2]})).one()
        return dict(row._mapping)


async def build_cast(factory: Factory, engine: AsyncEngine) -> Cast:
    orgs = {
        "ngo": await factory.ngo(),
        "partner": await factory.org(counties=("001", "003"), services=("PSYCHOSOCIAL_COUNSELING", "SHELTER")),
        "other_partner": await factory.org(counties=("001", "003"), services=("PSYCHOSOCIAL_COUNSELING",)),
    }
    users = {name: await factory.user(orgs[org], role) for name, (org, role) in STAFF_ROLES.items()}
    registered = {name: await factory.oauth_client(orgs[org]) for name, org in SYSTEMS.items()}
    return Cast(factory=factory, engine=engine, orgs=orgs, users=users,
                clients={name: c.client_id for name, c in registered.items()},
                client_gids={name: c.id for name, c in registered.items()})


# ----------------------------------------------------------------------------- cases (one survivor each)


@dataclass(frozen=True)
class CaseSpec:
    """How far one survivor's story goes: consent terms, referral status, care records, what happens last."""

    consent: dict[str, Any] | None = None  # recordConsent overrides; None: no consent at all
    referral: str | None = None  # DRAFT, REQUESTED, ACCEPTED (and assigned), IN_PROGRESS, ON_HOLD
    care: bool = False  # a session with notes and a HIGH concern, a goal, a milestone, an assessment
    then: str | None = None  # withdraw, expire, share (also referred to, and accepted by, the other partner)

    @property
    def records(self) -> frozenset[str]:
        """The record types this case holds."""
        found = {"Survivor"}
        if self.consent is not None:
            found.add("Consent")
        if self.referral is not None:
            found.add("Referral")
        if self.care:
            found |= {"CounselingSession", "CareGoal", "Milestone", "Assessment"}
        if self.then == "share":
            found |= {"OtherPartnerConsent", "OtherPartnerReferral"}
        return frozenset(found)


FULL: dict[str, Any] = {}
READ_STATES: dict[str, CaseSpec] = {
    "FULL": CaseSpec(FULL, "ACCEPTED", care=True),
    "NO_FEEDBACK": CaseSpec({"purposes": ["REFERRAL", "SERVICE_DELIVERY"]}, "ACCEPTED", care=True),
    "NO_IDENTITY": CaseSpec({"dataCategories": ["SESSION_ATTENDANCE", "SESSION_NOTES", "ASSESSMENTS"]},
                            "ACCEPTED", care=True),
    "NO_CONTACT_NOTES": CaseSpec({"dataCategories": ["IDENTITY", "CASE_SUMMARY", "SESSION_ATTENDANCE", "ASSESSMENTS"]},
                                 "ACCEPTED", care=True),
    "NO_CARE_FEEDBACK": CaseSpec({"dataCategories": ["IDENTITY", "CONTACT", "CASE_SUMMARY", "SESSION_NOTES"]},
                                 "ACCEPTED", care=True),
    "WITHDRAWN": CaseSpec(FULL, "ACCEPTED", care=True, then="withdraw"),
    "EXPIRED": CaseSpec(FULL, "ACCEPTED", care=True, then="expire"),
    "REQUESTED": CaseSpec(FULL, "REQUESTED"),
    "DRAFT": CaseSpec(FULL, "DRAFT"),
    "CONSENT_ONLY": CaseSpec(FULL),
    "NO_CONSENT": CaseSpec(None),
    "SHARED": CaseSpec(FULL, "ACCEPTED", care=True, then="share"),
}
WRITE_STATES: dict[str, CaseSpec] = {
    "REQUESTED": CaseSpec(FULL, "REQUESTED"),
    "ACCEPTED": CaseSpec(FULL, "ACCEPTED", care=True),
    "WITHDRAWN": CaseSpec(FULL, "ACCEPTED", care=True, then="withdraw"),
    "EXPIRED": CaseSpec(FULL, "ACCEPTED", care=True, then="expire"),
    "DRAFT": CaseSpec(FULL, "DRAFT"),
}


@dataclass
class Case:
    state: str
    ids: dict[str, str]
    legal_name: str
    phone: str
    birth_year: int
    reason: str
    notes: str | None = None


async def build_case(cast: Cast, state: str, spec: CaseSpec) -> Case:
    f = cast.factory
    manager = await cast.token("manager")
    partner = cast.orgs["partner"]
    legal_name = f"Zawadi Matrix {secrets.token_hex(4)}"
    phone = f"+2547{secrets.randbelow(10**8):08d}"
    reason = f"Needs trauma-informed counseling {secrets.token_hex(3)}."
    survivor = await register_survivor(f, manager, legalName=legal_name, phone=phone, birthYear=2011)
    case = Case(state=state, ids={"Survivor": survivor["id"]}, legal_name=legal_name, phone=phone,
                birth_year=2011, reason=reason)
    if spec.consent is not None:
        consent = await record_consent(f, manager, survivor["id"], partner.gid, **spec.consent)
        case.ids["Consent"] = consent["id"]
    if spec.referral is not None:
        referral = await create_referral(f, manager, survivor["id"], partner.gid, case.ids["Consent"],
                                         reason=reason, draft=spec.referral == "DRAFT")
        case.ids["Referral"] = referral["id"]
        await _advance(cast, case.ids["Referral"], spec.referral)
    if spec.care:
        await _care(cast, case)
    if spec.then == "withdraw":
        await cast.done("manager", "withdrawConsent", WITHDRAW,
                        {"consentId": case.ids["Consent"], "reason": "The guardian withdrew consent."})
    elif spec.then == "expire":
        async with cast.engine.begin() as connection:
            await connection.execute(text(
                "UPDATE consent SET valid_from = now() - interval '2 days', valid_until = now() - interval '1 day' "
                "WHERE id = :id"), {"id": raw_id(case.ids["Consent"])})
    elif spec.then == "share":
        other = cast.orgs["other_partner"]
        consent = await record_consent(f, manager, survivor["id"], other.gid)
        referral = await create_referral(f, manager, survivor["id"], other.gid, consent["id"])
        accepted = await act(f, await cast.token("other_coordinator"), "acceptReferral", "ReferralActionInput",
                             referralId=referral["id"])
        assert accepted["userErrors"] == [], accepted
        case.ids["OtherPartnerConsent"], case.ids["OtherPartnerReferral"] = consent["id"], referral["id"]
    return case


async def _advance(cast: Cast, referral_id: str, status: str) -> None:
    """REQUESTED → ACCEPTED (+ counselor assigned) → IN_PROGRESS → ON_HOLD, as far as `status`."""
    steps: dict[str, list[tuple[str, str, dict[str, str]]]] = {
        "ACCEPTED": [("acceptReferral", "ReferralActionInput", {}),
                     ("assignCounselor", "AssignCounselorInput", {"counselorId": cast.users["counselor"].gid})],
        "IN_PROGRESS": [("startReferral", "ReferralActionInput", {})],
        "ON_HOLD": [("holdReferral", "ReferralReasonInput", {"reason": "Family travelled upcountry."})],
    }
    order = ["ACCEPTED", "IN_PROGRESS", "ON_HOLD"]
    if status not in order:
        return
    token = await cast.token("coordinator")
    for stage in order[: order.index(status) + 1]:
        for name, input_type, extra in steps[stage]:
            payload = await act(cast.factory, token, name, input_type, referralId=referral_id, **extra)
            assert payload["userErrors"] == [], payload


async def _care(cast: Cast, case: Case) -> None:
    referral_id = case.ids["Referral"]
    inputs = care_inputs(referral_id)
    case.notes = f"Sleeps badly since the rescue; talked about school {secrets.token_hex(4)}."
    session = await cast.done("counselor", "logSession", LOG_SESSION, {
        **inputs["logSession"], "notes": case.notes,
        "safeguardingConcern": {"level": "HIGH", "description": "Exploiter seen near the shelter."}})
    case.ids["CounselingSession"] = session["session"]["id"]
    goal = await cast.done("counselor", "setCareGoal", SET_GOAL, inputs["setCareGoal"])
    case.ids["CareGoal"] = goal["goal"]["id"]
    milestone = await cast.done("counselor", "recordMilestone", RECORD_MILESTONE,
                                {**inputs["recordMilestone"], "goalId": case.ids["CareGoal"]})
    case.ids["Milestone"] = milestone["milestone"]["id"]
    assessment = await cast.done("counselor", "recordAssessment", RECORD_ASSESSMENT, inputs["recordAssessment"])
    case.ids["Assessment"] = assessment["assessment"]["id"]


# ----------------------------------------------------------------------------- worlds


@dataclass
class World:
    cast: Cast
    specs: dict[str, CaseSpec]
    cases: dict[str, Case]
    memo: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    compiled_reads: set[tuple[str, str, str]] = field(default_factory=set)
    fresh_care: bool = True

    async def read(self, actor: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """A read, memoised per (actor, query, variables) for the life of the world."""
        key = (actor, query, json.dumps(variables or {}, sort_keys=True))
        if key not in self.memo:
            before = self.cast.compiled
            self.memo[key] = await self.cast.gql(actor, query, variables)
            if self.cast.compiled > before:
                self.compiled_reads.add(key)
        return self.memo[key]

    def compiled(self, actor: str, query: str, variables: dict[str, Any] | None = None) -> bool:
        """Whether the read compiler answered that (memoised) read."""
        return (actor, query, json.dumps(variables or {}, sort_keys=True)) in self.compiled_reads

    async def fresh(self, state: str) -> Case:
        """A new survivor in `state`, for a test whose allowed mutation changes it for good.

        Without care records unless a goal is needed: they cost four calls and no status change needs them.
        """
        spec = self.specs[state]
        return await build_case(self.cast, state, replace(spec, care=spec.care and self.fresh_care))


async def build_world(factory: Factory, engine: AsyncEngine, specs: dict[str, CaseSpec]) -> World:
    cast = await build_cast(factory, engine)
    cases = {state: await build_case(cast, state, spec) for state, spec in specs.items()}
    return World(cast=cast, specs=specs, cases=cases)


@pytest.fixture(scope="session")
def matrix_factory(owner_engine: AsyncEngine, settings: Settings, client: httpx.AsyncClient,
                   app: FastAPI) -> Factory:
    return Factory(engine=owner_engine, settings=settings, client=client, app=app)


@pytest.fixture(scope="session")
async def read_world(matrix_factory: Factory, owner_engine: AsyncEngine) -> AsyncIterator[World]:
    yield await build_world(matrix_factory, owner_engine, READ_STATES)


@pytest.fixture(scope="session")
async def write_world(matrix_factory: Factory, owner_engine: AsyncEngine) -> AsyncIterator[World]:
    world = await build_world(matrix_factory, owner_engine, WRITE_STATES)
    world.fresh_care = False  # fresh survivors here serve status changes (accept, cancel, withdraw) only
    yield world


# ----------------------------------------------------------------------------- the printed count

COUNTED = {"test_access_matrix.py": "access matrix", "test_bola.py": "BOLA", "test_mutations_by_actor.py":
           "mutations by actor"}
COUNTS = pytest.StashKey[Counter[str]]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    config.stash[COUNTS] = Counter(item.path.name for item in items if item.path.parent == here)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    counts = config.stash.get(COUNTS, Counter())
    if not counts:
        return
    parts = [f"{label}: {counts[name]} cases" for name, label in COUNTED.items() if counts[name]]
    terminalreporter.write_line("; ".join(parts) + f"; total {sum(counts.values())}")
