"""Deleting rows whose purpose has passed, so no table grows without bound.

- idempotency records after they expire (24 h): they also hold the first response of a mutation,
  which may name a survivor's pseudonym; keeping them longer than their purpose is data we need not hold;
- revoked access tokens and client-assertion `jti`s once the token or assertion could no longer be
  accepted anyway (its expiry plus the validator's clock leeway plus a margin);
- authorization codes a day after they expired (kept a while so a replayed code is recognised as used);
- login throttle rows that are not locking anybody out and saw no failure for `throttle_memory`:
  an attacker who submits random e-mail addresses (or one from many network addresses) creates one
  row per e-mail and per (e-mail, address) pair, and old failures are forgiven after a quiet day
  (a running lockout always runs its course);
- staff console sessions past their end (an unfinished sign-in after 10 minutes, a session after the
  refresh token's lifetime): they hold sealed tokens.

Refresh tokens are left alone: a used one must stay known for its family to be revoked on reuse.
Runs as the runtime role in the worker's context, which may delete these rows only once expired
(migration 0008): `pamoja housekeeping` once, or every `PAMOJA_HOUSEKEEPING_INTERVAL_SECONDS` inside
`pamoja worker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import (
    ConsoleSession,
    IdempotencyRecord,
    LoginThrottle,
    OAuthAssertionJti,
    OAuthAuthorizationCode,
    RevokedToken,
)

idempotency_t = IdempotencyRecord.__table__  # type: ignore[attr-defined]
revoked_t = RevokedToken.__table__  # type: ignore[attr-defined]
jti_t = OAuthAssertionJti.__table__  # type: ignore[attr-defined]
code_t = OAuthAuthorizationCode.__table__  # type: ignore[attr-defined]
throttle_t = LoginThrottle.__table__  # type: ignore[attr-defined]
console_t = ConsoleSession.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Retention:
    token_margin: timedelta = timedelta(minutes=5)  # > the 60 s leeway of token and assertion checks
    code_margin: timedelta = timedelta(days=1)
    throttle_memory: timedelta = timedelta(days=1)


async def sweep(connection: AsyncConnection, *, now: datetime, retention: Retention = Retention()) -> dict[str, int]:
    """Delete what has served its purpose at `now`; returns the number of rows per kind."""
    token_cutoff = now - retention.token_margin
    quiet_since = now - retention.throttle_memory
    statements = {
        "idempotency_records": delete(idempotency_t).where(idempotency_t.c.expires_at <= now),
        "revoked_tokens": delete(revoked_t).where(revoked_t.c.expires_at <= token_cutoff),
        "assertion_jtis": delete(jti_t).where(jti_t.c.expires_at <= token_cutoff),
        "authorization_codes": delete(code_t).where(code_t.c.expires_at <= now - retention.code_margin),
        "login_throttles": delete(throttle_t).where(and_(
            or_(throttle_t.c.locked_until.is_(None), throttle_t.c.locked_until <= now),
            or_(throttle_t.c.last_failure_at.is_(None), throttle_t.c.last_failure_at <= quiet_since),
        )),
        "console_sessions": delete(console_t).where(console_t.c.expires_at <= now),
    }
    return {kind: (await connection.execute(statement)).rowcount for kind, statement in statements.items()}
