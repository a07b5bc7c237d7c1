"""`Organization.counselors`: the ids `assignCounselor` takes, with caseloads, for the partner's own people."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.enums import Role
from tests.api.test_staff_lifecycle import readme_example
from tests.factories import Factory
from tests.flows import act, network, referred_case

OWN = readme_example("coordinator-counselors")
ANY = "query($id: ID!) { node(id: $id) { ... on Organization { counselors { id } } } }"


async def test_a_coordinator_finds_her_active_counselors_with_their_open_caseloads(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    await referred_case(factory, net, accept=True, assign=True)
    await referred_case(factory, net, accept=True, assign=True)
    gone = await factory.user(net.partner, Role.COUNSELOR)
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE staff_user SET active = false WHERE id = :id"), {"id": gone.id})
    body = await factory.gql(net.token("coordinator"), OWN)  # the README's query, as written
    counselors = body["data"]["viewer"]["organization"]["counselors"]
    caseloads = {c["id"]: c["openCaseload"] for c in counselors}
    assert caseloads == {net.counselor.gid: 2, net.other_counselor.gid: 0}
    assert [c["displayName"] for c in counselors] == sorted(c["displayName"] for c in counselors)

    # The id is what assignCounselor takes.
    case = await referred_case(factory, net, accept=True)
    payload = await act(factory, net.token("coordinator"), "assignCounselor", "AssignCounselorInput",
                        referralId=case.referral["id"], counselorId=net.other_counselor.gid)
    assert payload["userErrors"] == []
    again = await factory.gql(net.token("counselor"), OWN)
    assert {c["id"]: c["openCaseload"] for c in again["data"]["viewer"]["organization"]["counselors"]}[
        net.other_counselor.gid] == 1


async def test_nobody_outside_the_partner_sees_its_counselors(factory: Factory) -> None:
    net = await network(factory)
    stranger = await factory.org()
    outsider = await factory.token(await factory.user(stranger, Role.PARTNER_COORDINATOR))
    for token in (net.token("manager"), net.token("supervisor"), outsider):
        body = await factory.gql(token, ANY, {"id": net.partner.gid})
        assert body["data"]["node"] == {"counselors": []}, body
