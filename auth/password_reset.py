"""The page behind a one-time password link: `GET|POST /account/password?token=…`.

An administrator never chooses or sees a staff member's password: `pamoja user reset-password` or
`issuePasswordLink` hands her a link, and the person sets the password here, once. Only the
token's SHA-256 is stored (db/staff_admin.py). The token travels in the query string, which the
access log never records (api/main.py), and the page sends no Referer. Opening the link changes
nothing (mail scanners fetch links); only the form's POST spends it, in one transaction that sets
the argon2id hash, marks the link used and ends every sign-in session of the account. A link that
is unknown, used, superseded by a newer one, expired, or whose account was deactivated gets the same
clear page. The form has the login page's look and CSRF protection, under a key of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import math
import time
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

import anyio.to_thread
import structlog
from argon2 import PasswordHasher
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from sqlalchemy.ext.asyncio import AsyncEngine

from auth import login
from db import staff_admin
from db.audit import write_audit
from db.crypto import MasterKeys
from db.engine import Db
from domain.ids import to_global_id
from domain.staff import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, password_problem
from domain.use_cases.staff_admin import link_token_hash

if TYPE_CHECKING:
    from config.settings import Settings

PATH = "/account/password"
CSRF_COOKIE = "pamoja_password_csrf"
MAX_TOKEN_LENGTH = 100
FORM_TYPE = "application/x-www-form-urlencoded"
TITLE = "Set your Pamoja password"
LINK_GONE = ("This link has already been used, has expired, or was replaced by a newer one. Ask your "
             "administrator for a new link.")
_hasher = PasswordHasher()  # argon2id, as the sign-in page verifies it

logger = structlog.get_logger("pamoja.oauth")


class _State(Protocol):
    engine: AsyncEngine
    master_keys: MasterKeys


def link_url(public_url: str, token: str) -> str:
    """What an administrator hands over: the page's address with the token."""
    return f"{public_url}{PATH}?{urlencode({'token': token})}"


def _csrf_key(master: MasterKeys) -> bytes:
    return hmac.new(master.get(master.current_id), b"pamoja-password-csrf", hashlib.sha256).digest()


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def form_page(*, token: str, email: str, csrf_token: str, error: str | None = None) -> str:
    problem = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{TITLE}</title><style>{login._STYLE}</style></head>
<body><main>
<h1>{TITLE}</h1>
<p class="muted">At least {PASSWORD_MIN_LENGTH} characters: a few words you will remember make a good one.
This link works once.</p>
{problem}
<form method="post" action="{PATH}" autocomplete="on">
<input type="hidden" name="token" value="{_e(token)}">
<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">
<label for="email">E-mail</label>
<input id="email" name="email" type="email" value="{_e(email)}" readonly autocomplete="username">
<label for="password">New password</label>
<input id="password" name="password" type="password" required minlength="{PASSWORD_MIN_LENGTH}"
 maxlength="{PASSWORD_MAX_LENGTH}" autocomplete="new-password">
<label for="confirm">The same password again</label>
<input id="confirm" name="confirm" type="password" required minlength="{PASSWORD_MIN_LENGTH}"
 maxlength="{PASSWORD_MAX_LENGTH}" autocomplete="new-password">
<button type="submit">Set password</button>
</form>
</main></body></html>
"""


def done_page() -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Password set</title><style>{login._STYLE}</style></head>
<body><main><h1>Password set</h1><p>Your password is set. Sign in from your Pamoja application with your
e-mail and this password. Any other place you were signed in has been signed out.</p></main></body></html>
"""


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    limiter = MovingWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
    per_address = parse(settings.login_rate_limit_per_address)

    def state_of(request: Request) -> _State:
        state: _State = request.app.state.pamoja
        return state

    def page(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
        return HTMLResponse(body, status_code=status, headers={**login.SECURITY_HEADERS, **(headers or {})})

    def gone() -> HTMLResponse:
        return page(login.message_page(title="This link no longer works", message=LINK_GONE), 410)

    def with_form(request: Request, *, token: str, email: str, error: str | None = None,
                  status: int = 200) -> Response:
        cookie, csrf_token = login.new_csrf(_csrf_key(state_of(request).master_keys))
        response = page(form_page(token=token, email=email, csrf_token=csrf_token, error=error), status)
        response.set_cookie(CSRF_COOKIE, cookie, max_age=1800, path=PATH, httponly=True, samesite="strict",
                            secure=settings.public_url.startswith("https://"))
        return response

    async def account(db: Db, token: str, *, lock: bool) -> Any:
        """The link's account while the link works, else None (a token no link could have: None at once)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        return await staff_admin.live_link(db, link_token_hash(token), lock=lock)

    @router.get(PATH, include_in_schema=False)
    async def open_link(request: Request) -> Response:
        token = request.query_params.get("token", "")
        async with state_of(request).engine.connect() as connection:
            found = await account(Db(connection), token, lock=False)
        if found is None:
            return gone()
        return with_form(request, token=token, email=found.email)

    @router.post(PATH, include_in_schema=False)
    async def set_password(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
            return page(login.message_page(title=TITLE, message=f"The form must be sent as {FORM_TYPE}."), 400)
        address = request.client.host if request.client else "unknown"
        if not await limiter.hit(per_address, "password-link", address):
            stats = await limiter.get_window_stats(per_address, "password-link", address)
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            return page(login.message_page(title=TITLE, message=f"Too many attempts from here. Try again in "
                                                                  f"{wait} seconds."), 429, {"Retry-After": str(wait)})
        form = await request.form(max_fields=10)
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        state = state_of(request)
        if not login.csrf_ok(_csrf_key(state.master_keys), request.cookies.get(CSRF_COOKIE), fields.get("csrf_token")):
            return page(login.message_page(title="This form expired",
                                           message="Open the link you were given again and set your password."), 403)
        token, password = fields.get("token", ""), fields.get("password", "")
        request_id = getattr(request.state, "request_id", None)
        async with state.engine.begin() as connection:
            db = Db(connection)
            found = await account(db, token, lock=True)
            if found is None:
                await write_audit(connection, actor="anonymous", client_id=None, organization_id=None,
                                  action="set_password", record_type="StaffUser", record_id=None,
                                  purpose="password link", request_id=request_id, outcome="denied")
                logger.info("password link refused", status_code=410, request_id=request_id)
                return gone()
            problem = password_problem(password, email=found.email)
            if problem is None and password != fields.get("confirm", ""):
                problem = "The two passwords differ; type the same password in both fields."
            if problem is not None:
                return with_form(request, token=token, email=found.email, error=problem, status=400)
            password_hash = await anyio.to_thread.run_sync(_hasher.hash, password)
            await staff_admin.set_password(db, staff_user_id=found.id, token_hash=found.token_hash,
                                           password_hash=password_hash)
            await write_audit(connection, actor=found.display_name, client_id=None,
                              organization_id=found.organization_id, action="set_password", record_type="StaffUser",
                              record_id=to_global_id("StaffUser", found.id), purpose="password link",
                              request_id=request_id, outcome="allowed")
        response = page(done_page())
        response.delete_cookie(CSRF_COOKIE, path=PATH)
        return response

    return router


def mount_password_page(app: FastAPI, settings: Settings) -> None:
    app.include_router(build_router(settings))
