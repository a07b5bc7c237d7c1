"""Idempotency keys (Stripe's design, security.md §7): the claim, the change and the stored result
commit in one transaction, so a concurrent retry waits for the first and then replays its result.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects.postgresql import insert

from db.engine import Db
from db.tables import IdempotencyRecord
from domain.errors import IdempotencyKeyReused

record_t = IdempotencyRecord.__table__  # type: ignore[attr-defined]
KEY_LIFETIME = timedelta(hours=24)
FIELD = ("input", "idempotencyKey")


async def claim(db: Db, *, organization_id: uuid.UUID, principal_key: str, key: str, operation: str,
                request_hash: bytes, now: datetime) -> dict[str, Any] | None:
    """Claim the key, or return the first result stored under it; None means "go ahead"."""
    for _ in range(2):
        inserted = await db.first(insert(record_t).values(
            principal_key=principal_key, key=key, operation=operation, request_hash=request_hash,
            organization_id=organization_id, expires_at=now + KEY_LIFETIME,
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
        return dict(existing.response or {})
    raise IdempotencyKeyReused("This idempotency key is being reused too quickly; retry later.", field=FIELD)


async def remember(db: Db, *, principal_key: str, key: str, response: dict[str, Any]) -> None:
    await db.execute(update(record_t).where(record_t.c.principal_key == principal_key, record_t.c.key == key)
                     .values(response=response))
