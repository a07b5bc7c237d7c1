"""What partner systems and browsers do against the authorization server, for the OAuth tests."""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

TOKEN_URL = "http://testserver/oauth/token"
VIEWER = "{ viewer { clientId roles scopes organization { id } user { id } } }"


def extra_app(settings: Any) -> FastAPI:
    """Another app (other limits or issuers) that leaves the session's log handlers in place.

    create_app configures logging, which replaces the root handlers; the session's log sink (the
    no-PII-in-logs check in conftest) must keep seeing every line.
    """
    from api.main import create_app

    root = logging.getLogger()
    kept, level = [h for h in root.handlers if type(h) is not logging.StreamHandler], root.level
    application = create_app(settings)
    for handler in kept:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(min(level, root.level) if level else root.level)
    return application


def unique_address() -> str:
    """A client address of its own, so per-address rate limits of one test never touch another."""
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


@asynccontextmanager
async def http_from(app: FastAPI, address: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address or unique_address(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def ec_key(kid: str | None = None, curve: str = "P-256") -> ECKey:
    return ECKey.generate_key(curve, parameters={"kid": kid or secrets.token_hex(4)}, private=True)


def rsa_key(kid: str | None = None) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid or secrets.token_hex(4)}, private=True)


def public_jwks(*keys: ECKey | RSAKey) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def client_assertion(key: ECKey | RSAKey, client_id: str, *, alg: str = "ES256", aud: str = TOKEN_URL,
                     lifetime: int = 240, jti: str | None = None, header: dict[str, Any] | None = None,
                     claims: dict[str, Any] | None = None) -> str:
    """A SMART Backend Services authentication JWT, signed by the partner's private key."""
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + lifetime,
            "jti": jti or secrets.token_urlsafe(12)}
    body.update(claims or {})
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT", **(header or {})}, body, key, algorithms=[alg])


def assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion, **extra}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.action: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        if tag == "input" and a.get("name"):
            self.fields[str(a["name"])] = a.get("value") or ""


def read_form(page: str) -> tuple[str, dict[str, str]]:
    """The login form's action and its fields (hidden ones filled), as a browser would submit them."""
    parser = _Form()
    parser.feed(page)
    assert parser.action, "no form on the page"
    return parser.action, parser.fields


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
