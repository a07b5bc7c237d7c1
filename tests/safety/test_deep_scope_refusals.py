"""A scope missing deep in a query: FORBIDDEN on that field, the rest answered, one audit row.

graphql-core cancels the siblings of a field that failed; a sibling cancelled while its statement
ran used to close the request's connection, so the request failed at commit ("the underlying
connection is closed") and the refusal was never audited. Whatever the depth, the spelling (inline,
fragments, node) or the engine (the read compiler stepping aside, graphql-core), a missing scope now answers the same
way every time, even in a concurrent burst; and a query's audited reads keep the audit chain whole
while other requests write theirs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import RowSecurityContext, transaction
from tests.factories import Factory
from tests.flows import Network, care_network, network, referred_case

REFERRAL_SCOPES = ["user/Referral.rs", "user/Survivor.rs"]

# The finding's query: milestones (no Milestone scope) and identity (no SurvivorIdentity scope).
FINDING = "{ referrals { edges { node { milestones { id } survivor { identity { legalName } } } } } }"


async def ask(factory: Factory, token: str, query: str, variables: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], str]:
    """The body and the request id the audit rows carry."""
    response = await factory.client.post("/graphql", json={"query": query, "variables": variables or {}},
                                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body, response.headers["x-request-id"]


async def refusals(engine: AsyncEngine, request_id: str) -> list[tuple[str, str, str, str | None]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT action, outcome, purpose, record_id FROM audit_event "
            "WHERE request_id = :r AND purpose = 'FORBIDDEN' ORDER BY seq"), {"r": request_id})).all()
    return [(r.action, r.outcome, r.purpose, r.record_id) for r in rows]


def forbidden_paths(body: dict[str, Any]) -> list[list[str | int]]:
    errors = body.get("errors") or []
    assert errors, body
    assert {e["extensions"]["code"] for e in errors} == {"FORBIDDEN"}, errors
    assert all("lacks a scope" in e["message"] for e in errors), errors
    return [e["path"] for e in errors]


async def coordinator(factory: Factory, scopes: list[str]) -> tuple[Network, list[str], str]:
    net, referral_ids = await care_network(factory)
    return net, referral_ids, await factory.token(net.coordinator, scopes=scopes)


async def test_the_findings_query_is_forbidden_on_its_field_and_audited(factory: Factory,
                                                                        owner_engine: AsyncEngine) -> None:
    _, _, token = await coordinator(factory, REFERRAL_SCOPES)
    body, request_id = await ask(factory, token, FINDING)
    paths = forbidden_paths(body)
    assert paths[0][0:2] == ["referrals", "edges"] and paths[0][3:] == ["node", "milestones"], paths
    assert body["data"] is None  # milestones is [Milestone!]!: the null propagates to the non-null root
    assert await refusals(owner_engine, request_id) == [
        ("query.referrals.edges.node.milestones", "denied", "FORBIDDEN", None)]


async def test_a_nullable_field_refused_deep_leaves_the_rest_of_the_answer(factory: Factory,
                                                                           owner_engine: AsyncEngine) -> None:
    _, referral_ids, token = await coordinator(factory, REFERRAL_SCOPES)
    query = "{ referrals { edges { node { id status survivor { pseudonym identity { legalName } } } } } }"
    body, request_id = await ask(factory, token, query)
    nodes = [e["node"] for e in body["data"]["referrals"]["edges"]]
    assert {n["id"] for n in nodes} >= set(referral_ids[:3])
    assert all(n["survivor"]["pseudonym"] and n["survivor"]["identity"] is None for n in nodes)
    paths = forbidden_paths(body)
    assert all(p[0:2] == ["referrals", "edges"] and p[3:] == ["node", "survivor", "identity"] for p in paths)
    # one refused field, however many referrals it was refused on: one row
    assert await refusals(owner_engine, request_id) == [
        ("query.referrals.edges.node.survivor.identity", "denied", "FORBIDDEN", None)]


SESSIONS = "sessions { edges { node { id } } }"
# Each spelling of a refusal deep in a query: (scopes held, query, variables key, the refused field's
# path without list positions, whether data survives). `$referral` is replaced by a referral's id.
DEEP = {
    "sessions under referrals": (
        [*REFERRAL_SCOPES], f"{{ referrals {{ edges {{ node {{ id {SESSIONS} }} }} }} }}",
        "referrals.edges.node.sessions", False),
    "assessments under a survivor": (
        [*REFERRAL_SCOPES], "{ referrals { edges { node { survivor { assessments { id } } } } } }",
        "referrals.edges.node.survivor.assessments", False),
    "goals, in a named fragment": (
        [*REFERRAL_SCOPES], "query { referrals { ...R } } fragment R on ReferralConnection { edges { node { "
                            "goals { id } } } }", "referrals.edges.node.goals", False),
    "milestones, in an inline fragment (the read compiler steps aside)": (
        [*REFERRAL_SCOPES], "{ referrals { edges { node { ... on Referral { milestones { id } } } } } }",
        "referrals.edges.node.milestones", False),
    "identity through node()": (
        [*REFERRAL_SCOPES], "query($id: ID!) { node(id: $id) { ... on Referral { id survivor { identity { "
                            "legalName } } } } }", "node.survivor.identity", True),
    "sessions through node()": (
        [*REFERRAL_SCOPES], f"query($id: ID!) {{ node(id: $id) {{ id ... on Referral {{ {SESSIONS} }} }} }}",
        "node.sessions", False),
    "milestones and identity through nodes()": (
        [*REFERRAL_SCOPES], "query($id: ID!) { nodes(ids: [$id]) { ... on Referral { milestones { id } survivor "
                            "{ identity { legalName } } } } }", "nodes.milestones", False),
    "consent under a referral": (
        ["user/Referral.rs"], "{ referrals { edges { node { id consent { id } } } } }",
        "referrals.edges.node.consent", False),
}


@pytest.mark.parametrize("case", list(DEEP))
async def test_every_deep_refusal_is_forbidden_on_its_path_and_audited_once(
        factory: Factory, owner_engine: AsyncEngine, case: str) -> None:
    scopes, query, refused, data_survives = DEEP[case]
    _, referral_ids, token = await coordinator(factory, scopes)
    body, request_id = await ask(factory, token, query, {"id": referral_ids[0]} if "$id" in query else None)
    paths = forbidden_paths(body)
    assert {".".join(p for p in path if isinstance(p, str)) for path in paths} == {refused}, paths
    if data_survives:
        assert body["data"]["node"]["id"] == referral_ids[0] and body["data"]["node"]["survivor"]["identity"] is None
    elif "nodes(" in query:
        assert body["data"] == {"nodes": [None]}
    elif "node(" in query:
        assert body["data"] == {"node": None}
    else:
        assert body["data"] is None
    assert await refusals(owner_engine, request_id) == [(f"query.{refused}", "denied", "FORBIDDEN", None)]


async def test_a_refusal_met_by_the_read_compiler_is_audited_once(factory: Factory, app: Any,
                                                                  owner_engine: AsyncEngine) -> None:
    """The read compiler meets the missing scope, steps aside, and graphql-core refuses the field: one row."""
    _, _, token = await coordinator(factory, REFERRAL_SCOPES)
    compiler = app.state.graphql_schema.compiler
    stepped_aside = compiler.stepped_aside
    body, request_id = await ask(factory, token, "{ referrals { edges { node { id milestones { id } } } } }")
    assert compiler.stepped_aside == stepped_aside + 1
    forbidden_paths(body)
    assert await refusals(owner_engine, request_id) == [
        ("query.referrals.edges.node.milestones", "denied", "FORBIDDEN", None)]


async def test_a_concurrent_burst_answers_every_request_the_same_way(factory: Factory,
                                                                     owner_engine: AsyncEngine) -> None:
    _, _, token = await coordinator(factory, REFERRAL_SCOPES)
    answers = await asyncio.gather(*(ask(factory, token, FINDING) for _ in range(20)))
    first = answers[0][0]
    forbidden_paths(first)
    assert all(body == first for body, _ in answers), [body for body, _ in answers if body != first][:1]
    for _, request_id in answers:
        assert await refusals(owner_engine, request_id) == [
            ("query.referrals.edges.node.milestones", "denied", "FORBIDDEN", None)]


async def test_audited_reads_in_a_burst_keep_the_audit_chain_whole(factory: Factory,
                                                                   owner_engine: AsyncEngine) -> None:
    """A query's snapshot predates rows other requests commit meanwhile; its identity-read rows must
    still link to the newest row (they are written after its REPEATABLE READ transaction)."""
    net, _ = await care_network(factory)
    identity = "{ referrals { edges { node { survivor { identity { legalName } } } } } }"
    denied = await factory.token(net.coordinator, scopes=REFERRAL_SCOPES)
    answers = await asyncio.gather(*(ask(factory, token, identity)
                                     for token in [net.token("coordinator"), denied] * 10))
    shown = answers[0][0]["data"]["referrals"]["edges"]
    assert any(e["node"]["survivor"]["identity"] for e in shown), shown
    async with owner_engine.connect() as connection:
        reads = (await connection.execute(text(
            "SELECT count(*) FROM audit_event WHERE request_id = :r AND record_type = 'SurvivorIdentity' "
            "AND outcome = 'allowed'"), {"r": answers[0][1]})).scalar()
        broken = (await connection.execute(text(
            "SELECT count(*) FROM audit_verify WHERE NOT (link_ok AND hash_ok)"))).scalar()
    assert reads == sum(1 for e in shown if e["node"]["survivor"]["identity"])
    assert broken == 0


async def test_a_timeout_during_a_statement_still_stops_at_once(app_engine: AsyncEngine) -> None:
    """Statements outlive a cancelled resolver, but not a rolled-back transaction: a timeout closes
    the connection under a running statement instead of waiting for it, and the pool stays usable."""
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3), transaction(app_engine, RowSecurityContext()) as db:
            await db.execute(text("SELECT pg_sleep(5)"))
    assert asyncio.get_running_loop().time() - started < 2
    async with transaction(app_engine, RowSecurityContext()) as db:
        assert await db.scalar(text("SELECT 1")) == 1


async def test_a_cancelled_reader_leaves_the_transaction_usable(app_engine: AsyncEngine) -> None:
    """What graphql-core does to a failed field's siblings: the statement finishes, the commit works."""
    async with transaction(app_engine, RowSecurityContext()) as db:
        reader = asyncio.ensure_future(db.execute(text("SELECT pg_sleep(0.2)")))
        await asyncio.sleep(0.05)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert await db.scalar(text("SELECT 2")) == 2


async def test_a_refusal_in_a_mutations_payload_keeps_the_change_and_is_audited(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    token = await factory.token(net.coordinator, scopes=["user/Referral.rus"])
    accept = """mutation($input: ReferralActionInput!) { acceptReferral(input: $input) {
      referral { id status survivor { pseudonym } } userErrors { code } } }"""
    body, request_id = await ask(factory, token, accept, {"input": {"referralId": case.referral["id"]}})
    assert forbidden_paths(body) == [["acceptReferral", "referral", "survivor"]]
    assert body["data"] == {"acceptReferral": {"referral": None, "userErrors": []}}
    status = await factory.gql(net.token("coordinator"), "query($id: ID!) { node(id: $id) { ... on Referral { "
                               "status } } }", {"id": case.referral["id"]})
    assert status["data"]["node"]["status"] == "ACCEPTED"
    assert await refusals(owner_engine, request_id) == [
        ("mutation.acceptReferral.referral.survivor", "denied", "FORBIDDEN", None)]
