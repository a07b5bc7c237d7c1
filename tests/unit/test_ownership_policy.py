"""The ownership rules the use cases ask the policy (domain/policy.py) instead of comparing ids inline:
who records care on a referral, why a care record is read, who is the referrer, whom a lookup by id
shows, and what an administrator may not do to her own account. Tables, no database."""

from __future__ import annotations

import uuid

import pytest

from domain import policy
from domain.enums import Role
from tests.unit.test_administration_policy import ACTORS, OTHER, OWN


@pytest.mark.parametrize(("actor", "own_referral"), [
    ("admin", False), ("case manager", False), ("supervisor", False), ("analyst", False),
    ("coordinator", True), ("counselor", True), ("partner system", True), ("NGO system", False),
])
def test_care_is_recorded_by_the_receiving_partner_on_its_own_referrals(actor: str, own_referral: bool) -> None:
    principal = ACTORS[actor]
    assert policy.may_record_care_on(principal, receiving_organization_id=OWN) is own_referral
    assert policy.may_record_care_on(principal, receiving_organization_id=OTHER) is False


@pytest.mark.parametrize("actor", sorted(ACTORS))
def test_a_care_record_is_read_for_service_by_its_author_and_as_feedback_by_anyone_else(actor: str) -> None:
    principal = ACTORS[actor]
    assert policy.care_read_purpose(principal, authoring_organization_id=OWN) == "SERVICE_DELIVERY"
    assert policy.care_read_purpose(principal, authoring_organization_id=OTHER) == "FEEDBACK_TO_REFERRER"
    assert policy.is_referrer(principal, referring_organization_id=OWN) is True
    assert policy.is_referrer(principal, referring_organization_id=OTHER) is False


@pytest.mark.parametrize(("actor", "other_organizations"), [
    ("admin", True), ("admin without the scopes", False), ("case manager", False), ("supervisor", False),
    ("coordinator", False), ("counselor", False), ("partner system", False),
])
def test_a_lookup_by_id_shows_colleagues_and_the_administrator_everyone(actor: str, other_organizations: bool) -> None:
    principal = ACTORS[actor]
    assert policy.may_look_up_colleague(principal, staff_organization_id=OWN) is True
    assert policy.may_look_up_colleague(principal, staff_organization_id=OTHER) is other_organizations


@pytest.mark.parametrize(("whose", "roles", "kept"), [
    ("own", (Role.ADMIN,), True),
    ("own", (Role.ADMIN, Role.SUPERVISOR), True),
    ("own", (Role.SUPERVISOR,), False),
    ("own", (), False),
    ("another", (Role.SUPERVISOR,), True),
    ("nobody", (Role.SUPERVISOR,), True),
])
def test_an_administrator_keeps_her_own_admin_role_and_account(whose: str, roles: tuple[Role, ...],
                                                                kept: bool) -> None:
    admin = ACTORS["admin"]
    target = {"own": admin.user_id, "another": uuid.uuid4(), "nobody": None}[whose]
    assert policy.keeps_own_admin_role(admin, staff_user_id=target, roles=roles) is kept
    assert policy.may_deactivate_account(admin, staff_user_id=target) is (whose != "own")
