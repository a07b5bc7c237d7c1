"""Abuse limits: depth, aliases, tokens, page size, cost, batching, introspection in production."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.graphql import http as graphql_http
from api.main import create_app
from config.settings import Settings
from domain.enums import Role
from tests.factories import Factory

SPEC = "application/graphql-response+json"


async def _token(factory: Factory) -> str:
    ngo = await factory.ngo()
    return await factory.token(await factory.user(ngo, Role.CASE_MANAGER))


async def test_a_forty_deep_query_is_refused(factory: Factory) -> None:
    token = await _token(factory)
    nested = "id"
    for _ in range(20):
        nested = "user { organization { id } } organization { id } "
    query = "{ " + "node(id: \"x\") { ... on Survivor { referrals { edges { node { survivor { " * 8 + "id" + \
        " } } } } } }" * 8 + " }"
    assert nested
    body = await factory.gql(token, query, expect_errors=True)
    assert "exceeds maximum operation depth of 12" in body["errors"][0]["message"]


async def test_five_hundred_aliases_are_refused(factory: Factory) -> None:
    token = await _token(factory)
    query = "{ " + " ".join(f"a{i}: viewer {{ clientId }}" for i in range(500)) + " }"
    body = await factory.gql(token, query, expect_errors=True)
    message = body["errors"][0]["message"]
    assert "aliases found. Allowed: 30" in message or "more than 5000 tokens" in message


async def test_thirty_one_aliases_are_refused_readably(factory: Factory) -> None:
    token = await _token(factory)
    query = "{ " + " ".join(f"a{i}: viewer {{ clientId }}" for i in range(31)) + " }"
    body = await factory.gql(token, query, expect_errors=True)
    assert body["errors"][0]["message"] == "31 aliases found. Allowed: 30"


async def test_an_oversized_document_is_refused_before_validation(factory: Factory) -> None:
    token = await _token(factory)
    query = "{ viewer { " + " ".join(["clientId"] * 6000) + " } }"
    body = await factory.gql(token, query, expect_errors=True)
    assert "tokens" in body["errors"][0]["message"]


@pytest.mark.parametrize("first", [100000, 101, -1])
async def test_page_sizes_outside_0_to_100_are_refused(factory: Factory, first: int) -> None:
    token = await _token(factory)
    body = await factory.gql(token, f"{{ organizations(first: {first}) {{ totalCount }} }}", expect_errors=True)
    assert body["errors"][0]["message"] == "first must be between 0 and 100."
    assert body["data"] is None


async def test_nested_page_sizes_multiply_into_a_cost_limit(factory: Factory) -> None:
    token = await _token(factory)
    query = """{ survivors(first: 100) { edges { node { referrals(first: 100) { totalCount } } } } }"""
    body = await factory.gql(token, query, expect_errors=True)
    assert body["errors"][0]["message"].startswith("Query cost 10100 exceeds the limit of 2000")
    assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT"


async def test_cost_counts_page_sizes_given_as_variables(factory: Factory) -> None:
    token = await _token(factory)
    query = """query($n: Int) { survivors(first: $n) { edges { node { referrals(first: $n) { totalCount } } } } }"""
    body = await factory.gql(token, query, {"n": 60}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT"
    ok = await factory.gql(token, query, {"n": 10})
    assert ok["data"]["survivors"]["edges"] == []


async def test_batched_requests_are_refused(factory: Factory) -> None:
    token = await _token(factory)
    response = await factory.client.post("/graphql", json=[{"query": "{ viewer { clientId } }"}] * 2,
                                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert "Batching is not enabled" in response.text


async def test_queries_over_get_are_refused(factory: Factory) -> None:
    token = await _token(factory)
    response = await factory.client.get("/graphql", params={"query": "{ viewer { clientId } }"},
                                        headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (400, 405)


async def test_graphql_response_media_type_and_status_codes(factory: Factory) -> None:
    token = await _token(factory)
    headers = {"Authorization": f"Bearer {token}", "Accept": SPEC}
    ok = await factory.client.post("/graphql", json={"query": "{ viewer { clientId } }"}, headers=headers)
    assert (ok.status_code, ok.headers["content-type"]) == (200, SPEC)
    syntax = await factory.client.post("/graphql", json={"query": "{ viewer { "}, headers=headers)
    assert (syntax.status_code, syntax.headers["content-type"]) == (400, SPEC)
    invalid = await factory.client.post("/graphql", json={"query": "{ nope }"}, headers=headers)
    assert (invalid.status_code, invalid.headers["content-type"]) == (422, SPEC)
    legacy = await factory.client.post("/graphql", json={"query": "{ nope }"},
                                       headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    assert legacy.headers["content-type"].startswith("application/json")


async def test_an_answer_with_data_is_not_parsed_to_find_its_status(factory: Factory,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled read's bytes go to the client unparsed (issue 13), for a client of the spec's media type
    too: the status of an answer with `data` is read from its first bytes."""
    token = await _token(factory)
    query = {"query": "{ viewer { clientId } referrals(first: 3) { totalCount } }"}
    legacy = await factory.client.post("/graphql", json=query, headers={"Authorization": f"Bearer {token}"})

    def no_parsing(_: object) -> int:
        raise AssertionError("the body was parsed to find its status")

    monkeypatch.setattr(graphql_http, "status_for", no_parsing)  # what the parsing branch asks
    spec = await factory.client.post("/graphql", json=query, headers={"Authorization": f"Bearer {token}",
                                                                      "Accept": SPEC})
    assert (spec.status_code, spec.headers["content-type"], spec.content) == (200, SPEC, legacy.content)


