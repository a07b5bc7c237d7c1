"""Partner matching: eligibility exclusions, ordering by the documented weights, reasons, track records."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.partner_stats import candidates, track_records
from domain.directory import PartnerCandidate, ServiceOffer, TrackRecord
from domain.enums import CapacityStatus, Role, ServiceStatus, ServiceType, Sex
from partners.matching import (
    DEFAULT_WEIGHTS,
    MatchWeights,
    SurvivorFacts,
    duration_text,
    rank_partners,
)
from tests.factories import Factory, Org

TODAY = date(2026, 6, 1)
COUNSELING = ServiceType.PSYCHOSOCIAL_COUNSELING
# Age 13 on TODAY by the conservative rule (2026 - 2012 - 1), a girl in Kilifi speaking Swahili and Giriama.
SURVIVOR = SurvivorFacts(birth_year=2012, sex=Sex.FEMALE, county="003", languages=("sw", "nyf"))
NEW = TrackRecord(0, 0, 0, None, None)
GOOD = TrackRecord(12, 11, 1, 30.0, 100.0)


def partner(name: str = "Partner", *, organization_id: uuid.UUID | None = None, active: bool = True,
            counties: tuple[str, ...] = ("003",), languages: tuple[str, ...] = ("sw",),
            sexes: tuple[Sex, ...] = (), min_age: int | None = None, max_age: int | None = None,
            service: ServiceType = COUNSELING, status: ServiceStatus = ServiceStatus.ACTIVE,
            capacity: CapacityStatus = CapacityStatus.CAPACITY, slots: int | None = 3,
            service_min_age: int | None = None, service_max_age: int | None = None) -> PartnerCandidate:
    offer = ServiceOffer(status=status, capacity_status=capacity, open_slots=slots, min_age=service_min_age,
                         max_age=service_max_age)
    return PartnerCandidate(organization_id=organization_id or uuid.uuid4(), name=name, active=active,
                            counties=counties, languages=languages, sexes_served=sexes, services={service: offer},
                            min_age=min_age, max_age=max_age)


def rank(*candidates_: PartnerCandidate, survivor: SurvivorFacts = SURVIVOR,
         records: dict[uuid.UUID, TrackRecord] | None = None, weights: MatchWeights = DEFAULT_WEIGHTS) -> list[Any]:
    return rank_partners(survivor=survivor, service=COUNSELING, candidates=candidates_, track_records=records or {},
                         today=TODAY, weights=weights)


# ----------------------------------------------------------------------------- who is left out

ELIGIBILITY: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("eligible", {}, {}, True),
    ("inactive organization", {"active": False}, {}, False),
    ("service not offered", {"service": ServiceType.SHELTER}, {}, False),
    ("service inactive", {"status": ServiceStatus.INACTIVE}, {}, False),
    ("service temporarily closed", {"status": ServiceStatus.TEMPORARILY_CLOSED}, {}, False),
    ("no capacity", {"capacity": CapacityStatus.NO_CAPACITY}, {}, False),
    ("waitlist still serves", {"capacity": CapacityStatus.WAITLIST}, {}, True),
    ("organization too old for her", {"min_age": 14}, {}, False),
    ("organization for younger children", {"max_age": 12}, {}, False),
    ("organization upper bound is inclusive", {"max_age": 13}, {}, True),
    ("organization lower bound is inclusive", {"min_age": 13}, {}, True),
    ("service for older children", {"service_min_age": 14}, {}, False),
    ("service for younger children", {"service_max_age": 12}, {}, False),
    ("both ranges must hold", {"min_age": 5, "max_age": 17, "service_max_age": 10}, {}, False),
    ("age is conservative like age_band: born 2008 is 17", {"max_age": 17}, {"birth_year": 2008}, True),
    ("born 2007 is 18 in 2026", {"max_age": 17}, {"birth_year": 2007}, False),
    ("unknown birth year excludes no one", {"max_age": 5}, {"birth_year": None}, True),
    ("sex not served", {"sexes": (Sex.MALE,)}, {}, False),
    ("sex served", {"sexes": (Sex.FEMALE, Sex.INTERSEX)}, {}, True),
    ("undisclosed sex and a single-sex service", {"sexes": (Sex.FEMALE,)}, {"sex": Sex.UNDISCLOSED}, False),
    ("undisclosed sex and a service for all", {"sexes": ()}, {"sex": Sex.UNDISCLOSED}, True),
    ("undisclosed listed explicitly", {"sexes": (Sex.FEMALE, Sex.UNDISCLOSED)}, {"sex": Sex.UNDISCLOSED}, True),
    ("other county and language still eligible", {"counties": ("047",), "languages": ("fr",)}, {}, True),
]


@pytest.mark.parametrize(("case", "partner_args", "survivor_args", "included"), ELIGIBILITY,
                         ids=[case[0] for case in ELIGIBILITY])
def test_partners_that_cannot_serve_are_left_out(case: str, partner_args: dict[str, Any],
                                                 survivor_args: dict[str, Any], included: bool) -> None:
    candidate = partner(**partner_args)
    survivor = dataclasses.replace(SURVIVOR, **survivor_args)
    ranked = rank(candidate, survivor=survivor)
    assert [m.organization_id for m in ranked] == ([candidate.organization_id] if included else [])


# ----------------------------------------------------------------------------- ordering by the weights

ORDERING: list[tuple[str, dict[str, Any], TrackRecord, float]] = [
    # name, partner arguments, track record, exact score (weights: county 30, language 25, capacity 20,
    # acceptance 12, time to accept 7, time to first session 6; no history = 0.5 of the last three)
    ("county, language, 3 slots, new", {}, NEW, 30 + 25 + 20 * 0.72 + 12.5),
    ("county only", {"languages": ("en",)}, NEW, 30 + 20 * 0.72 + 12.5),
    ("language only", {"counties": ("001",)}, NEW, 25 + 20 * 0.72 + 12.5),
    ("language and waitlist", {"counties": ("001",), "capacity": CapacityStatus.WAITLIST}, NEW, 25 + 4 + 12.5),
    ("ten slots, nothing else", {"counties": ("001",), "languages": ("en",), "slots": 10}, NEW, 20 + 12.5),
    ("twenty slots saturate at ten", {"counties": ("001",), "languages": ("en",), "slots": 20}, NEW, 20 + 12.5),
    ("capacity with unknown slots", {"counties": ("001",), "languages": ("en",), "slots": None}, NEW, 12 + 12.5),
    ("good track record", {}, GOOD, 88.47),
]


@pytest.mark.parametrize(("case", "partner_args", "record", "score"), ORDERING, ids=[c[0] for c in ORDERING])
def test_scores_follow_the_documented_weights(case: str, partner_args: dict[str, Any], record: TrackRecord,
                                              score: float) -> None:
    candidate = partner(**partner_args)
    [match] = rank(candidate, records={candidate.organization_id: record})
    assert match.score == pytest.approx(round(score, 2))


def test_ranking_orders_by_weight() -> None:
    county_only = partner("A county", languages=("en",))
    language_waitlist = partner("B language waitlist", counties=("001",), capacity=CapacityStatus.WAITLIST)
    capacity_only = partner("C capacity", counties=("001",), languages=("en",), slots=10)
    everything = partner("D everything")
    ranked = rank(capacity_only, language_waitlist, county_only, everything)
    # county (30) > language (25) > capacity (20): serving the child's county outweighs a free slot elsewhere.
    assert [m.organization_id for m in ranked] == [everything.organization_id, county_only.organization_id,
                                                   language_waitlist.organization_id, capacity_only.organization_id]


def test_more_open_slots_rank_higher_and_capacity_beats_waitlist() -> None:
    many, few = partner("Many", slots=5), partner("Few", slots=2)
    none, waitlist = partner("Unknown slots", slots=None), partner("Waitlist", capacity=CapacityStatus.WAITLIST)
    ranked = rank(waitlist, few, none, many)
    assert [m.organization_id for m in ranked] == [many.organization_id, few.organization_id,
                                                   none.organization_id, waitlist.organization_id]


def test_track_record_counts_and_little_history_is_neutral() -> None:
    good, new, little, poor = partner("Good"), partner("New"), partner("Little"), partner("Poor")
    records = {
        good.organization_id: GOOD,
        little.organization_id: TrackRecord(2, 0, 2, None, None),  # two rejections: too few to judge
        poor.organization_id: TrackRecord(10, 3, 7, 200.0, None),
    }
    ranked = rank(poor, little, new, good, records=records)
    scores = {m.organization_id: m.score for m in ranked}
    assert ranked[0].organization_id == good.organization_id
    assert ranked[-1].organization_id == poor.organization_id
    # Little history scores exactly like no history: neither penalised nor favoured.
    assert scores[little.organization_id] == scores[new.organization_id]
    assert scores[poor.organization_id] == pytest.approx(round(69.4 + 12 * 0.3 + 7 * 48 / 248 + 6 * 0.5, 2))


def test_ties_are_broken_by_name_then_id() -> None:
    low, high = sorted((uuid.uuid4(), uuid.uuid4()), key=str)
    same_high, same_low = partner("Same", organization_id=high), partner("Same", organization_id=low)
    beta, lower_alpha, upper_alpha = partner("Beta"), partner("alpha"), partner("Alpha")
    for order in ([same_high, beta, lower_alpha, same_low, upper_alpha],
                  [upper_alpha, same_low, lower_alpha, beta, same_high]):
        ranked = rank(*order)
        assert len({m.score for m in ranked}) == 1
        assert [m.organization_id for m in ranked] == [
            upper_alpha.organization_id, lower_alpha.organization_id, beta.organization_id, low, high]


def test_weights_can_be_changed_and_must_not_be_negative() -> None:
    near, talks = partner("Near", languages=("en",)), partner("Talks", counties=("001",))
    assert rank(near, talks)[0].organization_id == near.organization_id
    language_first = MatchWeights(county=10, language=40)
    assert rank(near, talks, weights=language_first)[0].organization_id == talks.organization_id
    with pytest.raises(ValueError):
        MatchWeights(capacity=-1)


# ----------------------------------------------------------------------------- reasons

REASONS: list[tuple[str, dict[str, Any], TrackRecord, dict[str, Any], tuple[str, ...]]] = [
    ("everything good", {"languages": ("en", "sw", "nyf")}, GOOD, {},
     ("serves Kilifi", "speaks Swahili and Giriama", "has capacity (3 open slots)", "accepts 92% within 2 days",
      "first session attended within 5 days")),
    ("nothing in common, waitlist, new", {"counties": ("001",), "languages": ("en",),
                                          "capacity": CapacityStatus.WAITLIST}, NEW, {},
     ("does not serve Kilifi", "no shared language", "waitlist", "new partner: no referral history yet")),
    ("one slot, little history", {"slots": 1}, TrackRecord(2, 1, 1, 5.5, None), {},
     ("serves Kilifi", "speaks Swahili", "has capacity (1 open slot)", "little referral history yet (2 referrals)")),
    ("one pending referral", {"slots": 0}, TrackRecord(1, 0, 0, None, None), {},
     ("serves Kilifi", "speaks Swahili", "has capacity", "little referral history yet (1 referral)")),
    ("never accepts", {"slots": None}, TrackRecord(4, 0, 4, None, None), {},
     ("serves Kilifi", "speaks Swahili", "has capacity", "accepts 0% of referrals")),
    ("fast partner", {}, TrackRecord(5, 5, 0, 5.5, 20.0), {},
     ("serves Kilifi", "speaks Swahili", "has capacity (3 open slots)", "accepts 100% within 6 hours",
      "first session attended within 20 hours")),
    ("region subtags match", {"counties": ("002", "003"), "languages": ("sw",)}, NEW, {"languages": ("sw-KE",)},
     ("serves Kilifi", "speaks Swahili", "has capacity (3 open slots)", "new partner: no referral history yet")),
    ("three shared languages", {"languages": ("dig", "nyf", "sw")}, NEW, {"languages": ("sw", "nyf", "dig")},
     ("serves Kilifi", "speaks Swahili, Giriama and Digo", "has capacity (3 open slots)",
      "new partner: no referral history yet")),
    ("Mombasa", {"counties": ("001",)}, NEW, {"county": "001"},
     ("serves Mombasa", "speaks Swahili", "has capacity (3 open slots)", "new partner: no referral history yet")),
    ("unknown county and languages say nothing", {}, NEW, {"county": None, "languages": ()},
     ("has capacity (3 open slots)", "new partner: no referral history yet")),
]


@pytest.mark.parametrize(("case", "partner_args", "record", "survivor_args", "reasons"), REASONS,
                         ids=[c[0] for c in REASONS])
def test_reasons_read_like_a_case_manager_would_say_them(case: str, partner_args: dict[str, Any],
                                                         record: TrackRecord, survivor_args: dict[str, Any],
                                                         reasons: tuple[str, ...]) -> None:
    candidate = partner(**partner_args)
    [match] = rank(candidate, survivor=dataclasses.replace(SURVIVOR, **survivor_args),
                   records={candidate.organization_id: record})
    assert match.reasons == reasons


@pytest.mark.parametrize(("hours", "expected"), [
    (0.0, "1 hour"), (0.4, "1 hour"), (1.0, "1 hour"), (1.2, "2 hours"), (24.0, "24 hours"),
    (24.5, "2 days"), (48.0, "2 days"), (49.0, "3 days"),
])
def test_durations_round_up(hours: float, expected: str) -> None:
    assert duration_text(hours) == expected


def test_reasons_never_carry_survivor_data() -> None:
    assert {f.name for f in dataclasses.fields(SurvivorFacts)} == {"birth_year", "sex", "county", "languages"}
    for birth_year in (2009, 2011, 2012, 2014):
        survivor = dataclasses.replace(SURVIVOR, birth_year=birth_year)
        ranked = rank(partner("A"), partner("B", slots=7), partner("C", capacity=CapacityStatus.WAITLIST),
                      survivor=survivor, records={})
        text_ = " ".join(reason for match in ranked for reason in match.reasons)
        age = TODAY.year - birth_year - 1
        assert str(birth_year) not in text_
        assert f"{age} " not in text_ and "female" not in text_.lower()


# ----------------------------------------------------------------------------- SQL: track records and candidates

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


async def _referral(connection: Any, *, ngo: Org, partner_org: Org, survivor: uuid.UUID, consent: uuid.UUID,
                    status: str, requested_at: datetime | None, changes: list[tuple[str, float]],
                    sessions: list[tuple[float, str]], counselor: uuid.UUID) -> uuid.UUID:
    """A referral with its history: changes and sessions are (to_status | attendance, hours after request)."""
    created = requested_at or T0
    referral_id: uuid.UUID = (await connection.execute(text(
        "INSERT INTO referral (survivor_id, referring_organization_id, receiving_organization_id, consent_id, "
        "service, priority, status, created_at) VALUES (:survivor, :ngo, :partner, :consent, "
        "'PSYCHOSOCIAL_COUNSELING', 'ROUTINE', :status, :created) RETURNING id"),
        {"survivor": survivor, "ngo": ngo.id, "partner": partner_org.id, "consent": consent, "status": status,
         "created": created})).scalar_one()
    history = ([("REQUESTED", 0.0)] if requested_at is not None else []) + changes
    previous: str | None = None
    for to_status, hours in history:
        await connection.execute(text(
            "INSERT INTO referral_status_change (referral_id, organization_id, from_status, to_status, actor, at) "
            "VALUES (:referral, :org, :from_status, :to_status, 'test', :at)"),
            {"referral": referral_id, "org": ngo.id, "from_status": previous, "to_status": to_status,
             "at": created + timedelta(hours=hours)})
        previous = to_status
    for hours, attendance in sessions:
        await connection.execute(text(
            "INSERT INTO counseling_session (referral_id, survivor_id, organization_id, referring_organization_id, "
            "counselor_id, started_at, duration_minutes, modality, session_type, attendance) VALUES (:referral, "
            ":survivor, :partner, :ngo, :counselor, :at, 50, 'INDIVIDUAL', 'THERAPY', :attendance)"),
            {"referral": referral_id, "survivor": survivor, "partner": partner_org.id, "ngo": ngo.id,
             "counselor": counselor, "at": created + timedelta(hours=hours), "attendance": attendance})
    return referral_id


async def test_track_records_compute_acceptance_and_medians_from_history(factory: Factory,
                                                                         owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    busy, quiet = await factory.org(counties=("003",)), await factory.org(counties=("003",))
    counselor = await factory.user(busy, Role.COUNSELOR)
    async with owner_engine.begin() as connection:
        survivor = (await connection.execute(text(
            "INSERT INTO survivor (organization_id, pseudonym, sex, risk_level) "
            "VALUES (:org, 'Track record test', 'FEMALE', 'LOW') RETURNING id"), {"org": ngo.id})).scalar_one()
        consent = (await connection.execute(text(
            "INSERT INTO consent (survivor_id, organization_id, recipient_id, purposes, data_categories, given_by) "
            "VALUES (:survivor, :ngo, :partner, ARRAY['REFERRAL'], ARRAY['CASE_SUMMARY'], 'GUARDIAN') "
            "RETURNING id"), {"survivor": survivor, "ngo": ngo.id, "partner": busy.id})).scalar_one()
        common = {"ngo": ngo, "partner_org": busy, "survivor": survivor, "consent": consent,
                  "counselor": counselor.id}
        # Accepted after 10 h; a missed session at 30 h, first attended at 48 h.
        await _referral(connection, status="ACCEPTED", requested_at=T0, changes=[("ACCEPTED", 10)],
                        sessions=[(30, "MISSED"), (48, "ATTENDED"), (60, "ATTENDED")], **common)
        # Accepted after 20 h, first attended at 100 h, since completed.
        await _referral(connection, status="COMPLETED", requested_at=T0 + timedelta(days=1),
                        changes=[("ACCEPTED", 20), ("IN_PROGRESS", 30), ("COMPLETED", 400)],
                        sessions=[(100, "ATTENDED")], **common)
        # Accepted after 60 h, no session attended yet.
        await _referral(connection, status="IN_PROGRESS", requested_at=T0 + timedelta(days=2),
                        changes=[("ACCEPTED", 60), ("IN_PROGRESS", 70)], sessions=[(80, "MISSED")], **common)
        # Rejected after 5 h.
        await _referral(connection, status="REJECTED", requested_at=T0 + timedelta(days=3),
                        changes=[("REJECTED", 5)], sessions=[], **common)
        # Never sent, and entered in error: neither counts.
        await _referral(connection, status="DRAFT", requested_at=None, changes=[], sessions=[], **common)
        await _referral(connection, status="ENTERED_IN_ERROR", requested_at=T0, changes=[("ENTERED_IN_ERROR", 1)],
                        sessions=[], **common)

        records = await track_records(connection, [busy.id, quiet.id])
        loaded = {c.organization_id: c for c in await candidates(connection, COUNSELING)}

    assert records == {busy.id: TrackRecord(referrals_received=4, accepted=3, rejected=1,
                                            median_hours_to_accept=20.0,
                                            median_hours_to_first_attended_session=74.0)}
    assert busy.id in loaded and quiet.id in loaded
    ranked = rank_partners(survivor=SURVIVOR, service=COUNSELING, candidates=[loaded[busy.id], loaded[quiet.id]],
                           track_records=records, today=TODAY)
    reasons = {m.organization_id: m.reasons for m in ranked}
    assert reasons[busy.id] == ("serves Kilifi", "speaks Swahili", "has capacity",
                                "accepts 75% within 20 hours", "first session attended within 4 days")
    assert reasons[quiet.id][-1] == "new partner: no referral history yet"


async def test_candidates_are_active_partners_listing_the_service(factory: Factory,
                                                                  owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    girls = await factory.org(counties=("002",), languages=("sw", "dig"), services=("SHELTER", "MEDICAL"),
                              min_age=10, max_age=17)
    closed = await factory.org(services=("SHELTER",))
    gone = await factory.org(services=("SHELTER",))
    counseling_only = await factory.org(services=("PSYCHOSOCIAL_COUNSELING",))
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE organization SET sexes_served = ARRAY['FEMALE'] WHERE id = :id"),
                                 {"id": girls.id})
        await connection.execute(text(
            "UPDATE organization_service SET capacity_status = 'WAITLIST', open_slots = 2 "
            "WHERE organization_id = :id AND service_type = 'SHELTER'"), {"id": girls.id})
        await connection.execute(text(
            "UPDATE organization_service SET status = 'TEMPORARILY_CLOSED' WHERE organization_id = :id"),
            {"id": closed.id})
        await connection.execute(text("UPDATE organization SET active = false WHERE id = :id"), {"id": gone.id})
        loaded = {c.organization_id: c for c in await candidates(connection, ServiceType.SHELTER)}

    mine = {ngo.id, girls.id, closed.id, gone.id, counseling_only.id}
    assert set(loaded) & mine == {girls.id, closed.id}
    shelter = loaded[girls.id]
    assert shelter == PartnerCandidate(
        organization_id=girls.id, name=girls.name, active=True, counties=("002",), languages=("sw", "dig"),
        sexes_served=(Sex.FEMALE,), min_age=10, max_age=17,
        services={
            ServiceType.SHELTER: ServiceOffer(ServiceStatus.ACTIVE, CapacityStatus.WAITLIST, 2, 10, 17),
            ServiceType.MEDICAL: ServiceOffer(ServiceStatus.ACTIVE, CapacityStatus.CAPACITY, None, 10, 17),
        },
    )
    survivor = SurvivorFacts(birth_year=2012, sex=Sex.FEMALE, county="002", languages=("dig",))
    ranked = rank_partners(survivor=survivor, service=ServiceType.SHELTER,
                           candidates=[loaded[girls.id], loaded[closed.id]], track_records={}, today=TODAY)
    assert [(m.organization_id, m.reasons) for m in ranked] == [
        (girls.id, ("serves Kwale", "speaks Digo", "waitlist", "new partner: no referral history yet"))]
