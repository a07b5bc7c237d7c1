"""OAuth clients: partner systems (client credentials) and staff login apps (authorization code + PKCE).

A client's kind follows from what it was registered with, so there is no flag to get out of step:
- a JWKS: a partner system that authenticates with `private_key_jwt` (SMART Backend Services);
- a secret: a partner system using `client_secret_basic` / `client_secret_post`, or, with redirect
  URIs, a confidential staff login app;
- neither, with redirect URIs: a public staff login app (PKCE only).

Secrets are 256-bit random strings, so they are stored as a SHA-256 hash: a slow password hash
adds nothing against guessing a random 256-bit value and would make the token endpoint an easy
CPU sink. Webhook secrets must be readable to sign deliveries, so they are encrypted instead, in
the format and under the URL policy of partners/webhooks.py (the one place that reads them).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import oauth as store
from db.crypto import MasterKeys
from db.oauth import AnyRow
from db.tables import Organization
from domain.enums import OrganizationKind
from domain.errors import InvalidInput, NotFound
from domain.ids import from_global_id, to_global_id
from domain.scopes import SYSTEM_CEILING, Scope, is_within, parse_scope, system_ceiling
from partners.webhooks import WebhookUrlRefused, check_webhook_url, new_webhook_secret, seal_webhook_secret

CLIENT_ID_PREFIX = "pmj_"
SECRET_PREFIX = "pmjs_"  # noqa: S105 (a prefix that makes leaked secrets greppable)
HASH_SCHEME = "sha256$"
# What partner systems may sign client assertions with (SMART asks for RS384 or ES384 at least).
ASSERTION_ALGORITHMS = ["ES256", "ES384", "RS256", "RS384"]
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
orgs = Organization.__table__  # type: ignore[attr-defined]


def new_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_urlsafe(16)


def new_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return HASH_SCHEME + hashlib.sha256(secret.encode()).hexdigest()


def verify_secret(secret: str, stored: str | None) -> bool:
    if not stored or not stored.startswith(HASH_SCHEME) or not isinstance(secret, str):
        return False
    return hmac.compare_digest(hash_secret(secret), stored)


# ----------------------------------------------------------------------------- validation of registrations


def validate_jwks(document: Any) -> dict[str, Any]:
    """A registered JWKS: public EC/RSA signing keys only, each with a unique kid."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list) or not document["keys"]:
        raise InvalidInput("The JWKS must be an object with a non-empty `keys` list.", field=("jwks",))
    kids: set[str] = set()
    for key in document["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in {"EC", "RSA"}:
            raise InvalidInput("Every JWKS key must be an EC or RSA key.", field=("jwks",))
        if _PRIVATE_MEMBERS.intersection(key):
            raise InvalidInput("The JWKS holds private key material; register public keys only.", field=("jwks",))
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid or kid in kids:
            raise InvalidInput("Every JWKS key needs a unique `kid`.", field=("jwks",))
        kids.add(kid)
        if "alg" in key and key["alg"] not in ASSERTION_ALGORITHMS:
            raise InvalidInput("JWKS key algorithms must be one of " + ", ".join(ASSERTION_ALGORITHMS) + ".",
                               field=("jwks",))
        if key.get("use") not in (None, "sig"):
            raise InvalidInput("JWKS keys must be signing keys (`use: sig`).", field=("jwks",))
    try:
        keyset = KeySet.import_key_set(document)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidInput("The JWKS could not be read as public keys.", field=("jwks",)) from None
    for key in keyset.keys:
        if key.key_type == "RSA" and key.raw_value.key_size < 2048:  # type: ignore[union-attr]
            raise InvalidInput("RSA keys must have at least 2048 bits.", field=("jwks",))
    return {"keys": [dict(k) for k in document["keys"]]}


def _is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK


def validate_redirect_uri(url: str) -> str:
    """https, or plain http to this machine (RFC 8252 loopback redirects of native apps)."""
    url = url.strip()
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc or parts.fragment or len(url) > 2000:
        raise InvalidInput("--redirect-uri must be an absolute URL without a fragment.", field=("redirect-uri",))
    if parts.scheme == "https" or _is_loopback_http(url):
        return url
    raise InvalidInput("--redirect-uri must use https (or http to 127.0.0.1 for a native app).",
                       field=("redirect-uri",))


def validate_allowed_scopes(values: Sequence[str], *, kind: OrganizationKind, interactive: bool) -> list[str]:
    """Scopes a client may ever ask for; a partner system's never exceed its organization's ceiling."""
    if not values:
        raise InvalidInput("Give at least one --scope.", field=("scope",))
    parsed: list[Scope] = []
    for value in values:
        try:
            parsed.append(parse_scope(value.strip()))
        except ValueError as exc:
            raise InvalidInput(f"Scope {value.strip()!r} is not valid: {exc}.", field=("scope",)) from None
    context = "user" if interactive else "system"
    if any(s.context != context for s in parsed):
        raise InvalidInput(f"This client's scopes must all start with {context}/.", field=("scope",))
    if not interactive:
        ceiling = system_ceiling(kind)
        beyond = [str(s) for s in parsed if not is_within([s], ceiling)]
        if beyond:
            holder = "a partner organization's system" if kind is OrganizationKind.PARTNER else "the NGO's system"
            raise InvalidInput(f"--scope {', '.join(beyond)} is beyond what {holder} may hold (ceiling: "
                               f"{' '.join(SYSTEM_CEILING[kind])}).", field=("scope",))
    return list(dict.fromkeys(str(s) for s in parsed))


# ----------------------------------------------------------------------------- the client as Authlib sees it


@dataclass(frozen=True)
class ClientRecord(ClientMixin):  # type: ignore[misc]
    id: uuid.UUID
    client_id: str
    name: str
    organization_id: uuid.UUID
    organization_kind: OrganizationKind
    # Kept out of repr: Authlib logs client objects at debug level.
    secret_hash: str | None = field(repr=False)
    jwks: dict[str, Any] | None = field(repr=False)
    allowed_scopes: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: AnyRow) -> ClientRecord:
        return cls(id=row.id, client_id=row.client_id, name=row.name, organization_id=row.organization_id,
                   organization_kind=OrganizationKind(row.kind), secret_hash=row.secret_hash,
                   jwks=dict(row.jwks) if row.jwks else None, allowed_scopes=tuple(row.allowed_scopes),
                   redirect_uris=tuple(row.redirect_uris or ()))

    @property
    def interactive(self) -> bool:
        """A staff login app (authorization code); otherwise a partner system (client credentials)."""
        return bool(self.redirect_uris)

    @property
    def auth_methods(self) -> frozenset[str]:
        if self.jwks:
            return frozenset({"private_key_jwt"})
        if self.secret_hash:
            return frozenset({"client_secret_basic", "client_secret_post"})
        return frozenset({"none"})

    @property
    def organization_gid(self) -> str:
        return to_global_id("Organization", self.organization_id)

    def allowed(self) -> tuple[Scope, ...]:
        return tuple(parse_scope(s) for s in self.allowed_scopes)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The requested scope if the client may ask for all of it; its whole set when none is asked."""
        if not scope:
            return " ".join(self.allowed_scopes)
        try:
            requested = [parse_scope(s) for s in scope.split()]
        except ValueError:
            return None
        if not is_within(requested, self.allowed()):
            return None
        return " ".join(dict.fromkeys(str(s) for s in requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return self.interactive and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.interactive:
            return grant_type in {"authorization_code", "refresh_token"}
        return grant_type == "client_credentials"


# ----------------------------------------------------------------------------- registration (operator CLI)


@dataclass(frozen=True)
class RegisteredClient:
    id: str
    client_id: str
    client_secret: str | None
    webhook_secret: str | None

    def as_output(self) -> dict[str, str]:
        out = {"id": self.id, "client_id": self.client_id}
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret
        if self.webhook_secret is not None:
            out["webhook_secret"] = self.webhook_secret
        return out


async def register_client(connection: AsyncConnection, master: MasterKeys, *, organization_gid: str, name: str,
                          scopes: Sequence[str], jwks: Any = None, webhook_url: str | None = None,
                          redirect_uris: Sequence[str] = (), confidential: bool = False,
                          production: bool = False) -> RegisteredClient:
    decoded = from_global_id(organization_gid, "Organization")
    org = None
    if decoded is not None:
        org = (await connection.execute(select(orgs.c.id, orgs.c.kind).where(orgs.c.id == decoded[1]))).first()
    if org is None:
        raise NotFound("No such organization.", field=("org",))
    if not name.strip():
        raise InvalidInput("--name must not be empty.", field=("name",))
    interactive = bool(redirect_uris)
    if interactive and jwks is not None:
        raise InvalidInput("A staff login app (--redirect-uri) cannot use --jwks-file.", field=("jwks",))
    if confidential and not interactive:
        raise InvalidInput("--confidential applies to staff login apps (--redirect-uri) only.",
                           field=("confidential",))
    allowed = validate_allowed_scopes(scopes, kind=OrganizationKind(org.kind), interactive=interactive)
    uris = list(dict.fromkeys(validate_redirect_uri(u) for u in redirect_uris))
    hook = None
    if webhook_url:
        try:
            check_webhook_url(webhook_url, production=production)
        except WebhookUrlRefused as exc:
            raise InvalidInput(f"--webhook-url: {exc}", field=("webhook-url",)) from None
        hook = webhook_url.strip()
    registered_jwks = validate_jwks(jwks) if jwks is not None else None

    row_id = uuid.uuid4()
    client_id = new_client_id()
    secret = None
    if registered_jwks is None and (not interactive or confidential):
        secret = new_client_secret()
    webhook_secret = new_webhook_secret() if hook else None
    await store.insert_client(
        connection, row_id=row_id, organization_id=org.id, client_id=client_id, name=name.strip(),
        secret_hash=hash_secret(secret) if secret else None, jwks=registered_jwks, allowed_scopes=allowed,
        redirect_uris=uris, webhook_url=hook,
        webhook_secret_enc=(seal_webhook_secret(master, client_id=client_id, secret=webhook_secret)
                            if webhook_secret else None),
    )
    return RegisteredClient(id=to_global_id("OAuthClient", row_id), client_id=client_id, client_secret=secret,
                            webhook_secret=webhook_secret)


async def update_client(connection: AsyncConnection, master: MasterKeys, ident: str, *, name: str | None = None,
                        scopes: Sequence[str] | None = None, webhook_url: str | None = None,
                        remove_webhook: bool = False, redirect_uris: Sequence[str] | None = None,
                        production: bool = False) -> dict[str, str]:
    """Change what is given and keep the rest. Scopes stay within the client's ceiling; narrowing them
    ends the client's sign-in sessions (a staff app's users sign in again), and a system's access tokens
    already issued keep their scopes until they expire (at most 300 s). A first webhook URL gets a new
    signing secret, printed once; changing the URL keeps the secret."""
    row = await find_client(connection, ident)
    kind = row.kind
    interactive = bool(row.redirect_uris)
    values: dict[str, Any] = {}
    out: dict[str, str] = {"id": to_global_id("OAuthClient", row.id), "client_id": row.client_id}
    if name is not None:
        if not name.strip():
            raise InvalidInput("--name must not be empty.", field=("name",))
        values["name"] = name.strip()
    if redirect_uris is not None:
        if not interactive:
            raise InvalidInput("--redirect-uri applies to staff login apps only; this is a partner system.",
                               field=("redirect-uri",))
        if not redirect_uris:
            raise InvalidInput("Give at least one --redirect-uri.", field=("redirect-uri",))
        values["redirect_uris"] = list(dict.fromkeys(validate_redirect_uri(u) for u in redirect_uris))
    narrowed = False
    if scopes is not None:
        allowed = validate_allowed_scopes(scopes, kind=OrganizationKind(kind), interactive=interactive)
        narrowed = not set(row.allowed_scopes) <= set(allowed)
        values["allowed_scopes"] = allowed
    if remove_webhook and webhook_url is not None:
        raise InvalidInput("Give --webhook-url or --no-webhook-url, not both.", field=("webhook-url",))
    if remove_webhook:
        values.update(webhook_url=None, webhook_secret_enc=None)
    elif webhook_url is not None:
        try:
            check_webhook_url(webhook_url, production=production)
        except WebhookUrlRefused as exc:
            raise InvalidInput(f"--webhook-url: {exc}", field=("webhook-url",)) from None
        values["webhook_url"] = webhook_url.strip()
        if not await store.has_webhook_secret(connection, row.id):
            secret = new_webhook_secret()
            values["webhook_secret_enc"] = seal_webhook_secret(master, client_id=row.client_id, secret=secret)
            out["webhook_secret"] = secret
    if not values:
        raise InvalidInput("Give what to change: --name, --scope, --webhook-url, --no-webhook-url or --redirect-uri.",
                           field=("client",))
    await store.update_client(connection, row.id, values)
    if narrowed:
        await store.revoke_families(connection, client_id=row.client_id)
    return out


async def find_client(connection: AsyncConnection, ident: str) -> AnyRow:
    """An operator names a client by its client_id or its global id."""
    decoded = from_global_id(ident, "OAuthClient")
    row = await store.client_by_id_or_client_id(
        connection, row_id=decoded[1] if decoded else None, client_id=None if decoded else ident.strip(),
    )
    if row is None:
        raise NotFound("No such OAuth client.", field=("client",))
    return row


async def rotate_client_secret(connection: AsyncConnection, ident: str) -> RegisteredClient:
    """A new secret; the old one stops working as soon as this commits."""
    row = await find_client(connection, ident)
    if row.jwks or not row.secret_hash:
        raise InvalidInput("This client has no secret (it uses a JWKS or is a public app).", field=("client",))
    secret = new_client_secret()
    await store.set_client_secret(connection, row.id, hash_secret(secret))
    return RegisteredClient(id=to_global_id("OAuthClient", row.id), client_id=row.client_id, client_secret=secret,
                            webhook_secret=None)


async def disable_client(connection: AsyncConnection, ident: str) -> RegisteredClient:
    """Refuse the client from now on: no new tokens, and its live tokens stop working."""
    row = await find_client(connection, ident)
    await store.set_client_disabled(connection, row.id)
    await store.revoke_families(connection, client_id=row.client_id)
    return RegisteredClient(id=to_global_id("OAuthClient", row.id), client_id=row.client_id, client_secret=None,
                            webhook_secret=None)
