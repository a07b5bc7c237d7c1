"""An NGO's own identity provider: its tokens are accepted for staff registered here with that e-mail.

The identity provider is real enough: a JWKS served over HTTP on 127.0.0.1 and tokens signed with
its private key. Pamoja fetches the JWKS itself.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import RSAKey

from config.settings import Settings
from domain.enums import Role
from tests.factories import Factory
from tests.oauth_helpers import VIEWER, extra_app, http_from

ISSUER = "https://login.ngo.example/realms/staff"
AUDIENCE = "pamoja-api"


@dataclass
class IdentityProvider:
    key: RSAKey
    url: str
    fetches: list[float] = field(default_factory=list)

    def token(self, address: str, *, key: RSAKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": secrets.token_hex(8), "iat": now,
                                "exp": now + 300, "email": address, "azp": "ngo-portal"}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        signer = key or self.key
        return jwt.encode({"alg": "RS256", "kid": signer.kid, "typ": "JWT"}, body, signer, algorithms=["RS256"])


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    key = RSAKey.generate_key(2048, parameters={"kid": "idp-1"}, private=True)
    provider = IdentityProvider(key=key, url="")
    document = json.dumps({"keys": [key.as_dict(private=False)]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            provider.fetches.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield provider
    server.shutdown()


@pytest.fixture
async def federated_app(settings: Settings, idp: IdentityProvider) -> AsyncIterator[FastAPI]:
    application = extra_app(settings.model_copy(update={"trusted_issuers": [
        {"issuer": ISSUER, "jwks_url": idp.url, "audience": AUDIENCE, "email_claim": "email"},
    ]}))
    async with application.router.lifespan_context(application):
        yield application


async def viewer_status(app: FastAPI, token: str) -> tuple[int, dict[str, Any]]:
    async with http_from(app) as http:
        response = await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json()


async def test_a_registered_staff_member_signs_in_with_the_ngo_identity_provider(
        factory: Factory, federated_app: FastAPI, idp: IdentityProvider) -> None:
    ngo = await factory.ngo()
    supervisor = await factory.user(ngo, Role.SUPERVISOR)
    status, body = await viewer_status(federated_app, idp.token(supervisor.email.upper()))
    assert status == 200, body
    who = body["data"]["viewer"]
    assert who["user"] == {"id": supervisor.gid} and who["organization"] == {"id": ngo.gid}
    assert who["roles"] == ["SUPERVISOR"] and who["clientId"] == "ngo-portal"
    assert "user/AuditEvent.rs" in who["scopes"]
    # SMART scopes in the foreign token narrow the role's defaults, never widen them.
    status, body = await viewer_status(federated_app, idp.token(supervisor.email,
                                                                scope="openid user/Referral.rs user/StaffUser.d"))
    assert status == 200 and body["data"]["viewer"]["scopes"] == ["user/Referral.rs"]


async def test_foreign_tokens_that_do_not_qualify_are_401(factory: Factory, federated_app: FastAPI,
                                                          idp: IdentityProvider) -> None:
    user = await factory.user(await factory.org(), Role.COUNSELOR)
    impostor = RSAKey.generate_key(2048, parameters={"kid": idp.key.kid}, private=True)
    now = int(time.time())
    refused = {
        "e-mail not registered here": idp.token(f"{secrets.token_hex(5)}@example.org"),
        "wrong audience": idp.token(user.email, aud="someone-else"),
        "expired": idp.token(user.email, exp=now - 600, iat=now - 900),
        "unverified e-mail": idp.token(user.email, email_verified=False),
        "no e-mail claim": idp.token(user.email, email=None),
        "signed by another key with the provider's kid": idp.token(user.email, key=impostor),
        "unknown kid": idp.token(user.email, key=RSAKey.generate_key(2048, parameters={"kid": "x"}, private=True)),
        "an untrusted issuer": idp.token(user.email, iss="https://login.other.example"),
    }
    for reason, token in refused.items():
        status, _ = await viewer_status(federated_app, token)
        assert status == 401, reason
    # And an honest token from the provider still works, so each refusal above is for its own reason.
    status, _ = await viewer_status(federated_app, idp.token(user.email))
    assert status == 200


async def test_without_the_setting_the_provider_is_not_trusted(factory: Factory, app: FastAPI,
                                                              idp: IdentityProvider) -> None:
    user = await factory.user(await factory.ngo(), Role.CASE_MANAGER)
    status, _ = await viewer_status(app, idp.token(user.email))
    assert status == 401


async def test_unknown_kids_do_not_hammer_the_provider(factory: Factory, federated_app: FastAPI,
                                                       idp: IdentityProvider) -> None:
    user = await factory.user(await factory.ngo(), Role.CASE_MANAGER)
    assert (await viewer_status(federated_app, idp.token(user.email)))[0] == 200
    before = len(idp.fetches)
    for i in range(5):
        stranger = RSAKey.generate_key(2048, parameters={"kid": f"garbage-{i}"}, private=True)
        assert (await viewer_status(federated_app, idp.token(user.email, key=stranger)))[0] == 401
    assert len(idp.fetches) - before <= 1