# Each misspelling earns a "Did you mean" hint from graphql-core outside production.
TYPOS_WITH_SUGGESTIONS = {
    "field": "{ viewr { clientId } }",
    "argument": "{ referrals(frist: 1) { totalCount } }",
    "type": "query($f: ReferalFilter) { referrals(filter: $f) { totalCount } }",
    "input-field": "{ referrals(filter: {statuss: [REQUESTED]}) { totalCount } }",
    "fragment-type": "{ viewer { ... on Viewr { clientId } } }",
}


@pytest.mark.parametrize("typo", TYPOS_WITH_SUGGESTIONS.values(), ids=TYPOS_WITH_SUGGESTIONS.keys())
async def test_typos_get_their_hints_outside_production(factory: Factory, typo: str) -> None:
    """The production test below is only meaningful if each typo earns a hint elsewhere."""
    body = await factory.gql(await _token(factory), typo, expect_errors=True)
    assert any("Did you mean" in e["message"] for e in body["errors"]), body


@pytest.fixture
async def production(settings: Settings, factory: Factory) -> AsyncIterator[tuple[httpx.AsyncClient, Factory]]:
    # The test database's keys are the development ones, which production refuses at start-up
    # (tests/foundation/test_settings.py); model_copy skips that check to serve this database as production.
    prod = settings.model_copy(update={"env": "production", "public_url": "https://pamoja.example.org"})
    app = create_app(prod)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://pamoja.example.org") as c:
            yield c, Factory(engine=factory.engine, settings=prod, client=c)


async def test_production_refuses_introspection_ide_and_suggestions(
    production: tuple[httpx.AsyncClient, Factory],
) -> None:
    client, prod_factory = production
    token = await _token(prod_factory)
    body = await prod_factory.gql(token, "{ __schema { types { name } } }", expect_errors=True)
    assert "introspection has been disabled" in body["errors"][0]["message"]
    # An enum value's error lists the allowed values (the public contract's), in no "Did you mean".
    enum_typo = "{ referrals(filter: {status: [REQUESTD]}) { totalCount } }"
    for typo in [*TYPOS_WITH_SUGGESTIONS.values(), enum_typo]:
        body = await prod_factory.gql(token, typo, expect_errors=True)
        assert body["errors"], typo
        assert all("Did you mean" not in e["message"] for e in body["errors"]), body
    ide = await client.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code != 200 or "graphiql" not in ide.text.lower()


def test_production_settings_refuse_development_defaults() -> None:
    with pytest.raises(ValueError) as raised:
        Settings(env="production", database_url="postgresql://x@y/z", public_url="http://insecure")
    message = str(raised.value)
    for part in ("PAMOJA_MASTER_KEYS", "PAMOJA_BLIND_INDEX_KEY", "https"):
        assert part in message


