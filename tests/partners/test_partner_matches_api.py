"""partnerMatches through the API: case staff only, their own survivors only, no survivor data out."""

from __future__ import annotations

from domain.enums import Role
from tests.factories import Factory
from tests.flows import network, register_survivor

MATCHES = """query($input: PartnerMatchInput!) { partnerMatches(input: $input) {
  organization { id name } score reasons } }"""


async def test_ranks_partners_that_can_serve_with_readable_reasons(factory: Factory) -> None:
    net = await network(factory)
    survivor = await register_survivor(factory, net.token("manager"), county="Kilifi", languages=["nyf"],
                                       birthYear=2012)
    near = await factory.org(counties=("003",), languages=("sw", "nyf"), services=("TRAUMA_THERAPY",),
                             min_age=8, max_age=17)
    far = await factory.org(counties=("047",), languages=("en",), services=("TRAUMA_THERAPY",))
    adults_only = await factory.org(counties=("003",), services=("TRAUMA_THERAPY",), min_age=18)
    body = await factory.gql(net.token("manager"), MATCHES,
                             {"input": {"survivorId": survivor["id"], "service": "TRAUMA_THERAPY"}})
    matches = body["data"]["partnerMatches"]
    ids = [m["organization"]["id"] for m in matches]
    assert near.gid in ids and far.gid in ids and adults_only.gid not in ids
    assert ids.index(near.gid) < ids.index(far.gid)
    near_reasons = next(m["reasons"] for m in matches if m["organization"]["id"] == near.gid)
    assert "serves Kilifi" in near_reasons
    assert survivor["pseudonym"] not in str(body)


async def test_partners_and_other_ngos_cannot_match_a_survivor(factory: Factory) -> None:
    net = await network(factory)
    survivor = await register_survivor(factory, net.token("manager"))
    variables = {"input": {"survivorId": survivor["id"], "service": "PSYCHOSOCIAL_COUNSELING"}}
    as_partner = await factory.gql(net.token("coordinator"), MATCHES, variables, expect_errors=True)
    assert as_partner["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    other = await factory.ngo()
    stranger = await factory.token(await factory.user(other, Role.CASE_MANAGER))
    as_stranger = await factory.gql(stranger, MATCHES, variables, expect_errors=True)
    assert as_stranger["data"] is None
    assert as_stranger["errors"][0]["extensions"]["field"] == ["input", "survivorId"]
