"""Reads that probe are audited: asking by id for survivor data one may not see leaves a trace.

Partner B asks for organization A's records (and for ids naming nothing) through every query that
takes an id: `node`, `nodes`, `referrals(filter: {survivorId})`, and the NGO's `partnerMatches`. The
answer stays byte for byte the answer for a missing record; the audit trail gets one denied row per
id (purpose NOT_VISIBLE), at most the configured number per principal and window, then one row
saying how many more there were. Reading one's own records leaves no such row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from domain.ids import to_global_id
from tests.factories import Factory
from tests.flows import Network, care_network, network
from tests.oauth_helpers import extra_app, http_from

NODE = "query($id: ID!) { node(id: $id) { id } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
BY_SURVIVOR = "query($s: ID!) { referrals(filter: {survivorId: $s}) { totalCount edges { node { id } } } }"
MATCHES = "query($i: PartnerMatchInput!) { partnerMatches(input: $i) { score } }"
A_RECORDS = """query($id: ID!) { node(id: $id) { ... on Referral { id consent { id } survivor { id }
  sessions { edges { node { id } } } goals { id } milestones { id } } } }"""


async def post(http: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any]) -> httpx.Response:
    response = await http.post("/graphql", json={"query": query, "variables": variables},
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response


async def audit_rows(engine: AsyncEngine, request_id: str) -> list[tuple[str, str, str | None, str, str, str]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT actor, record_type, record_id, action, outcome, coalesce(purpose, '') AS purpose "
            "FROM audit_event WHERE request_id = :r ORDER BY seq"), {"r": request_id})).all()
    return [(r.actor, r.record_type, r.record_id, r.action, r.outcome, r.purpose) for r in rows]


async def denied_rows(engine: AsyncEngine, actor: str) -> list[tuple[str, str | None, str | None]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT record_type, record_id, request_id FROM audit_event "
            "WHERE actor = :a AND outcome = 'denied' ORDER BY seq"), {"a": actor})).all()
    return [(r.record_type, r.record_id, r.request_id) for r in rows]


async def a_records(factory: Factory) -> tuple[Network, dict[str, str]]:
    """Organization A with a referral in care; one global id of each kind of survivor data it holds."""
    net, referral_ids = await care_network(factory)
    body = await factory.gql(net.token("counselor"), A_RECORDS, {"id": referral_ids[0]})
    referral = body["data"]["node"]
    return net, {
        "Referral": referral["id"], "Consent": referral["consent"]["id"], "Survivor": referral["survivor"]["id"],
        "CounselingSession": referral["sessions"]["edges"][0]["node"]["id"], "CareGoal": referral["goals"][0]["id"],
        "Milestone": referral["milestones"][0]["id"],
    }


def random_id(type_name: str) -> str:
    return to_global_id(type_name, uuid.uuid4())


async def test_partner_b_probing_a_through_node_is_audited_and_answered_as_missing(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    _, ids = await a_records(factory)
    b = await network(factory)
    prober = b.token("coordinator")
    for type_name, gid in ids.items():
        unknown = random_id(type_name)
        forbidden = await post(factory.client, prober, NODE, {"id": gid})
        missing = await post(factory.client, prober, NODE, {"id": unknown})
        assert forbidden.content == missing.content == b'{"data" : {"node" : null}}'
        for response, asked in ((forbidden, gid), (missing, unknown)):
            assert await audit_rows(owner_engine, response.headers["x-request-id"]) == [
                (b.coordinator.gid, type_name, asked, "read", "denied", "NOT_VISIBLE")]


async def test_nodes_audits_one_row_per_id_not_shown(factory: Factory, owner_engine: AsyncEngine) -> None:
    net, ids = await a_records(factory)
    b = await network(factory)
    asked = [*ids.values(), random_id("Assessment"), random_id("Referral")]
    response = await post(factory.client, b.token("counselor"), NODES, {"ids": [*asked, asked[0]]})
    assert response.json() == {"data": {"nodes": [None] * (len(asked) + 1)}}
    rows = await audit_rows(owner_engine, response.headers["x-request-id"])
    assert sorted(r[2] or "" for r in rows) == sorted(asked)  # the repeated id once
    assert {(r[0], r[3], r[4], r[5]) for r in rows} == {(b.counselor.gid, "read", "denied", "NOT_VISIBLE")}
    # not survivor data, or not an id at all: nothing to audit
    response = await post(factory.client, b.token("counselor"), NODES, {
        "ids": [net.partner.gid, random_id("Organization"), "bm90IGFuIGlk", ids["Referral"] + "x"]})
    assert await audit_rows(owner_engine, response.headers["x-request-id"]) == []


async def test_a_partner_system_probing_is_audited_under_its_client(factory: Factory,
                                                                    owner_engine: AsyncEngine) -> None:
    _, ids = await a_records(factory)
    b = await network(factory)
    client = await factory.oauth_client(b.partner)
    token = await factory.system_token(b.partner, client.client_id)
    response = await post(factory.client, token, NODE, {"id": ids["Survivor"]})
    assert response.json() == {"data": {"node": None}}
    async with owner_engine.connect() as connection:
        row = (await connection.execute(text(
            "SELECT actor, client_id, organization_id, record_id, outcome, purpose FROM audit_event "
            "WHERE request_id = :r"), {"r": response.headers["x-request-id"]})).one()
    assert (row.actor, row.client_id, row.organization_id) == (f"client:{client.client_id}", client.client_id,
                                                               b.partner.id)
    assert (row.record_id, row.outcome, row.purpose) == (ids["Survivor"], "denied", "NOT_VISIBLE")


async def test_filters_and_matching_that_name_an_unseen_survivor_are_audited(factory: Factory,
                                                                             owner_engine: AsyncEngine) -> None:
    _, ids = await a_records(factory)
    b = await network(factory)
    for token, actor in ((b.token("coordinator"), b.coordinator.gid), (b.token("manager"), b.manager.gid)):
        forbidden = await post(factory.client, token, BY_SURVIVOR, {"s": ids["Survivor"]})
        missing = await post(factory.client, token, BY_SURVIVOR, {"s": random_id("Survivor")})
        assert forbidden.content == missing.content
        assert forbidden.json() == {"data": {"referrals": {"totalCount": 0, "edges": []}}}
        rows = await audit_rows(owner_engine, forbidden.headers["x-request-id"])
        assert rows == [(actor, "Survivor", ids["Survivor"], "read", "denied", "NOT_VISIBLE")]
    matches = {"i": {"survivorId": ids["Survivor"], "service": "PSYCHOSOCIAL_COUNSELING"}}
    forbidden = await post(factory.client, b.token("manager"), MATCHES, matches)
    missing = await post(factory.client, b.token("manager"), MATCHES,
                         {"i": {**matches["i"], "survivorId": random_id("Survivor")}})
    assert forbidden.content == missing.content
    assert [e["message"] for e in forbidden.json()["errors"]] == ["Not found."]
    assert await audit_rows(owner_engine, forbidden.headers["x-request-id"]) == [
        (b.manager.gid, "Survivor", ids["Survivor"], "read", "denied", "NOT_VISIBLE")]


async def test_reading_ones_own_records_by_id_leaves_no_denied_row(factory: Factory,
                                                                   owner_engine: AsyncEngine) -> None:
    net, ids = await a_records(factory)
    for who in ("coordinator", "counselor"):
        body = await factory.gql(net.token(who), NODES, {"ids": list(ids.values())})
        assert all(node is not None for node in body["data"]["nodes"])
        body = await factory.gql(net.token(who), BY_SURVIVOR, {"s": ids["Survivor"]})
        assert body["data"]["referrals"]["totalCount"] >= 1
        assert await denied_rows(owner_engine, getattr(net, who).gid) == []


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app that audits at most 5 refused reads per principal per 2 seconds."""
    application = extra_app(settings.model_copy(update={"refused_read_audit_limit": "5/2 seconds"}))
    async with application.router.lifespan_context(application), http_from(application) as http:
        yield application, http


