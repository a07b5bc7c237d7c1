"""The staff account rules of domain/staff.py as tables: roles by organization kind, and passwords."""

from __future__ import annotations

import pytest

from domain.enums import OrganizationKind, Role
from domain.errors import InvalidInput
from domain.staff import ROLES_BY_KIND, check_roles, password_problem

NGO, PARTNER = OrganizationKind.REFERRING_NGO, OrganizationKind.PARTNER
FIELD = ("input", "roles")


def test_every_role_belongs_to_exactly_one_kind_of_organization() -> None:
    assert sorted(r for roles in ROLES_BY_KIND.values() for r in roles) == sorted(Role)


@pytest.mark.parametrize(("kind", "roles", "expected"), [
    (NGO, [Role.SUPERVISOR, Role.CASE_MANAGER, Role.SUPERVISOR], (Role.CASE_MANAGER, Role.SUPERVISOR)),
    (NGO, [Role.ADMIN, Role.ANALYST], (Role.ANALYST, Role.ADMIN)),
    (PARTNER, [Role.COUNSELOR, Role.PARTNER_COORDINATOR], (Role.PARTNER_COORDINATOR, Role.COUNSELOR)),
])
def test_roles_that_fit_come_back_once_each_in_a_stable_order(kind: OrganizationKind, roles: list[Role],
                                                               expected: tuple[Role, ...]) -> None:
    assert check_roles(kind, roles, field=FIELD) == expected


@pytest.mark.parametrize(("kind", "roles", "message"), [
    (PARTNER, [Role.COUNSELOR, Role.CASE_MANAGER], "roles at a partner organization may only be "
                                                   "PARTNER_COORDINATOR, COUNSELOR."),
    (PARTNER, [Role.ADMIN], "roles at a partner organization may only be PARTNER_COORDINATOR, COUNSELOR."),
    (NGO, [Role.COUNSELOR], "roles at the referring NGO may only be CASE_MANAGER, SUPERVISOR, ANALYST, ADMIN."),
    (NGO, [], "roles must hold at least one role; at the referring NGO choose from CASE_MANAGER, SUPERVISOR, "
              "ANALYST, ADMIN."),
])
def test_roles_that_do_not_fit_are_refused_naming_the_field_and_the_allowed_roles(
        kind: OrganizationKind, roles: list[Role], message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_roles(kind, roles, field=FIELD)
    assert (refused.value.field, refused.value.message) == (FIELD, message)


@pytest.mark.parametrize(("password", "problem"), [
    ("a river of red lanterns", None),
    ("x" * 12, None),
    ("x" * 11, "at least 12 characters"),
    ("x" * 1025, "at most 1024 characters"),
    (" " * 14, "only spaces"),
    ("  Amina@IJM.example ", "e-mail"),
])
def test_a_password_is_long_enough_and_not_the_email(password: str, problem: str | None) -> None:
    found = password_problem(password, email="amina@ijm.example")
    assert found is None if problem is None else (found is not None and problem in found), found
