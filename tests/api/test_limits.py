"""Abuse limits: depth, aliases, tokens, page size, cost, batching, introspection in production."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from api.settings import Settings
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


def _random_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture
async def production(settings: Settings, factory: Factory) -> AsyncIterator[tuple[httpx.AsyncClient, Factory]]:
    # production refuses the development master key string, so the same key is given under another id
    current = settings.master_keys.get_secret_value()
    prod = Settings(env="production", database_url=settings.database_url, app_database_url=settings.app_database_url,
                    public_url="https://pamoja.example.org", master_keys=f"{current},prod-1:{_random_key()}",
                    blind_index_key=_random_key())
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
    typo = await prod_factory.gql(token, "{ viewr { clientId } }", expect_errors=True)
    assert "Did you mean" not in typo["errors"][0]["message"]
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
