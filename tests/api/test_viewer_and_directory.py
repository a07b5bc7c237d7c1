"""The foundation schema: viewer, node and organizations follow the contract."""

from __future__ import annotations

from domain.enums import OrganizationKind, Role
from tests.factories import Factory

VIEWER = "{ viewer { clientId roles scopes organization { id name kind } user { id displayName } } }"


async def test_viewer_answers_from_the_token(factory: Factory) -> None:
    ngo = await factory.ngo()
    manager = await factory.user(ngo, Role.CASE_MANAGER)
    body = await factory.gql(await factory.token(manager), VIEWER)
    viewer = body["data"]["viewer"]
    assert viewer["roles"] == ["CASE_MANAGER"]
    assert viewer["organization"] == {"id": ngo.gid, "name": ngo.name, "kind": "REFERRING_NGO"}
    assert viewer["user"] == {"id": manager.gid, "displayName": manager.name}
    assert "user/Referral.crus" in viewer["scopes"]


async def test_a_scope_in_the_token_narrows_but_never_widens_the_role(factory: Factory) -> None:
    partner = await factory.org()
    counselor = await factory.user(partner, Role.COUNSELOR)
    token = await factory.token(counselor, scopes=["user/Referral.r", "user/AuditEvent.rs"])
    body = await factory.gql(token, VIEWER)
    assert body["data"]["viewer"]["scopes"] == ["user/Referral.r"]


async def test_organizations_filter_and_paginate(factory: Factory) -> None:
    ngo = await factory.ngo()
    manager = await factory.user(ngo, Role.CASE_MANAGER)
    token = await factory.token(manager)
    await factory.org(counties=("047",), services=("SHELTER",), name="Zz shelter A " + ngo.name)
    await factory.org(counties=("047",), services=("SHELTER",), name="Zz shelter B " + ngo.name)
    query = """query($after: String) { organizations(first: 1, after: $after,
        filter: {county: "Nairobi", service: SHELTER, kind: PARTNER}) {
        totalCount edges { cursor node { name services counties capacityStatus } }
        pageInfo { hasNextPage hasPreviousPage endCursor } } }"""
    first = (await factory.gql(token, query))["data"]["organizations"]
    assert first["totalCount"] >= 2
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["edges"][0]["node"]["counties"] == ["047"]
    assert first["edges"][0]["node"]["services"] == ["SHELTER"]
    assert first["edges"][0]["node"]["capacityStatus"] == "CAPACITY"
    second = (await factory.gql(token, query, {"after": first["pageInfo"]["endCursor"]}))["data"]["organizations"]
    assert second["pageInfo"]["hasPreviousPage"] is True
    assert second["edges"][0]["node"]["name"] > first["edges"][0]["node"]["name"]


async def test_node_refetches_an_organization_and_hides_garbage_ids(factory: Factory) -> None:
    ngo = await factory.ngo()
    manager = await factory.user(ngo, Role.CASE_MANAGER)
    token = await factory.token(manager)
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Organization { name } } }"
    body = await factory.gql(token, query, {"ids": [ngo.gid, "garbage", "T3JnYW5pemF0aW9uOm5vcGU"]})
    assert body["data"]["nodes"] == [{"id": ngo.gid, "name": ngo.name}, None, None]


async def test_page_size_above_the_maximum_is_a_readable_error(factory: Factory) -> None:
    ngo = await factory.ngo()
    token = await factory.token(await factory.user(ngo, Role.CASE_MANAGER))
    body = await factory.gql(token, "{ organizations(first: 101) { totalCount } }", expect_errors=True)
    assert body["errors"][0]["message"] == "first must be between 0 and 100."
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_partner_kind_filter_excludes_the_ngo(factory: Factory) -> None:
    ngo = await factory.ngo()
    token = await factory.token(await factory.user(ngo, Role.CASE_MANAGER))
    query = "{ organizations(first: 100, filter: {kind: PARTNER}) { edges { node { kind } } } }"
    body = await factory.gql(token, query)
    kinds = {e["node"]["kind"] for e in body["data"]["organizations"]["edges"]}
    assert kinds <= {OrganizationKind.PARTNER.value}
