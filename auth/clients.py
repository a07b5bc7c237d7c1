"""OAuth clients: partner systems (client credentials) and staff login apps (authorization code + PKCE).

A client's kind follows from what it was registered with, so there is no flag to get out of step:
- a JWKS: a partner system that authenticates with `private_key_jwt` (SMART Backend Services);
- a secret: a partner system using `client_secret_basic` / `client_secret_post`, or, with redirect
  URIs, a confidential staff login app;
- neither, with redirect URIs: a public staff login app (PKCE only).

Secrets are 256-bit random strings, so they are stored as a SHA-256 hash: a slow password hash
adds nothing against guessing a random 256-bit value and would make the token endpoint an easy
CPU sink. Webhook secrets must be readable to sign deliveries, so they are encrypted instead
(db/webhook_secrets.py). Which webhook URLs are allowed is the delivery side's policy
(partners/webhooks.py `webhook_url_problem`), given to the registry by whoever builds it (`UrlPolicy`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db import oauth as store
from db.crypto import MasterKeys
from db.cursors import fetch_page
from db.engine import Db
from db.oauth import AnyRow
from db.tables import OAuthClient, Organization
from db.webhook_secrets import new_webhook_secret, seal_webhook_secret
from domain.enums import OrganizationKind
from domain.errors import InvalidInput, NotFound
from domain.ids import from_global_id, to_global_id
from domain.paging import Page, PageRequest
from domain.scopes import Scope, is_within, parse_scope
from domain.use_cases import oauth_clients
from domain.use_cases.oauth_clients import (
    CLI,
    CheckedChange,
    ClientChange,
    ClientFilter,
    OAuthClientView,
    check_allowed_scopes,
    check_redirect_uri,
)

CLIENT_ID_PREFIX = "pmj_"
SECRET_PREFIX = "pmjs_"  # noqa: S105 (a prefix that makes leaked secrets greppable)
HASH_SCHEME = "sha256$"
# What partner systems may sign client assertions with (SMART asks for RS384 or ES384 at least).
ASSERTION_ALGORITHMS = ["ES256", "ES384", "RS256", "RS384"]
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
orgs = Organization.__table__  # type: ignore[attr-defined]
clients = OAuthClient.__table__  # type: ignore[attr-defined]


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
    client_secret: str | None = field(repr=False)
    webhook_secret: str | None = field(repr=False)

    def as_output(self) -> dict[str, str]:
        out = {"id": self.id, "client_id": self.client_id}
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret
        if self.webhook_secret is not None:
            out["webhook_secret"] = self.webhook_secret
        return out


# Why webhooks may not go to a URL (a sentence naming no value), or None: partners/webhooks.py's policy.
UrlPolicy = Callable[[str], str | None]


async def register_client(connection: AsyncConnection, master: MasterKeys, *, organization_gid: str, name: str,
                          scopes: Sequence[str], jwks: Any = None, webhook_url: str | None = None,
                          redirect_uris: Sequence[str] = (), confidential: bool = False,
                          url_policy: UrlPolicy) -> RegisteredClient:
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
    allowed = check_allowed_scopes(scopes, kind=OrganizationKind(org.kind), staff_app=interactive, fields=CLI)
    uris = list(dict.fromkeys(check_redirect_uri(u, fields=CLI) for u in redirect_uris))
    hook = None
    if webhook_url:
        problem = url_policy(webhook_url)
        if problem is not None:
            raise InvalidInput(f"--webhook-url: {problem}", field=("webhook-url",))
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


class ClientRegistry:
    """The store of domain/use_cases/oauth_clients.py: reads and changes clients in the caller's
    transaction (the operator's, or an administrator's request) and audits through `audit`."""

    def __init__(self, db: Db, master: MasterKeys, *, url_policy: UrlPolicy,
                 audit: Callable[[str, str], Awaitable[None]]) -> None:
        self.db = db
        self.master = master
        self.url_policy = url_policy
        self._audit = audit

    async def page(self, *, filter: ClientFilter, page: PageRequest) -> Page[OAuthClientView]:
        conditions: list[Any] = []
        if filter.organization_id is not None:
            conditions.append(clients.c.organization_id == filter.organization_id)
        if filter.active is not None:
            conditions.append(clients.c.disabled.is_(not filter.active))
        rows, skeleton = await fetch_page(self.db, store.client_views().where(*conditions),
                                          order=[clients.c.client_id], key_parsers=[str], page=page)
        return Page(items=[client_view(r) for r in rows], keys=skeleton.keys, has_next=skeleton.has_next,
                    has_previous=skeleton.has_previous, total_count=skeleton.total_count)

    async def clients(self, ids: Sequence[uuid.UUID], *, lock: bool) -> dict[uuid.UUID, OAuthClientView]:
        if not ids:
            return {}
        statement = store.client_views().where(clients.c.id.in_(list(ids)))
        rows = await self.db.all(statement.with_for_update(of=clients) if lock else statement)
        return {r.id: client_view(r) for r in rows}

    def webhook_url_problem(self, url: str) -> str | None:
        return self.url_policy(url)

    async def apply(self, client: OAuthClientView, change: CheckedChange) -> str | None:
        values: dict[str, Any] = {}
        if change.name is not None:
            values["name"] = change.name
        if change.scopes is not None:
            values["allowed_scopes"] = list(change.scopes)
        if change.redirect_uris is not None:
            values["redirect_uris"] = list(change.redirect_uris)
        secret = None
        if change.remove_webhook:
            values.update(webhook_url=None, webhook_secret_enc=None)
        elif change.webhook_url is not None:
            values["webhook_url"] = change.webhook_url
            if not client.has_webhook_secret:
                secret = new_webhook_secret()
                values["webhook_secret_enc"] = seal_webhook_secret(self.master, client_id=client.client_id,
                                                                   secret=secret)
        await self.db.execute(store.update_client(client.id, values))
        if change.narrowed:
            await store.revoke_families(self.db, client_id=client.client_id)
        return secret

    async def audit(self, action: str, record_id: str) -> None:
        await self._audit(action, record_id)


def client_view(row: AnyRow) -> OAuthClientView:
    staff_app = bool(row.redirect_uris)
    return OAuthClientView(
        id=row.id, client_id=row.client_id, name=row.name, organization_id=row.organization_id,
        organization_kind=OrganizationKind(row.kind), staff_app=staff_app,
        authentication="client_secret" if row.has_secret else "pkce" if staff_app else "private_key_jwt",
        scopes=tuple(row.allowed_scopes or ()), redirect_uris=tuple(row.redirect_uris or ()),
        webhook_url=row.webhook_url, has_webhook_secret=row.has_webhook_secret, active=not row.disabled,
        created_at=row.created_at, version=row.version,
    )


async def update_client(connection: AsyncConnection, master: MasterKeys, ident: str, *, change: ClientChange,
                        url_policy: UrlPolicy, audit: Callable[[str, str], Awaitable[None]]) -> dict[str, str]:
    """The operator's `pamoja client update`: the administrators' rules, with option names in messages.
    A first webhook URL's new signing secret is in the answer, once."""
    row = await find_client(connection, ident)
    updated = await oauth_clients.update_client(
        store=ClientRegistry(Db(connection), master, url_policy=url_policy, audit=audit), client_row_id=row.id,
        change=change, fields=CLI)
    out = {"id": to_global_id("OAuthClient", row.id), "client_id": row.client_id}
    if updated.webhook_secret is not None:
        out["webhook_secret"] = updated.webhook_secret
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


