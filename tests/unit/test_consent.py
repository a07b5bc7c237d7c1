"""Consent: the period edges, withdrawal, what it covers, and what a new consent needs."""

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from domain.consent import (
    ConsentTerms,
    age_band,
    check_new_consent,
    covers,
    in_force,
    is_child,
    status_at,
    visible_categories,
)
from domain.enums import ConsentGiver, ConsentPurpose, ConsentStatus, DataCategory, UserErrorCode
from domain.errors import InvalidInput
from domain.kenya import EAT

PARTNER = uuid.UUID("6f1c2f7e-0000-4000-8000-000000000001")
OTHER_PARTNER = uuid.UUID("6f1c2f7e-0000-4000-8000-000000000002")
START = datetime(2025, 1, 10, 9, 0, tzinfo=EAT)
END = datetime(2025, 7, 10, 9, 0, tzinfo=EAT)
MICRO = timedelta(microseconds=1)
MIDDLE = datetime(2025, 4, 1, 12, 0, tzinfo=EAT)

CONSENT = ConsentTerms(
    recipient_organization_id=PARTNER,
    purposes=frozenset({ConsentPurpose.REFERRAL, ConsentPurpose.SERVICE_DELIVERY}),
    data_categories=frozenset({DataCategory.CASE_SUMMARY, DataCategory.CONTACT}),
    valid_from=START,
    valid_until=END,
    withdrawn_at=None,
)


def _with(**changes):
    return dataclasses.replace(CONSENT, **changes)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (START - MICRO, False),
        (START, True),
        (START + MICRO, True),
        (MIDDLE, True),
        (END - MICRO, True),
        (END, False),
        (END + MICRO, False),
        # The same instants spelled in UTC.
        (datetime(2025, 1, 10, 6, 0, tzinfo=UTC), True),
        (datetime(2025, 7, 10, 6, 0, tzinfo=UTC), False),
    ],
)
def test_covers_at_the_period_edges(at, expected):
    assert covers(CONSENT, PARTNER, ConsentPurpose.REFERRAL, DataCategory.CASE_SUMMARY, at) is expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (START - MICRO, ConsentStatus.ACTIVE),
        (START, ConsentStatus.ACTIVE),
        (END - MICRO, ConsentStatus.ACTIVE),
        (END, ConsentStatus.EXPIRED),
        (END + timedelta(days=400), ConsentStatus.EXPIRED),
    ],
)
def test_status_over_the_period(at, expected):
    assert status_at(CONSENT, at) == expected


def test_before_its_start_a_consent_is_active_but_not_in_force():
    assert status_at(CONSENT, START - MICRO) == ConsentStatus.ACTIVE
    assert in_force(CONSENT, START - MICRO) is False


def test_open_ended_consent_stays_in_force():
    forever = _with(valid_until=None)
    assert in_force(forever, START + timedelta(days=3650)) is True
    assert status_at(forever, START + timedelta(days=3650)) == ConsentStatus.ACTIVE


WITHDRAWN_AT = datetime(2025, 3, 1, 15, 0, tzinfo=EAT)


@pytest.mark.parametrize(
    ("at", "covered", "status"),
    [
        (WITHDRAWN_AT - MICRO, True, ConsentStatus.ACTIVE),
        (WITHDRAWN_AT, False, ConsentStatus.WITHDRAWN),
        (WITHDRAWN_AT + MICRO, False, ConsentStatus.WITHDRAWN),
        (END + MICRO, False, ConsentStatus.WITHDRAWN),
    ],
)
def test_withdrawal_cuts_access_from_its_instant(at, covered, status):
    withdrawn = _with(withdrawn_at=WITHDRAWN_AT)
    assert covers(withdrawn, PARTNER, ConsentPurpose.REFERRAL, None, at) is covered
    assert in_force(withdrawn, at) is covered
    assert status_at(withdrawn, at) == status


