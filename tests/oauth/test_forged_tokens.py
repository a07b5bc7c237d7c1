"""The forged-token matrix of security.md §6 against the real resource server (/graphql).

Every forgery gets HTTP 401 with `WWW-Authenticate: Bearer error="invalid_token"` before GraphQL
runs; the two honest tokens (signed by the current key and by the key rotated in) are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.ext.asyncio import AsyncEngine

from auth import keys as signing_keys
from config.settings import Settings
from db.crypto import MasterKeys
from domain.enums import Role
from tests.factories import Factory, User
from tests.oauth_helpers import VIEWER, http_from


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def honest_claims(user: User, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "http://testserver", "sub": user.gid, "aud": "http://testserver", "exp": now + 600, "iat": now,
        "nbf": now, "jti": f"jti-{now}-{id(changes)}", "client_id": "pamoja-tests", "org": user.org.gid,
        "scope": "user/Referral.rs", "roles": [r.value for r in user.roles],
    }
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def hs256_with(secret: bytes, claims: dict[str, Any], kid: str | None) -> str:
    """The classic key-confusion forgery (joserfc refuses to build it, so it is done by hand)."""
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def sign(key: Any, claims: dict[str, Any], *, alg: str = "ES256", **header: Any) -> str:
    head = {"alg": alg, "typ": "at+jwt", "kid": key.kid, **header}
    head = {k: v for k, v in head.items() if v is not None}
    return jwt.encode(head, claims, key, algorithms=[alg])


async def current_key(engine: AsyncEngine, settings: Settings) -> ECKey:
    async with engine.begin() as connection:
        material = await signing_keys.load(connection, MasterKeys.parse(settings.master_keys.get_secret_value()))
    return material.current


async def call(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})


def forgeries(real: ECKey, user: User) -> dict[str, str]:
    attacker = ECKey.generate_key("P-256", parameters={"kid": real.kid}, private=True)
    stranger = ECKey.generate_key("P-256", parameters={"kid": "attacker-kid"}, private=True)
    attacker_384 = ECKey.generate_key("P-384", parameters={"kid": real.kid}, private=True)
    attacker_rsa = RSAKey.generate_key(2048, parameters={"kid": real.kid}, private=True)
    claims = honest_claims(user)
    now = int(time.time())
    public_pem = real.as_pem(private=False)
    honest = sign(real, claims)
    head, _, signature = honest.split(".")
    tampered_payload = b64(honest_claims(user, org="T3JnYW5pemF0aW9uOjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMA",
                                         scope="user/Referral.crus user/AuditEvent.rs"))
    return {
        "alg=none": f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': real.kid})}.{b64(claims)}.",
        "HS256 signed with the public key": hs256_with(public_pem, claims, real.kid),
        "expired": sign(real, honest_claims(user, exp=now - 3600, iat=now - 4000, nbf=now - 4000)),
        "expired beyond the 60 s leeway": sign(real, honest_claims(user, exp=now - 90)),
        "not yet valid": sign(real, honest_claims(user, nbf=now + 3600)),
        "issued in the future": sign(real, honest_claims(user, iat=now + 3600, nbf=None)),
        "wrong issuer": sign(real, honest_claims(user, iss="https://evil.example")),
        "wrong audience": sign(real, honest_claims(user, aud="https://another-api.example")),
        "missing audience": sign(real, honest_claims(user, aud=None)),
        "tampered payload": f"{head}.{tampered_payload}.{signature}",
        "attacker key with a real kid": sign(attacker, claims),
        "missing kid": sign(real, claims, kid=None),
        "unknown kid": sign(stranger, claims),
        "disallowed algorithm ES384": sign(attacker_384, claims, alg="ES384"),
        "disallowed algorithm RS256": sign(attacker_rsa, claims, alg="RS256"),
        "jku header to the attacker's JWKS": sign(stranger, claims, jku="https://evil.example/jwks.json"),
        "typ is not at+jwt": sign(real, claims, typ="JWT"),
        "missing jti": sign(real, honest_claims(user, jti=None)),
        "missing client_id": sign(real, honest_claims(user, client_id=None)),
        "garbage": "not.a.token",
    }


@pytest.fixture
async def case_manager(factory: Factory) -> User:
    return await factory.user(await factory.ngo(), Role.CASE_MANAGER)


async def test_every_forgery_is_401_before_graphql(case_manager: User, app: FastAPI, owner_engine: AsyncEngine,
                                                   settings: Settings) -> None:
    real = await current_key(owner_engine, settings)
    async with http_from(app) as http:
        for name, token in forgeries(real, case_manager).items():
            response = await call(http, token)
            assert response.status_code == 401, name
            assert response.headers["www-authenticate"].startswith('Bearer realm="pamoja", error="invalid_token"'), name
            assert "data" not in response.json(), name
        missing = await http.post("/graphql", json={"query": VIEWER})
        assert missing.status_code == 401
        assert 'error="invalid_token"' in missing.headers["www-authenticate"]
        basic = await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": "Basic YTpi"})
        assert basic.status_code == 401


async def test_the_leeway_is_sixty_seconds(case_manager: User, app: FastAPI, owner_engine: AsyncEngine,
                                           settings: Settings) -> None:
    real = await current_key(owner_engine, settings)
    now = int(time.time())
    async with http_from(app) as http:
        assert (await call(http, sign(real, honest_claims(case_manager, exp=now - 30)))).status_code == 200
        assert (await call(http, sign(real, honest_claims(case_manager, nbf=now + 30)))).status_code == 200


async def test_current_and_rotated_key_tokens_are_accepted(case_manager: User, app: FastAPI,
                                                          owner_engine: AsyncEngine, settings: Settings) -> None:
    master = MasterKeys.parse(settings.master_keys.get_secret_value())
    before = await current_key(owner_engine, settings)
    async with http_from(app) as http:
        old_token = sign(before, honest_claims(case_manager))
        assert (await call(http, old_token)).status_code == 200
        async with owner_engine.begin() as connection:
            rotation = await signing_keys.rotate(connection, master, longest_token_seconds=900)
        after = await current_key(owner_engine, settings)
        assert after.kid == rotation.new_kid != before.kid
        assert before.kid in rotation.retiring
        new_token = sign(after, honest_claims(case_manager))
        response = await call(http, new_token)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["viewer"]["user"] == {"id": case_manager.gid}
        assert (await call(http, old_token)).status_code == 200


async def test_a_validly_signed_token_for_nobody_is_401(case_manager: User, app: FastAPI,
                                                      owner_engine: AsyncEngine, settings: Settings) -> None:
    real = await current_key(owner_engine, settings)
    nobody = "U3RhZmZVc2VyOjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMA"
    async with http_from(app) as http:
        assert (await call(http, sign(real, honest_claims(case_manager, sub=nobody)))).status_code == 401


async def test_roles_in_a_token_that_the_user_does_not_hold_grant_nothing(
        case_manager: User, app: FastAPI, owner_engine: AsyncEngine, settings: Settings) -> None:
    real = await current_key(owner_engine, settings)
    token = sign(real, honest_claims(case_manager, roles=["ADMIN"], scope="user/Organization.cruds"))
    async with http_from(app) as http:
        response = await call(http, token)
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["roles"] == []
    assert response.json()["data"]["viewer"]["scopes"] == []
