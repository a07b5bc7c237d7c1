"""Partner systems: client credentials with each client authentication method, scopes, revocation.

Every token here comes from POST /oauth/token and is then used against /graphql, so each test
covers the whole path a partner system takes.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from fastapi import FastAPI
from joserfc import jws, jwt
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.clients import disable_client, rotate_client_secret
from auth.config import OAuthConfig
from domain.enums import Role
from tests.factories import Factory
from tests.oauth_helpers import (
    VIEWER,
    assertion_form,
    client_assertion,
    ec_key,
    extra_app,
    http_from,
    public_jwks,
    rsa_key,
)

PARTNER_SCOPES = ["system/Referral.rus", "system/CounselingSession.crus", "system/Organization.rs"]


async def token_request(http: httpx.AsyncClient, data: dict[str, str], auth: tuple[str, str] | None = None
                        ) -> httpx.Response:
    return await http.post("/oauth/token", data=data, auth=auth)


async def viewer(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})


def claims_of(token: str) -> dict[str, Any]:
    """Read without verification: the test only inspects what the server put in."""
    return dict(json.loads(jws.extract_compact(token.encode()).payload))


async def test_client_secret_basic_gets_a_short_system_token_that_the_api_accepts(factory: Factory,
                                                                                 app: FastAPI) -> None:
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    assert client.client_secret is not None
    async with http_from(app) as http:
        response = await token_request(http, {"grant_type": "client_credentials"},
                                       auth=(client.client_id, client.client_secret))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] <= 300
        assert "refresh_token" not in body
        assert response.headers["cache-control"] == "no-store"
        # No scope asked for: every allowed scope is granted.
        assert body["scope"].split() == PARTNER_SCOPES
        claims = claims_of(body["access_token"])
        assert claims["client_id"] == claims["sub"] == client.client_id
        assert claims["org"] == partner.gid
        assert claims["aud"] == "http://testserver" and claims["iss"] == "http://testserver"
        assert claims["exp"] - claims["iat"] <= 300
        assert "roles" not in claims
        seen = await viewer(http, body["access_token"])
        assert seen.status_code == 200
        assert seen.json()["data"]["viewer"] == {
            "clientId": client.client_id, "roles": [], "scopes": PARTNER_SCOPES,
            "organization": {"id": partner.gid}, "user": None,
        }


async def test_client_secret_post_works_and_a_wrong_secret_is_invalid_client(factory: Factory, app: FastAPI) -> None:
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    async with http_from(app) as http:
        ok = await token_request(http, {"grant_type": "client_credentials", "client_id": client.client_id,
                                        "client_secret": client.client_secret or ""})
        assert ok.status_code == 200, ok.text
        wrong_post = await token_request(http, {"grant_type": "client_credentials", "client_id": client.client_id,
                                                "client_secret": "pmjs_not-the-secret"})
        assert wrong_post.status_code in (400, 401)
        assert wrong_post.json()["error"] == "invalid_client"
        wrong_basic = await token_request(http, {"grant_type": "client_credentials"},
                                          auth=(client.client_id, "pmjs_not-the-secret"))
        assert wrong_basic.status_code == 401
        assert wrong_basic.json()["error"] == "invalid_client"
        assert wrong_basic.headers["www-authenticate"].startswith("Basic")
        unknown = await token_request(http, {"grant_type": "client_credentials"}, auth=("pmj_nobody", "x"))
        assert unknown.json()["error"] == "invalid_client"


async def test_private_key_jwt_with_ec_and_rsa_keys(factory: Factory, app: FastAPI) -> None:
    partner = await factory.org()
    ec, rsa = ec_key(), rsa_key()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES, jwks=public_jwks(ec, rsa))
    assert client.client_secret is None
    async with http_from(app) as http:
        for key, alg in ((ec, "ES256"), (rsa, "RS384")):
            response = await token_request(http, assertion_form(client_assertion(key, client.client_id, alg=alg),
                                                                scope="system/Referral.rs"))
            assert response.status_code == 200, (alg, response.text)
            assert response.json()["scope"] == "system/Referral.rs"
            assert (await viewer(http, response.json()["access_token"])).status_code == 200


async def test_a_replayed_assertion_is_refused(factory: Factory, app: FastAPI) -> None:
    partner = await factory.org()
    key = ec_key()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES, jwks=public_jwks(key))
    assertion = client_assertion(key, client.client_id)
    async with http_from(app) as http:
        first = await token_request(http, assertion_form(assertion))
        assert first.status_code == 200, first.text
        replay = await token_request(http, assertion_form(assertion))
        assert replay.status_code in (400, 401)
        assert replay.json()["error"] == "invalid_client"


async def test_assertions_that_break_the_backend_services_profile_are_refused(factory: Factory,
                                                                             app: FastAPI) -> None:
    partner = await factory.org()
    key, stranger = ec_key(), ec_key()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES, jwks=public_jwks(key))
    cid = client.client_id
    bad = {
        "lives ten minutes": client_assertion(key, cid, lifetime=600),
        "expires in ten minutes, no iat": client_assertion(key, cid, lifetime=600, claims={"iat": None}),
        "expired": client_assertion(key, cid, lifetime=-120),
        "wrong audience": client_assertion(key, cid, aud="https://elsewhere.example/token"),
        "iss differs from sub": client_assertion(key, cid, claims={"iss": "pmj_someone_else"}),
        "signed by an unregistered key with a registered kid": client_assertion(stranger, cid,
                                                                                header={"kid": key.kid}),
        "jku pointing elsewhere": client_assertion(stranger, cid, header={"jku": "https://evil.example/jwks"}),
    }
    bad["no jti"] = jwt.encode({"alg": "ES256", "kid": key.kid},
                               {"iss": cid, "sub": cid, "aud": "http://testserver/oauth/token",
                                "exp": int(time.time()) + 200}, key, algorithms=["ES256"])
    async with http_from(app) as http:
        for reason, assertion in bad.items():
            response = await token_request(http, assertion_form(assertion))
            assert response.status_code in (400, 401), reason
            assert response.json()["error"] == "invalid_client", reason
        # A secret cannot stand in for the registered keys.
        basic = await token_request(http, {"grant_type": "client_credentials"}, auth=(cid, "anything"))
        assert basic.json()["error"] == "invalid_client"


async def test_scope_narrowing_and_invalid_scope(factory: Factory, app: FastAPI) -> None:
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    auth = (client.client_id, client.client_secret or "")
    async with http_from(app) as http:
        narrowed = await token_request(http, {"grant_type": "client_credentials",
                                              "scope": "system/Referral.rs system/Organization.s"}, auth=auth)
        assert narrowed.status_code == 200, narrowed.text
        assert narrowed.json()["scope"] == "system/Referral.rs system/Organization.s"
        seen = (await viewer(http, narrowed.json()["access_token"])).json()["data"]["viewer"]
        assert seen["scopes"] == ["system/Referral.rs", "system/Organization.s"]
        for outside in ("system/Referral.crus", "system/AuditEvent.rs", "user/Referral.rs", "system/*.rs",
                        "not-a-scope"):
            refused = await token_request(http, {"grant_type": "client_credentials", "scope": outside}, auth=auth)
            assert refused.status_code == 400, outside
            assert refused.json()["error"] == "invalid_scope", outside


async def test_a_disabled_client_gets_no_token_and_its_live_tokens_stop_working(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    auth = (client.client_id, client.client_secret or "")
    async with http_from(app) as http:
        token = (await token_request(http, {"grant_type": "client_credentials"}, auth=auth)).json()["access_token"]
        assert (await viewer(http, token)).status_code == 200
        async with owner_engine.begin() as connection:
            await disable_client(connection, client.client_id)
        refused = await token_request(http, {"grant_type": "client_credentials"}, auth=auth)
        assert refused.json()["error"] == "invalid_client"
        stale = await viewer(http, token)
        assert stale.status_code == 401
        assert 'error="invalid_token"' in stale.headers["www-authenticate"]


async def test_rotating_a_secret_retires_the_old_one(factory: Factory, app: FastAPI,
                                                     owner_engine: AsyncEngine) -> None:
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    async with owner_engine.begin() as connection:
        rotated = await rotate_client_secret(connection, client.id)
    assert rotated.client_secret and rotated.client_secret != client.client_secret
    async with http_from(app) as http:
        old = await token_request(http, {"grant_type": "client_credentials"},
                                  auth=(client.client_id, client.client_secret or ""))
        assert old.json()["error"] == "invalid_client"
        new = await token_request(http, {"grant_type": "client_credentials"},
                                  auth=(client.client_id, rotated.client_secret))
        assert new.status_code == 200


async def test_client_secrets_are_stored_hashed(factory: Factory, owner_engine: AsyncEngine) -> None:
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    async with owner_engine.connect() as connection:
        stored = (await connection.execute(text("SELECT secret_hash FROM oauth_client WHERE client_id = :c"),
                                           {"c": client.client_id})).scalar_one()
    assert client.client_secret and client.client_secret not in stored
    assert stored.startswith("sha256$")


async def test_other_grants_and_bad_requests_are_refused(factory: Factory, app: FastAPI) -> None:
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    auth = (client.client_id, client.client_secret or "")
    async with http_from(app) as http:
        password = await token_request(http, {"grant_type": "password", "username": "a", "password": "b"},
                                       auth=auth)
        assert password.json()["error"] == "unsupported_grant_type"
        code = await token_request(http, {"grant_type": "authorization_code", "code": "x"}, auth=auth)
        assert code.json()["error"] == "unauthorized_client"
        repeated = await http.post("/oauth/token", content="grant_type=client_credentials&scope=a&scope=b",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=auth)
        assert repeated.json()["error"] == "invalid_request"
        as_json = await http.post("/oauth/token", json={"grant_type": "client_credentials"}, auth=auth)
        assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
        other_api = await token_request(http, {"grant_type": "client_credentials",
                                               "resource": "https://other.example"}, auth=auth)
        assert other_api.json()["error"] == "invalid_target"


async def test_revocation_and_introspection(factory: Factory, app: FastAPI) -> None:
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    other = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    auth = (client.client_id, client.client_secret or "")
    async with http_from(app) as http:
        token = (await token_request(http, {"grant_type": "client_credentials"}, auth=auth)).json()["access_token"]
        active = (await http.post("/oauth/introspect", data={"token": token}, auth=auth)).json()
        assert active["active"] is True
        assert active["client_id"] == client.client_id and active["scope"] == " ".join(PARTNER_SCOPES)
        assert active["org"] == partner.gid and isinstance(active["exp"], int)
        # Another client learns nothing about this client's token, and cannot revoke it.
        nosy = (await http.post("/oauth/introspect", data={"token": token},
                                auth=(other.client_id, other.client_secret or ""))).json()
        assert nosy == {"active": False}
        foreign = await http.post("/oauth/revoke", data={"token": token},
                                  auth=(other.client_id, other.client_secret or ""))
        assert foreign.status_code == 400
        assert (await viewer(http, token)).status_code == 200

        revoked = await http.post("/oauth/revoke", data={"token": token, "token_type_hint": "access_token"}, auth=auth)
        assert revoked.status_code == 200
        assert (await viewer(http, token)).status_code == 401
        assert (await http.post("/oauth/introspect", data={"token": token}, auth=auth)).json() == {"active": False}
        # RFC 7009: an unknown token is not an error.
        garbage = await http.post("/oauth/revoke", data={"token": "not-a-token"}, auth=auth)
        assert garbage.status_code == 200
        unauthenticated = await http.post("/oauth/introspect", data={"token": token})
        assert unauthenticated.json()["error"] == "invalid_client"


async def test_a_missing_scope_inside_graphql_is_forbidden_not_401(factory: Factory, app: FastAPI) -> None:
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    async with http_from(app) as http:
        token = (await token_request(http, {"grant_type": "client_credentials", "scope": "system/Referral.rs"},
                                     auth=(client.client_id, client.client_secret or ""))).json()["access_token"]
        response = await http.post("/graphql", json={"query": "{ organizations(first: 1) { totalCount } }"},
                                   headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None or body["data"].get("organizations") is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_staff_scope_never_widens_the_role(factory: Factory, app: FastAPI) -> None:
    """A staff token that names a scope beyond the role is cut back to the role (rule 5)."""
    partner = await factory.org()
    counselor = await factory.user(partner, Role.COUNSELOR)
    token = await factory.token(counselor, scopes=["user/AuditEvent.rs", "user/Referral.rus", "user/Report.rs"])
    async with http_from(app) as http:
        seen = (await viewer(http, token)).json()["data"]["viewer"]
    assert seen["scopes"] == ["user/Referral.rus"]


async def test_metadata_and_jwks_are_published(app: FastAPI, settings: Any) -> None:
    # RFC 8414 requires an https issuer, which the test server is not: validate a deployed config's.
    deployed = OAuthConfig.from_settings(settings.model_copy(update={"public_url": "https://pamoja.example"}))
    AuthorizationServerMetadata(deployed.metadata()).validate()
    async with http_from(app) as http:
        metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
        assert metadata["issuer"] == "http://testserver"
        assert metadata["token_endpoint"] == "http://testserver/oauth/token"
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
        assert "system/Referral.rus" in metadata["scopes_supported"]
        smart = (await http.get("/.well-known/smart-configuration")).json()
        assert "client-confidential-asymmetric" in smart["capabilities"]
        keys = (await http.get("/.well-known/jwks.json")).json()["keys"]
    assert keys and all(k["kty"] == "EC" and k["crv"] == "P-256" and k["kid"] for k in keys)
    assert not any("d" in k for k in keys), "a private key was published"


async def test_the_token_endpoint_is_rate_limited_per_client_and_per_address(
        factory: Factory, settings: Any) -> None:
    limited = extra_app(settings.model_copy(update={"token_rate_limit_per_client": "3/minute",
                                                     "token_rate_limit_per_address": "5/minute"}))
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    other = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    async with limited.router.lifespan_context(limited), http_from(limited, "10.99.0.1") as http:
        statuses = [(await token_request(http, {"grant_type": "client_credentials"},
                                         auth=(client.client_id, client.client_secret or ""))).status_code
                    for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = await token_request(http, {"grant_type": "client_credentials"},
                                      auth=(client.client_id, client.client_secret or ""))
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # The other client has its own budget, but this address has now spent its five.
        async with http_from(limited, "10.99.0.2") as elsewhere:
            assert (await token_request(elsewhere, {"grant_type": "client_credentials"},
                                        auth=(other.client_id, other.client_secret or ""))).status_code == 200
        same_address = await token_request(http, {"grant_type": "client_credentials"},
                                           auth=(other.client_id, other.client_secret or ""))
        assert same_address.status_code == 429


@pytest.mark.parametrize("endpoint", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
async def test_a_claimed_client_id_does_not_open_a_fresh_per_client_budget(
        factory: Factory, settings: Any, endpoint: str) -> None:
    """The per-client budget follows the credentials (Basic header), never a form field beside them."""
    limited = extra_app(settings.model_copy(update={"token_rate_limit_per_client": "2/minute",
                                                     "token_rate_limit_per_address": "1000/minute"}))
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    basic = (client.client_id, client.client_secret or "")
    data = {"grant_type": "client_credentials"} if endpoint == "/oauth/token" else {"token": "not-a-token"}
    async with limited.router.lifespan_context(limited), http_from(limited) as http:
        for _ in range(2):
            assert (await http.post(endpoint, data=data, auth=basic)).status_code == 200
        assert (await http.post(endpoint, data=data, auth=basic)).status_code == 429
        made_up = "made-up-client"
        spellings: list[tuple[str, Any]] = [
            ("", {**data, "client_id": made_up}),
            ("", {**data, "client_id": client.client_id.upper()}),
            ("", {**data, "client_id": f" {client.client_id} "}),
            ("", {**data, "Client_ID": made_up}),
            ("", [*data.items(), ("client_id", made_up), ("client_id", client.client_id)]),
            (f"?client_id={made_up}", data),
        ]
        for query, body in spellings:
            response = await http.post(endpoint + query, content=urlencode(body), auth=basic,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert response.status_code == 429, (query, body, response.text)


async def test_the_per_client_budget_follows_assertions_and_posted_secrets_too(
        factory: Factory, settings: Any) -> None:
    """private_key_jwt is keyed on the assertion's subject; client_secret_post on the id its secret proves."""
    limited = extra_app(settings.model_copy(update={"token_rate_limit_per_client": "2/minute",
                                                     "token_rate_limit_per_address": "1000/minute"}))
    partner = await factory.org()
    key = ec_key()
    signed = await factory.oauth_client(partner, scopes=PARTNER_SCOPES, jwks=public_jwks(key))
    posted = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    secret_form = {"grant_type": "client_credentials", "client_id": posted.client_id,
                   "client_secret": posted.client_secret or ""}
    async with limited.router.lifespan_context(limited), http_from(limited) as http:
        for _ in range(2):
            assert (await token_request(http, assertion_form(client_assertion(key, signed.client_id)))
                    ).status_code == 200
            assert (await token_request(http, secret_form)).status_code == 200
        made_up = assertion_form(client_assertion(key, signed.client_id), client_id="made-up-client")
        assert (await token_request(http, made_up)).status_code == 429
        assert (await token_request(http, {**secret_form, "client_id": "made-up-client"})).status_code != 200
        assert (await token_request(http, secret_form)).status_code == 429


async def test_basic_credentials_and_a_disagreeing_form_client_id_are_refused(
        factory: Factory, settings: Any) -> None:
    """RFC 6749 2.3: one authentication method per request; a second, different identity is invalid."""
    partner = await factory.org()
    client = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    other = await factory.oauth_client(partner, scopes=PARTNER_SCOPES)
    basic = (client.client_id, client.client_secret or "")
    application = extra_app(settings)
    async with application.router.lifespan_context(application), http_from(application) as http:
        mixed = await token_request(http, {"grant_type": "client_credentials", "client_id": other.client_id},
                                    auth=basic)
        assert mixed.status_code in (400, 401) and mixed.json()["error"] in ("invalid_request", "invalid_client")
        assert other.client_id not in mixed.text
        both = await token_request(http, {"grant_type": "client_credentials", "client_id": client.client_id,
                                          "client_secret": client.client_secret or ""}, auth=basic)
        assert both.status_code in (400, 401)
        same = await token_request(http, {"grant_type": "client_credentials", "client_id": client.client_id},
                                   auth=basic)
        assert same.status_code == 200, same.text
