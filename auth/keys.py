"""Pamoja's token-signing keys: ES256, private halves encrypted under the master key.

Rotation adds a key that signs from then on; the previous key stays published (so tokens it
signed keep validating) until `retire_after`, which is set to now + the longest token lifetime.
After that instant the key is neither published nor accepted, even from a cache.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey, KeySet
from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.crypto import MasterKeys
from db.keyring import signing_key_aad
from db.tables import SigningKey

ALGORITHM = "ES256"
key_table = SigningKey.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SigningMaterial:
    current: ECKey
    published: KeySet
    # The earliest retirement among the published keys: past it, this material is stale.
    valid_until: datetime | None = None

    def is_stale(self, now: datetime | None = None) -> bool:
        return self.valid_until is not None and (now or datetime.now(UTC)) >= self.valid_until

    def public_jwks(self) -> dict[str, Any]:
        """The JWKS document: public members only, whatever the key objects hold."""
        return {"keys": [key.as_dict(private=False) for key in self.published.keys]}


def _live(now: datetime) -> Any:
    return (key_table.c.retire_after.is_(None)) | (key_table.c.retire_after > now)


async def create_key(connection: AsyncConnection, master: MasterKeys) -> str:
    kid = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(4)
    key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"}, private=True)
    master_id, wrapped = master.wrap(json.dumps(key.as_dict(private=True)).encode(), aad=signing_key_aad(kid))
    await connection.execute(key_table.insert().values(
        kid=kid, alg=ALGORITHM, private_key_enc=wrapped, master_key_id=master_id,
        public_jwk=key.as_dict(private=False),
    ))
    return kid


@dataclass(frozen=True)
class Rotation:
    new_kid: str
    retiring: tuple[str, ...]
    retire_at: datetime
    pruned: int


async def rotate(connection: AsyncConnection, master: MasterKeys, *, longest_token_seconds: int) -> Rotation:
    """Add a new signing key; every older live key retires once its last token has expired.

    Keys already past retirement can never validate anything again, so their encrypted private
    halves are deleted here rather than kept around.
    """
    now = datetime.now(UTC)
    retire_at = now + timedelta(seconds=longest_token_seconds)
    retiring = (await connection.execute(
        update(key_table).where(key_table.c.retire_after.is_(None)).values(retire_after=retire_at)
        .returning(key_table.c.kid)
    )).scalars().all()
    pruned = (await connection.execute(
        delete(key_table).where(key_table.c.retire_after <= now).returning(key_table.c.kid)
    )).scalars().all()
    kid = await create_key(connection, master)
    return Rotation(new_kid=kid, retiring=tuple(sorted(retiring)), retire_at=retire_at, pruned=len(pruned))


async def load(connection: AsyncConnection, master: MasterKeys) -> SigningMaterial:
    """Current signing key (newest unretired) and the set still published for validation."""
    now = datetime.now(UTC)
    rows = (await connection.execute(
        select(key_table).where(_live(now)).order_by(key_table.c.created_at.desc(), key_table.c.kid.desc())
    )).all()
    if not rows:
        await create_key(connection, master)
        return await load(connection, master)
    signing_row = next((r for r in rows if r.retire_after is None), rows[0])
    private: dict[str, Any] = json.loads(
        master.unwrap(signing_row.master_key_id, signing_row.private_key_enc, aad=signing_key_aad(signing_row.kid))
    )
    current = ECKey.import_key(private)
    published = KeySet.import_key_set({"keys": [dict(r.public_jwk) for r in rows]})
    retirements = [r.retire_after for r in rows if r.retire_after is not None]
    return SigningMaterial(current=current, published=published,
                           valid_until=min(retirements) if retirements else None)


async def published_jwks(connection: AsyncConnection) -> dict[str, Any]:
    """The JWKS as of now, straight from the table (no private key is decrypted to serve it)."""
    rows = (await connection.execute(
        select(key_table.c.public_jwk).where(_live(datetime.now(UTC)))
        .order_by(key_table.c.created_at.desc(), key_table.c.kid.desc())
    )).scalars().all()
    keyset = KeySet.import_key_set({"keys": [dict(jwk) for jwk in rows]})
    return {"keys": [key.as_dict(private=False) for key in keyset.keys]}


async def is_live(connection: AsyncConnection, kid: str) -> bool:
    """Whether `kid` names a key that is published right now (one primary-key lookup)."""
    statement = select(exists().where(key_table.c.kid == kid, _live(datetime.now(UTC))))
    return bool(await connection.scalar(statement))
