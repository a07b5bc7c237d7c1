"""The resource server: one FastAPI dependency turns a bearer token into a domain Principal.

Missing or bad tokens get HTTP 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750)
before GraphQL runs. The user or client behind a valid token is re-read on every request, so a
disabled account or a revoked token stops working at once rather than at expiry; a staff token issued
before the account was last signed out (deactivated, or its password set) stays refused for good. For
the GraphQL endpoint that re-read rides in the request transaction's first statement (Credentials).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from auth import keys as signing_keys
from auth.external import ExternalIssuers, TrustedIssuer
from auth.tokens import LEEWAY_SECONDS, InvalidToken, UnknownKey, unverified_parts, validate_access_token
from db.crypto import MasterKeys
from db.engine import StillValid
from db.tables import OAuthClient, Organization, RevokedToken, StaffUser
from domain.enums import OrganizationKind, Role
from domain.ids import from_global_id
from domain.principal import Principal, build_principal
from domain.scopes import default_scopes, parse_scope

# Even without a rotation seen through an unknown kid, the cached key set is reloaded this often.
KEY_CACHE_MAX_AGE_SECONDS = 300.0

users = StaffUser.__table__  # type: ignore[attr-defined]
clients = OAuthClient.__table__  # type: ignore[attr-defined]
orgs = Organization.__table__  # type: ignore[attr-defined]
revoked = RevokedToken.__table__  # type: ignore[attr-defined]


def unauthorized(description: str = "The access token is missing, expired or invalid.") -> HTTPException:
    return HTTPException(
        status_code=401,
        detail={"error": "invalid_token", "error_description": description},
        headers={"WWW-Authenticate": f'Bearer realm="pamoja", error="invalid_token", '
                                     f'error_description="{description}"'},
    )


@dataclass
class KeyCache:
    """Signing material cached per process.

    Reloaded when a published key reaches its retirement (so a retired key stops validating at
    that instant, cache or not), after KEY_CACHE_MAX_AGE_SECONDS, and when a token names a kid the
    database publishes but the cache does not yet hold (a rotation made by another process). An
    unknown kid costs one primary-key lookup, never a reload, so garbage kids cannot force reloads.
    """

    engine: AsyncEngine
    master: MasterKeys
    material: signing_keys.SigningMaterial | None = None
    loaded_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, *, force: bool = False) -> signing_keys.SigningMaterial:
        async with self._lock:
            material = self.material
            if (force or material is None or material.is_stale()
                    or time.monotonic() - self.loaded_at > KEY_CACHE_MAX_AGE_SECONDS):
                async with self.engine.begin() as connection:
                    material = await signing_keys.load(connection, self.master)
                self.material = material
                self.loaded_at = time.monotonic()
            return material

    async def refresh_for(self, kid: str | None) -> signing_keys.SigningMaterial | None:
        """Reload only if the database publishes `kid`; None when it does not."""
        if not kid:
            return None
        async with self.engine.connect() as connection:
            live = await signing_keys.is_live(connection, kid)
        return await self.get(force=True) if live else None


class ValidatedTokens:
    """Tokens whose signature and claims were checked once, kept until they expire (bounded, least
    recently used first out), so a partner system polling with one token pays the ES256 check once.

    Keyed by the SHA-256 of the whole token, never by its `jti` alone: a forgery reusing a real `jti`
    is a different token and is checked in full. A hit is honoured only while the token's signing key
    is still published (a retired key stops validating at once) and before `exp` (with the leeway the
    full check allows). Revocation, the account and the client are checked on every request as before
    (Authenticator.principal_from_claims): only the cryptography is remembered.
    """

    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max_size
        self._claims: OrderedDict[bytes, tuple[str, float, dict[str, Any]]] = OrderedDict()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str, *, published: Iterable[str], now: float) -> dict[str, Any] | None:
        key = self._key(token)
        found = self._claims.get(key)
        if found is None:
            return None
        kid, expires, claims = found
        if now >= expires or kid not in published:
            del self._claims[key]
            return None
        self._claims.move_to_end(key)
        return dict(claims)

    def put(self, token: str, claims: dict[str, Any]) -> None:
        parts = unverified_parts(token)  # already verified: the header is the signed one
        kid = parts[0].get("kid") if parts else None
        if not isinstance(kid, str):
            return
        self._claims[self._key(token)] = (kid, float(claims["exp"]) + LEEWAY_SECONDS, claims)
        self._claims.move_to_end(self._key(token))
        while len(self._claims) > self.max_size:
            self._claims.popitem(last=False)

    def __len__(self) -> int:
        return len(self._claims)


@dataclass(frozen=True, slots=True)
class Credentials:
    """The GraphQL endpoint's caller. A principal remembered from an earlier request of the same token
    comes with `still_valid`: the condition the request's transaction checks in the very statement that
    sets its row-security context (db.engine.transaction), so the re-read costs no round trip of its
    own; if it no longer holds, `reload` reads the caller again (HTTP 401 when it is gone)."""

    principal: Principal
    still_valid: StillValid | None = None  # None: the principal was read for this request
    reload: Callable[[], Awaitable[Principal]] | None = None


class RememberedPrincipals:
    """Principals read for a token, by the token's SHA-256, with what was read of the account or client
    (bounded, least recently used first out, never past the token's `exp`)."""

    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max_size
        self._found: OrderedDict[bytes, tuple[float, Principal, StillValid]] = OrderedDict()

    def get(self, token: str, *, now: float) -> tuple[Principal, StillValid] | None:
        key = ValidatedTokens._key(token)
        found = self._found.get(key)
        if found is None:
            return None
        if now >= found[0]:
            del self._found[key]
            return None
        self._found.move_to_end(key)
        return found[1], found[2]

    def put(self, token: str, claims: dict[str, Any], principal: Principal, still_valid: StillValid) -> None:
        key = ValidatedTokens._key(token)
        self._found[key] = (float(claims["exp"]) + LEEWAY_SECONDS, principal, still_valid)
        self._found.move_to_end(key)
        while len(self._found) > self.max_size:
            self._found.popitem(last=False)

    def forget(self, token: str) -> None:
        self._found.pop(ValidatedTokens._key(token), None)


@dataclass
class Authenticator:
    engine: AsyncEngine
    key_cache: KeyCache
    issuer: str
    audience: str
    external: ExternalIssuers = field(default_factory=lambda: ExternalIssuers([]))
    validated: ValidatedTokens = field(default_factory=ValidatedTokens)
    remembered: RememberedPrincipals = field(default_factory=RememberedPrincipals)

    async def credentials(self, token: str) -> Credentials:
        """For the GraphQL endpoint, whose transaction checks `still_valid`: a principal remembered for this
        token, or read now (and remembered). Every other caller uses `authenticate`, which reads it."""
        if self.external and self.external.issuer_of(token) is not None:
            return Credentials(principal=await self.authenticate(token))
        claims = await self.validate(token)
        remembered = self.remembered.get(token, now=time.time())
        if remembered is not None:
            async def reload() -> Principal:
                self.remembered.forget(token)
                return (await self.credentials(token)).principal

            return Credentials(principal=remembered[0], still_valid=remembered[1], reload=reload)
        principal, still_valid = await self._read_principal(claims)
        self.remembered.put(token, claims, principal, still_valid)
        return Credentials(principal=principal)

    async def validate(self, token: str) -> dict[str, Any]:
        """Claims of a token Pamoja issued, checked cryptographically and by claim (no database state)."""
        material = await self.key_cache.get()
        known = self.validated.get(token, published={k.kid for k in material.published.keys if k.kid},
                                   now=time.time())
        if known is not None:
            return known
        try:
            claims = validate_access_token(token, keys=material.published, issuer=self.issuer,
                                           audience=self.audience)
        except UnknownKey as exc:
            refreshed = await self.key_cache.refresh_for(exc.kid)
            if refreshed is None:
                raise
            claims = validate_access_token(token, keys=refreshed.published, issuer=self.issuer,
                                           audience=self.audience)
        self.validated.put(token, claims)
        return claims

    async def authenticate(self, token: str, *, request_id: str | None = None) -> Principal:
        if self.external:
            trusted = self.external.issuer_of(token)
            if trusted is not None:
                return await self.principal_from_external(token, trusted)
        return await self.principal_from_claims(await self.validate(token))

    async def principal_from_external(self, token: str, trusted: TrustedIssuer) -> Principal:
        identity = await self.external.validate(token, trusted)
        statement = (
            select(users.c.id, users.c.display_name, users.c.roles, users.c.organization_id, orgs.c.kind)
            .join(orgs, orgs.c.id == users.c.organization_id)
            .where(users.c.email == identity.email, users.c.active.is_(True), orgs.c.active.is_(True))
        )
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        if row is None:
            raise InvalidToken("external subject")
        roles = frozenset(Role(r) for r in row.roles)
        smart = [s for s in identity.scopes if _is_scope(s)]
        return build_principal(
            organization_id=row.organization_id, organization_kind=OrganizationKind(row.kind),
            client_id=identity.client_id, token_scopes=smart or list(default_scopes(roles)), user_id=row.id,
            roles=roles, display_name=row.display_name, token_id=None,
        )

    async def principal_from_claims(self, claims: dict[str, Any]) -> Principal:
        return (await self._read_principal(claims))[0]

    async def _read_principal(self, claims: dict[str, Any]) -> tuple[Principal, StillValid]:
        """The principal behind validated claims, read now, and the condition under which what was read
        still holds (the same conditions, the token not revoked, the account's roles and name unchanged)."""
        jti = str(claims["jti"])
        scopes = str(claims.get("scope", "")).split()
        if "roles" in claims:
            decoded = from_global_id(str(claims["sub"]), "StaffUser")
            if decoded is None:
                raise InvalidToken("sub")
            async with self.engine.connect() as connection:
                row = (await connection.exec_driver_sql(
                    STAFF_READ, (decoded[1], _issued_at(claims), jti))).first()
            if row is None or row.revoked:
                raise InvalidToken("subject")
            token_roles = {str(r) for r in claims.get("roles") or []}
            roles = frozenset(Role(r) for r in row.roles if r in token_roles)
            still = StillValid(STAFF_STILL_VALID, (decoded[1], _issued_at(claims), list(row.roles),
                                                   row.display_name, jti))
            return build_principal(
                organization_id=row.organization_id, organization_kind=OrganizationKind(row.kind),
                client_id=str(claims["client_id"]), token_scopes=scopes, user_id=row.id, roles=roles,
                display_name=row.display_name, token_id=jti,
            ), still
        client_id = str(claims["client_id"])
        async with self.engine.connect() as connection:
            row = (await connection.exec_driver_sql(CLIENT_READ, (client_id, jti))).first()
        if row is None or row.revoked or str(claims["sub"]) != row.client_id:
            raise InvalidToken("client")
        still = StillValid(CLIENT_STILL_VALID, (client_id, row.organization_id, jti))
        return build_principal(
            organization_id=row.organization_id, organization_kind=OrganizationKind(row.kind),
            client_id=row.client_id, token_scopes=scopes, display_name=row.client_id, token_id=jti,
        ), still


# What must hold of the account or client behind a token, on every request: one text for the first read
# and for the re-check of a remembered caller (numbered from `n`). Fixed SQL: prepared once per connection.
_STAFF = "staff_user u JOIN organization o ON o.id = u.organization_id"
_CLIENT = "oauth_client c JOIN organization o ON o.id = c.organization_id"


def _staff_stands(n: int) -> str:
    """The account is active in an active organization and was not signed out after the token was issued
    ($n the account, $n+1 the token's `iat`)."""
    return (f"u.id = ${n} AND u.active AND o.active "
            f"AND (u.signed_out_at IS NULL OR date_trunc('second', u.signed_out_at) <= ${n + 1})")


def _client_stands(n: int) -> str:
    """The client is enabled, of an active organization ($n the client_id)."""
    return f"c.client_id = ${n} AND NOT c.disabled AND o.active"


def _revoked(n: int) -> str:
    """The token ($n its jti) was revoked."""
    return f"EXISTS (SELECT 1 FROM revoked_token WHERE jti = ${n})"  # noqa: S608 (a parameter's number)


# Built once from the constants above; every value is a parameter.
STAFF_READ = (f"SELECT u.id, u.display_name, u.roles, u.organization_id, o.kind, {_revoked(3)} AS revoked "  # noqa: S608
              f"FROM {_STAFF} WHERE {_staff_stands(1)}")
STAFF_STILL_VALID = (f"EXISTS (SELECT 1 FROM {_STAFF} WHERE {_staff_stands(6)} AND u.roles = $8::text[] "  # noqa: S608
                     f"AND u.display_name = $9) AND NOT {_revoked(10)}")
CLIENT_READ = (f"SELECT c.client_id, c.organization_id, o.kind, {_revoked(2)} AS revoked "  # noqa: S608
               f"FROM {_CLIENT} WHERE {_client_stands(1)}")
CLIENT_STILL_VALID = (f"EXISTS (SELECT 1 FROM {_CLIENT} WHERE {_client_stands(6)} "  # noqa: S608
                      f"AND c.organization_id = $7) AND NOT {_revoked(8)}")


def _issued_at(claims: dict[str, Any]) -> datetime:
    """`iat`, checked by validate_access_token. It counts whole seconds, so it is compared with the second
    the account was signed out in: a sign-in right after a new password is set must not be refused."""
    return datetime.fromtimestamp(int(claims["iat"]), UTC)


def _is_scope(value: str) -> bool:
    try:
        parse_scope(value)
    except ValueError:
        return False
    return True


def bearer_token(request: Request) -> str | None:
    return bearer_of(request.headers.get("authorization", ""))


def bearer_of(header: str) -> str | None:
    """The token of an `Authorization: Bearer …` header (the scheme in any case), or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def request_credentials(request: Request) -> Credentials:
    """FastAPI dependency of the GraphQL endpoint: as current_principal, but a principal remembered from
    an earlier request of the token is re-checked inside the request's own transaction (Credentials)."""
    authenticator: Authenticator = request.app.state.pamoja.authenticator
    token = bearer_token(request)
    if token is None:
        raise unauthorized("An access token is required.")
    try:
        return await authenticator.credentials(token)
    except InvalidToken:
        raise unauthorized() from None


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, or HTTP 401 before any GraphQL runs."""
    authenticator: Authenticator = request.app.state.pamoja.authenticator
    token = bearer_token(request)
    if token is None:
        raise unauthorized("An access token is required.")
    try:
        return await authenticator.authenticate(token, request_id=getattr(request.state, "request_id", None))
    except InvalidToken:
        raise unauthorized() from None
