"""policy.shows_birth_year, a table: the referring NGO always sees the birth year; a partner once one of the
survivor's referrals it sees is accepted (or later) under a consent in force. The SQL rendering
(db.scopes.birth_year_shown) is compared with it on every record and consent state of the access matrix
(tests/matrix: `compiled.referral.survivor.birthYear`, compiled and resolver path side by side)."""

from __future__ import annotations

import uuid

import pytest

from domain import policy
from domain.enums import ReferralStatus
from domain.policy import ReferralAccess, Side


def _access(status: ReferralStatus, in_force: bool) -> ReferralAccess:
    return ReferralAccess(referring_organization_id=uuid.uuid4(), receiving_organization_id=uuid.uuid4(),
                          status=status, assigned_counselor_id=None, consent_categories=frozenset(),
                          consent_purposes=frozenset(), consent_in_force=in_force)


@pytest.mark.parametrize("status", list(ReferralStatus))
@pytest.mark.parametrize("in_force", [True, False])
def test_one_referral(status: ReferralStatus, in_force: bool) -> None:
    shown = policy.shows_birth_year(Side.RECEIVER, [_access(status, in_force)])
    assert shown == (in_force and status in policy.ACCEPTED_OR_LATER)
    assert policy.shows_birth_year(Side.REFERRER, [_access(status, in_force)])


def test_any_referral_that_qualifies_is_enough_and_none_shows_nothing() -> None:
    assert policy.shows_birth_year(Side.RECEIVER, [_access(ReferralStatus.REQUESTED, True),
                                                   _access(ReferralStatus.IN_PROGRESS, True)])
    assert not policy.shows_birth_year(Side.RECEIVER, [_access(ReferralStatus.REQUESTED, True),
                                                       _access(ReferralStatus.IN_PROGRESS, False)])
    assert not policy.shows_birth_year(Side.RECEIVER, [])
    assert not policy.shows_birth_year(Side.NONE, [_access(ReferralStatus.ACCEPTED, True)])
    assert policy.shows_birth_year(Side.REFERRER, [])
