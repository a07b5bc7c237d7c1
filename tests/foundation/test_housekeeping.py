"""Housekeeping (db/housekeeping.py): rows whose purpose has passed are deleted, nothing else is.

Each case inserts a row just past its retention and one just inside it, sweeps at a fixed instant,
and looks only at its own rows (other tests' leftovers may be swept too, which is the point).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.housekeeping import Retention, sweep
from domain.enums import Role
from tests.factories import Factory

NOW = datetime.now(UTC)
RETENTION = Retention()
SECOND = timedelta(seconds=1)


async def _exists(engine: AsyncEngine, sql: str, **params: object) -> bool:
    async with engine.connect() as connection:
        return bool((await connection.execute(text(f"SELECT EXISTS ({sql})"), params)).scalar())


async def test_sweep_deletes_what_has_served_its_purpose_and_keeps_the_rest(factory: Factory,
                                                                           owner_engine: AsyncEngine) -> None:
    org = await factory.org()
    user = await factory.user(org, Role.COUNSELOR)
    client = await factory.oauth_client(org, redirect_uris=["https://app.example.org/callback"])
    tag = secrets.token_hex(6)
    old_throttle, quiet_lock, fresh_throttle = (secrets.token_bytes(32) for _ in range(3))
    code_old, code_fresh = secrets.token_bytes(32), secrets.token_bytes(32)
    async with owner_engine.begin() as connection:
        for name, expires in (("expired", NOW - SECOND), ("live", NOW + timedelta(hours=1))):
            await connection.execute(text(
                "INSERT INTO idempotency_record (principal_key, key, operation, request_hash, response, expires_at) "
                "VALUES (:p, :k, 'logSession', '\\x00', '{}', :e)"), {"p": tag, "k": name, "e": expires})
        for name, expires in (("gone", NOW - RETENTION.token_margin - SECOND),
                              ("in-leeway", NOW - RETENTION.token_margin + SECOND)):
            await connection.execute(text("INSERT INTO revoked_token (jti, expires_at) VALUES (:j, :e)"),
                                     {"j": f"{tag}-{name}", "e": expires})
            await connection.execute(text(
                "INSERT INTO oauth_assertion_jti (client_id, jti, expires_at) VALUES (:c, :j, :e)"),
                {"c": client.client_id, "j": f"{tag}-{name}", "e": expires})
        for code, expires in ((code_old, NOW - RETENTION.code_margin - SECOND),
                              (code_fresh, NOW - RETENTION.code_margin + SECOND)):
            await connection.execute(text(
                "INSERT INTO oauth_authorization_code (code_hash, client_id, user_id, redirect_uri, scope, "
                "code_challenge, code_challenge_method, expires_at) "
                "VALUES (:h, :c, :u, 'https://app.example.org/callback', 'openid', 'x', 'S256', :e)"),
                {"h": code, "c": client.client_id, "u": user.id, "e": expires})
        quiet = NOW - RETENTION.throttle_memory - SECOND
        for key, failures, last, locked in (
            (old_throttle, 3, quiet, None),  # forgotten after a quiet day
            (quiet_lock, 9, quiet, NOW + timedelta(minutes=5)),  # a lockout runs its course
            (fresh_throttle, 3, NOW - timedelta(hours=1), None),  # recent failures still count
        ):
            await connection.execute(text(
                "INSERT INTO login_throttle (key_hash, failures, last_failure_at, locked_until) "
                "VALUES (:k, :f, :l, :u)"), {"k": key, "f": failures, "l": last, "u": locked})
        for session, ends in ((old_throttle, NOW - SECOND), (fresh_throttle, NOW + timedelta(hours=1))):
            await connection.execute(text(
                "INSERT INTO console_session (id_hash, csrf_token, language, key_id, expires_at) "
                "VALUES (:h, 'c', 'en', 'k', :e)"), {"h": session, "e": ends})

    async with owner_engine.begin() as connection:
        swept = await sweep(connection, now=NOW)
    assert set(swept) == {"idempotency_records", "revoked_tokens", "assertion_jtis", "authorization_codes",
                          "login_throttles", "console_sessions"}
    assert all(count >= 1 for count in swept.values()), swept

    console = "SELECT 1 FROM console_session WHERE id_hash = :h"
    assert not await _exists(owner_engine, console, h=old_throttle)  # a session past its end
    assert await _exists(owner_engine, console, h=fresh_throttle)
    idempotency = "SELECT 1 FROM idempotency_record WHERE principal_key = :p AND key = :k"
    assert not await _exists(owner_engine, idempotency, p=tag, k="expired")
    assert await _exists(owner_engine, idempotency, p=tag, k="live")
    for by_jti in ("SELECT 1 FROM revoked_token WHERE jti = :j", "SELECT 1 FROM oauth_assertion_jti WHERE jti = :j"):
        assert not await _exists(owner_engine, by_jti, j=f"{tag}-gone")
        assert await _exists(owner_engine, by_jti, j=f"{tag}-in-leeway")
    code = "SELECT 1 FROM oauth_authorization_code WHERE code_hash = :h"
    assert not await _exists(owner_engine, code, h=code_old)
    assert await _exists(owner_engine, code, h=code_fresh)
    throttle = "SELECT 1 FROM login_throttle WHERE key_hash = :k"
    assert not await _exists(owner_engine, throttle, k=old_throttle)
    assert await _exists(owner_engine, throttle, k=quiet_lock)
    assert await _exists(owner_engine, throttle, k=fresh_throttle)

    # A second sweep at the same instant finds nothing more of ours to delete: it is idempotent.
    async with owner_engine.begin() as connection:
        await sweep(connection, now=NOW)
    assert await _exists(owner_engine, idempotency, p=tag, k="live")
