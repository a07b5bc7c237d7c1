"""HTTP endpoints of the authorization server, mounted by `api.main.create_app`.

`/.well-known/oauth-authorization-server` (RFC 8414), `/.well-known/smart-configuration`,
`/.well-known/jwks.json`, `POST /oauth/token`, `POST /oauth/revoke` (RFC 7009),
`POST /oauth/introspect` (RFC 7662) and `GET|POST /oauth/authorize` with the staff login page.
Each route reads the request, applies rate limits, and hands Authlib a fully read request inside
one database transaction (see auth/server.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog
from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from auth import keys as signing_keys
from auth import login
from auth.clients import CONSOLE_CLIENT_ID, ClientRecord
from auth.config import OAuthConfig
from auth.ratelimit import RateLimits
from auth.resource import Authenticator
from auth.server import OAuthCall, OAuthResponse, PamojaAuthorizationServer, PamojaRequest, run_in_thread
from auth.tokens import unverified_parts
from db.audit import write_audit
from db.crypto import MasterKeys
from domain.scopes import default_scopes, narrow, parse_scope, role_ceiling

if TYPE_CHECKING:
    from config.settings import Settings

T = TypeVar("T")
MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
# What the login form carries from the authorization request to its POST; anything else is dropped.
AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
                    "code_challenge_method", "resource")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

logger = structlog.get_logger("pamoja.oauth")


class _State(Protocol):
    """The parts of api.state.AppState the OAuth routes use."""

    engine: AsyncEngine
    master_keys: MasterKeys
    blind_index_key: bytes
    authenticator: Authenticator


def _state(request: Request) -> _State:
    state: _State = request.app.state.pamoja
    return state


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={**NO_STORE, **(headers or {})})


async def _read_form(request: Request) -> list[tuple[str, str]] | Response:
    """The url-encoded body as ordered pairs (repetitions kept), or an error response."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        return _oauth_error(400, "invalid_request", f"The body must be {FORM_TYPE}.")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _oauth_error(413, "invalid_request", "The request body is too large.")
    form = await request.form(max_fields=100)
    return [(key, value) for key, value in form.multi_items() if isinstance(value, str)]


@dataclass(frozen=True, slots=True)
class CredentialClient:
    key: str | None  # the client the credentials name, for the per-client limit
    ambiguous: bool  # more than one authentication method, or more than one client named
    unreadable_assertion: bool  # a client_assertion that is not a JWT whose claims are a JSON object


def _credential_client(request: Request, pairs: list[tuple[str, str]]) -> CredentialClient:
    """The client the credentials name, to key the per-client limit; whether the request is ambiguous; whether
    its client_assertion cannot be read (refused before Authlib reads it).

    The key comes from the credentials themselves (Basic header, else the assertion's `sub`, else the
    form's `client_id` for client_secret_post and public clients), so a made-up `client_id` beside a
    Basic header or an assertion cannot open a fresh budget for a real client: it only makes the
    request ambiguous. Ambiguous means more than one authentication method (RFC 6749 section 2.3) or
    more than one client named; the caller refuses it after counting it.
    """
    fields = dict(pairs)
    basic_id, _ = extract_basic_authorization(request.headers)
    basic = str(basic_id) if basic_id else None
    assertion = fields.get("client_assertion")
    parts = unverified_parts(assertion) if assertion is not None else None
    claims = parts[1] if parts else {}
    asserted = [value for value in (claims.get("sub"), claims.get("iss")) if isinstance(value, str) and value]
    form_id = fields.get("client_id") or None
    methods = sum((basic is not None, "client_secret" in fields, "client_assertion" in fields))
    named = {value for value in (basic, form_id, *asserted) if value}
    key = basic or (asserted[0] if asserted else None) or form_id
    return CredentialClient(key=key[:200] if key else None, ambiguous=methods > 1 or len(named) > 1,
                            unreadable_assertion=assertion is not None and parts is None)


def _to_response(result: OAuthResponse, extra_headers: dict[str, str] | None = None) -> Response:
    headers = dict(result.headers)
    headers.update(extra_headers or {})
    body = result.body
    if isinstance(body, list):
        body = dict(body)
    if isinstance(body, dict):
        headers["Content-Type"] = "application/json"
        return Response(json.dumps(body), status_code=result.status, headers=headers)
    return Response(body or b"", status_code=result.status, headers=headers)


def _too_many(wait: int) -> JSONResponse:
    return _oauth_error(429, "too_many_requests", "Too many requests; retry after the indicated delay.",
                        {"Retry-After": str(wait)})


