"""OAuth clients as operators (`pamoja client …`) and the NGO's administrators (`oauthClients`,
`updateOAuthClient`) manage them, under one set of rules: a client's scopes stay within its kind's
ceiling (a partner system's within its organization's), redirect URIs belong to staff login apps
only, and a webhook URL must be one Pamoja may call. Narrowing a client's scopes ends its sign-in
sessions; a first webhook URL gets a signing secret, shown once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from domain import policy
from domain.enums import OrganizationKind
from domain.errors import FieldChecks, Forbidden, InvalidInput, NotFound, VersionConflict
from domain.ids import to_global_id
from domain.paging import Page, PageRequest
from domain.principal import Principal
from domain.scopes import SYSTEM_CEILING, Action, Resource, Scope, is_within, parse_scope, system_ceiling

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_NAME_LENGTH = 200
MAX_URL_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class Input:
    """Where an input lives (the userError's field) and how a message names it."""

    path: tuple[str, ...]
    label: str


@dataclass(frozen=True, slots=True)
class Fields:
    """GraphQL paths by default; the command line passes its option names."""

    client: Input = Input(("input", "clientId"), "clientId")
    name: Input = Input(("input", "name"), "name")
    scopes: Input = Input(("input", "scopes"), "scopes")
    webhook_url: Input = Input(("input", "webhookUrl"), "webhookUrl")
    remove_webhook: Input = Input(("input", "removeWebhook"), "removeWebhook")
    redirect_uris: Input = Input(("input", "redirectUris"), "redirectUris")
    version: Input = Input(("input", "expectedVersion"), "expectedVersion")


GRAPHQL = Fields()
CLI = Fields(client=Input(("client",), "CLIENT"), name=Input(("name",), "--name"),
             scopes=Input(("scope",), "--scope"), webhook_url=Input(("webhook-url",), "--webhook-url"),
             remove_webhook=Input(("webhook-url",), "--no-webhook-url"),
             redirect_uris=Input(("redirect-uri",), "--redirect-uri"), version=Input(("version",), "--version"))


@dataclass(frozen=True, slots=True)
class OAuthClientView:
    id: uuid.UUID
    client_id: str
    name: str
    organization_id: uuid.UUID
    organization_kind: OrganizationKind
    staff_app: bool  # registered with redirect URIs: people sign in through it
    authentication: str  # client_secret, private_key_jwt or pkce
    scopes: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    webhook_url: str | None
    has_webhook_secret: bool
    active: bool
    created_at: datetime | None
    version: int


@dataclass(frozen=True, slots=True)
class ClientFilter:
    organization_id: uuid.UUID | None = None
    active: bool | None = None


@dataclass(frozen=True, slots=True)
class ClientChange:
    """What to change; None leaves it as it is."""

    name: str | None = None
    scopes: Sequence[str] | None = None
    webhook_url: str | None = None
    remove_webhook: bool = False
    redirect_uris: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class CheckedChange:
    name: str | None = None
    scopes: tuple[str, ...] | None = None
    redirect_uris: tuple[str, ...] | None = None
    webhook_url: str | None = None
    remove_webhook: bool = False
    narrowed: bool = False  # a scope taken away: the client's refresh-token families end


@dataclass(frozen=True, slots=True)
class UpdatedClient:
    client: OAuthClientView
    webhook_secret: str | None = field(default=None, repr=False)  # a first webhook URL's signing secret


class OAuthClientStore(Protocol):
    async def page(self, *, filter: ClientFilter, page: PageRequest) -> Page[OAuthClientView]: ...

    async def clients(self, ids: Sequence[uuid.UUID], *, lock: bool) -> dict[uuid.UUID, OAuthClientView]: ...

    def webhook_url_problem(self, url: str) -> str | None:
        """Why webhooks may not go to this URL, or None (the URL policy of partners/webhooks.py)."""

    async def apply(self, client: OAuthClientView, change: CheckedChange) -> str | None:
        """Write the change (and end sign-in sessions if narrowed); a new webhook secret if one was made."""

    async def audit(self, action: str, record_id: str) -> None: ...


# ----------------------------------------------------------------------------- rules shared by both callers


def check_redirect_uri(url: str, *, fields: Fields = GRAPHQL) -> str:
    """https, or plain http to this machine (RFC 8252 loopback redirects of native apps)."""
    url = url.strip()
    parts = urlsplit(url)
    label = fields.redirect_uris.label
    if not parts.scheme or not parts.netloc or parts.fragment or len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"{label} must be absolute URLs without a fragment, e.g. "
                           "https://app.example.org/callback.", field=fields.redirect_uris.path)
    loopback = parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK
    if parts.scheme == "https" or loopback:
        return url
    raise InvalidInput(f"{label} must use https (or http to 127.0.0.1 for a native app).",
                       field=fields.redirect_uris.path)


