"""Signing-key rotation and storage: old tokens work until their key retires, then 401; keys at rest are sealed."""

from __future__ import annotations

import asyncio
import json

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth import keys as signing_keys
from config.settings import Settings
from db.crypto import MasterKeys
from domain.enums import Role
from tests.factories import Factory
from tests.oauth_helpers import VIEWER, http_from


def master_of(settings: Settings) -> MasterKeys:
    return MasterKeys.parse(settings.master_keys.get_secret_value())


async def test_a_rotated_out_key_keeps_working_until_it_retires_then_401(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine, settings: Settings) -> None:
    user = await factory.user(await factory.ngo(), Role.SUPERVISOR)
    old_token = await factory.token(user)
    async with http_from(app) as http:
        async def status(token: str) -> int:
            response = await http.post("/graphql", json={"query": VIEWER},
                                       headers={"Authorization": f"Bearer {token}"})
            return response.status_code

        assert await status(old_token) == 200  # also puts the old key set in the app's cache
        async with owner_engine.begin() as connection:
            rotation = await signing_keys.rotate(connection, master_of(settings), longest_token_seconds=2)
        new_token = await factory.token(user)
        assert await status(new_token) == 200
        assert await status(old_token) == 200
        published = {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}
        assert {rotation.new_kid, *rotation.retiring} <= published

        await asyncio.sleep(2.2)
        assert await status(old_token) == 401  # not expired, but its key has retired
        assert await status(new_token) == 200
        published = {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}
        assert rotation.new_kid in published and not published & set(rotation.retiring)


async def test_private_keys_are_sealed_at_rest_and_only_public_halves_are_published(
        owner_engine: AsyncEngine, settings: Settings) -> None:
    async with owner_engine.begin() as connection:
        material = await signing_keys.load(connection, master_of(settings))
        row = (await connection.execute(text(
            "SELECT private_key_enc, master_key_id, public_jwk FROM signing_key WHERE kid = :kid"
        ), {"kid": material.current.kid})).one()
    private_d = material.current.as_dict(private=True)["d"]
    assert isinstance(private_d, str)
    assert private_d.encode() not in bytes(row.private_key_enc)
    assert row.master_key_id == master_of(settings).current_id
    assert "d" not in row.public_jwk
    assert all("d" not in k for k in material.public_jwks()["keys"])
    assert json.dumps(material.public_jwks()).count('"kty"') == len(material.published.keys)


async def test_garbage_kids_cost_a_lookup_but_never_a_reload(app: FastAPI, factory: Factory) -> None:
    authenticator = app.state.pamoja.authenticator
    await authenticator.key_cache.get()
    cached = authenticator.key_cache.material
    assert await authenticator.key_cache.refresh_for("no-such-kid") is None
    assert await authenticator.key_cache.refresh_for(None) is None
    assert authenticator.key_cache.material is cached