# ----------------------------------------------------------------------------- GraphiQL's sign-in (development)

GRAPHIQL_CLIENT_ID = "pamoja-graphiql"


async def _first_organization(connection: AsyncConnection) -> uuid.UUID | None:
    """Who owns Pamoja's own staff apps: the first NGO registered (or, before any, the first organization)."""
    found = await connection.execute(
        select(orgs.c.id).order_by((orgs.c.kind != OrganizationKind.REFERRING_NGO.value), orgs.c.created_at).limit(1))
    return found.scalar()


async def ensure_graphiql_client(connection: AsyncConnection, *, redirect_uri: str) -> bool:
    """Outside production only: the public PKCE client GraphiQL signs people in with, returning to
    `redirect_uri` (the page itself). It belongs to the first NGO registered (a staff app serves the
    staff of every organization; the person's own roles decide what the token holds). False while no
    organization exists yet: the page then offers only a pasted token."""
    owner = await _first_organization(connection)
    if owner is None:
        return False
    await connection.execute(pg_insert(clients).values(
        id=uuid.uuid4(), organization_id=owner, client_id=GRAPHIQL_CLIENT_ID, name="GraphiQL (development)",
        secret_hash=None, jwks=None, allowed_scopes=["user/*.cruds"], redirect_uris=[redirect_uri],
        webhook_url=None, webhook_secret_enc=None,
    ).on_conflict_do_update(index_elements=[clients.c.client_id], set_={"redirect_uris": [redirect_uri]}))
    return True


# ----------------------------------------------------------------------------- the staff console (first party)

CONSOLE_CLIENT_ID = "pamoja-console"


def console_client_secret(master: MasterKeys) -> str:
    """The console's client secret, derived from the current master key: the console, in this process,
    knows it without anyone storing or handing it over; rotating the master key changes it (the next
    `ensure_console_client` stores the new hash)."""
    digest = hmac.new(master.get(master.current_id), b"pamoja console client secret", hashlib.sha256).digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def ensure_console_client(connection: AsyncConnection, master: MasterKeys, *, redirect_uri: str) -> bool:
    """The console's confidential client (authorization code + PKCE, then refresh rotation), owned by
    the first NGO registered; an operator's `pamoja client disable pamoja-console` stays in force.
    False while no organization exists yet."""
    owner = await _first_organization(connection)
    if owner is None:
        return False
    secret_hash = hash_secret(console_client_secret(master))
    await connection.execute(pg_insert(clients).values(
        id=uuid.uuid4(), organization_id=owner, client_id=CONSOLE_CLIENT_ID, name="Pamoja console",
        secret_hash=secret_hash, jwks=None, allowed_scopes=["user/*.cruds"], redirect_uris=[redirect_uri],
        webhook_url=None, webhook_secret_enc=None,
    ).on_conflict_do_update(index_elements=[clients.c.client_id],
                            set_={"redirect_uris": [redirect_uri], "secret_hash": secret_hash}))
    return True
