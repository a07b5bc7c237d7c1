"""OAuth clients as the NGO's administrators see them: never a secret, nor whether one leaked."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.graphql.relay import Node
from domain.ids import to_global_id
from domain.use_cases.oauth_clients import OAuthClientView

if TYPE_CHECKING:
    from api.graphql.types.organization import Organization

OrganizationRef = Annotated["Organization", strawberry.lazy("api.graphql.types.organization")]


@strawberry.enum(description="What a client is, which follows from how it was registered.")
class OAuthClientKind(Enum):
    PARTNER_SYSTEM = strawberry.enum_value("PARTNER_SYSTEM", description="A system calling with client "
                                                                         "credentials (system/ scopes).")
    STAFF_APP = strawberry.enum_value("STAFF_APP", description="An app people sign in through (redirect URIs, "
                                                               "user/ scopes).")


@strawberry.enum(description="How the client proves who it is at the token endpoint.")
class ClientAuthentication(Enum):
    CLIENT_SECRET = strawberry.enum_value("client_secret", description="A secret (client_secret_basic or _post).")
    PRIVATE_KEY_JWT = strawberry.enum_value("private_key_jwt", description="A signed assertion checked against "
                                                                           "the registered JWKS.")
    PKCE = strawberry.enum_value("pkce", description="A public staff app: PKCE only, no secret.")


@strawberry.type(description="A partner system or staff login app registered with Pamoja (administrators with "
                              "the OAuthClient scope). Secrets are never shown: `pamoja client rotate-secret` "
                              "issues a new one.")
class OAuthClient(Node):
    id: strawberry.ID
    client_id: str = strawberry.field(description="What the client sends as client_id.")
    name: str
    kind: OAuthClientKind
    authentication: ClientAuthentication
    scopes: list[str] = strawberry.field(description="The most the client may ask for.")
    redirect_uris: list[str] = strawberry.field(description="Staff apps: where sign-in may return to.")
    webhook_url: str | None = strawberry.field(description="Where its organization's webhooks go, if anywhere.")
    active: bool = strawberry.field(description="False once disabled (`pamoja client disable`).")
    created_at: datetime | None
    version: int = strawberry.field(description="Send as expectedVersion to updateOAuthClient.")
    organization_id: strawberry.Private[object]

    @strawberry.field
    async def organization(self, info: strawberry.Info) -> OrganizationRef:
        from api.graphql.types.organization import Organization

        return Organization.from_view(await info.context.loaders.organization_ref.load(self.organization_id))

    @classmethod
    def from_view(cls, view: OAuthClientView) -> OAuthClient:
        return cls(id=strawberry.ID(to_global_id("OAuthClient", view.id)), client_id=view.client_id, name=view.name,
                   kind=OAuthClientKind.STAFF_APP if view.staff_app else OAuthClientKind.PARTNER_SYSTEM,
                   authentication=ClientAuthentication(view.authentication), scopes=list(view.scopes),
                   redirect_uris=list(view.redirect_uris), webhook_url=view.webhook_url, active=view.active,
                   created_at=view.created_at, version=view.version, organization_id=view.organization_id)


@strawberry.input
class OAuthClientFilter:
    organization_id: strawberry.ID | None = None
    active: bool | None = strawberry.field(default=None, description="true: clients in use only; false: disabled "
                                                                     "ones only.")
