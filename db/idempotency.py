"""Idempotency keys (Stripe's design, security.md §7): the claim, the change and the first response
commit in one transaction, so a concurrent retry waits for the first and then replays its response.

What is kept is what the client was answered: the payload's JSON for the fields it selected, the
record's id and the userErrors, beside a fingerprint of that selection (a replay selecting other
fields cannot be answered from it). The response can name a survivor (a pseudonym, even an identity
the caller was allowed to read), so it is sealed with the current master key: a dump of the table
holds no plaintext, and `pamoja keys rotate-master` re-wraps it like every other small secret.
Housekeeping deletes it once the key expires (24 h).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.crypto import MasterKeys
from db.engine import Db
from db.tables import IdempotencyRecord
from domain.errors import IdempotencyKeyReused

record_t = IdempotencyRecord.__table__  # type: ignore[attr-defined]
KEY_LIFETIME = timedelta(hours=24)
FIELD = ("input", "idempotencyKey")


@dataclass(frozen=True, slots=True)
class FirstResponse:
    """The first answer under a key: the record it named (a global id, None when refused), its
    userErrors ({field, code, message}), the payload as the client received it (keyed by the
    response names it chose) and the paths, inside the payload, of the GraphQL errors it carried."""

    record_id: str | None
    user_errors: list[dict[str, Any]]
    data: Any
    error_paths: list[list[str | int]]


def _aad(principal_key: str, key: str) -> str:
    return f"idempotency_record.response:{principal_key}:{key}"


def _sealed(master: MasterKeys, *, principal_key: str, key: str, selection: str,
            first: FirstResponse) -> dict[str, str]:
    key_id, sealed = master.wrap(json.dumps(asdict(first)).encode(), aad=_aad(principal_key, key))
    return {"selection": selection, "masterKeyId": key_id, "sealed": base64.b64encode(sealed).decode()}


def open_first_response(master: MasterKeys, *, principal_key: str, key: str, stored: dict[str, Any]) -> FirstResponse:
    """The first response kept in `stored` (an idempotency_record.response that holds one)."""
    plain = master.unwrap(stored["masterKeyId"], base64.b64decode(stored["sealed"]), aad=_aad(principal_key, key))
    return FirstResponse(**json.loads(plain))


async def claim(db: Db, *, organization_id: uuid.UUID, principal_key: str, key: str, operation: str,
                request_hash: bytes, selection: str, now: datetime, master: MasterKeys) -> FirstResponse | None:
    """Claim the key, or return the first response stored under it; None means "go ahead"."""
    for _ in range(2):
        inserted = await db.first(insert(record_t).values(
            principal_key=principal_key, key=key, operation=operation, request_hash=request_hash,
            organization_id=organization_id, expires_at=now + KEY_LIFETIME, response={"selection": selection},
        ).on_conflict_do_nothing().returning(record_t.c.key))
        if inserted is not None:
            return None
        existing = await db.first(select(record_t).where(
            record_t.c.principal_key == principal_key, record_t.c.key == key))
        if existing is None:
            continue
        if existing.expires_at <= now:
            await db.execute(delete(record_t).where(and_(
                record_t.c.principal_key == principal_key, record_t.c.key == key)))
            continue
        if existing.operation != operation or existing.request_hash != request_hash:
            raise IdempotencyKeyReused("This idempotency key was already used with a different input.", field=FIELD)
        stored = dict(existing.response or {})
        if stored.get("selection") != selection:
            raise IdempotencyKeyReused(
                "This idempotency key was first used with another selection of payload fields: select the same "
                "fields to get the first response again, or read the record with a query.", field=FIELD)
        if "sealed" not in stored:
            # Claimed and not yet answered, which only another mutation of this same request can see.
            raise IdempotencyKeyReused("This idempotency key is already used by another mutation of this request; "
                                       "use one key per intended action.", field=FIELD)
        return open_first_response(master, principal_key=principal_key, key=key, stored=stored)
    raise IdempotencyKeyReused("This idempotency key is being reused too quickly; retry later.", field=FIELD)


async def remember(db: Db, *, principal_key: str, key: str, selection: str, first: FirstResponse,
                   master: MasterKeys) -> None:
    """Keep the first response, sealed, in the transaction that made the change it reports."""
    await db.execute(update(record_t).where(record_t.c.principal_key == principal_key, record_t.c.key == key)
                     .values(response=_sealed(master, principal_key=principal_key, key=key, selection=selection,
                                              first=first)))


async def rewrap(connection: AsyncConnection, master: MasterKeys) -> int:
    """Seal every kept first response under the current master key (run as the owner); how many moved."""
    moved = 0
    rows = (await connection.execute(select(record_t.c.principal_key, record_t.c.key, record_t.c.response).where(
        record_t.c.response["masterKeyId"].astext != master.current_id))).all()
    for row in rows:
        first = open_first_response(master, principal_key=row.principal_key, key=row.key, stored=row.response)
        await connection.execute(update(record_t).where(
            record_t.c.principal_key == row.principal_key, record_t.c.key == row.key).values(response=_sealed(
                master, principal_key=row.principal_key, key=row.key, selection=row.response["selection"],
                first=first)))
        moved += 1
    return moved


async def sealed_under(connection: AsyncConnection, master_key_id: str) -> int:
    """First responses still sealed with this master key."""
    count = await connection.scalar(select(func.count()).select_from(record_t).where(
        record_t.c.response["masterKeyId"].astext == master_key_id))
    return int(count or 0)
