"""The staff login behind `/oauth/authorize`: password check, throttle, CSRF, and the page itself.

- Passwords are argon2id hashes. An unknown e-mail is checked against a dummy hash so that the
  answer takes as long as for a real account, and every refusal says the same thing.
- Throttling is per submitted e-mail, whether an account exists or not (so it reveals nothing), in
  two rows. Per (e-mail, address): after a few failures each further attempt must wait, doubling
  each time, and after more that pair is locked for a while. Per e-mail: the same growing delay, but
  never a lock, and only for addresses that already failed for that e-mail. So a stranger cannot
  lock a counselor out of her own sign-in, and guessing spread over many addresses gets one try per
  fresh address and then waits on the e-mail's delay. Both rows are locked for the attempt, so
  parallel guesses queue.
- CSRF: a random cookie (SameSite=Strict, HttpOnly) and, in the form, its HMAC under a server key.
  A forged cross-site POST carries neither; a cookie planted from a sibling domain has no HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from db import oauth as store
from db.crypto import MasterKeys
from db.tables import StaffUser
from domain.enums import OrganizationKind, Role
from domain.ids import to_global_id

CSRF_COOKIE = "pamoja_login_csrf"
GENERIC_FAILURE = "Incorrect e-mail or password."
_hasher = PasswordHasher()  # argon2id with the library's current parameters
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
users = StaffUser.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class StaffIdentity:
    """A signed-in (or refreshing) staff user, as the token endpoint needs them."""

    id: uuid.UUID
    organization_id: uuid.UUID
    organization_kind: OrganizationKind
    roles: tuple[Role, ...]
    display_name: str

    @classmethod
    def from_row(cls, row: Any) -> StaffIdentity:
        return cls(id=row.id, organization_id=row.organization_id, organization_kind=OrganizationKind(row.kind),
                   roles=tuple(Role(r) for r in row.roles), display_name=row.display_name)

    @property
    def gid(self) -> str:
        return to_global_id("StaffUser", self.id)

    @property
    def organization_gid(self) -> str:
        return to_global_id("Organization", self.organization_id)

    def get_user_id(self) -> str:
        return self.gid


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    slowdown_after: int
    slowdown_base_seconds: float
    lockout_after: int
    lockout_seconds: int

    def delay(self, failures: int) -> timedelta:
        """How long after the last failure the next attempt is heard (doubling per extra failure)."""
        if failures < self.slowdown_after:
            return timedelta(0)
        seconds = self.slowdown_base_seconds * 2 ** min(failures - self.slowdown_after, 20)
        return timedelta(seconds=min(seconds, self.lockout_seconds))


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: StaffIdentity | None = None
    wait_seconds: int | None = None  # refused without checking the password: slowed down or locked
    locked: bool = False


def normalize_email(value: str) -> str:
    return value.strip().lower()


def throttle_key(secret: bytes, email: str) -> bytes:
    return hmac.new(secret, b"login-throttle:" + normalize_email(email).encode(), hashlib.sha256).digest()


def source_throttle_key(secret: bytes, email: str, address: str | None) -> bytes:
    """The key of one (e-mail, address) pair: keyed hash, so the table names neither."""
    message = b"login-throttle-source:" + normalize_email(email).encode() + b"\x00" + (address or "").encode()
    return hmac.new(secret, message, hashlib.sha256).digest()


def _verify(stored: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(stored, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def _slowed_until(row: Any, policy: ThrottlePolicy) -> datetime | None:
    if row.last_failure_at is None or row.failures < policy.slowdown_after:
        return None
    moment: datetime = row.last_failure_at + policy.delay(row.failures)
    return moment


async def attempt_login(connection: AsyncConnection, *, email: str, password: str, account_key: bytes,
                        source_key: bytes, policy: ThrottlePolicy) -> LoginResult:
    """Check one login attempt inside the caller's transaction (which records its outcome).

    `account_key` names the e-mail (slowed, never locked), `source_key` the (e-mail, address) pair
    (slowed, then locked). Rows are always locked in that order, so concurrent attempts cannot deadlock.
    """
    account = await store.lock_throttle(connection, account_key)
    source = await store.lock_throttle(connection, source_key)
    now = datetime.now(UTC)
    if source.locked_until is not None and source.locked_until > now:
        return LoginResult(wait_seconds=_seconds_until(source.locked_until, now), locked=True)
    waits = [_slowed_until(source, policy)]
    if source.failures > 0:  # an address that has not failed for this e-mail is heard at once
        waits.append(_slowed_until(account, policy))
    ready_at = max((moment for moment in waits if moment is not None), default=None)
    if ready_at is not None and now < ready_at:
        return LoginResult(wait_seconds=_seconds_until(ready_at, now))
    sane = len(email) <= 254 and 0 < len(password) <= 1024
    user = await store.active_staff_by_email(connection, normalize_email(email)) if sane else None
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    ok = await anyio.to_thread.run_sync(_verify, stored, password if sane else "-")
    if ok and user is not None and user.password_hash:
        await store.clear_login_failures(connection, account_key)
        await store.clear_login_failures(connection, source_key)
        if _hasher.check_needs_rehash(user.password_hash):
            new_hash = await anyio.to_thread.run_sync(_hasher.hash, password)
            await connection.execute(update(users).where(users.c.id == user.id).values(password_hash=new_hash))
        return LoginResult(user=StaffIdentity.from_row(user))
    await store.record_login_failure(connection, account_key, failures=account.failures + 1, locked_until=None)
    failures = source.failures + 1
    locked_until = now + timedelta(seconds=policy.lockout_seconds) if failures >= policy.lockout_after else None
    await store.record_login_failure(connection, source_key, failures=failures, locked_until=locked_until)
    if locked_until is not None:
        return LoginResult(wait_seconds=policy.lockout_seconds, locked=True)
    return LoginResult()


# ----------------------------------------------------------------------------- CSRF


def csrf_key(master: MasterKeys) -> bytes:
    return hmac.new(master.get(master.current_id), b"pamoja-login-csrf", hashlib.sha256).digest()


def new_csrf(key: bytes) -> tuple[str, str]:
    """(cookie value, form token)."""
    cookie = secrets.token_urlsafe(32)
    return cookie, _csrf_token(key, cookie)


def _csrf_token(key: bytes, cookie: str) -> str:
    return hmac.new(key, cookie.encode(), hashlib.sha256).hexdigest()


def csrf_ok(key: bytes, cookie: str | None, token: str | None) -> bool:
    if not cookie or not token or len(cookie) > 200 or len(token) > 200:
        return False
    return hmac.compare_digest(_csrf_token(key, cookie), token)


# ----------------------------------------------------------------------------- the page

_STYLE = """
body{font-family:system-ui,sans-serif;background:#f4f1ea;margin:0;display:flex;min-height:100vh;
align-items:center;justify-content:center}main{background:#fff;padding:2rem;border-radius:8px;
max-width:22rem;width:100%;box-shadow:0 1px 4px rgba(0,0,0,.15)}h1{font-size:1.3rem;margin-top:0}
label{display:block;margin:.8rem 0 .2rem}input[type=email],input[type=password]{width:100%;
padding:.5rem;box-sizing:border-box}button{margin-top:1.2rem;width:100%;padding:.6rem;
background:#1f6f5c;color:#fff;border:0;border-radius:4px;font-size:1rem}
.error{background:#fde8e8;color:#8a1c1c;padding:.6rem;border-radius:4px}.muted{color:#555;font-size:.9rem}
"""

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def login_page(*, action: str, client_name: str, params: list[tuple[str, str]], csrf_token: str,
               email: str = "", error: str | None = None) -> str:
    hidden = "\n".join(f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in params)
    problem = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Sign in to Pamoja</title><style>{_STYLE}</style></head>
<body><main>
<h1>Sign in to Pamoja</h1>
<p class="muted">to continue to {_e(client_name)}</p>
{problem}
<form method="post" action="{_e(action)}" autocomplete="on">
{hidden}
<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">
<label for="email">E-mail</label>
<input id="email" name="email" type="email" required maxlength="254" value="{_e(email)}" autocomplete="username">
<label for="password">Password</label>
<input id="password" name="password" type="password" required maxlength="1024" autocomplete="current-password">
<button type="submit">Sign in</button>
</form>
</main></body></html>
"""


def message_page(*, title: str, message: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title><style>{_STYLE}</style></head>
<body><main><h1>{_e(title)}</h1><p class="error" role="alert">{_e(message)}</p></main></body></html>
"""
