"""Builders with safe defaults and unique names, so each test owns its data."""

from __future__ import annotations

import functools
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from auth import keys as signing_keys
from auth.clients import RegisteredClient, register_client
from auth.tokens import mint_access_token
from config.settings import Settings
from db.crypto import MasterKeys
from db.directory_writes import SqlDirectoryWriter
from db.engine import Db
from db.staff import users as staff_users
from domain.directory import OrganizationDetails
from domain.enums import OrganizationKind, Role, ServiceType
from domain.ids import to_global_id
from domain.scopes import SYSTEM_CEILING, default_scopes
from partners import directory
from partners.webhooks import webhook_url_problem


def unique(prefix: str) -> str:
    return f"{prefix} {secrets.token_hex(4)}"


@dataclass
class Org:
    id: uuid.UUID
    name: str
    kind: OrganizationKind

    @property
    def gid(self) -> str:
        return to_global_id("Organization", self.id)


@dataclass
class User:
    id: uuid.UUID
    org: Org
    email: str
    name: str
    roles: tuple[Role, ...]

    @property
    def gid(self) -> str:
        return to_global_id("StaffUser", self.id)


@dataclass
class Factory:
    engine: AsyncEngine
    settings: Settings
    client: httpx.AsyncClient
    app: Any = None  # the application behind `client`, for tests that switch its engines
    _tokens: dict[str, str] = field(default_factory=dict)

    async def org(self, *, kind: OrganizationKind = OrganizationKind.PARTNER, name: str | None = None,
                  counties: Sequence[str] = ("001",), languages: Sequence[str] = ("sw", "en"),
                  services: Sequence[str] = ("PSYCHOSOCIAL_COUNSELING",), min_age: int | None = None,
                  max_age: int | None = None) -> Org:
        name = name or unique("Org")
        async def unaudited(action: str, record_id: str) -> None:
            """Test scaffolding, like rows written directly: no audit row to count in the tests."""

        async with self.engine.begin() as connection:
            org_id = await directory.add_organization(
                writer=SqlDirectoryWriter(Db(connection), unaudited),
                details=OrganizationDetails(name=name, kind=kind, counties=tuple(counties),
                                                      languages=tuple(languages), min_age=min_age, max_age=max_age),
                services=[ServiceType(s) for s in services])
        return Org(id=org_id, name=name, kind=kind)

    async def ngo(self, **kwargs: Any) -> Org:
        return await self.org(kind=OrganizationKind.REFERRING_NGO, services=(), **kwargs)

    async def user(self, org: Org, *roles: Role, name: str | None = None,
                   password_hash: str | None = None) -> User:
        name = name or unique("Staff")
        email = f"{secrets.token_hex(6)}@example.org"
        async with self.engine.begin() as connection:
            user_id = (await connection.execute(insert(staff_users).values(
                organization_id=org.id, email=email, display_name=name, roles=[r.value for r in roles],
                password_hash=password_hash,
            ).returning(staff_users.c.id))).scalar_one()
        return User(id=user_id, org=org, email=email, name=name, roles=roles)

    async def _signing_key(self) -> Any:
        master = MasterKeys.parse(self.settings.master_keys.get_secret_value())
        async with self.engine.begin() as connection:
            return (await signing_keys.load(connection, master)).current

    async def token(self, user: User, *, scopes: Sequence[str] | None = None, ttl: int = 900,
                    extra: dict[str, Any] | None = None) -> str:
        """A staff access token minted with Pamoja's current signing key, as /oauth/token would."""
        key = await self._signing_key()
        token, _ = mint_access_token(
            key, issuer=self.settings.issuer, audience=self.settings.audience, subject=user.gid,
            client_id="pamoja-tests", organization=user.org.gid,
            scopes=list(scopes) if scopes is not None else list(default_scopes(user.roles)),
            roles=[r.value for r in user.roles], ttl_seconds=ttl, extra=extra,
        )
        return token

    async def system_token(self, org: Org, client_id: str, *, scopes: Sequence[str] | None = None) -> str:
        """A partner-system token; the client row must exist (see oauth_client factory in tests)."""
        key = await self._signing_key()
        token, _ = mint_access_token(
            key, issuer=self.settings.issuer, audience=self.settings.audience, subject=client_id,
            client_id=client_id, organization=org.gid,
            scopes=list(scopes) if scopes is not None else list(SYSTEM_CEILING[org.kind]),
            ttl_seconds=300,
        )
        return token

    async def oauth_client(self, org: Org, *, scopes: Sequence[str] | None = None, jwks: Any = None,
                           webhook_url: str | None = None, redirect_uris: Sequence[str] = (),
                           confidential: bool = False, name: str | None = None) -> RegisteredClient:
        """An OAuth client registered as `pamoja client add` does (partner system, or staff app with redirects)."""
        if scopes is None:
            scopes = ["user/*.cruds"] if redirect_uris else list(SYSTEM_CEILING[org.kind])
        master = MasterKeys.parse(self.settings.master_keys.get_secret_value())
        async with self.engine.begin() as connection:
            return await register_client(
                connection, master, organization_gid=org.gid, name=name or unique("System"), scopes=scopes,
                jwks=jwks, webhook_url=webhook_url, redirect_uris=redirect_uris, confidential=confidential,
                url_policy=functools.partial(webhook_url_problem, production=False),
            )

    async def gql_response(self, token: str, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )

    async def gql(self, token: str, query: str, variables: dict[str, Any] | None = None,
                  *, expect_errors: bool = False) -> dict[str, Any]:
        response = await self.gql_response(token, query, variables)
        assert response.status_code in (200, 400, 422), response.text
        body: dict[str, Any] = response.json()
        if not expect_errors:
            assert not body.get("errors"), body.get("errors")
        return body