@pytest.mark.parametrize(
    ("organization", "purpose", "category", "expected"),
    [
        (PARTNER, ConsentPurpose.REFERRAL, DataCategory.CASE_SUMMARY, True),
        (PARTNER, ConsentPurpose.SERVICE_DELIVERY, DataCategory.CONTACT, True),
        (PARTNER, ConsentPurpose.REFERRAL, None, True),
        (OTHER_PARTNER, ConsentPurpose.REFERRAL, DataCategory.CASE_SUMMARY, False),
        (OTHER_PARTNER, ConsentPurpose.REFERRAL, None, False),
        (PARTNER, ConsentPurpose.FEEDBACK_TO_REFERRER, DataCategory.CASE_SUMMARY, False),
        (PARTNER, ConsentPurpose.AGGREGATE_REPORTING, None, False),
        (PARTNER, ConsentPurpose.REFERRAL, DataCategory.SESSION_NOTES, False),
        (PARTNER, ConsentPurpose.REFERRAL, DataCategory.IDENTITY, False),
    ],
)
def test_covers_only_what_it_names(organization, purpose, category, expected):
    assert covers(CONSENT, organization, purpose, category, MIDDLE) is expected


FEEDBACK_ATTENDANCE = _with(
    purposes=frozenset({ConsentPurpose.FEEDBACK_TO_REFERRER}),
    data_categories=frozenset({DataCategory.SESSION_ATTENDANCE}),
)
FEEDBACK_ASSESSMENTS = _with(
    purposes=frozenset({ConsentPurpose.FEEDBACK_TO_REFERRER, ConsentPurpose.REFERRAL}),
    data_categories=frozenset({DataCategory.ASSESSMENTS, DataCategory.CASE_SUMMARY}),
)
FEEDBACK_NOTES_WITHDRAWN = _with(
    purposes=frozenset({ConsentPurpose.FEEDBACK_TO_REFERRER}),
    data_categories=frozenset({DataCategory.SESSION_NOTES}),
    withdrawn_at=WITHDRAWN_AT,
)
FEEDBACK_IDENTITY_OTHER_ORG = _with(
    recipient_organization_id=OTHER_PARTNER,
    purposes=frozenset({ConsentPurpose.FEEDBACK_TO_REFERRER}),
    data_categories=frozenset({DataCategory.IDENTITY}),
)
ALL_CONSENTS = [
    CONSENT,
    FEEDBACK_ATTENDANCE,
    FEEDBACK_ASSESSMENTS,
    FEEDBACK_NOTES_WITHDRAWN,
    FEEDBACK_IDENTITY_OTHER_ORG,
]


@pytest.mark.parametrize(
    ("organization", "purpose", "at", "expected"),
    [
        (
            PARTNER,
            ConsentPurpose.FEEDBACK_TO_REFERRER,
            MIDDLE,
            {DataCategory.SESSION_ATTENDANCE, DataCategory.ASSESSMENTS, DataCategory.CASE_SUMMARY},
        ),
        (
            PARTNER,
            ConsentPurpose.FEEDBACK_TO_REFERRER,
            WITHDRAWN_AT - MICRO,
            {
                DataCategory.SESSION_ATTENDANCE,
                DataCategory.ASSESSMENTS,
                DataCategory.CASE_SUMMARY,
                DataCategory.SESSION_NOTES,
            },
        ),
        (
            PARTNER,
            ConsentPurpose.REFERRAL,
            MIDDLE,
            {DataCategory.CASE_SUMMARY, DataCategory.CONTACT, DataCategory.ASSESSMENTS},
        ),
        (OTHER_PARTNER, ConsentPurpose.FEEDBACK_TO_REFERRER, MIDDLE, {DataCategory.IDENTITY}),
        (OTHER_PARTNER, ConsentPurpose.REFERRAL, MIDDLE, set()),
        (PARTNER, ConsentPurpose.AGGREGATE_REPORTING, MIDDLE, set()),
        (PARTNER, ConsentPurpose.FEEDBACK_TO_REFERRER, END, set()),
    ],
)
def test_visible_categories_is_the_union_of_covering_consents(organization, purpose, at, expected):
    assert visible_categories(ALL_CONSENTS, organization, purpose, at) == expected


def test_visible_categories_of_no_consents():
    assert visible_categories([], PARTNER, ConsentPurpose.REFERRAL, MIDDLE) == frozenset()


