"""Pamoja's authorization server: Authlib's grants and endpoints, wired to our database and keys.

Authlib does the protocol work (request validation, client authentication, PKCE, RFC 7523
assertions, RFC 7009/7662 endpoints, error responses); this module supplies what Authlib leaves to
the application: storage, token minting, scope rules.

Authlib is synchronous and our database is async. Each OAuth request therefore runs Authlib in a
worker thread (`run_in_thread`) while the request's one database transaction stays on the event
loop; storage hooks hop back to the loop with `anyio.from_thread.run`. The transaction commits
whatever the hooks wrote even when the answer is an OAuth error, because some errors are
decisions that must stick (a reused refresh token revokes its family; a replayed assertion's jti
stays remembered). Only an unexpected exception rolls back.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Coroutine, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import anyio.from_thread
import anyio.to_thread
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncConnection

from auth import keys as signing_keys
from auth.clients import ASSERTION_ALGORITHMS, GRAPHIQL_CLIENT_ID, ClientRecord
from auth.config import AUTHORIZATION_CODE_SECONDS, OAuthConfig
from auth.login import StaffIdentity
from auth.resource import Authenticator
from auth.tokens import LEEWAY_SECONDS, InvalidToken, mint_access_token
from db import oauth as store
from db.audit import write_audit
from db.crypto import MasterKeys
from domain.scopes import is_within, narrow, parse_scope, role_ceiling, system_ceiling

T = TypeVar("T")
MAX_ASSERTION_SECONDS = 300


def digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


# ----------------------------------------------------------------------------- the per-request bridge


@dataclass
class OAuthCall:
    """One OAuth request: its transaction, and what the hooks running in Authlib's thread need."""

    connection: AsyncConnection
    config: OAuthConfig
    master: MasterKeys
    authenticator: Authenticator
    request_id: str | None

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn(connection, ...)` on the event loop from Authlib's worker thread."""
        return anyio.from_thread.run(partial(fn, self.connection, *args, **kwargs))

    def run_plain(self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any) -> T:
        return anyio.from_thread.run(partial(fn, *args, **kwargs))

    def audit(self, *, actor: str, client_id: str | None, organization_id: uuid.UUID | None, action: str,
              record_type: str, record_id: str | None, outcome: str = "allowed") -> None:
        self.run(write_audit, actor=actor, client_id=client_id, organization_id=organization_id, action=action,
                 record_type=record_type, record_id=record_id, purpose="authentication",
                 request_id=self.request_id, outcome=outcome)


_CURRENT: ContextVar[OAuthCall] = ContextVar("pamoja_oauth_call")


def current() -> OAuthCall:
    return _CURRENT.get()


async def run_in_thread(call: OAuthCall, fn: Callable[[], T]) -> T:
    """Run synchronous Authlib code with `call` available to every hook it reaches."""

    def bound() -> T:
        token = _CURRENT.set(call)
        try:
            return fn()
        finally:
            _CURRENT.reset(token)

    return await anyio.to_thread.run_sync(bound)


# ----------------------------------------------------------------------------- requests and responses


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    """Parameters with their repetitions kept, so Authlib can refuse a parameter sent twice."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: dict[str, list[str]] = {}
        for key, value in pairs:
            self._data.setdefault(key, value)
            self._datalist.setdefault(key, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


# Authlib refuses non-https request URIs unless a process-wide environment switch is set. Transport
# security is enforced once instead: Settings refuses a non-https public URL in production.
_CHECKED_URI = "https://pamoja.invalid/"


class PamojaRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth request already read from Starlette (form and query), so Authlib never awaits."""

    def __init__(self, *, method: str, uri: str, headers: Any, pairs: Iterable[tuple[str, str]],
                 query: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(method, _CHECKED_URI, headers=headers)
        self.uri = uri
        self.payload = FormPayload(pairs)
        self._form = dict(self.payload.data)
        self._args = dict(FormPayload(query).data)
        self.granted_scope: str | None = None
        self.access_claims: dict[str, Any] | None = None
        self.family_id: uuid.UUID | None = None

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return self._args


@dataclass(frozen=True)
class OAuthResponse:
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707: the token would be for a resource we are not."""

    error = "invalid_target"


# ----------------------------------------------------------------------------- stored credentials


@dataclass(frozen=True)
class CodeRecord:
    code_hash: bytes
    client_id: str
    user_id: uuid.UUID
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class RefreshRecord:
    token_hash: bytes
    family_id: uuid.UUID
    client_id: str
    user_id: uuid.UUID
    scope: str
    expires_at: datetime
    revoked: bool = False

    def check_client(self, client: ClientRecord) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return self.expires_at <= datetime.now(UTC)

    def is_revoked(self) -> bool:
        return self.revoked


@dataclass(frozen=True)
class AccessRecord:
    claims: dict[str, Any]

    def check_client(self, client: ClientRecord) -> bool:
        return client.client_id == self.claims.get("client_id")

    def get_scope(self) -> str:
        return str(self.claims.get("scope", ""))

    def is_expired(self) -> bool:
        return int(self.claims["exp"]) <= int(datetime.now(UTC).timestamp())

    def is_revoked(self) -> bool:
        return False  # a revoked access token is never turned into a record (see _access_record)


def _staff(call: OAuthCall, user_id: uuid.UUID) -> StaffIdentity | None:
    row = call.run(store.active_staff_by_id, user_id)
    return StaffIdentity.from_row(row) if row is not None else None


def _revoke_family(call: OAuthCall, family_id: uuid.UUID, *, client_id: str, reason: str) -> None:
    call.run(store.revoke_families, family_id=family_id)
    call.audit(actor=client_id, client_id=client_id, organization_id=None, action=reason,
               record_type="TokenFamily", record_id=str(family_id), outcome="denied")


# ----------------------------------------------------------------------------- grants


class _Minting:
    """Token minting shared by the grants: RFC 9068 JWTs signed with Pamoja's current key."""

    request: PamojaRequest
    GRANT_TYPE: str | None

    def _check_resource(self) -> None:
        """RFC 8707: a `resource`, when sent, must be this API (the token's audience)."""
        config = current().config
        for resource in self.request.payload.datalist.get("resource", []):
            if resource.rstrip("/") != config.audience:
                raise InvalidTargetError("This server issues tokens for its own API only.")

    def generate_token(self, user: StaffIdentity | None = None, scope: str | None = None,
                       grant_type: str | None = None, expires_in: int | None = None,
                       include_refresh_token: bool = True) -> dict[str, Any]:
        call = current()
        config = call.config
        client: ClientRecord = self.request.client
        material = call.run(signing_keys.load, call.master)
        if user is None:
            scopes = (scope or "").split()
            ttl = config.system_token_seconds
            token, claims = mint_access_token(
                material.current, issuer=config.issuer, audience=config.audience, subject=client.client_id,
                client_id=client.client_id, organization=client.organization_gid, scopes=scopes, ttl_seconds=ttl,
            )
        else:
            # Narrowed again at issue time: a role removed since the login is not carried forward.
            granted = narrow([parse_scope(s) for s in (scope or "").split()], role_ceiling(user.roles))
            scopes = list(dict.fromkeys(str(s) for s in granted))
            if not scopes:
                raise InvalidScopeError("None of the requested scopes is allowed for this user.")
            ttl = config.staff_token_seconds
            token, claims = mint_access_token(
                material.current, issuer=config.issuer, audience=config.audience, subject=user.gid,
                client_id=client.client_id, organization=user.organization_gid, scopes=scopes,
                roles=[r.value for r in user.roles], ttl_seconds=ttl,
            )
        self.request.access_claims = claims
        result: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": ttl,
                                  "scope": " ".join(scopes)}
        if include_refresh_token and user is not None:
            result["refresh_token"] = secrets.token_urlsafe(48)
        return result


class PartnerClientCredentials(_Minting, ClientCredentialsGrant):  # type: ignore[misc]
    """SMART Backend Services: client credentials, short tokens, no refresh tokens."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        self._check_resource()
        client: ClientRecord = self.request.client
        requested = self.request.payload.scope
        if not requested:
            self.request.granted_scope = " ".join(client.allowed_scopes)
            return
        try:
            scopes = [parse_scope(s) for s in requested.split()]
        except ValueError:
            raise InvalidScopeError("A requested scope is malformed.") from None
        if not is_within(scopes, client.allowed()) or not is_within(scopes, system_ceiling(client.organization_kind)):
            raise InvalidScopeError("A requested scope is outside what this client is allowed.")
        self.request.granted_scope = " ".join(dict.fromkeys(str(s) for s in scopes))

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(scope=self.request.granted_scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE is mandatory for every staff login, with S256 only (no `plain`, no default)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'.")
        super().validate_code_verifier(grant, result)


class StaffAuthorizationCode(_Minting, AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        self._check_resource()

    def save_authorization_code(self, code: str, request: PamojaRequest) -> None:
        call = current()
        user: StaffIdentity = request.user
        data = request.payload.data
        call.run(store.insert_code, code_hash=digest(code), client_id=request.client.client_id, user_id=user.id,
                 redirect_uri=data.get("redirect_uri") or "", scope=request.granted_scope or "",
                 code_challenge=data["code_challenge"], code_challenge_method=data["code_challenge_method"],
                 expires_at=datetime.now(UTC) + timedelta(seconds=AUTHORIZATION_CODE_SECONDS))

    def query_authorization_code(self, code: str, client: ClientRecord) -> CodeRecord | None:
        call = current()
        row = call.run(store.lock_code, digest(code))
        if row is None or row.client_id != client.client_id:
            return None
        if row.used_at is not None:
            # RFC 6749 §4.1.2: a code used twice revokes what the first use issued.
            if row.family_id is not None:
                _revoke_family(call, row.family_id, client_id=client.client_id, reason="authorization_code_reuse")
            return None
        if row.expires_at <= datetime.now(UTC):
            return None
        return CodeRecord(code_hash=row.code_hash, client_id=row.client_id, user_id=row.user_id,
                          redirect_uri=row.redirect_uri, scope=row.scope, code_challenge=row.code_challenge,
                          code_challenge_method=row.code_challenge_method)

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        current().run(store.mark_code_used, authorization_code.code_hash, self.request.family_id)

    def authenticate_user(self, authorization_code: CodeRecord) -> StaffIdentity | None:
        return _staff(current(), authorization_code.user_id)


class RotatingRefreshToken(_Minting, RefreshTokenGrant):  # type: ignore[misc]
    """Each refresh token works once and is replaced; presenting a used one revokes its whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self) -> None:
        super().validate_token_request()
        self._check_resource()

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        call = current()
        if not isinstance(refresh_token, str) or len(refresh_token) > 200:
            return None
        row = call.run(store.find_refresh, digest(refresh_token), lock=True)
        if row is None or row.revoked_at is not None:
            return None
        if row.used_at is not None:
            _revoke_family(call, row.family_id, client_id=row.client_id, reason="refresh_token_reuse")
            return None
        if row.expires_at <= datetime.now(UTC):
            return None
        return RefreshRecord(token_hash=row.token_hash, family_id=row.family_id, client_id=row.client_id,
                             user_id=row.user_id, scope=row.scope, expires_at=row.expires_at)

    def _validate_token_scope(self, token: RefreshRecord) -> None:
        requested = self.request.payload.scope
        if not requested:
            return
        try:
            scopes = [parse_scope(s) for s in requested.split()]
        except ValueError:
            raise InvalidScopeError() from None
        if not is_within(scopes, [parse_scope(s) for s in token.scope.split()]):
            raise InvalidScopeError()

    def authenticate_user(self, refresh_token: RefreshRecord) -> StaffIdentity:
        user = _staff(current(), refresh_token.user_id)
        if user is None:
            raise InvalidGrantError("The user of this token is no longer active.")
        return user

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        current().run(store.mark_refresh_used, refresh_token.token_hash)


# ----------------------------------------------------------------------------- private_key_jwt


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 client assertions as SMART Backend Services profiles them.

    Signed with a key from the client's registered JWKS (a `jku` header is never followed), one of
    ASSERTION_ALGORITHMS, aud = our token endpoint (or issuer), lifetime at most five minutes, and
    a `jti` never seen before for that client.
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY_SECONDS)

    def get_audiences(self) -> list[str]:
        config = current().config
        return [config.token_endpoint, config.issuer]

    def resolve_client_public_key(self, client: ClientRecord) -> KeySet:
        if not client.jwks:
            raise InvalidClientError(description="This client has no registered JWKS.")
        return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description="The client assertion does not verify.") from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        now = int(datetime.now(UTC).timestamp())
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int) or exp > now + MAX_ASSERTION_SECONDS + LEEWAY_SECONDS:
            raise InvalidClientError(description="The client assertion must expire within five minutes.")
        if isinstance(iat, int) and exp - iat > MAX_ASSERTION_SECONDS:
            raise InvalidClientError(description="The client assertion must live at most five minutes.")
        super().verify_claims(claims)

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            return False
        expires_at = datetime.fromtimestamp(int(claims["exp"]) + LEEWAY_SECONDS, UTC)
        return current().run(store.remember_assertion, client_id=str(claims["iss"]), jti=jti, expires_at=expires_at)


# ----------------------------------------------------------------------------- revocation and introspection


def _access_record(call: OAuthCall, token: str) -> AccessRecord | None:
    """Our access token, if it is currently accepted (signature, claims, not revoked, holder active)."""
    try:
        claims = call.run_plain(call.authenticator.validate, token)
        call.run_plain(call.authenticator.principal_from_claims, claims)
    except InvalidToken:
        return None
    return AccessRecord(claims=claims)


def _refresh_record(call: OAuthCall, token: str) -> RefreshRecord | None:
    if len(token) > 200:
        return None
    row = call.run(store.find_refresh, digest(token), lock=False)
    if row is None:
        return None
    return RefreshRecord(token_hash=row.token_hash, family_id=row.family_id, client_id=row.client_id,
                         user_id=row.user_id, scope=row.scope, expires_at=row.expires_at,
                         revoked=row.revoked_at is not None or row.used_at is not None)


def _find(token: str, hint: str | None) -> AccessRecord | RefreshRecord | None:
    call = current()
    if hint == "refresh_token":
        return _refresh_record(call, token) or (_access_record(call, token) if token.count(".") == 2 else None)
    if token.count(".") == 2:
        return _access_record(call, token)
    return _refresh_record(call, token)


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Revoking a refresh token revokes its family and the access tokens it issued."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> AccessRecord | RefreshRecord | None:
        return _find(token_string, token_type_hint)

    def revoke_token(self, token: AccessRecord | RefreshRecord, request: PamojaRequest) -> None:
        call = current()
        client: ClientRecord = request.client
        if isinstance(token, AccessRecord):
            expires_at = datetime.fromtimestamp(int(token.claims["exp"]), UTC)
            call.run(store.revoke_access, str(token.claims["jti"]), expires_at)
            record_id = str(token.claims["jti"])
        else:
            call.run(store.revoke_families, family_id=token.family_id)
            record_id = str(token.family_id)
        call.audit(actor=client.client_id, client_id=client.client_id, organization_id=client.organization_id,
                   action="revoke_token", record_type="Token", record_id=record_id)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662 with SMART's required fields; a client may introspect only tokens issued to it."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> AccessRecord | RefreshRecord | None:
        return _find(token_string, token_type_hint)

    def check_permission(self, token: AccessRecord | RefreshRecord, client: ClientRecord,
                         request: PamojaRequest) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: AccessRecord | RefreshRecord) -> dict[str, Any]:
        if isinstance(token, AccessRecord):
            c = token.claims
            fields = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "org")
            payload: dict[str, Any] = {key: c[key] for key in fields if key in c}
            if "roles" in c:
                payload["roles"] = c["roles"]
            return {"active": True, "token_type": "Bearer", **payload}
        return {"active": True, "token_type": "refresh_token", "scope": token.scope, "client_id": token.client_id,
                "exp": int(token.expires_at.timestamp())}


# ----------------------------------------------------------------------------- the server


class PamojaAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(scopes_supported=None)
        self.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt())
        self.register_grant(PartnerClientCredentials)
        self.register_grant(StaffAuthorizationCode, [S256Only(required=True)])
        self.register_grant(RotatingRefreshToken)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    def query_client(self, client_id: Any) -> ClientRecord | None:
        if not isinstance(client_id, str) or not 0 < len(client_id) <= 200:
            return None
        call = current()
        if client_id == GRAPHIQL_CLIENT_ID and call.config.production:
            return None  # the development GraphiQL's client, should a database move to production
        row = call.run(store.active_client, client_id)
        return ClientRecord.from_row(row) if row is not None else None

    def save_token(self, token: dict[str, Any], request: PamojaRequest) -> None:
        """Persist a refresh token (the access token is a self-contained JWT) and audit the issue."""
        call = current()
        client: ClientRecord = request.client
        user: StaffIdentity | None = request.user
        claims = request.access_claims or {}
        if "refresh_token" in token and user is not None:
            previous: RefreshRecord | None = request.refresh_token
            family = previous.family_id if previous else uuid.uuid4()
            expires_at = (previous.expires_at if previous
                          else datetime.now(UTC) + timedelta(seconds=call.config.refresh_token_seconds))
            call.run(store.insert_refresh, token_hash=digest(token["refresh_token"]), family_id=family,
                     client_id=client.client_id, user_id=user.id, scope=token["scope"],
                     access_jti=str(claims["jti"]), access_expires_at=datetime.fromtimestamp(claims["exp"], UTC),
                     expires_at=expires_at)
            request.family_id = family
        call.audit(
            actor=user.display_name if user else client.client_id, client_id=client.client_id,
            organization_id=user.organization_id if user else client.organization_id, action="issue_token",
            record_type="StaffUser" if user else "OAuthClient",
            record_id=user.gid if user else client.client_id,
        )

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: PamojaRequest) -> PamojaRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> OAuthResponse:
        return OAuthResponse(status=status, body=body, headers=list(headers))

    def validate_requested_scope(self, scope: str | None) -> None:
        """Scopes are checked per client by the grants (and per user at login), not server-wide."""
        return None
