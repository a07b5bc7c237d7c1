"""Assessment instruments as data, and their scoring.

Instruments change (a new version of the NGO's tool, a partner's own scale), so the domains,
sub-domains, scale and threshold are a value that can live in a database row, not code. Scoring is
the NGO's rule: a domain scores the mean of its sub-domain scores; the overall score is the mean of
the domain scores, so a domain with many sub-domains does not outweigh one with few.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from domain.enums import OutcomeDomain
from domain.errors import InvalidInput

_SCORES_FIELD = ("input", "scores")
_KEY_SHAPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class Subdomain:
    key: str
    domain: OutcomeDomain
    label: str


@dataclass(frozen=True, slots=True)
class Instrument:
    """A versioned instrument; invalid definitions raise ValueError because they are configuration."""

    key: str
    version: str
    name: str
    scale_min: int
    scale_max: int
    subdomains: tuple[Subdomain, ...]
    restoration_threshold: float

    def __post_init__(self) -> None:
        for label, text in (("key", self.key), ("version", self.version), ("name", self.name)):
            if not text.strip():
                raise ValueError(f"Instrument {label} must not be blank.")
        if self.scale_min >= self.scale_max:
            raise ValueError("Instrument scale_min must be below scale_max.")
        if not self.subdomains:
            raise ValueError("An instrument needs at least one sub-domain.")
        keys = [subdomain.key for subdomain in self.subdomains]
        if len(set(keys)) != len(keys):
            raise ValueError("Instrument sub-domain keys must be unique.")
        if any(not key.strip() for key in keys):
            raise ValueError("Instrument sub-domain keys must not be blank.")
        if not self.scale_min <= self.restoration_threshold <= self.scale_max:
            raise ValueError("Instrument restoration_threshold must lie within the scale.")

    @property
    def domains(self) -> tuple[OutcomeDomain, ...]:
        """The domains this instrument scores, in the contract's order."""
        used = {subdomain.domain for subdomain in self.subdomains}
        return tuple(domain for domain in OutcomeDomain if domain in used)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Instrument":
        """Read the stored form back; any shape error is a ValueError naming the bad key."""
        expected = {"key", "version", "name", "scale_min", "scale_max", "subdomains", "restoration_threshold"}
        if set(data) != expected:
            raise ValueError(f"Instrument keys must be exactly {sorted(expected)}.")
        raw_subdomains = data["subdomains"]
        if not isinstance(raw_subdomains, list | tuple):
            raise ValueError("Instrument subdomains must be a list.")
        return cls(
            key=_text(data, "key"),
            version=_text(data, "version"),
            name=_text(data, "name"),
            scale_min=_integer(data, "scale_min"),
            scale_max=_integer(data, "scale_max"),
            subdomains=tuple(_subdomain(item) for item in raw_subdomains),
            restoration_threshold=_number(data, "restoration_threshold"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, so an instrument can be stored in a database row and versioned."""
        return {
            "key": self.key,
            "version": self.version,
            "name": self.name,
            "scale_min": self.scale_min,
            "scale_max": self.scale_max,
            "subdomains": [
                {"key": subdomain.key, "domain": str(subdomain.domain), "label": subdomain.label}
                for subdomain in self.subdomains
            ],
            "restoration_threshold": self.restoration_threshold,
        }


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"Instrument {key} must be a string.")
    return value


def _integer(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Instrument {key} must be an integer.")
    return value


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"Instrument {key} must be a number.")
    return float(value)


def _subdomain(item: Any) -> Subdomain:
    if not isinstance(item, Mapping) or set(item) != {"key", "domain", "label"}:
        raise ValueError("Each sub-domain must have exactly the keys domain, key and label.")
    domain = item["domain"]
    if domain not in OutcomeDomain.__members__:
        raise ValueError("Sub-domain domain must name an OutcomeDomain.")
    return Subdomain(key=_text(item, "key"), domain=OutcomeDomain[domain], label=_text(item, "label"))


# The NGO's six-domain survivor-outcome assessment: 1 = most vulnerable, 4 = least vulnerable.
SURVIVOR_OUTCOME_ASSESSMENT: Mapping[str, Any] = {
    "key": "survivor-outcome",
    "version": "1",
    "name": "Survivor outcome assessment",
    "scale_min": 1,
    "scale_max": 4,
    "subdomains": [
        {"key": "safety.housing_stable", "domain": "SAFETY", "label": "Stable, safe place to live"},
        {
            "key": "safety.free_from_exploiter_contact",
            "domain": "SAFETY",
            "label": "Free from contact with the exploiter",
        },
        {"key": "safety.safety_plan", "domain": "SAFETY", "label": "Knows and can use a safety plan"},
        {"key": "legal.case_status", "domain": "LEGAL_PROTECTION", "label": "Criminal case progressing"},
        {"key": "legal.protection_order", "domain": "LEGAL_PROTECTION", "label": "Protected from reprisals"},
        {"key": "legal.documentation", "domain": "LEGAL_PROTECTION", "label": "Holds birth and ID documents"},
        {
            "key": "mental.trauma_symptoms",
            "domain": "MENTAL_WELLBEING",
            "label": "Trauma symptoms manageable",
        },
        {"key": "mental.coping_skills", "domain": "MENTAL_WELLBEING", "label": "Uses healthy coping skills"},
        {"key": "mental.self_worth", "domain": "MENTAL_WELLBEING", "label": "Sense of self-worth and hope"},
        {
            "key": "mental.substance_use",
            "domain": "MENTAL_WELLBEING",
            "label": "Free from harmful substance use",
        },
        {
            "key": "economic.education_enrolment",
            "domain": "ECONOMIC_EMPOWERMENT_AND_EDUCATION",
            "label": "Enrolled and attending school or training",
        },
        {
            "key": "economic.income",
            "domain": "ECONOMIC_EMPOWERMENT_AND_EDUCATION",
            "label": "Household has a safe source of income",
        },
        {
            "key": "economic.basic_needs",
            "domain": "ECONOMIC_EMPOWERMENT_AND_EDUCATION",
            "label": "Basic needs (food, clothing, school fees) met",
        },
        {
            "key": "social.family_relationships",
            "domain": "SOCIAL_SUPPORT",
            "label": "Supportive family or caregiver",
        },
        {
            "key": "social.trusted_adult",
            "domain": "SOCIAL_SUPPORT",
            "label": "Has a trusted adult to turn to",
        },
        {
            "key": "social.community_acceptance",
            "domain": "SOCIAL_SUPPORT",
            "label": "Accepted in the community without stigma",
        },
        {
            "key": "physical.health_care_access",
            "domain": "PHYSICAL_WELLBEING",
            "label": "Can reach health care when needed",
        },
        {
            "key": "physical.sexual_reproductive_health",
            "domain": "PHYSICAL_WELLBEING",
            "label": "Sexual and reproductive health needs met",
        },
    ],
    "restoration_threshold": 3.0,
}

SURVIVOR_OUTCOME_INSTRUMENT = Instrument.from_dict(SURVIVOR_OUTCOME_ASSESSMENT)


@dataclass(frozen=True, slots=True)
class AssessmentScore:
    domain_scores: tuple[tuple[OutcomeDomain, float], ...]
    overall: float
    meets_restoration_threshold: bool


def _named(keys: Iterable[str]) -> str:
    """Name sub-domain keys in a message, but never echo free text a client may have typed there."""
    return ", ".join(key if _KEY_SHAPE.fullmatch(key) else "(unrecognised key)" for key in sorted(keys))


def parse_scores(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Turn the input list into a mapping, refusing a sub-domain scored twice rather than guessing."""
    scores: dict[str, int] = {}
    for key, value in pairs:
        if key in scores:
            raise InvalidInput(f"Sub-domain {_named([key])} is scored more than once.", field=_SCORES_FIELD)
        scores[key] = value
    return scores


def _rounded(value: Fraction) -> float:
    # Half-up on the exact mean, so 2.125 shows as 2.13 whatever binary floats would have done.
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def score(
    instrument: Instrument, scores: Mapping[str, int], *, threshold: float | None = None
) -> AssessmentScore:
    """Score a complete assessment; a partial one would understate vulnerability, so it is refused.

    Means are computed exactly (fractions) and compared with the threshold before rounding, so a
    survivor just below a 3.0 threshold does not pass it because the output shows 3.0.
    """
    known = {subdomain.key for subdomain in instrument.subdomains}
    unknown = sorted(set(scores) - known)
    if unknown:
        # The valid keys come from the instrument, so the caller can correct the input in one go.
        raise InvalidInput(
            f"Unknown sub-domain(s) for {instrument.key}: {_named(unknown)}. Valid keys: {', '.join(sorted(known))}.",
            field=_SCORES_FIELD,
        )
    missing = sorted(known - set(scores))
    if missing:
        raise InvalidInput(f"Missing sub-domain score(s): {', '.join(missing)}.", field=_SCORES_FIELD)
    for key in sorted(scores):
        value = scores[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"Score for sub-domain {key} must be a whole number.", field=_SCORES_FIELD)
        if not instrument.scale_min <= value <= instrument.scale_max:
            raise InvalidInput(
                f"Score for sub-domain {key} must be from {instrument.scale_min} to {instrument.scale_max}.",
                field=_SCORES_FIELD,
            )

    domain_means: list[tuple[OutcomeDomain, Fraction]] = []
    for domain in instrument.domains:
        values = [scores[s.key] for s in instrument.subdomains if s.domain == domain]
        domain_means.append((domain, Fraction(sum(values), len(values))))
    overall = sum((mean for _, mean in domain_means), Fraction(0)) / len(domain_means)
    chosen = instrument.restoration_threshold if threshold is None else threshold
    if not instrument.scale_min <= chosen <= instrument.scale_max:
        raise ValueError("The restoration threshold must lie within the instrument's scale.")
    # repr() gives the shortest decimal spelling, so a threshold of 2.7 means exactly 27/10.
    cut_off = Fraction(repr(float(chosen)))
    return AssessmentScore(
        domain_scores=tuple((domain, _rounded(mean)) for domain, mean in domain_means),
        overall=_rounded(overall),
        meets_restoration_threshold=overall >= cut_off,
    )
