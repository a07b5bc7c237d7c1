"""GraphiQL opens in a browser outside production (issue 11.5): the page loads without a token and
signs the person in through Pamoja's own PKCE flow (or takes a pasted token); every query still needs
the token; production serves no page and registers no client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.main import create_app
from auth.clients import GRAPHIQL_CLIENT_ID
from config.settings import Settings
from domain.enums import Role
from tests.factories import Factory
from tests.oauth.test_staff_login import HASH, PASSWORD
from tests.oauth_helpers import VIEWER, http_from, pkce, query_of, read_form

PAGE = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # what a browser sends


def config_of(page: str) -> dict[str, object]:
    found = re.search(r'<script id="pamoja-config" type="application/json">(.*?)</script>', page, re.S)
    assert found, "no configuration on the page"
    loaded: dict[str, object] = json.loads(found.group(1))
    return loaded


async def test_the_page_opens_without_a_token_and_queries_still_need_one(factory: Factory, app: FastAPI) -> None:
    await factory.ngo()
    async with http_from(app) as http:
        opened = await http.get("/graphql", headers=PAGE)
        assert opened.status_code == 200, opened.text
        assert opened.headers["content-type"].startswith("text/html")
        assert "graphiql@3.8.3/graphiql.min.js" in opened.text and 'integrity="sha384-' in opened.text
        config = config_of(opened.text)
        assert config == {"endpoint": "/graphql", "authorize": "/oauth/authorize", "token": "/oauth/token",
                          "clientId": GRAPHIQL_CLIENT_ID, "redirectUri": "http://testserver/graphql", "signIn": True}
        # The inline script runs only with this response's nonce; the code in the address goes nowhere.
        policy = opened.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", policy)
        assert nonce and f'nonce="{nonce.group(1)}"' in opened.text
        assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert opened.headers["referrer-policy"] == "no-referrer" and opened.headers["cache-control"] == "no-store"
        again = await http.get("/graphql", headers=PAGE)
        assert re.search(r"'nonce-([^']+)'", again.headers["content-security-policy"]).group(1) != nonce.group(1)

        assert (await http.post("/graphql", json={"query": VIEWER})).status_code == 401
        assert (await http.get("/graphql", params={"query": VIEWER})).status_code == 401


async def test_a_person_signs_in_through_the_page_and_queries_with_the_token(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    person = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    async with http_from(app) as http:
        config = config_of((await http.get("/graphql", headers=PAGE)).text)
        async with owner_engine.connect() as connection:
            client = (await connection.execute(text(
                "SELECT secret_hash, jwks, redirect_uris, allowed_scopes, disabled FROM oauth_client "
                "WHERE client_id = :c"), {"c": GRAPHIQL_CLIENT_ID})).one()
        assert client.secret_hash is None and client.redirect_uris == ["http://testserver/graphql"]
        assert client.allowed_scopes == ["user/*.cruds"] and client.disabled is False

        # What the page's script does: authorize with PKCE, come back to the page, redeem the code.
        verifier, challenge = pkce()
        login = await http.get("/oauth/authorize?" + urlencode({
            "response_type": "code", "client_id": config["clientId"], "redirect_uri": config["redirectUri"],
            "state": "tab-state", "code_challenge": challenge, "code_challenge_method": "S256"}))
        assert login.status_code == 200, login.text
        action, fields = read_form(login.text)
        fields.update(email=person.email, password=PASSWORD)
        back = await http.post(action, data=fields)
        assert back.status_code == 302 and back.headers["location"].startswith("http://testserver/graphql?")
        answer = query_of(back.headers["location"])
        assert answer["state"] == "tab-state"
        # The page it returns to opens as any browser GET does.
        assert (await http.get(back.headers["location"].removeprefix("http://testserver"), headers=PAGE)).status_code \
            == 200
        tokens = await http.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": config["redirectUri"],
            "client_id": config["clientId"], "code_verifier": verifier})
        assert tokens.status_code == 200, tokens.text
        viewer = await http.post("/graphql", json={"query": VIEWER},
                                 headers={"Authorization": f"Bearer {tokens.json()['access_token']}"})
        assert viewer.status_code == 200 and viewer.json()["data"]["viewer"]["roles"] == ["CASE_MANAGER"]
        # Renewal, as the page does when a query answers 401.
        renewed = await http.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": config["clientId"],
                                                        "refresh_token": tokens.json()["refresh_token"]})
        assert renewed.status_code == 200, renewed.text


async def test_a_token_is_sent_as_the_api_expects_when_pasted(factory: Factory, app: FastAPI) -> None:
    """A pasted token goes in the Authorization header of POST /graphql: the same request as any client's."""
    token = await factory.token(await factory.user(await factory.ngo(), Role.CASE_MANAGER))
    async with http_from(app) as http:
        page = (await http.get("/graphql", headers=PAGE)).text
        assert 'headers.set("Authorization", "Bearer " + access)' in page
        assert "sessionStorage" in page and "localStorage" not in page
        ok = await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        with_token = await http.get("/graphql", headers={"Authorization": f"Bearer {token}"})
        assert with_token.status_code == 405 and with_token.headers["allow"] == "POST"


@pytest.fixture
async def production(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    prod = settings.model_copy(update={"env": "production", "graphiql": None,
                                       "public_url": "https://pamoja.example.org"})
    application = create_app(prod)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="https://pamoja.example.org") as client:
            yield client


async def test_production_serves_no_page_and_registers_no_client(
        factory: Factory, production: httpx.AsyncClient, owner_engine: AsyncEngine) -> None:
    await factory.ngo()
    assert (await factory.client.get("/graphql", headers=PAGE)).status_code == 200  # registered in development
    page = await production.get("/graphql", headers=PAGE)
    assert page.status_code == 401 and "graphiql" not in page.text.lower()
    assert (await production.post("/graphql", json={"query": VIEWER})).status_code == 401
    async with owner_engine.connect() as connection:
        registered = await connection.scalar(text(
            "SELECT count(*) FROM oauth_client WHERE 'https://pamoja.example.org/graphql' = ANY(redirect_uris)"))
    assert registered == 0

    # Should a development database be served in production, its GraphiQL client is unknown there.
    _, challenge = pkce()
    login = await production.get("/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": GRAPHIQL_CLIENT_ID, "redirect_uri": "http://testserver/graphql",
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}))
    assert login.status_code == 400 and 'name="password"' not in login.text
