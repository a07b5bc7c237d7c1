"""The staff console's sessions (migration 0009). A session is found by the SHA-256 of its cookie;
tokens and the PKCE verifier are sealed under the master key with the row's hash as aad, so a row
copied elsewhere, or read from a backup, opens nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from db.crypto import MasterKeys
from db.tables import ConsoleSession

sessions = ConsoleSession.__table__  # type: ignore[attr-defined]


def id_hash(cookie: str) -> bytes:
    return hashlib.sha256(cookie.encode()).digest()


@dataclass(frozen=True, slots=True)
class SessionRow:
    id_hash: bytes
    staff_user_id: Any
    csrf_token: str = field(repr=False)
    language: str
    login_state: str | None
    login_verifier: str | None = field(repr=False)
    access_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)
    access_expires_at: datetime | None
    last_seen_at: datetime
    expires_at: datetime


class ConsoleSessions:
    """Each call is its own short transaction on the runtime engine: a session outlives any request."""

    def __init__(self, engine: AsyncEngine, master: MasterKeys) -> None:
        self.engine = engine
        self.master = master

    def _seal(self, row_hash: bytes, value: str | None, what: str) -> tuple[str, bytes | None]:
        if value is None:
            return self.master.current_id, None
        return self.master.wrap(value.encode(), aad=f"console:{what}:{row_hash.hex()}")

    def _open(self, key_id: str, row_hash: bytes, sealed: bytes | None, what: str) -> str | None:
        if sealed is None:
            return None
        return self.master.unwrap(key_id, sealed, aad=f"console:{what}:{row_hash.hex()}").decode()

    async def start_login(self, cookie: str, *, csrf_token: str, language: str, state: str, verifier: str,
                          expires_at: datetime) -> None:
        row_hash = id_hash(cookie)
        key_id, sealed = self._seal(row_hash, verifier, "verifier")
        async with self.engine.begin() as connection:
            await connection.execute(insert(sessions).values(
                id_hash=row_hash, csrf_token=csrf_token, language=language, key_id=key_id, login_state=state,
                login_verifier_enc=sealed, expires_at=expires_at))

    async def signed_in(self, cookie: str, *, staff_user_id: Any, csrf_token: str, language: str, access_token: str,
                        refresh_token: str | None, access_expires_at: datetime, expires_at: datetime) -> None:
        row_hash = id_hash(cookie)
        key_id, access = self._seal(row_hash, access_token, "access")
        _, refresh = self._seal(row_hash, refresh_token, "refresh")
        async with self.engine.begin() as connection:
            await connection.execute(insert(sessions).values(
                id_hash=row_hash, staff_user_id=staff_user_id, csrf_token=csrf_token, language=language,
                key_id=key_id, access_token_enc=access, refresh_token_enc=refresh,
                access_expires_at=access_expires_at, expires_at=expires_at))

    async def find(self, cookie: str) -> SessionRow | None:
        row_hash = id_hash(cookie)
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(sessions).where(sessions.c.id_hash == row_hash))).first()
        if row is None:
            return None
        return SessionRow(
            id_hash=row.id_hash, staff_user_id=row.staff_user_id, csrf_token=row.csrf_token, language=row.language,
            login_state=row.login_state,
            login_verifier=self._open(row.key_id, row_hash, row.login_verifier_enc, "verifier"),
            access_token=self._open(row.key_id, row_hash, row.access_token_enc, "access"),
            refresh_token=self._open(row.key_id, row_hash, row.refresh_token_enc, "refresh"),
            access_expires_at=row.access_expires_at, last_seen_at=row.last_seen_at, expires_at=row.expires_at)

    async def renewed(self, row_hash: bytes, *, access_token: str, refresh_token: str | None,
                      access_expires_at: datetime) -> None:
        key_id, access = self._seal(row_hash, access_token, "access")
        _, refresh = self._seal(row_hash, refresh_token, "refresh")
        async with self.engine.begin() as connection:
            await connection.execute(update(sessions).where(sessions.c.id_hash == row_hash).values(
                key_id=key_id, access_token_enc=access, refresh_token_enc=refresh,
                access_expires_at=access_expires_at))

    async def seen(self, row_hash: bytes, now: datetime) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(update(sessions).where(sessions.c.id_hash == row_hash)
                                     .values(last_seen_at=now))

    async def set_language(self, row_hash: bytes, language: str) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(update(sessions).where(sessions.c.id_hash == row_hash)
                                     .values(language=language))

    async def end(self, row_hash: bytes) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(delete(sessions).where(sessions.c.id_hash == row_hash))
