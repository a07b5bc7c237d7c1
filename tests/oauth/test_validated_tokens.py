"""A token's signature is checked once (auth.resource.ValidatedTokens): later requests with the same token
skip the ES256 check, while revocation, deactivation and key retirement still refuse it at once."""

from __future__ import annotations

import base64
import json

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.resource import ValidatedTokens
from domain.enums import Role
from tests.factories import Factory
from tests.oauth_helpers import VIEWER, http_from


def _claims(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


async def test_a_token_is_verified_once_and_still_refused_once_revoked(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    user = await factory.user(await factory.ngo(), Role.SUPERVISOR)
    token = await factory.token(user)
    validated = app.state.pamoja.authenticator.validated
    async with http_from(app) as http:
        first = await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})
        assert first.status_code == 200, first.text
        assert validated.get(token, published=_published(app), now=0) is not None  # remembered
        again = await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 200 and again.json() == first.json()

        # the same jti under a broken signature is a different token: checked in full, refused
        header, body, signature = token.split(".")
        forged = f"{header}.{body}.{signature[:-4]}AAAA"
        refused = await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {forged}"})
        assert refused.status_code == 401

        async with owner_engine.begin() as connection:  # revoked: refused though its signature was cached
            await connection.execute(text("INSERT INTO revoked_token (jti, expires_at) "
                                          "VALUES (:jti, to_timestamp(:exp))"),
                                     {"jti": _claims(token)["jti"], "exp": _claims(token)["exp"]})
        revoked = await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})
        assert revoked.status_code == 401


def _published(app: FastAPI) -> set[str]:
    material = app.state.pamoja.authenticator.key_cache.material
    return {k.kid for k in material.published.keys if k.kid}


def test_the_cache_honours_expiry_key_retirement_and_its_bound() -> None:
    cache = ValidatedTokens(max_size=2)
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    tokens = [f"{part({'kid': 'k1', 'alg': 'ES256'})}.{part({'jti': str(i)})}.sig{i}" for i in range(3)]
    for token in tokens:
        cache.put(token, {"exp": 1_000, "jti": token})
    assert len(cache) == 2 and cache.get(tokens[0], published={"k1"}, now=0) is None  # the oldest went
    assert cache.get(tokens[2], published={"k1"}, now=0) == {"exp": 1_000, "jti": tokens[2]}
    assert cache.get(tokens[2], published={"k2"}, now=0) is None  # its key retired: dropped
    cache.put(tokens[1], {"exp": 1_000, "jti": tokens[1]})
    assert cache.get(tokens[1], published={"k1"}, now=1_000 + 59) is not None  # within the leeway
    assert cache.get(tokens[1], published={"k1"}, now=1_000 + 61) is None  # expired


async def _viewer(http: object, token: str) -> object:
    return await http.post("/graphql", json={"query": VIEWER},  # type: ignore[attr-defined]
                           headers={"Authorization": f"Bearer {token}"})


async def test_a_remembered_caller_is_checked_in_the_transaction_and_read_again_when_changed(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    """The principal read for a token is remembered (auth.resource.RememberedPrincipals); every later request
    checks, in the statement that sets its row-security context, that it still stands. A role taken away
    takes effect at once (the caller is read again, with fewer roles); a deactivated account is refused 401."""
    partner = await factory.org()
    user = await factory.user(partner, Role.COUNSELOR, Role.PARTNER_COORDINATOR)
    token = await factory.token(user)
    async with http_from(app) as http:
        first = await _viewer(http, token)
        assert first.json()["data"]["viewer"]["roles"] == ["COUNSELOR", "PARTNER_COORDINATOR"]
        assert app.state.pamoja.authenticator.remembered.get(token, now=0) is not None
        async with owner_engine.begin() as connection:
            await connection.execute(text("UPDATE staff_user SET roles = ARRAY['COUNSELOR'] WHERE id = :id"),
                                     {"id": user.id})
        fewer = await _viewer(http, token)
        assert fewer.status_code == 200 and fewer.json()["data"]["viewer"]["roles"] == ["COUNSELOR"]
        again = await _viewer(http, token)  # remembered again, as read the second time
        assert again.json() == fewer.json()
        async with owner_engine.begin() as connection:
            await connection.execute(text("UPDATE staff_user SET active = false WHERE id = :id"), {"id": user.id})
        gone = await _viewer(http, token)
        assert gone.status_code == 401 and "invalid_token" in gone.headers["www-authenticate"]
        assert app.state.pamoja.authenticator.remembered.get(token, now=0) is None


async def test_a_remembered_partner_system_is_refused_once_its_client_is_disabled(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    partner = await factory.org()
    client = await factory.oauth_client(partner)
    token = await factory.system_token(partner, client.client_id)
    async with http_from(app) as http:
        assert (await _viewer(http, token)).status_code == 200
        assert (await _viewer(http, token)).status_code == 200
        async with owner_engine.begin() as connection:
            await connection.execute(text("UPDATE oauth_client SET disabled = true WHERE client_id = :c"),
                                     {"c": client.client_id})
        refused = await _viewer(http, token)
        assert refused.status_code == 401
