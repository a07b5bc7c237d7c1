"""The partner directory over GraphQL: administrators register and update; coordinators set capacity."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.enums import Role
from tests.factories import Factory, unique

REGISTER = """mutation($input: RegisterOrganizationInput!) { registerOrganization(input: $input) {
  organization { id name kind counties languages services capacityStatus version } userErrors { field code } } }"""
UPDATE = """mutation($input: UpdateOrganizationInput!) { updateOrganization(input: $input) {
  organization { id name active version } userErrors { field code } } }"""
SET_SERVICE = """mutation($input: SetServiceInput!) { setService(input: $input) {
  organization { id services capacityStatus openSlots } userErrors { field code } } }"""


async def test_an_administrator_registers_and_updates_a_partner(factory: Factory, owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    admin = await factory.token(await factory.user(ngo, Role.ADMIN))
    name = unique("Tumaini Centre")
    body = await factory.gql(admin, REGISTER, {"input": {"name": name, "kind": "PARTNER",
                                                         "counties": ["Kilifi", "002"], "languages": ["sw", "nyf"]}})
    organization = body["data"]["registerOrganization"]["organization"]
    assert organization["counties"] == ["003", "002"]
    assert organization["version"] == 1
    same = await factory.gql(admin, REGISTER, {"input": {"name": name.upper(), "kind": "PARTNER"}})
    assert same["data"]["registerOrganization"]["userErrors"] == [{"field": ["input", "name"], "code": "DUPLICATE"}]

    updated = await factory.gql(admin, UPDATE, {"input": {"organizationId": organization["id"], "expectedVersion": 1,
                                                          "active": False}})
    assert updated["data"]["updateOrganization"]["organization"]["version"] == 2
    stale = await factory.gql(admin, UPDATE, {"input": {"organizationId": organization["id"], "expectedVersion": 1,
                                                        "name": "Other"}})
    assert stale["data"]["updateOrganization"]["userErrors"][0]["code"] == "VERSION_CONFLICT"
    async with owner_engine.connect() as connection:
        audited = (await connection.execute(text(
            "SELECT count(*) FROM audit_event WHERE record_id = :id AND record_type = 'Organization'"),
            {"id": organization["id"]})).scalar_one()
    assert audited >= 2


async def test_a_coordinator_sets_its_own_capacity_only(factory: Factory) -> None:
    partner = await factory.org(services=("SHELTER",))
    other = await factory.org(services=("SHELTER",))
    coordinator = await factory.token(await factory.user(partner, Role.PARTNER_COORDINATOR))
    own = await factory.gql(coordinator, SET_SERVICE, {"input": {
        "organizationId": partner.gid, "service": "SHELTER", "capacityStatus": "WAITLIST", "openSlots": 0}})
    result = own["data"]["setService"]["organization"]
    assert (result["capacityStatus"], result["openSlots"]) == ("WAITLIST", 0)
    theirs = await factory.gql(coordinator, SET_SERVICE, {"input": {
        "organizationId": other.gid, "service": "SHELTER", "capacityStatus": "NO_CAPACITY"}}, expect_errors=True)
    assert theirs["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    eligibility = await factory.gql(coordinator, SET_SERVICE, {"input": {
        "organizationId": partner.gid, "service": "SHELTER", "minAge": 12}}, expect_errors=True)
    assert eligibility["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_case_managers_and_partners_cannot_register_organizations(factory: Factory) -> None:
    ngo = await factory.ngo()
    manager = await factory.token(await factory.user(ngo, Role.CASE_MANAGER))
    body = await factory.gql(manager, REGISTER, {"input": {"name": unique("X"), "kind": "PARTNER"}},
                             expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
