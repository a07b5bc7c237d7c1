"""Master-key rotation: re-wrap every small key under the current master key, touching no record.

Envelope encryption makes this cheap: survivor data keys, token-signing keys, webhook secrets and
the idempotency records' first responses (kept at most a day) are re-encrypted; the ciphertext of
identity fields and notes stays as it is. Once no row references the old master key id, that key
can be removed from PAMOJA_MASTER_KEYS.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db import idempotency
from db.crypto import MasterKeys
from db.survivors import key_aad
from db.tables import OAuthClient, SigningKey, SurvivorKey
from db.webhook_secrets import open_webhook_secret, seal_webhook_secret, webhook_secret_key_id

survivor_keys = SurvivorKey.__table__  # type: ignore[attr-defined]
signing_t = SigningKey.__table__  # type: ignore[attr-defined]
clients_t = OAuthClient.__table__  # type: ignore[attr-defined]


def signing_key_aad(kid: str) -> str:
    """The associated data binding a token-signing private key to its row (auth/keys.py seals with it)."""
    return f"signing_key.private_key_enc:{kid}"


async def _rewrap_signing_keys(connection: AsyncConnection, master: MasterKeys) -> int:
    """Re-encrypt every token-signing private key under the current master key."""
    rows = (await connection.execute(select(signing_t))).all()
    for row in rows:
        plain = master.unwrap(row.master_key_id, row.private_key_enc, aad=signing_key_aad(row.kid))
        master_id, wrapped = master.wrap(plain, aad=signing_key_aad(row.kid))
        await connection.execute(update(signing_t).where(signing_t.c.kid == row.kid)
                                 .values(private_key_enc=wrapped, master_key_id=master_id))
    return len(rows)


async def rotate_master(connection: AsyncConnection, master: MasterKeys) -> dict[str, int]:
    """Run as the owner (it must reach every organization's keys). Returns how many were re-wrapped."""
    survivors = 0
    rows = (await connection.execute(select(survivor_keys.c.survivor_id, survivor_keys.c.master_key_id,
                                            survivor_keys.c.wrapped_key)
                                     .where(survivor_keys.c.master_key_id != master.current_id,
                                            survivor_keys.c.destroyed_at.is_(None)))).all()
    for row in rows:
        plain = master.unwrap(row.master_key_id, row.wrapped_key, aad=key_aad(row.survivor_id))
        key_id, wrapped = master.wrap(plain, aad=key_aad(row.survivor_id))
        await connection.execute(update(survivor_keys).where(survivor_keys.c.survivor_id == row.survivor_id)
                                 .values(master_key_id=key_id, wrapped_key=wrapped))
        survivors += 1
    signing = await _rewrap_signing_keys(connection, master)
    secrets = 0
    for row in (await connection.execute(select(clients_t.c.client_id, clients_t.c.webhook_secret_enc)
                                         .where(clients_t.c.webhook_secret_enc.is_not(None)))).all():
        sealed = bytes(row.webhook_secret_enc)
        if webhook_secret_key_id(master, client_id=row.client_id, sealed=sealed) == master.current_id:
            continue
        secret = open_webhook_secret(master, client_id=row.client_id, sealed=sealed)
        await connection.execute(update(clients_t).where(clients_t.c.client_id == row.client_id).values(
            webhook_secret_enc=seal_webhook_secret(master, client_id=row.client_id, secret=secret)))
        secrets += 1
    first_responses = await idempotency.rewrap(connection, master)
    return {"survivor_keys": survivors, "signing_keys": signing, "webhook_secrets": secrets,
            "first_responses": first_responses}


async def keys_still_on(connection: AsyncConnection, master_key_id: str) -> int:
    """Rows still wrapped under a master key id: must be 0 before that key is destroyed."""
    count = await connection.scalar(select(func.count()).select_from(survivor_keys)  # an erased key is no key
                                    .where(survivor_keys.c.master_key_id == master_key_id,
                                           survivor_keys.c.destroyed_at.is_(None)))
    count_signing = await connection.scalar(select(func.count()).select_from(signing_t)
                                            .where(signing_t.c.master_key_id == master_key_id))
    return int(count or 0) + int(count_signing or 0) + await idempotency.sealed_under(connection, master_key_id)