NOW = datetime(2025, 5, 20, 10, 0, tzinfo=EAT)
GOOD = {
    "purposes": [ConsentPurpose.REFERRAL],
    "data_categories": [DataCategory.CASE_SUMMARY],
    "valid_from": NOW,
    "valid_until": NOW + timedelta(days=365),
    "given_by": ConsentGiver.GUARDIAN,
    "child_assent": True,
    "survivor_is_child": True,
    "now": NOW,
}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"child_assent": False},
        {"valid_until": None},
        {"valid_from": NOW - timedelta(days=60)},
        {"valid_from": NOW + timedelta(days=7)},
        {"valid_until": NOW + MICRO},
        {"survivor_is_child": False, "given_by": ConsentGiver.SURVIVOR, "child_assent": None},
        {"purposes": list(ConsentPurpose), "data_categories": list(DataCategory)},
    ],
)
def test_valid_new_consents(changes):
    check_new_consent(**(GOOD | changes))  # does not raise


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"purposes": []}, ("input", "purposes")),
        ({"data_categories": []}, ("input", "dataCategories")),
        ({"valid_until": NOW}, ("input", "validUntil")),
        ({"valid_until": NOW - timedelta(hours=1)}, ("input", "validUntil")),
        (
            {"valid_from": NOW - timedelta(days=30), "valid_until": NOW - timedelta(days=1)},
            ("input", "validUntil"),
        ),
        ({"valid_from": NOW - timedelta(days=30), "valid_until": NOW}, ("input", "validUntil")),
        ({"valid_from": datetime(2025, 5, 20, 10, 0)}, ("input", "validFrom")),
        ({"valid_until": datetime(2026, 5, 20, 10, 0)}, ("input", "validUntil")),
        ({"given_by": ConsentGiver.SURVIVOR}, ("input", "givenBy")),
        ({"child_assent": None}, ("input", "childAssent")),
        ({"survivor_is_child": False, "child_assent": None}, ("input", "givenBy")),
        ({"survivor_is_child": False, "given_by": ConsentGiver.SURVIVOR}, ("input", "childAssent")),
        (
            {"survivor_is_child": False, "given_by": ConsentGiver.SURVIVOR, "child_assent": False},
            ("input", "childAssent"),
        ),
    ],
)
def test_invalid_new_consents(changes, field):
    with pytest.raises(InvalidInput) as caught:
        check_new_consent(**(GOOD | changes))
    assert caught.value.field == field
    assert caught.value.code == UserErrorCode.INVALID


@pytest.mark.parametrize(
    ("birth_year", "at", "expected"),
    [
        (2007, date(2025, 1, 1), True),
        (2007, date(2025, 12, 31), True),
        (2007, date(2026, 1, 1), False),
        (2006, date(2024, 12, 31), True),
        (2006, date(2025, 1, 1), False),
        (2005, date(2025, 6, 1), False),
        (2000, date(2025, 6, 1), False),
        (2020, date(2025, 6, 1), True),
        (2025, date(2025, 6, 1), True),
    ],
)
def test_is_child_assumes_the_later_birthday(birth_year, at, expected):
    assert is_child(birth_year=birth_year, at=at) is expected


AT = date(2025, 6, 1)


@pytest.mark.parametrize(
    ("birth_year", "expected"),
    [
        (None, None),
        (2026, "0-4"),
        (2025, "0-4"),
        (2024, "0-4"),
        (2020, "0-4"),
        (2019, "5-9"),
        (2015, "5-9"),
        (2014, "10-14"),
        (2010, "10-14"),
        (2009, "15-17"),
        (2007, "15-17"),
        (2006, "18-24"),
        (2000, "18-24"),
        (1999, "25+"),
        (1960, "25+"),
    ],
)
def test_age_band_uses_the_conservative_age(birth_year, expected):
    assert age_band(birth_year, AT) == expected


@pytest.mark.parametrize("birth_year", range(1990, 2026))
def test_age_band_agrees_with_is_child(birth_year):
    band = age_band(birth_year, AT)
    assert (band in {"0-4", "5-9", "10-14", "15-17"}) is is_child(birth_year=birth_year, at=AT)
