"""RFC 9068 access tokens: minting (ES256, `typ: at+jwt`) and strict validation with joserfc.

Validation refuses anything but our own ES256 signature from a published `kid`, checks iss, aud,
exp, nbf and iat with a 60 s leeway, and requires every RFC 9068 claim. `jku`/`x5u` headers are
never followed: keys come only from our own key table.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import ECKey, KeySet
from joserfc.jwt import JWTClaimsRegistry

from auth.keys import ALGORITHM

LEEWAY_SECONDS = 60
ACCEPTED_TYP = {"at+jwt", "application/at+jwt"}


class InvalidToken(Exception):
    """Any reason a bearer token is refused; the reason is for logs by type only, never for clients."""


class UnknownKey(InvalidToken):
    """The token names a kid we do not publish (maybe a key rotated in by another worker)."""

    def __init__(self, reason: str, kid: str | None = None) -> None:
        super().__init__(reason)
        self.kid = kid


MAX_KID_LENGTH = 100


def unverified_parts(value: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims read WITHOUT verification, only to route a token to the right keys.

    Nothing returned here is trusted: the chosen validator verifies the signature and every claim.
    """
    if not value or len(value) > 8192 or value.count(".") != 2:
        return None
    try:
        obj = jws.extract_compact(value.encode())
        claims = json.loads(obj.payload)
    except (JoseError, ValueError, UnicodeError, RecursionError):  # RecursionError: JSON nested thousands deep
        return None
    if not isinstance(claims, dict):
        return None
    return dict(obj.headers()), claims


def mint_access_token(
    key: ECKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    client_id: str,
    organization: str,
    scopes: Sequence[str],
    ttl_seconds: int,
    roles: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + ttl_seconds,
        "iat": now,
        "nbf": now,
        "jti": secrets.token_urlsafe(16),
        "client_id": client_id,
        "scope": " ".join(scopes),
        "org": organization,
    }
    if roles is not None:
        claims["roles"] = list(roles)
    if extra:
        claims.update(extra)
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key, algorithms=[ALGORITHM]), claims


def validate_access_token(value: str, *, keys: KeySet, issuer: str, audience: str) -> dict[str, Any]:
    """Return the claims of a token we issued, or raise InvalidToken."""
    if not value or len(value) > 8192 or value.count(".") != 2:
        raise InvalidToken("malformed")
    try:
        token = jwt.decode(value, keys, algorithms=[ALGORITHM])
    except JoseError as exc:
        if isinstance(exc, InvalidKeyIdError):
            parts = unverified_parts(value)
            kid = parts[0].get("kid") if parts else None
            usable = isinstance(kid, str) and 0 < len(kid) <= MAX_KID_LENGTH
            raise UnknownKey(type(exc).__name__, kid if usable else None) from exc
        raise InvalidToken(type(exc).__name__) from exc
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise InvalidToken(type(exc).__name__) from exc
    if token.header.get("typ") not in ACCEPTED_TYP or not token.header.get("kid"):
        raise InvalidToken("typ")
    registry = JWTClaimsRegistry(
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
        jti={"essential": True},
        client_id={"essential": True},
        org={"essential": True},
    )
    try:
        registry.validate(token.claims)
    except JoseError as exc:
        raise InvalidToken(type(exc).__name__) from exc
    return dict(token.claims)
