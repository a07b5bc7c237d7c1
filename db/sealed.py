"""Free text about a survivor, sealed under the survivor's data key and opened only when shown.

Referral reasons and outcomes, status and withdrawal reasons, consent witnesses, goal descriptions
and progress notes, milestone titles and notes describe the child as much as the identity does:
each is AES-256-GCM under the survivor's data key bound to `table.column:row id` (db/crypto.py), so
destroying that key erases them with the identity, and a dump of the tables holds none of them.

Reads stay one statement per batch: a statement that returns sealed columns outer-joins the
survivor's key (`with_key`, `KEY_COLUMNS`), and `DataKeys` (one per request, db/unit.py) keeps the
wrapped keys it was offered and unwraps each once, on the first field a resolver reveals; nothing
is decrypted for a field nobody asked for. Care records under referrals already shown in the
request (db/care.py's *_UNDER statements) reuse the keys those referrals brought.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select

from db.crypto import MasterKeys, field_aad, open_sealed
from db.engine import Db
from db.survivors import key_aad
from db.tables import SurvivorKey

KEY = SurvivorKey.__table__.alias("text_key")  # type: ignore[attr-defined]
KEY_COLUMNS = (KEY.c.master_key_id.label("key_master_id"), KEY.c.wrapped_key.label("key_wrapped"))
ERASED = "This survivor's records were erased: free text can no longer be recorded for them."


def with_key(source: Any, survivor_id: ColumnElement[Any]) -> Any:
    """`source` outer-joined to the survivor's live data key: a destroyed key reads as no key."""
    return source.outerjoin(KEY, and_(KEY.c.survivor_id == survivor_id, KEY.c.destroyed_at.is_(None)))


@dataclass(frozen=True, slots=True)
class SealedField:
    """One sealed column of one row (domain.views.SealedText). Views are DataLoader keys: two reads of
    a row in one request share the request's DataKeys, so their fields (and views) compare equal."""

    keys: DataKeys
    survivor_id: uuid.UUID
    blob: bytes
    aad: str

    def reveal(self) -> str | None:
        key = self.keys.known(self.survivor_id)
        return None if key is None else open_sealed(key, self.blob, aad=self.aad).decode()


class DataKeys:
    """The survivors' data keys one request has seen: wrapped as read, unwrapped once on first use."""

    def __init__(self, db: Db, master: MasterKeys) -> None:
        self.db = db
        self.master = master
        self._wrapped: dict[uuid.UUID, tuple[str, bytes]] = {}
        self._open: dict[uuid.UUID, bytes] = {}

    def offer(self, rows: Iterable[Any]) -> None:
        """Keep the keys of rows read with KEY_COLUMNS (and a `survivor_id`)."""
        for row in rows:
            if row.key_wrapped is not None:
                self._wrapped.setdefault(row.survivor_id, (row.key_master_id, row.key_wrapped))

    def has(self, survivor_id: uuid.UUID) -> bool:
        """Whether a statement of this request brought the survivor's (live) key; nothing is unwrapped."""
        return survivor_id in self._wrapped

    def known(self, survivor_id: uuid.UUID) -> bytes | None:
        """The survivor's data key if a statement of this request brought it; None when destroyed."""
        key = self._open.get(survivor_id)
        if key is None:
            wrapped = self._wrapped.get(survivor_id)
            if wrapped is None:
                return None
            key = self._open[survivor_id] = self.master.unwrap(wrapped[0], wrapped[1], aad=key_aad(survivor_id))
        return key

    async def load(self, survivor_id: uuid.UUID) -> bytes | None:
        """For writing: the survivor's data key, read if no statement brought it yet."""
        if survivor_id not in self._wrapped:
            self.offer(await self.db.all(select(KEY.c.survivor_id, *KEY_COLUMNS).where(
                KEY.c.survivor_id == survivor_id, KEY.c.destroyed_at.is_(None))))
        return self.known(survivor_id)

    async def of_row(self, statement: Select[Any]) -> tuple[Any, bytes | None]:
        """For writing: run a one-row statement selecting `survivor_id` and KEY_COLUMNS (with_key);
        its row (None when not found) and its survivor's data key."""
        row = await self.db.first(statement)
        if row is None:
            return None, None
        self.offer([row])
        return row, self.known(row.survivor_id)

    def sealed(self, row: Any, column: str, *, table: str, row_id: object) -> SealedField | None:
        """The row's `<column>_enc` as a SealedField bound to its survivor (None when the column is)."""
        blob = getattr(row, f"{column}_enc")
        if blob is None:
            return None
        return SealedField(keys=self, survivor_id=row.survivor_id, blob=blob,
                           aad=field_aad(table, column, row_id))