def build_router(config: OAuthConfig) -> APIRouter:
    server = PamojaAuthorizationServer()
    limits = RateLimits(storage=config.rate_limit_storage, token_per_client=config.token_rate_per_client,
                        token_per_address=config.token_rate_per_address,
                        login_per_client=config.login_rate_per_client,
                        login_per_address=config.login_rate_per_address)
    router = APIRouter()

    async def run(request: Request, fn: Callable[[OAuthCall], T]) -> T:
        """`fn` in Authlib's thread, inside one transaction on the runtime role."""
        state = _state(request)
        async with state.engine.begin() as connection:
            call = OAuthCall(connection=connection, config=config, master=state.master_keys,
                             authenticator=state.authenticator,
                             request_id=getattr(request.state, "request_id", None))
            return await run_in_thread(call, lambda: fn(call))

    async def endpoint(request: Request, name: str, uri: str) -> Response:
        """Token, revocation and introspection share this: form, limits (every request counts), then Authlib."""
        pairs = await _read_form(request)
        if isinstance(pairs, Response):
            return pairs
        credentials = _credential_client(request, pairs)
        client_key = credentials.key
        if client_key == CONSOLE_CLIENT_ID:
            # Every person on the console shares its client: each one's address gets the console's budget,
            # as each partner system gets its own.
            client_key = f"{client_key}@{_address(request)}"
        wait = await limits.hit((limits.token_address, _address(request)), (limits.token_client, client_key))
        if wait:
            logger.warning("oauth rate limited", operation=name, status_code=429)
            return _too_many(wait)
        repeated = {key for key, _ in pairs if sum(1 for k, _ in pairs if k == key) > 1}
        if repeated - {"resource"}:
            return _oauth_error(400, "invalid_request", "A parameter was sent more than once.")
        if credentials.ambiguous:
            return _oauth_error(401, "invalid_client", "Authenticate the client with one method only; send "
                                "client_id beside it only if it names the same client.")
        if credentials.unreadable_assertion:
            # Authlib reads an assertion's claims before verifying it, and JSON nested thousands deep crashed it.
            return _oauth_error(401, "invalid_client", "client_assertion must be a signed JWT: three base64url "
                                "parts (header.claims.signature) whose claims are a JSON object.")
        oauth_request = PamojaRequest(method="POST", uri=uri, headers=request.headers, pairs=pairs)
        try:
            if name == "token":
                result: OAuthResponse = await run(request, lambda _: server.create_token_response(oauth_request))
            else:
                result = await run(request, lambda _: server.create_endpoint_response(name, oauth_request))
        except ValueError:
            # Authlib refuses to echo some characters in error descriptions; the request was malformed.
            return _oauth_error(400, "invalid_request", "The request is malformed.")
        error_code = result.body.get("error") if isinstance(result.body, dict) else None
        logger.info("oauth response", operation=name, status_code=result.status, error_code=error_code)
        return _to_response(result)

    @router.get("/.well-known/oauth-authorization-server", include_in_schema=False)
    async def metadata() -> JSONResponse:
        return JSONResponse(config.metadata(), headers={"Cache-Control": "public, max-age=3600"})

    @router.get("/.well-known/smart-configuration", include_in_schema=False)
    async def smart_configuration() -> JSONResponse:
        """SMART App Launch discovery, for partner systems built against SMART Backend Services."""
        document: dict[str, Any] = dict(config.metadata())
        document["capabilities"] = ["client-confidential-asymmetric", "client-confidential-symmetric",
                                    "client-public", "permission-v2"]
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})

    @router.get("/.well-known/jwks.json", include_in_schema=False)
    async def jwks(request: Request) -> JSONResponse:
        """Read from the table, not a cache: a key rotated in by another process is published at once."""
        state = _state(request)
        async with state.engine.connect() as connection:
            document = await signing_keys.published_jwks(connection)
        if not document["keys"]:  # a fresh install: create the first key rather than publish nothing
            document = (await state.authenticator.key_cache.get(force=True)).public_jwks()
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})

    @router.post("/oauth/token", include_in_schema=False)
    async def token(request: Request) -> Response:
        return await endpoint(request, "token", config.token_endpoint)

    @router.post("/oauth/revoke", include_in_schema=False)
    async def revoke(request: Request) -> Response:
        return await endpoint(request, "revocation", f"{config.public_url}/oauth/revoke")

    @router.post("/oauth/introspect", include_in_schema=False)
    async def introspect(request: Request) -> Response:
        return await endpoint(request, "introspection", f"{config.public_url}/oauth/introspect")

    # ------------------------------------------------------------------------- staff login

    def page(html: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
        return HTMLResponse(html, status_code=status, headers={**login.SECURITY_HEADERS, **(headers or {})})

    def authorize_error(error: OAuth2Error) -> Response:
        """Redirect errors to the client only once its redirect URI is known good; else show them here."""
        if error.redirect_uri:
            status, _, headers = error()
            return Response(status_code=status, headers={**dict(headers), **NO_STORE})
        description = error.get_error_description() or error.error
        return page(login.message_page(title="This sign-in link is not valid", message=str(description)), 400)

    def set_csrf_cookie(response: Response, value: str) -> None:
        response.set_cookie(login.CSRF_COOKIE, value, max_age=1800, path="/oauth/authorize", httponly=True,
                            samesite="strict", secure=config.public_url.startswith("https://"))

    @router.get("/oauth/authorize", include_in_schema=False)
    async def authorize_page(request: Request) -> Response:
        query = list(request.query_params.multi_items())
        oauth_request = PamojaRequest(method="GET", uri=config.authorization_endpoint, headers=request.headers,
                                      pairs=query, query=query)
        try:
            grant = await run(request, lambda _: server.get_consent_grant(oauth_request))
        except OAuth2Error as error:
            return authorize_error(error)
        except ValueError:
            return page(login.message_page(title="This sign-in link is not valid",
                                           message="The request is malformed."), 400)
        cookie, csrf_token = login.new_csrf(login.csrf_key(_state(request).master_keys))
        carried = [(k, v) for k, v in query if k in AUTHORIZE_PARAMS]
        response = page(login.login_page(action="/oauth/authorize", client_name=grant.client.name, params=carried,
                                         csrf_token=csrf_token))
        set_csrf_cookie(response, cookie)
        return response

    @router.post("/oauth/authorize", include_in_schema=False)
    async def authorize_submit(request: Request) -> Response:
        pairs = await _read_form(request)
        if isinstance(pairs, Response):
            return pairs
        fields = dict(pairs)
        state = _state(request)
        cookie = request.cookies.get(login.CSRF_COOKIE)
        csrf_token = fields.get("csrf_token")
        if not login.csrf_ok(login.csrf_key(state.master_keys), cookie, csrf_token):
            return page(login.message_page(title="Sign-in form expired",
                                           message="Go back to the application and start signing in again."), 403)
        carried = [(k, v) for k, v in pairs if k in AUTHORIZE_PARAMS]
        email, password = fields.get("email", ""), fields.get("password", "")

        def again(error: str, status: int, headers: dict[str, str] | None = None, *,
                  client_name: str = "Pamoja") -> Response:
            """The same form once more (same CSRF pair), with a message and the e-mail kept."""
            html = login.login_page(action="/oauth/authorize", client_name=client_name, params=carried,
                                    csrf_token=csrf_token or "", email=email[:254], error=error)
            return page(html, status, headers)

        wait = await limits.hit((limits.login_address, _address(request)),
                                (limits.login_client, fields.get("client_id", "")[:200]))
        if wait:
            return again(f"Too many sign-in attempts from here. Try again in {wait} seconds.", 429,
                         {"Retry-After": str(wait)})
        oauth_request = PamojaRequest(method="POST", uri=config.authorization_endpoint, headers=request.headers,
                                      pairs=carried)
        request_id = getattr(request.state, "request_id", None)
        async with state.engine.begin() as connection:
            call = OAuthCall(connection=connection, config=config, master=state.master_keys,
                             authenticator=state.authenticator, request_id=request_id)
            try:
                grant = await run_in_thread(call, lambda: server.get_consent_grant(oauth_request))
            except OAuth2Error as error:
                return authorize_error(error)
            except ValueError:
                return page(login.message_page(title="This sign-in link is not valid",
                                               message="The request is malformed."), 400)
            client: ClientRecord = grant.client
            result = await login.attempt_login(connection, email=email, password=password,
                                               account_key=login.throttle_key(state.blind_index_key, email),
                                               source_key=login.source_throttle_key(state.blind_index_key, email,
                                                                                    _address(request)),
                                               policy=config.throttle)
            user = result.user
            await write_audit(
                connection, actor=user.display_name if user else "anonymous", client_id=client.client_id,
                organization_id=user.organization_id if user else None, action="login", record_type="StaffUser",
                record_id=user.gid if user else None, purpose="authentication", request_id=request_id,
                outcome="allowed" if user else "denied",
            )
            if user is None:
                logger.info("login refused", client_id=client.client_id, status_code=429 if result.wait_seconds
                            else 401, request_id=request_id)
                if result.locked:
                    minutes = max(1, round((result.wait_seconds or 60) / 60))
                    return again(f"Too many failed sign-in attempts. Try again in about {minutes} minutes.", 429,
                                 {"Retry-After": str(result.wait_seconds)}, client_name=client.name)
                if result.wait_seconds:
                    return again(f"Too many failed sign-in attempts. Wait {result.wait_seconds} seconds and "
                                 "try again.", 429, {"Retry-After": str(result.wait_seconds)}, client_name=client.name)
                return again(login.GENERIC_FAILURE, 401, client_name=client.name)
            if oauth_request.payload.scope:
                requested = [parse_scope(s) for s in (oauth_request.scope or "").split()]
                granted = narrow(requested, role_ceiling(user.roles))
            else:
                granted = narrow([parse_scope(s) for s in default_scopes(user.roles)], client.allowed())
            if not granted:
                return page(login.message_page(
                    title="No access", message="Your role does not allow the access this application asked for."),
                    403)
            oauth_request.granted_scope = " ".join(dict.fromkeys(str(s) for s in granted))
            result_response: OAuthResponse = await run_in_thread(
                call, lambda: server.create_authorization_response(oauth_request, grant_user=user, grant=grant),
            )
        response = _to_response(result_response, NO_STORE)
        response.delete_cookie(login.CSRF_COOKIE, path="/oauth/authorize")
        return response

    return router


def mount_oauth(app: FastAPI, settings: Settings) -> None:
    app.include_router(build_router(OAuthConfig.from_settings(settings)))
