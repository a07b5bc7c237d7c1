"""OAuth clients, for the NGO's administrators: change a partner system's scopes or webhook URL, a staff
app's redirect URIs, a client's name (domain/use_cases/oauth_clients.py). Registering, rotating a
secret and disabling stay with the operator's `pamoja client` commands: they hand out credentials."""

from __future__ import annotations

import functools
import uuid

import strawberry

from api.graphql.context import Context
from api.graphql.errors import UserError
from api.graphql.mutations.base import decode_id, run_mutation
from api.graphql.types.oauth_client import OAuthClient
from auth.clients import ClientRegistry
from domain.use_cases import oauth_clients
from domain.use_cases.oauth_clients import ClientChange
from domain.use_cases.staff_admin import AUDIT_PURPOSE
from partners.webhooks import webhook_url_problem


def client_registry(context: Context) -> ClientRegistry:
    """Changes to clients are audited as the calling administrator."""
    async def audit(action: str, record_id: str) -> None:
        await context.unit.audit(action=action, record_type="OAuthClient", record_id=record_id, outcome="allowed",
                                 purpose=AUDIT_PURPOSE)

    state = context.state
    return ClientRegistry(context.db, state.master_keys, audit=audit,
                          url_policy=functools.partial(webhook_url_problem, production=state.settings.is_production))


async def load_client(context: Context, client_row_id: uuid.UUID) -> OAuthClient | None:
    found = await oauth_clients.clients_by_id(store=client_registry(context), principal=context.principal,
                                              ids=[client_row_id])
    return OAuthClient.from_view(found[client_row_id]) if client_row_id in found else None


@strawberry.input(description="Change what is given; a field left out stays as it is. No idempotencyKey: "
                              "sending the same change again leaves the client as it is, and a first webhook "
                              "URL's signing secret is shown once, never kept to answer a retry.")
class UpdateOAuthClientInput:
    client_id: strawberry.ID = strawberry.field(description="The OAuthClient id (oauthClients lists them), not "
                                                            "the client_id string.")
    name: str | None = strawberry.field(default=None, description="1 to 200 characters.")
    scopes: list[str] | None = strawberry.field(
        default=None, description="The complete new set, e.g. [\"system/Referral.rus\"]: system/ scopes for a "
                                  "partner system, within its organization's ceiling; user/ scopes for a staff "
                                  "app. Taking a scope away ends the client's sign-in sessions.")
    webhook_url: str | None = strawberry.field(
        default=None, description="Partner systems: where webhooks go from now on, https (http to 127.0.0.1 "
                                  "outside production). A first URL gets a new signing secret, in the payload.")
    remove_webhook: bool = strawberry.field(default=False, description="true: send this client no more "
                                                                       "webhooks (not together with webhookUrl).")
    redirect_uris: list[str] | None = strawberry.field(
        default=None, description="Staff apps: the complete new set of absolute https URLs (http to 127.0.0.1 "
                                  "for a native app), without fragments.")
    expected_version: int | None = None


@strawberry.type
class UpdateOAuthClientPayload:
    client: OAuthClient | None
    webhook_secret: str | None = strawberry.field(
        description="Only when this change gave the client its first webhook URL: the Standard Webhooks signing "
                    "secret (whsec_…). Shown once; hand it to the partner now.")
    user_errors: list[UserError]


@strawberry.type
class ClientMutations:
    @strawberry.mutation(name="updateOAuthClient",
                         description="Change an OAuth client's name, scopes, webhook URL or redirect URIs "
                                     "(administrators with the OAuthClient scope); audited.")
    async def update_oauth_client(self, info: strawberry.Info,
                                  input: UpdateOAuthClientInput) -> UpdateOAuthClientPayload:
        secrets: list[str] = []

        async def execute(context: Context) -> uuid.UUID:
            updated = await oauth_clients.change_client(
                store=client_registry(context), principal=context.principal,
                client_row_id=decode_id(input.client_id, "OAuthClient"),
                change=ClientChange(name=input.name, scopes=input.scopes, webhook_url=input.webhook_url,
                                    remove_webhook=input.remove_webhook, redirect_uris=input.redirect_uris),
                expected_version=input.expected_version)
            if updated.webhook_secret is not None:
                secrets.append(updated.webhook_secret)
            return updated.client.id

        client, errors = await run_mutation(info, operation="updateOAuthClient", record_type="OAuthClient",
                                            input=input, execute=execute, load=load_client)
        return UpdateOAuthClientPayload(client=client, webhook_secret=secrets[-1] if client and secrets else None,
                                        user_errors=errors)
