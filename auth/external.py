"""Trusted external issuers: an NGO's own identity provider signs the tokens its staff bring.

Each issuer is configured with its `issuer`, `jwks_url`, `audience` and the claim holding the
e-mail. A token from it is accepted only when its signature verifies against that issuer's JWKS
(fetched over HTTP, cached, refetched on an unknown `kid` at most every few seconds), iss and aud
match exactly, it is inside its validity window (60 s leeway), and the e-mail names an active
staff user registered here. The user's roles come from Pamoja, never from the foreign token, so an
outside identity provider can say who someone is but never what they may do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from auth.tokens import LEEWAY_SECONDS, MAX_KID_LENGTH, InvalidToken, unverified_parts

# Asymmetric algorithms only: an HMAC "signed" with a public key must never verify.
EXTERNAL_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
REFETCH_MIN_SECONDS = 10.0
MAX_JWKS_AGE_SECONDS = 3600.0
FETCH_TIMEOUT_SECONDS = 5.0

logger = structlog.get_logger("pamoja.auth.external")


class IssuerConfigError(ValueError):
    """A trusted issuer entry in settings is incomplete or unsafe."""


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    issuer: str
    jwks_url: str
    audience: str
    email_claim: str = "email"

    @classmethod
    def parse(cls, raw: Mapping[str, str], *, production: bool) -> TrustedIssuer:
        missing = [k for k in ("issuer", "jwks_url", "audience") if not str(raw.get(k, "")).strip()]
        if missing:
            raise IssuerConfigError("trusted issuer is missing " + ", ".join(missing))
        jwks_url = str(raw["jwks_url"]).strip()
        if production and not jwks_url.startswith("https://"):
            raise IssuerConfigError("a trusted issuer's jwks_url must be https in production")
        if not jwks_url.startswith(("https://", "http://")):
            raise IssuerConfigError("a trusted issuer's jwks_url must be an http(s) URL")
        return cls(issuer=str(raw["issuer"]).strip(), jwks_url=jwks_url, audience=str(raw["audience"]).strip(),
                   email_claim=str(raw.get("email_claim") or "email").strip())


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    issuer: TrustedIssuer
    email: str
    client_id: str
    scopes: tuple[str, ...]


@dataclass
class _CachedJwks:
    keys: KeySet | None = None
    fetched_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ExternalIssuers:
    """Validates tokens from the configured identity providers; knows nothing about our database."""

    def __init__(self, issuers: Sequence[TrustedIssuer]) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        self._jwks: dict[str, _CachedJwks] = {i.issuer: _CachedJwks() for i in issuers}

    @classmethod
    def from_settings(cls, raw: Sequence[Mapping[str, str]], *, production: bool) -> ExternalIssuers:
        return cls([TrustedIssuer.parse(entry, production=production) for entry in raw])

    def __bool__(self) -> bool:
        return bool(self._issuers)

    def issuer_of(self, token: str) -> TrustedIssuer | None:
        parts = unverified_parts(token)
        if parts is None:
            return None
        iss = parts[1].get("iss")
        return self._issuers.get(iss) if isinstance(iss, str) else None

    async def _keys(self, issuer: TrustedIssuer, *, refetch: bool) -> KeySet:
        cache = self._jwks[issuer.issuer]
        async with cache.lock:
            age = time.monotonic() - cache.fetched_at
            due = cache.keys is None or age > MAX_JWKS_AGE_SECONDS or (refetch and age > REFETCH_MIN_SECONDS)
            if due:
                try:
                    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False) as http:
                        response = await http.get(issuer.jwks_url, headers={"Accept": "application/json"})
                    response.raise_for_status()
                    document = response.json()
                    # Only public keys are imported; a JWKS that carries private members is refused.
                    if any("d" in k for k in document.get("keys", [])):
                        raise ValueError("private key material in a JWKS")
                    cache.keys = KeySet.import_key_set(document)
                    cache.fetched_at = time.monotonic()
                except (httpx.HTTPError, ValueError, TypeError, KeyError, JoseError) as exc:
                    logger.warning("trusted issuer jwks fetch failed", error_type=type(exc).__name__)
                    if cache.keys is None:
                        raise InvalidToken("jwks unavailable") from exc
            assert cache.keys is not None
            return cache.keys

    async def validate(self, token: str, issuer: TrustedIssuer) -> ExternalIdentity:
        """The e-mail and scopes of a verified foreign token, or InvalidToken."""
        parts = unverified_parts(token)
        if parts is None or parts[0].get("jku") or parts[0].get("x5u"):
            raise InvalidToken("malformed")
        kid = parts[0].get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise InvalidToken("kid")
        keys = await self._keys(issuer, refetch=False)
        if not any(k.kid == kid for k in keys.keys):
            keys = await self._keys(issuer, refetch=True)
        try:
            decoded = jwt.decode(token, keys, algorithms=EXTERNAL_ALGORITHMS)
            registry = JWTClaimsRegistry(
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": issuer.issuer},
                aud={"essential": True, "value": issuer.audience},
                exp={"essential": True},
                sub={"essential": True},
            )
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidToken(type(exc).__name__) from exc
        claims: dict[str, Any] = dict(decoded.claims)
        email = claims.get(issuer.email_claim)
        if not isinstance(email, str) or "@" not in email or claims.get("email_verified") is False:
            raise InvalidToken("email")
        raw_scope = claims.get("scope", claims.get("scp", ""))
        scopes = raw_scope.split() if isinstance(raw_scope, str) else [str(s) for s in raw_scope or []]
        client = claims.get("azp") or claims.get("client_id") or issuer.issuer
        return ExternalIdentity(issuer=issuer, email=email.strip().lower(), client_id=str(client),
                                scopes=tuple(scopes))