async def test_the_rate_limit_caps_rows_then_one_row_says_how_many_more(
        factory: Factory, owner_engine: AsyncEngine, limited: tuple[Any, httpx.AsyncClient]) -> None:
    _, http = limited
    b = await network(factory)
    prober = b.token("coordinator")
    first = await post(http, prober, NODES, {"ids": [random_id("Referral") for _ in range(4)]})
    second = await post(http, prober, NODES, {"ids": [random_id("Survivor") for _ in range(9)]})
    assert first.json() == {"data": {"nodes": [None] * 4}} and second.json() == {"data": {"nodes": [None] * 9}}
    rows = await denied_rows(owner_engine, b.coordinator.gid)
    assert [r[0] for r in rows] == ["Referral"] * 4 + ["Survivor"]
    assert await summaries(owner_engine, b.coordinator.gid) == []  # until the window ends
    for _ in range(50):  # the window (2 s from the first request) ends: its summary is written
        await asyncio.sleep(0.1)
        if await summaries(owner_engine, b.coordinator.gid):
            break
    assert await summaries(owner_engine, b.coordinator.gid) == [("Unrecorded", "8", None)]
    # a new window records again
    unknown = random_id("Consent")
    third = await post(http, prober, NODE, {"id": unknown})
    assert (await denied_rows(owner_engine, b.coordinator.gid))[6:] == [
        ("Consent", unknown, third.headers["x-request-id"])]


async def summaries(engine: AsyncEngine, actor: str) -> list[tuple[str, str | None, str | None]]:
    return [row for row in await denied_rows(engine, actor) if row[0] == "Unrecorded"]


async def test_the_limit_is_per_principal_and_a_shutdown_writes_the_pending_count(
        factory: Factory, owner_engine: AsyncEngine, settings: Settings) -> None:
    application = extra_app(settings.model_copy(update={"refused_read_audit_limit": "2/hour"}))
    b = await network(factory)
    async with application.router.lifespan_context(application), http_from(application) as http:
        await post(http, b.token("coordinator"), NODES, {"ids": [random_id("Referral") for _ in range(5)]})
        await post(http, b.token("counselor"), NODES, {"ids": [random_id("Referral") for _ in range(2)]})
        assert len(await denied_rows(owner_engine, b.coordinator.gid)) == 2
        assert await summaries(owner_engine, b.coordinator.gid) == []
    assert await summaries(owner_engine, b.coordinator.gid) == [("Unrecorded", "3", None)]
    assert [r[0] for r in await denied_rows(owner_engine, b.counselor.gid)] == ["Referral", "Referral"]
