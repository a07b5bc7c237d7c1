"""The console as a backend-for-frontend: a first-party confidential client of Pamoja's own OAuth
server. The person signs in on the existing login page (authorization code + PKCE); the tokens stay
in the console_session row (db/console.py), and the browser holds only a random session id in an
HttpOnly, SameSite=Lax cookie (Secure, and `__Host-` prefixed, over https). Access tokens are renewed
with refresh rotation; signing out revokes the refresh token's family; a session idle for
PAMOJA_CONSOLE_IDLE_SECONDS ends. Every form carries the session's CSRF token."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from api.state import AppState
from auth.clients import CONSOLE_CLIENT_ID, console_client_secret, ensure_console_client
from auth.tokens import InvalidToken
from db.console import ConsoleSessions, SessionRow
from domain.principal import Principal

LANGUAGE_COOKIE = "pamoja-language"
SIGN_IN_WINDOW = timedelta(minutes=10)
RENEW_BEFORE = timedelta(seconds=30)
SEEN_EVERY = timedelta(seconds=20)  # last_seen_at is written at most this often


class SignInRequired(Exception):
    """No usable session: the page sends the person to sign in (saying why, if the session ended)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    row: SessionRow

    @property
    def csrf_token(self) -> str:
        return self.row.csrf_token

    @property
    def language(self) -> str:
        return self.row.language


def _now() -> datetime:
    return datetime.now(UTC)


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.pamoja
    return state


def _store(request: Request) -> ConsoleSessions:
    state = _state(request)
    return ConsoleSessions(state.engine, state.master_keys)


def _secure(request: Request) -> bool:
    return _state(request).settings.public_url.startswith("https://")


def cookie_name(request: Request) -> str:
    return "__Host-pamoja-console" if _secure(request) else "pamoja-console"


def callback_url(request: Request) -> str:
    return f"{_state(request).settings.public_url}/app/callback"


def set_session_cookie(request: Request, response: Response, value: str) -> None:
    response.set_cookie(cookie_name(request), value, httponly=True, secure=_secure(request), samesite="lax", path="/")


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(cookie_name(request), path="/", secure=_secure(request), httponly=True, samesite="lax")


async def _oauth(request: Request, path: str, form: dict[str, str]) -> httpx.Response:
    """Pamoja's own token and revocation endpoints, called in this process as the console's client:
    the same grant checks, rotation, rate limits and audit as for any client."""
    state = _state(request)
    # As from the person's own address: the token endpoint's per-address limits count each browser.
    address = request.client.host if request.client else "127.0.0.1"
    transport = httpx.ASGITransport(app=request.app, client=(address, 0))
    async with httpx.AsyncClient(transport=transport, base_url=state.settings.public_url) as http:
        return await http.post(path, data=form, auth=(CONSOLE_CLIENT_ID, console_client_secret(state.master_keys)))


async def begin_sign_in(request: Request, language: str) -> Response | None:
    """Off to the login page, with a fresh state and PKCE verifier kept server-side. None while no
    organization exists (the console's client has no owner yet)."""
    state = _state(request)
    async with state.engine.begin() as connection:
        if not await ensure_console_client(connection, state.master_keys, redirect_uri=callback_url(request)):
            return None
    cookie, oauth_state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    await _store(request).start_login(cookie, csrf_token=secrets.token_urlsafe(24), language=language,
                                      state=oauth_state, verifier=verifier, expires_at=_now() + SIGN_IN_WINDOW)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"response_type": "code", "client_id": CONSOLE_CLIENT_ID, "redirect_uri": callback_url(request),
                       "state": oauth_state, "code_challenge": challenge, "code_challenge_method": "S256"})
    response = RedirectResponse(f"/oauth/authorize?{query}", status_code=303)
    set_session_cookie(request, response, cookie)
    return response


