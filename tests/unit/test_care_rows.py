"""policy.care_rows: which care records show under referrals the caller was already shown.

The same rule as db.scopes.care_visible once the referral itself is known to be visible: the partner
sees the records it keeps, the referrer sees them only as consented feedback naming the category.
"""

from __future__ import annotations

import itertools
import uuid

import pytest

from domain.enums import ConsentPurpose, DataCategory, ReferralStatus
from domain.policy import ReferralAccess, care_rows

NGO = uuid.uuid4()
PARTNER = uuid.uuid4()
STRANGER = uuid.uuid4()
CARE_CATEGORIES = (DataCategory.SESSION_ATTENDANCE, DataCategory.ASSESSMENTS)


def _access(*, purposes: frozenset[ConsentPurpose], categories: frozenset[DataCategory], in_force: bool,
            status: ReferralStatus = ReferralStatus.IN_PROGRESS) -> ReferralAccess:
    return ReferralAccess(referring_organization_id=NGO, receiving_organization_id=PARTNER, status=status,
                          assigned_counselor_id=None, consent_categories=categories, consent_purposes=purposes,
                          consent_in_force=in_force)


PURPOSE_SETS = [frozenset({ConsentPurpose.REFERRAL, ConsentPurpose.SERVICE_DELIVERY}), frozenset(ConsentPurpose)]
CATEGORY_SETS = [frozenset(), frozenset({DataCategory.SESSION_ATTENDANCE}), frozenset({DataCategory.ASSESSMENTS}),
                 frozenset(DataCategory)]


@pytest.mark.parametrize(("purposes", "categories", "in_force", "category"),
                         list(itertools.product(PURPOSE_SETS, CATEGORY_SETS, [True, False], CARE_CATEGORIES)))
def test_partner_own_records_referrer_consented_feedback_stranger_nothing(
    purposes: frozenset[ConsentPurpose], categories: frozenset[DataCategory], in_force: bool,
    category: DataCategory,
) -> None:
    referral = uuid.uuid4()
    access = _access(purposes=purposes, categories=categories, in_force=in_force)

    partner = care_rows(PARTNER, [(referral, access)], category)
    assert partner.organization_id == PARTNER and partner.feedback == ()
    # the partner's own records need no category in the consent, only a consent in force
    assert partner.own == ((referral,) if in_force else ())

    ngo = care_rows(NGO, [(referral, access)], category)
    assert ngo.own == ()
    consented = in_force and ConsentPurpose.FEEDBACK_TO_REFERRER in purposes and category in categories
    assert ngo.feedback == ((referral,) if consented else ())

    assert care_rows(STRANGER, [(referral, access)], category).is_empty


def test_each_referral_is_decided_on_its_own_consent() -> None:
    shared = _access(purposes=frozenset(ConsentPurpose), categories=frozenset(DataCategory), in_force=True)
    withheld = _access(purposes=frozenset({ConsentPurpose.REFERRAL}), categories=frozenset(DataCategory),
                       in_force=True)
    first, second = uuid.uuid4(), uuid.uuid4()
    rows = care_rows(NGO, [(first, shared), (second, withheld)], DataCategory.SESSION_ATTENDANCE)
    assert rows.feedback == (first,) and not rows.is_empty
