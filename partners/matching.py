"""Partner matching: which partners can serve this survivor for this service, best first, and why.

Pure (stdlib and `domain` only) so the ranking can be checked with tables of cases and so no
survivor data ever leaves the caller: the function receives coarse facts and returns organization
ids, scores and reasons that name only the partner's own properties (a county it serves, a language
it speaks, its capacity, its track record).

**Who is left out.** A partner that cannot serve the survivor is not ranked at all: an inactive
organization; a service not offered, or not ACTIVE (INACTIVE, TEMPORARILY_CLOSED); NO_CAPACITY; a
survivor's age outside the organization's or the service's age range; a sex the partner does not
serve (an empty `sexes_served` means all; a survivor whose sex is UNDISCLOSED is matched only by
partners that serve all sexes or list UNDISCLOSED, because a single-sex service is a safeguarding
decision the case manager must make knowingly). The age is computed from the birth year the same
conservative way as `domain.consent.age_band` (birthday not yet reached this year), so a partner
for under-18s accepts exactly the survivors the consent rules treat as children. An unknown birth
year excludes no one.

**Score.** 0 to 100, the sum of weight x component, each component between 0 and 1:

| criterion | weight | component |
|---|---|---|
| county served | 30 | 1 if the partner serves the survivor's county, else 0 |
| shared language | 25 | 1 if the partner speaks one of the survivor's languages (`sw-KE` matches `sw`), else 0 |
| capacity | 20 | CAPACITY: 0.6 + 0.4 x min(open slots, 10) / 10; WAITLIST: 0.2 |
| acceptance rate | 12 | accepted / (accepted + rejected) |
| time to accept | 7 | 48 h / (48 h + median hours from request to acceptance) |
| time to first attended session | 6 | 168 h / (168 h + median hours from request to the first attended session) |

Track record needs history: with fewer than 3 answered referrals (accepted + rejected) each of the
three track-record components is 0.5, the middle of its scale, so a new partner is neither
penalised nor favoured; an unknown median is also 0.5. Scores are rounded to 2 decimals; equal
scores are ordered by name (case-insensitive), then by id, so the order is stable.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from domain.directory import PartnerCandidate, ServiceOffer, TrackRecord
from domain.enums import CapacityStatus, ServiceStatus, ServiceType, Sex
from domain.kenya import COUNTIES, KNOWN_LANGUAGES


@dataclass(frozen=True, slots=True)
class SurvivorFacts:
    """The coarse facts matching needs; never a name or pseudonym."""

    birth_year: int | None
    sex: Sex
    county: str | None
    languages: tuple[str, ...]


NO_HISTORY = TrackRecord(0, 0, 0, None, None)


@dataclass(frozen=True, slots=True)
class PartnerMatch:
    organization_id: uuid.UUID
    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MatchWeights:
    """Points per criterion (see the table in the module docstring); they need not sum to 100."""

    county: float = 30
    language: float = 25
    capacity: float = 20
    acceptance_rate: float = 12
    time_to_accept: float = 7
    time_to_first_session: float = 6

    def __post_init__(self) -> None:
        if min(self.county, self.language, self.capacity, self.acceptance_rate, self.time_to_accept,
               self.time_to_first_session) < 0:
            raise ValueError("Match weights must not be negative.")


DEFAULT_WEIGHTS = MatchWeights()

# Fewer answered referrals than this and the track record counts as neutral.
MIN_HISTORY = 3
NEUTRAL = 0.5
# The median at which a speed component is 0.5: two days to accept, a week to the first session.
ACCEPT_HALF_HOURS = 48.0
FIRST_SESSION_HALF_HOURS = 168.0
# Capacity: having capacity at all is worth 0.6; open slots add up to 0.4, saturating at 10.
CAPACITY_BASE = 0.6
SLOTS_SATURATION = 10
WAITLIST_COMPONENT = 0.2


def age_in(birth_year: int, today: date) -> int:
    """Conservative age from a birth year, the same as domain.consent.age_band."""
    return max(today.year - birth_year - 1, 0)


def _primary(tag: str) -> str:
    return tag.split("-", 1)[0].lower()


def language_name(tag: str) -> str:
    return KNOWN_LANGUAGES.get(_primary(tag), tag)


def _county_label(code: str) -> str:
    return COUNTIES.get(code, f"county {code}")


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def duration_text(hours: float) -> str:
    """Round up, so "within 2 days" is never an overstatement: up to 24 h in hours, then in days."""
    whole_hours = max(math.ceil(hours), 1)
    if whole_hours <= 24:
        return _plural(whole_hours, "hour")
    return _plural(math.ceil(hours / 24), "day")


def _within_age(age: int, low: int | None, high: int | None) -> bool:
    return (low is None or age >= low) and (high is None or age <= high)


def _can_serve(survivor: SurvivorFacts, candidate: PartnerCandidate, offer: ServiceOffer | None,
               today: date) -> bool:
    if not candidate.active or offer is None:
        return False
    if offer.status != ServiceStatus.ACTIVE or offer.capacity_status == CapacityStatus.NO_CAPACITY:
        return False
    if candidate.sexes_served and survivor.sex not in candidate.sexes_served:
        return False
    if survivor.birth_year is not None:
        age = age_in(survivor.birth_year, today)
        if not (_within_age(age, candidate.min_age, candidate.max_age)
                and _within_age(age, offer.min_age, offer.max_age)):
            return False
    return True


def _speed(median_hours: float | None, half: float) -> float:
    if median_hours is None:
        return NEUTRAL
    return half / (half + max(median_hours, 0.0))


def _track_record(record: TrackRecord, weights: MatchWeights) -> tuple[float, list[str]]:
    neutral = NEUTRAL * (weights.acceptance_rate + weights.time_to_accept + weights.time_to_first_session)
    if record.referrals_received == 0 and record.answered == 0:
        return neutral, ["new partner: no referral history yet"]
    if record.answered < MIN_HISTORY:
        received = max(record.referrals_received, record.answered)
        return neutral, [f"little referral history yet ({_plural(received, 'referral')})"]
    rate = record.accepted / record.answered
    points = (weights.acceptance_rate * rate
              + weights.time_to_accept * _speed(record.median_hours_to_accept, ACCEPT_HALF_HOURS)
              + weights.time_to_first_session
              * _speed(record.median_hours_to_first_attended_session, FIRST_SESSION_HALF_HOURS))
    percent = math.floor(rate * 100 + 0.5)
    reasons: list[str] = []
    if record.median_hours_to_accept is not None:
        reasons.append(f"accepts {percent}% within {duration_text(record.median_hours_to_accept)}")
    else:
        reasons.append(f"accepts {percent}% of referrals")
    if record.median_hours_to_first_attended_session is not None:
        reasons.append(
            f"first session attended within {duration_text(record.median_hours_to_first_attended_session)}"
        )
    return points, reasons


def _capacity(offer: ServiceOffer, weights: MatchWeights) -> tuple[float, str]:
    if offer.capacity_status == CapacityStatus.WAITLIST:
        return weights.capacity * WAITLIST_COMPONENT, "waitlist"
    slots = offer.open_slots or 0
    component = CAPACITY_BASE + (1 - CAPACITY_BASE) * min(slots, SLOTS_SATURATION) / SLOTS_SATURATION
    text = f"has capacity ({_plural(slots, 'open slot')})" if slots > 0 else "has capacity"
    return weights.capacity * component, text


def _shared_languages(survivor: Iterable[str], partner: Iterable[str]) -> list[str]:
    offered = {_primary(tag) for tag in partner}
    names: list[str] = []
    for tag in survivor:
        if _primary(tag) in offered:
            name = language_name(tag)
            if name not in names:
                names.append(name)
    return names


def score_partner(*, survivor: SurvivorFacts, candidate: PartnerCandidate, offer: ServiceOffer,
                  track_record: TrackRecord, weights: MatchWeights = DEFAULT_WEIGHTS) -> PartnerMatch:
    """Score one partner already known to be able to serve; exposed for explanation and tests."""
    points = 0.0
    reasons: list[str] = []
    if survivor.county is not None:
        label = _county_label(survivor.county)
        if survivor.county in candidate.counties:
            points += weights.county
            reasons.append(f"serves {label}")
        else:
            reasons.append(f"does not serve {label}")
    if survivor.languages:
        shared = _shared_languages(survivor.languages, candidate.languages)
        if shared:
            points += weights.language
            reasons.append(f"speaks {_join(shared)}")
        else:
            reasons.append("no shared language")
    capacity_points, capacity_reason = _capacity(offer, weights)
    points += capacity_points
    reasons.append(capacity_reason)
    record_points, record_reasons = _track_record(track_record, weights)
    points += record_points
    reasons.extend(record_reasons)
    return PartnerMatch(organization_id=candidate.organization_id, score=round(points, 2), reasons=tuple(reasons))


def rank_partners(*, survivor: SurvivorFacts, service: ServiceType, candidates: Iterable[PartnerCandidate],
                  track_records: Mapping[uuid.UUID, TrackRecord], today: date,
                  weights: MatchWeights = DEFAULT_WEIGHTS) -> list[PartnerMatch]:
    """Partners able to serve, best first; a partner missing from track_records has no history."""
    ranked: list[tuple[PartnerMatch, str]] = []
    for candidate in candidates:
        offer = candidate.services.get(service)
        if offer is None or not _can_serve(survivor, candidate, offer, today):
            continue
        match = score_partner(survivor=survivor, candidate=candidate, offer=offer,
                              track_record=track_records.get(candidate.organization_id, NO_HISTORY),
                              weights=weights)
        ranked.append((match, candidate.name))
    ranked.sort(key=lambda item: (-item[0].score, item[1].casefold(), item[1], str(item[0].organization_id)))
    return [match for match, _ in ranked]
