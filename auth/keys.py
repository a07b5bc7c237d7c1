"""Pamoja's token-signing keys: ES256, private halves encrypted under the master key.

Rotation adds a key that signs from then on; the previous key stays published (so tokens it
signed keep validating) until `retire_after`, which is set to now + the longest token lifetime.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.crypto import MasterKeys
from db.tables import SigningKey

ALGORITHM = "ES256"
key_table = SigningKey.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SigningMaterial:
    current: ECKey
    published: KeySet


def _aad(kid: str) -> str:
    return f"signing_key.private_key_enc:{kid}"


async def create_key(connection: AsyncConnection, master: MasterKeys) -> str:
    kid = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(4)
    key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"}, private=True)
    master_id, wrapped = master.wrap(json.dumps(key.as_dict(private=True)).encode(), aad=_aad(kid))
    await connection.execute(key_table.insert().values(
        kid=kid, alg=ALGORITHM, private_key_enc=wrapped, master_key_id=master_id,
        public_jwk=key.as_dict(private=False),
    ))
    return kid


async def rotate(connection: AsyncConnection, master: MasterKeys, *, longest_token_seconds: int) -> str:
    """Add a new signing key; every older live key retires once its last token has expired."""
    retire_at = datetime.now(UTC) + timedelta(seconds=longest_token_seconds)
    await connection.execute(
        update(key_table).where(key_table.c.retire_after.is_(None)).values(retire_after=retire_at)
    )
    return await create_key(connection, master)


async def load(connection: AsyncConnection, master: MasterKeys) -> SigningMaterial:
    """Current signing key (newest unretired) and the set still published for validation."""
    now = datetime.now(UTC)
    rows = (await connection.execute(
        select(key_table).where((key_table.c.retire_after.is_(None)) | (key_table.c.retire_after > now))
        .order_by(key_table.c.created_at.desc(), key_table.c.kid.desc())
    )).all()
    if not rows:
        await create_key(connection, master)
        return await load(connection, master)
    signing_row = next((r for r in rows if r.retire_after is None), rows[0])
    private: dict[str, Any] = json.loads(
        master.unwrap(signing_row.master_key_id, signing_row.private_key_enc, aad=_aad(signing_row.kid))
    )
    current = ECKey.import_key(private)
    published = KeySet.import_key_set({"keys": [dict(r.public_jwk) for r in rows]})
    return SigningMaterial(current=current, published=published)


async def rewrap_all(connection: AsyncConnection, master: MasterKeys) -> int:
    """Re-encrypt every private key under the current master key (master-key rotation)."""
    rows = (await connection.execute(select(key_table))).all()
    for row in rows:
        plain = master.unwrap(row.master_key_id, row.private_key_enc, aad=_aad(row.kid))
        master_id, wrapped = master.wrap(plain, aad=_aad(row.kid))
        await connection.execute(update(key_table).where(key_table.c.kid == row.kid)
                                 .values(private_key_enc=wrapped, master_key_id=master_id))
    return len(rows)
