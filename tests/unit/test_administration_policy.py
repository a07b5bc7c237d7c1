"""The policy's administration rules as tables, without a database: who manages staff accounts, OAuth
clients, the directory, a service's capacity and webhooks (domain/policy.py)."""

from __future__ import annotations

import uuid

import pytest

from domain import policy
from domain.enums import OrganizationKind, Role
from domain.principal import Principal, build_principal
from domain.scopes import Action

NGO, PARTNER = OrganizationKind.REFERRING_NGO, OrganizationKind.PARTNER
OWN, OTHER = uuid.uuid4(), uuid.uuid4()


def person(kind: OrganizationKind, *roles: Role, scopes: tuple[str, ...] = ("user/*.cruds",)) -> Principal:
    return build_principal(organization_id=OWN, organization_kind=kind, client_id="app", token_scopes=list(scopes),
                           user_id=uuid.uuid4(), roles=frozenset(roles), display_name="p", token_id=None)


def system(kind: OrganizationKind) -> Principal:
    return build_principal(organization_id=OWN, organization_kind=kind, client_id="sys", token_scopes=["system/*.rus"],
                           display_name="s", token_id=None)


ACTORS = {
    "admin": person(NGO, Role.ADMIN),
    "admin without the scopes": person(NGO, Role.ADMIN, scopes=("user/Organization.rs",)),
    "case manager": person(NGO, Role.CASE_MANAGER),
    "supervisor": person(NGO, Role.SUPERVISOR),
    "analyst": person(NGO, Role.ANALYST),
    "coordinator": person(PARTNER, Role.PARTNER_COORDINATOR),
    "counselor": person(PARTNER, Role.COUNSELOR),
    "partner system": system(PARTNER),
    "NGO system": system(NGO),
}


@pytest.mark.parametrize(("actor", "staff", "clients", "directory", "webhooks"), [
    ("admin", True, True, True, True),
    ("admin without the scopes", False, False, True, True),
    ("case manager", False, False, False, False),
    ("supervisor", False, False, False, True),
    ("analyst", False, False, False, False),
    ("coordinator", False, False, False, True),
    ("counselor", False, False, False, False),
    ("partner system", False, False, False, True),
    ("NGO system", False, False, False, True),
])
def test_who_administers_what(actor: str, staff: bool, clients: bool, directory: bool, webhooks: bool) -> None:
    principal = ACTORS[actor]
    assert policy.may_administer_staff(principal, Action.UPDATE) is staff
    assert policy.may_administer_clients(principal, Action.UPDATE) is clients
    assert policy.may_administer_directory(principal) is directory
    assert policy.may_manage_webhooks(principal) is webhooks


@pytest.mark.parametrize(("actor", "organization", "capacity_only", "allowed"), [
    ("admin", OTHER, False, True),
    ("coordinator", OWN, True, True),
    ("coordinator", OWN, False, False),  # eligibility, ages or status: administrators only
    ("coordinator", OTHER, True, False),  # another partner's capacity
    ("partner system", OWN, True, True),
    ("partner system", OTHER, True, False),
    ("counselor", OWN, True, False),
    ("NGO system", OWN, True, False),  # the NGO offers no services
    ("case manager", OWN, True, False),
])
def test_who_sets_a_services_capacity(actor: str, organization: uuid.UUID, capacity_only: bool,
                                      allowed: bool) -> None:
    assert policy.may_set_service(ACTORS[actor], organization, capacity_only=capacity_only) is allowed


@pytest.mark.parametrize(("actor", "receiving", "allowed"), [
    ("coordinator", OWN, True), ("partner system", OWN, True), ("coordinator", OTHER, False),
    ("partner system", OTHER, False), ("counselor", OWN, False), ("case manager", OWN, False),
    ("admin", OWN, False),
])
def test_who_assigns_a_counselor(actor: str, receiving: uuid.UUID, allowed: bool) -> None:
    assert policy.may_assign_counselor(ACTORS[actor], receiving_organization_id=receiving) is allowed