async def finish_sign_in(request: Request, *, code: str, state: str) -> Response:
    """The login page sent the person back: redeem the code, then a new session id (no fixation)."""
    cookie = request.cookies.get(cookie_name(request))
    store = _store(request)
    pending = await store.find(cookie) if cookie else None
    if pending is None or pending.login_state is None or pending.expires_at < _now() \
            or not hmac.compare_digest(pending.login_state, state) or pending.login_verifier is None:
        raise SignInRequired("sign-in-expired")
    await store.end(pending.id_hash)
    answer = await _oauth(request, "/oauth/token", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": callback_url(request),
        "code_verifier": pending.login_verifier})
    if answer.status_code != 200:
        raise SignInRequired("sign-in-failed")
    tokens = answer.json()
    principal = await _state(request).authenticator.authenticate(tokens["access_token"])
    settings = _state(request).settings
    fresh = secrets.token_urlsafe(32)
    await store.signed_in(fresh, staff_user_id=principal.user_id, csrf_token=secrets.token_urlsafe(24),
                          language=pending.language, access_token=tokens["access_token"],
                          refresh_token=tokens.get("refresh_token"),
                          access_expires_at=_now() + timedelta(seconds=int(tokens.get("expires_in", 0))),
                          expires_at=_now() + timedelta(seconds=settings.refresh_token_ttl_seconds))
    response = RedirectResponse("/app", status_code=303)
    set_session_cookie(request, response, fresh)
    return response


async def current(request: Request) -> SignedIn:
    """The signed-in person of this request, their access token renewed when it is about to expire."""
    cookie = request.cookies.get(cookie_name(request))
    if not cookie:
        raise SignInRequired()
    store = _store(request)
    row = await store.find(cookie)
    if row is None or row.access_token is None:
        raise SignInRequired()
    now = _now()
    idle = timedelta(seconds=_state(request).settings.console_idle_seconds)
    if row.expires_at < now or now - row.last_seen_at > idle:
        await _end(request, row)
        raise SignInRequired("session-ended")
    if row.access_expires_at is None or row.access_expires_at - now < RENEW_BEFORE:
        row = await _renew(request, row)
    try:
        principal = await _state(request).authenticator.authenticate(row.access_token or "")
    except InvalidToken:  # deactivated, signed out elsewhere, or a role taken away
        await _end(request, row)
        raise SignInRequired("session-ended") from None
    if now - row.last_seen_at > SEEN_EVERY:
        await store.seen(row.id_hash, now)
    return SignedIn(principal=principal, row=row)


async def _renew(request: Request, row: SessionRow) -> SessionRow:
    if row.refresh_token is None:
        await _end(request, row)
        raise SignInRequired("session-ended")
    answer = await _oauth(request, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": row.refresh_token})
    if answer.status_code != 200:
        await _store(request).end(row.id_hash)
        raise SignInRequired("session-ended")
    tokens: dict[str, Any] = answer.json()
    expires = _now() + timedelta(seconds=int(tokens.get("expires_in", 0)))
    await _store(request).renewed(row.id_hash, access_token=tokens["access_token"],
                                  refresh_token=tokens.get("refresh_token"), access_expires_at=expires)
    return dataclasses.replace(row, access_token=tokens["access_token"], refresh_token=tokens.get("refresh_token"),
                               access_expires_at=expires)


async def _end(request: Request, row: SessionRow) -> None:
    """Revoke the refresh token's family (its access tokens with it), then forget the session."""
    if row.refresh_token is not None:
        await _oauth(request, "/oauth/revoke", {"token": row.refresh_token, "token_type_hint": "refresh_token"})
    await _store(request).end(row.id_hash)


async def sign_out(request: Request, signed: SignedIn) -> None:
    await _end(request, signed.row)


def csrf_ok(signed: SignedIn, sent: object) -> bool:
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), signed.csrf_token.encode())


async def set_language(request: Request, signed: SignedIn | None, language: str) -> None:
    if signed is not None:
        await _store(request).set_language(signed.row.id_hash, language)