async def test_an_operation_past_the_request_timeout_is_stopped_readably(settings: Settings,
                                                                         factory: Factory) -> None:
    app = create_app(settings.model_copy(update={"request_timeout_seconds": 0.000001}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            token = await _token(factory)
            response = await client.post("/graphql", json={"query": "{ organizations { totalCount } }"},
                                         headers={"Authorization": f"Bearer {token}"})
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "TIMEOUT"
    assert "nothing was changed" in error["message"]


# ----------------------------------------------------------------------------- cost of the resolved selection

# Thirty aliased connections without `first`, their edges and nested session connections in fragments:
# 30 * (20 referrals + 20 * 20 sessions) = 12,600.
THIRTY_ALIASED_FRAGMENTS = "{ " + " ".join(f"a{i}: referrals {{ ...RC }}" for i in range(30)) + """ }
fragment RC on ReferralConnection { edges { node { ...R } } }
fragment R on Referral { id sessions { ...SC } }
fragment SC on CounselingSessionConnection { edges { node { id } } }"""
THIRTY_ALIASED_WRITTEN_OUT = "{ " + " ".join(
    f"a{i}: referrals {{ edges {{ node {{ id sessions {{ edges {{ node {{ id }} }} }} }} }} }}"
    for i in range(30)) + " }"

# Each costs 20 + 20 * 100 = 2,020 however the selection reaches the nested connection.
OVER_BY_SPELLING = {
    "inline-fragments": """{ referrals { ... on ReferralConnection { edges { node { ... on Referral {
        sessions(first: 100) { ... on CounselingSessionConnection { totalCount } } } } } } } }""",
    "untyped-inline-fragments": """{ referrals { ... { edges { ... { node { ... {
        sessions(first: 100) { ... { totalCount } } } } } } } } }""",
    "fragment-chain": """{ referrals { ...A } }
        fragment A on ReferralConnection { ...B }
        fragment B on ReferralConnection { edges { ...C } }
        fragment C on ReferralEdge { node { ...D } }
        fragment D on Referral { ...E }
        fragment E on Referral { sessions(first: 100) { totalCount } }""",
    "connection-with-only-totalCount": "{ referrals { edges { node { sessions(first: 100) { totalCount } } } } }",
    "node-interface": """{ viewer { clientId } node(id: "x") { ... on Survivor { referrals(first: 20) {
        edges { node { sessions(first: 100) { totalCount } } } } } } }""",
}


@pytest.mark.parametrize("query", OVER_BY_SPELLING.values(), ids=OVER_BY_SPELLING.keys())
async def test_cost_is_counted_through_every_spelling_of_a_selection(factory: Factory, query: str) -> None:
    token = await _token(factory)
    body = await factory.gql(token, query, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT", body
    assert body["errors"][0]["message"].startswith("Query cost 2020 exceeds the limit of 2000")
    assert body["data"] is None


async def test_thirty_aliased_connections_in_fragments_cost_what_they_cost_written_out(factory: Factory) -> None:
    token = await _token(factory)
    messages = []
    for query in (THIRTY_ALIASED_FRAGMENTS, THIRTY_ALIASED_WRITTEN_OUT):
        body = await factory.gql(token, query, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT"
        messages.append(body["errors"][0]["message"])
    assert messages[0] == messages[1]
    assert messages[0].startswith("Query cost 12600 exceeds")


async def test_repeated_spreads_of_one_fragment_each_count(factory: Factory) -> None:
    token = await _token(factory)
    # 5 * 420 = 2,100: each spread (here under its own alias) asks for its own pages.
    query = "{ " + " ".join(f"a{i}: referrals {{ ...RC ...RC }}" for i in range(5)) + """ }
        fragment RC on ReferralConnection { edges { node { sessions { totalCount } } } }"""
    body = await factory.gql(token, query, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT"


async def test_fragments_spread_twice_at_every_level_are_costed_without_expanding_them(factory: Factory) -> None:
    """Forty fragments, each spreading the next twice, would be 2^40 expansions to walk one by one."""
    token = await _token(factory)
    chain = "\n".join(
        f"fragment F{i} on Referral {{ sessions(first: 1) {{ totalCount }} ...F{i + 1} ...F{i + 1} }}"
        for i in range(40))
    query = "{ referrals(first: 1) { edges { node { ...F0 } } } }\n" + chain + \
        "\nfragment F40 on Referral { id }"
    body = await factory.gql(token, query, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT"


# Each fragment spreads the next twice: 2^40 copies once expanded, in about 2 KB.
SPREAD_TWICE = {
    "aliases": ("{ viewer { ...F0 } }", "fragment F{i} on Viewer {{ a{i}: clientId ...F{n} ...F{n} }}",
                "fragment F40 on Viewer { clientId }", "aliases found. Allowed: 30"),
    "depth": ("{ referrals(first: 1) { edges { node { ...F0 } } } }",
              "fragment F{i} on Referral {{ survivor {{ referrals(first: 1) {{ edges {{ node {{ ...F{n} ...F{n} "
              "}} }} }} }} }}",
              "fragment F40 on Referral { id }", "exceeds maximum operation depth of 12"),
}


@pytest.mark.parametrize("shape", SPREAD_TWICE.values(), ids=SPREAD_TWICE.keys())
async def test_depth_and_aliases_are_measured_without_expanding_fragments(factory: Factory,
                                                                         shape: tuple[str, str, str, str]) -> None:
    """strawberry's own limiters walked each spread again: this document held a CPU for good."""
    operation, fragment, last, refusal = shape
    token = await _token(factory)
    query = "\n".join([operation, *(fragment.format(i=i, n=i + 1) for i in range(40)), last])
    body = await factory.gql(token, query, expect_errors=True)
    assert refusal in body["errors"][0]["message"], body


async def test_a_page_size_variable_left_out_costs_its_default(factory: Factory) -> None:
    token = await _token(factory)
    query = """query($n: Int = 100) { referrals(first: $n) { ...RC } }
        fragment RC on ReferralConnection { edges { node { sessions(first: $n) { totalCount } } } }"""
    body = await factory.gql(token, query, expect_errors=True)
    assert body["errors"][0]["message"].startswith("Query cost 10100 exceeds")
    ok = await factory.gql(token, query, {"n": 10})
    assert ok["data"]["referrals"]["edges"] == []


async def test_nodes_cost_one_row_per_id_asked_for(factory: Factory) -> None:
    token = await _token(factory)
    query = """query($ids: [ID!]!) { nodes(ids: $ids) { ... on Survivor { referrals(first: 100) { totalCount } } } }"""
    many = await factory.gql(token, query, {"ids": [f"x{i}" for i in range(100)]}, expect_errors=True)
    assert many["errors"][0]["message"].startswith("Query cost 10100 exceeds")
    literal = "{ nodes(ids: [" + ", ".join(f'"x{i}"' for i in range(100)) + \
        "]) { ... on Survivor { referrals(first: 100) { totalCount } } } }"
    assert (await factory.gql(token, literal, expect_errors=True))["errors"][0]["message"] == \
        many["errors"][0]["message"]
    few = await factory.gql(token, query, {"ids": ["x1", "x2"]})
    assert few["data"]["nodes"] == [None, None]


async def test_lists_without_paging_count_as_rows(factory: Factory) -> None:
    token = await _token(factory)
    # 100 survivors, each with goals (and their history), consents and assessments (and their scores).
    query = """{ survivors(first: 100) { edges { node { goals { history { at } } consents { id }
        assessments { domainScores { domain } } } } } }"""
    body = await factory.gql(token, query, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT"


# The partner's care dashboard (tests/api/test_care.py), with its lists and nested connection, in fragments.
CARE_DASHBOARD = """query { referrals(first: 50, filter: {assignedToMe: true, status: [ACCEPTED, IN_PROGRESS]}) {
  edges { node { ...Case } } } }
fragment Case on Referral { id status survivor { pseudonym ageBand goals { id } assessments { overallScore } }
  sessions(first: 5) { totalCount edges { node { ...Session } } }
  goals { domain achievementStatus history { achievementStatus } }
  milestones { title achievedOn goal { id } }
  safeguardingConcerns { level } }
fragment Session on CounselingSession { startedAt durationMinutes attendance counselor { displayName } }"""


async def test_a_dashboard_sized_query_in_fragments_is_accepted(factory: Factory) -> None:
    ngo = await factory.ngo()
    counselor = await factory.user(await factory.org(), Role.COUNSELOR)
    assert ngo
    body = await factory.gql(await factory.token(counselor), CARE_DASHBOARD)
    assert body["data"]["referrals"]["edges"] == []