def check_allowed_scopes(values: Sequence[str], *, kind: OrganizationKind, staff_app: bool,
                         fields: Fields = GRAPHQL) -> tuple[str, ...]:
    """Scopes a client may ever ask for; a partner system's never exceed its organization's ceiling.
    A refused scope is named (it is the operator's own configuration, not survivor data)."""
    label, path = fields.scopes.label, fields.scopes.path
    if not values:
        raise InvalidInput(f"Give at least one {label}.", field=path)
    parsed: list[Scope] = []
    for position, value in enumerate(values, start=1):
        try:
            parsed.append(parse_scope(value.strip()))
        except ValueError as exc:  # the value itself is not repeated: it may be anything
            raise InvalidInput(f"{label}: the scope in position {position} is not one: {exc}.", field=path) from None
    context = "user" if staff_app else "system"
    if any(s.context != context for s in parsed):
        raise InvalidInput(f"{label}: this client's scopes must all start with {context}/ (a "
                           f"{'staff login app' if staff_app else 'partner system'}).", field=path)
    if not staff_app:
        beyond = [str(s) for s in parsed if not is_within([s], system_ceiling(kind))]
        if beyond:
            holder = "a partner organization's system" if kind is OrganizationKind.PARTNER else "the NGO's system"
            raise InvalidInput(f"{label} {', '.join(beyond)} is beyond what {holder} may hold (ceiling: "
                               f"{' '.join(SYSTEM_CEILING[kind])}).", field=path)
    return tuple(dict.fromkeys(str(s) for s in parsed))


def check_name(name: str, *, fields: Fields = GRAPHQL) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"{fields.name.label} must be 1 to {MAX_NAME_LENGTH} characters.", field=fields.name.path)
    return name


async def update_client(*, store: OAuthClientStore, client_row_id: uuid.UUID | None, change: ClientChange,
                        expected_version: int | None = None, fields: Fields = GRAPHQL) -> UpdatedClient:
    """Change what is given and keep the rest; every refused input is reported at once. A system's
    access tokens already issued keep their scopes until they expire (at most 300 s)."""
    client = (await store.clients([client_row_id], lock=True)).get(client_row_id) if client_row_id else None
    if client is None:
        raise NotFound("No such OAuth client.", field=fields.client.path)
    if expected_version is not None and expected_version != client.version:
        raise VersionConflict("This client changed since you read it; read it again and retry.",
                              field=fields.version.path)
    checks = FieldChecks()
    name = checks.check(lambda: check_name(change.name or "", fields=fields)) if change.name is not None else None
    uris: tuple[str, ...] | None = None
    if change.redirect_uris is not None:
        uris = checks.check(lambda: _redirect_uris(change.redirect_uris or (), client, fields))
    scopes = None
    if change.scopes is not None:
        scopes = checks.check(lambda: check_allowed_scopes(change.scopes or (), kind=client.organization_kind,
                                                           staff_app=client.staff_app, fields=fields))
    hook = None
    if change.remove_webhook and change.webhook_url is not None:
        checks.check(lambda: _refuse(f"Give {fields.webhook_url.label} or {fields.remove_webhook.label}, not both.",
                                     fields.webhook_url.path))
    elif change.webhook_url is not None:
        hook = checks.check(lambda: _webhook_url(store, change.webhook_url or "", fields))
    checks.done()
    checked = CheckedChange(name=name, scopes=scopes, redirect_uris=uris, webhook_url=hook,
                            remove_webhook=change.remove_webhook,
                            narrowed=scopes is not None and not set(client.scopes) <= set(scopes))
    if checked == CheckedChange():
        raise InvalidInput(f"Give what to change: {fields.name.label}, {fields.scopes.label}, "
                           f"{fields.webhook_url.label}, {fields.remove_webhook.label} or "
                           f"{fields.redirect_uris.label}.", field=fields.client.path)
    secret = await store.apply(client, checked)
    await store.audit("update", to_global_id("OAuthClient", client.id))
    updated = (await store.clients([client.id], lock=False))[client.id]
    return UpdatedClient(client=updated, webhook_secret=secret)


def _refuse(message: str, path: tuple[str, ...]) -> None:
    raise InvalidInput(message, field=path)


def _redirect_uris(values: Sequence[str], client: OAuthClientView, fields: Fields) -> tuple[str, ...]:
    if not client.staff_app:
        raise InvalidInput(f"{fields.redirect_uris.label} applies to staff login apps only; this is a partner "
                           "system.", field=fields.redirect_uris.path)
    if not values:
        raise InvalidInput(f"Give at least one {fields.redirect_uris.label}.", field=fields.redirect_uris.path)
    return tuple(dict.fromkeys(check_redirect_uri(u, fields=fields) for u in values))


def _webhook_url(store: OAuthClientStore, url: str, fields: Fields) -> str:
    problem = store.webhook_url_problem(url)
    if problem is not None:
        raise InvalidInput(f"{fields.webhook_url.label}: {problem}", field=fields.webhook_url.path)
    return url.strip()


# ----------------------------------------------------------------------------- administrators (GraphQL)


def _require(principal: Principal, action: Action) -> None:
    policy.require(principal, Resource.OAUTH_CLIENT, action)
    if not policy.may_administer_clients(principal, action):
        raise Forbidden("Only the NGO's administrators manage OAuth clients.")


async def list_clients(*, store: OAuthClientStore, principal: Principal, filter: ClientFilter,
                       page: PageRequest) -> Page[OAuthClientView]:
    _require(principal, Action.SEARCH)
    return await store.page(filter=filter, page=page)


async def clients_by_id(*, store: OAuthClientStore, principal: Principal,
                        ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, OAuthClientView]:
    """`node(id:)`: administrators only; anyone else sees nothing, as for an unknown id."""
    if not policy.may_administer_clients(principal, Action.READ):
        return {}
    return await store.clients(ids, lock=False)


async def change_client(*, store: OAuthClientStore, principal: Principal, client_row_id: uuid.UUID | None,
                        change: ClientChange, expected_version: int | None) -> UpdatedClient:
    _require(principal, Action.UPDATE)
    return await update_client(store=store, client_row_id=client_row_id, change=change,
                               expected_version=expected_version)
