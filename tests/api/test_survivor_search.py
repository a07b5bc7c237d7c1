"""`survivors(filter: {search})`: a pseudonym's start, or an exact phone within one's own organization."""

from __future__ import annotations

import secrets

from tests.api.test_staff_lifecycle import readme_example
from tests.factories import Factory
from tests.flows import network, referred_case, register_survivor

SEARCH = readme_example("survivor-search")  # the README's query, as written


async def _found(factory: Factory, token: str, search: str) -> list[str]:
    body = await factory.gql(token, SEARCH, {"search": search})
    return [e["node"]["id"] for e in body["data"]["survivors"]["edges"]]


async def test_a_case_manager_finds_a_survivor_by_pseudonym_start_or_phone_and_never_another_ngos(
        factory: Factory) -> None:
    net, other = await network(factory), await network(factory)
    phone, guardian = f"+2547{secrets.randbelow(10**8):08d}", f"+2547{secrets.randbelow(10**8):08d}"
    tag = secrets.token_hex(3)
    mine = await register_survivor(factory, net.token("manager"), pseudonym=f"Zuri-{tag}", phone=phone,
                                   guardianPhone=guardian)
    theirs = await register_survivor(factory, other.token("manager"), pseudonym=f"Zuri-{tag}-b", phone=phone)
    manager = net.token("manager")
    assert await _found(factory, manager, f"zuri-{tag}") == [mine["id"]]
    assert await _found(factory, manager, phone) == [mine["id"]]
    assert await _found(factory, manager, "0" + phone[4:]) == [mine["id"]]  # the national spelling
    assert await _found(factory, manager, guardian) == [mine["id"]]
    assert await _found(factory, other.token("manager"), phone) == [theirs["id"]]
    assert await _found(factory, manager, "Z%") == []  # wildcards are literal


async def test_a_partner_finds_referred_survivors_by_pseudonym_but_not_by_phone(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    pseudonym = case.survivor["pseudonym"]
    coordinator = net.token("coordinator")
    assert await _found(factory, coordinator, pseudonym[:6]) == [case.survivor["id"]]
    body = await factory.gql(net.token("manager"), """query($id: ID!) { node(id: $id) { ... on Survivor {
        identity { phone } } } }""", {"id": case.survivor["id"]})
    phone = body["data"]["node"]["identity"]["phone"]
    assert await _found(factory, coordinator, phone) == []


async def test_a_search_too_short_or_not_a_phone_is_refused_naming_the_field(factory: Factory) -> None:
    net = await network(factory)
    for typed in ("x", "   ", "+99"):
        body = await factory.gql(net.token("manager"), SEARCH, {"search": typed}, expect_errors=True)
        error = body["errors"][0]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": ["filter", "search"]}, body
        assert "+99" not in error["message"]
