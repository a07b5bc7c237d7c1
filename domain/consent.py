"""Consent rules: whether a consent is in force, what it lets an organization see, and what a new one needs.

Rule 1 and rule 2 of the domain hang on these functions: a partner sees a survivor only while a
consent covers that partner and purpose, only in the categories it names, and withdrawal cuts access
at the instant it is recorded.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from domain.enums import ConsentGiver, ConsentPurpose, ConsentStatus, DataCategory
from domain.errors import FieldChecks, InvalidInput

# Kenya's Children Act 2022: anyone under 18 is a child.
AGE_OF_MAJORITY = 18


@dataclass(frozen=True, slots=True)
class ConsentTerms:
    """What a consent allows; validity is the half-open interval [valid_from, valid_until)."""

    recipient_organization_id: uuid.UUID
    purposes: frozenset[ConsentPurpose]
    data_categories: frozenset[DataCategory]
    valid_from: datetime
    valid_until: datetime | None
    withdrawn_at: datetime | None


def status_at(consent: ConsentTerms, at: datetime) -> ConsentStatus:
    """The status to show; a consent whose period has not started is ACTIVE but not yet in force."""
    if consent.withdrawn_at is not None and consent.withdrawn_at <= at:
        return ConsentStatus.WITHDRAWN
    if consent.valid_until is not None and at >= consent.valid_until:
        return ConsentStatus.EXPIRED
    return ConsentStatus.ACTIVE


def in_force(consent: ConsentTerms, at: datetime) -> bool:
    """Whether data may flow on this consent at `at`; withdrawal counts from its own instant on."""
    return status_at(consent, at) == ConsentStatus.ACTIVE and consent.valid_from <= at


def covers(
    consent: ConsentTerms,
    organization_id: uuid.UUID,
    purpose: ConsentPurpose,
    category: DataCategory | None,
    at: datetime,
) -> bool:
    """A consent covers only what it names; with no category, the question is about the purpose alone."""
    return (
        in_force(consent, at)
        and consent.recipient_organization_id == organization_id
        and purpose in consent.purposes
        and (category is None or category in consent.data_categories)
    )


def visible_categories(
    consents: Iterable[ConsentTerms], organization_id: uuid.UUID, purpose: ConsentPurpose, at: datetime
) -> frozenset[DataCategory]:
    """Several consents may each grant part of the picture; together they grant the union, no more."""
    visible: set[DataCategory] = set()
    for consent in consents:
        if covers(consent, organization_id, purpose, None, at):
            visible |= consent.data_categories
    return frozenset(visible)


def _require_aware(value: datetime, field: tuple[str, ...]) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("Date and time must include a UTC offset.", field=field)


def check_new_consent(
    *,
    purposes: Iterable[ConsentPurpose],
    data_categories: Iterable[DataCategory],
    valid_from: datetime,
    valid_until: datetime | None,
    given_by: ConsentGiver,
    child_assent: bool | None,
    survivor_is_child: bool,
    now: datetime,
) -> None:
    """Refuse a consent that could not lawfully be relied on, before anything is shared on it.

    A `valid_from` in the past is fine, even by weeks: paper forms signed in the field are entered
    later. A `valid_until` already past is not, because such a consent could never be used.
    """
    checks = FieldChecks()  # every refused field at once
    if not frozenset(purposes):
        checks.refuse(InvalidInput("Name at least one purpose.", field=("input", "purposes")))
    if not frozenset(data_categories):
        checks.refuse(InvalidInput("Name at least one data category.", field=("input", "dataCategories")))
    starts = checks.passes(lambda: _require_aware(valid_from, ("input", "validFrom")))
    if valid_until is not None and checks.passes(lambda: _require_aware(valid_until, ("input", "validUntil"))):
        if starts and valid_until <= valid_from:
            checks.refuse(InvalidInput("The consent must end after it starts.", field=("input", "validUntil")))
        elif valid_until <= now:
            checks.refuse(InvalidInput("The consent has already expired.", field=("input", "validUntil")))
    if survivor_is_child:
        if given_by != ConsentGiver.GUARDIAN:
            checks.refuse(InvalidInput(
                "For a survivor under 18, consent must be given by a parent or guardian.",
                field=("input", "givenBy"),
            ))
        if child_assent is None:
            checks.refuse(InvalidInput(
                "For a survivor under 18, record whether the child assented.", field=("input", "childAssent")
            ))
    else:
        if given_by != ConsentGiver.SURVIVOR:
            checks.refuse(InvalidInput("An adult survivor gives consent themselves.", field=("input", "givenBy")))
        if child_assent is not None:
            checks.refuse(InvalidInput(
                "Child assent applies only to a survivor under 18.", field=("input", "childAssent")
            ))
    checks.done()


def is_child(*, birth_year: int, at: date) -> bool:
    """Child unless certainly 18 or over.

    Only the birth year is stored (data minimisation), so we assume the birthday is still to come
    this year: someone born in 2007 is treated as a child for all of 2025. Erring this way asks for
    a guardian's consent too often rather than too rarely.
    """
    return at.year - birth_year <= AGE_OF_MAJORITY


# (oldest conservative age in the band, band label); db/compiled_reads.py renders the same table to SQL
AGE_BANDS: tuple[tuple[int, str], ...] = (
    (4, "0-4"),
    (9, "5-9"),
    (14, "10-14"),
    (17, "15-17"),
    (24, "18-24"),
)

OLDEST_BAND = "25+"


def age_band(birth_year: int | None, at: date) -> str | None:
    """A coarse age for people who must not see the birth year.

    Uses the same conservative age as `is_child` (at.year - birth_year - 1, i.e. birthday not yet
    reached, floored at 0), so the "15-17" band and the child rule always agree.
    """
    if birth_year is None:
        return None
    age = max(at.year - birth_year - 1, 0)
    for upper, band in AGE_BANDS:
        if age <= upper:
            return band
    return OLDEST_BAND
