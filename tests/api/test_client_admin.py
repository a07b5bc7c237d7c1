"""OAuth clients as the NGO's administrator runs them through GraphQL (issue 11.2): list and find them,
change a partner system's scopes within its ceiling and its webhook URL, a staff app's redirect URIs,
any client's name. Refusals name the field and how to fix it, all at once. Who else is refused is
tests/matrix/test_staff_admin_by_actor.py; the operator's command is tests/oauth/test_cli.py."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.enums import Role
from domain.scopes import SYSTEM_CEILING
from tests.api.test_staff_lifecycle import readme_example
from tests.factories import Factory
from tests.oauth.test_staff_login import HASH, REDIRECT, Staff, full_login, refresh
from tests.oauth_helpers import http_from

CLIENT = ("id clientId name kind authentication scopes redirectUris webhookUrl active version createdAt "
          "organization { id }")
LIST = f"""query($f: OAuthClientFilter, $first: Int) {{ oauthClients(first: $first, filter: $f) {{ totalCount
  edges {{ node {{ {CLIENT} }} }} }} }}"""
UPDATE = f"""mutation($input: UpdateOAuthClientInput!) {{ updateOAuthClient(input: $input) {{
  client {{ {CLIENT} }} webhookSecret userErrors {{ field code message }} }} }}"""


async def admin_token(factory: Factory) -> str:
    return await factory.token(await factory.user(await factory.ngo(), Role.ADMIN))


async def update(factory: Factory, token: str, **fields: Any) -> dict[str, Any]:
    body = await factory.gql(token, UPDATE, {"input": fields})
    result: dict[str, Any] = body["data"]["updateOAuthClient"]
    return result


async def test_the_administrator_lists_clients_by_organization_and_status_without_secrets(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    token = await admin_token(factory)
    partner = await factory.org()
    system = await factory.oauth_client(partner, name="Tumaini case system")
    app = await factory.oauth_client(partner, redirect_uris=[REDIRECT], name="Tumaini staff app")
    gone = await factory.oauth_client(partner, name="Old system")
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE oauth_client SET disabled = true WHERE client_id = :c"),
                                 {"c": gone.client_id})
    body = await factory.gql(token, LIST, {"f": {"organizationId": partner.gid, "active": True}})
    found = {e["node"]["clientId"]: e["node"] for e in body["data"]["oauthClients"]["edges"]}
    assert set(found) == {system.client_id, app.client_id}
    assert body["data"]["oauthClients"]["totalCount"] == 2
    assert found[system.client_id]["kind"] == "PARTNER_SYSTEM"
    assert found[system.client_id]["authentication"] == "CLIENT_SECRET"
    assert found[system.client_id]["scopes"] == list(SYSTEM_CEILING[partner.kind])
    assert found[system.client_id]["organization"]["id"] == partner.gid
    assert found[app.client_id]["kind"] == "STAFF_APP" and found[app.client_id]["authentication"] == "PKCE"
    assert found[app.client_id]["redirectUris"] == [REDIRECT]
    disabled = await factory.gql(token, LIST, {"f": {"organizationId": partner.gid, "active": False}})
    assert [e["node"]["clientId"] for e in disabled["data"]["oauthClients"]["edges"]] == [gone.client_id]
    # node(id:) finds the same client for the administrator.
    node = await factory.gql(token, "query($id: ID!) { node(id: $id) { ... on OAuthClient { clientId } } }",
                             {"id": system.id})
    assert node["data"]["node"] == {"clientId": system.client_id}
    # Nothing in the schema can show a secret of a client.
    fields = await factory.gql(token, '{ __type(name: "OAuthClient") { fields { name } } }')
    assert not [f["name"] for f in fields["data"]["__type"]["fields"] if "secret" in f["name"].lower()]


async def test_a_counselor_cannot_find_a_client_through_node(factory: Factory) -> None:
    partner = await factory.org()
    system = await factory.oauth_client(partner)
    token = await factory.token(await factory.user(partner, Role.COUNSELOR))
    body = await factory.gql(token, "query($id: ID!) { node(id: $id) { id } }", {"id": system.id})
    assert body["data"]["node"] is None


async def test_scopes_change_within_the_ceiling_and_the_change_is_audited(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    token = await admin_token(factory)
    partner = await factory.org()
    system = await factory.oauth_client(partner)
    result = await update(factory, token, clientId=system.id, scopes=["system/Referral.rus", " system/Referral.rus",
                                                                       "system/Organization.rs"], name=" Tumaini ")
    assert result["userErrors"] == []
    client = result["client"]
    assert client["scopes"] == ["system/Referral.rus", "system/Organization.rs"]
    assert client["name"] == "Tumaini" and client["version"] == 2 and result["webhookSecret"] is None
    async with owner_engine.connect() as connection:
        audited = (await connection.execute(text(
            "SELECT action, purpose, outcome FROM audit_event WHERE record_type = 'OAuthClient' AND record_id = :id"),
            {"id": system.id})).all()
        stored = await connection.scalar(text("SELECT allowed_scopes FROM oauth_client WHERE client_id = :c"),
                                         {"c": system.client_id})
    assert [tuple(row) for row in audited] == [("update", "STAFF_ADMIN", "allowed")]
    assert stored == ["system/Referral.rus", "system/Organization.rs"]


async def test_a_scope_beyond_the_ceiling_is_refused_naming_it_and_the_ceiling(factory: Factory) -> None:
    token = await admin_token(factory)
    partner = await factory.org()
    system = await factory.oauth_client(partner)
    result = await update(factory, token, clientId=system.id, scopes=["system/Survivor.cruds"])
    assert result["client"] is None
    [error] = result["userErrors"]
    assert error["field"] == ["input", "scopes"] and error["code"] == "INVALID"
    assert "system/Survivor.cruds is beyond what a partner organization's system may hold" in error["message"]
    assert " ".join(SYSTEM_CEILING[partner.kind]) in error["message"]
    for refused in (["user/Referral.rs"], [], ["system/Nothing.rs"]):
        again = await update(factory, token, clientId=system.id, scopes=refused)
        assert [e["field"] for e in again["userErrors"]] == [["input", "scopes"]], again


async def test_every_refused_field_comes_back_at_once_without_repeating_what_was_sent(factory: Factory) -> None:
    token = await admin_token(factory)
    system = await factory.oauth_client(await factory.org())
    sent = "Wanjiru +254712345678"
    result = await update(factory, token, clientId=system.id, name="  ", scopes=[sent],
                          redirectUris=["https://app.example.org/callback"], webhookUrl="ftp://hooks.example.org")
    assert result["client"] is None
    assert sorted(tuple(e["field"]) for e in result["userErrors"]) == sorted(
        [("input", "name"), ("input", "scopes"), ("input", "redirectUris"), ("input", "webhookUrl")])
    assert not any(sent in e["message"] or "ftp://" in e["message"] for e in result["userErrors"])
    nothing = await update(factory, token, clientId=system.id)
    assert [e["field"] for e in nothing["userErrors"]] == [["input", "clientId"]]
    assert "Give what to change" in nothing["userErrors"][0]["message"]


async def test_a_first_webhook_url_brings_its_secret_once_and_removal_stops_webhooks(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    token = await admin_token(factory)
    system = await factory.oauth_client(await factory.org())
    first = await update(factory, token, clientId=system.id, webhookUrl="https://hooks.tumaini.example/pamoja")
    assert first["userErrors"] == [] and first["client"]["webhookUrl"] == "https://hooks.tumaini.example/pamoja"
    assert first["webhookSecret"].startswith("whsec_")
    moved = await update(factory, token, clientId=system.id, webhookUrl="https://hooks2.tumaini.example/pamoja")
    assert moved["webhookSecret"] is None  # the partner keeps verifying with the secret it has
    async with owner_engine.connect() as connection:
        kept = await connection.scalar(text("SELECT webhook_secret_enc IS NOT NULL FROM oauth_client "
                                            "WHERE client_id = :c"), {"c": system.client_id})
    assert kept is True
    both = await update(factory, token, clientId=system.id, webhookUrl="https://x.example/h", removeWebhook=True)
    assert [e["field"] for e in both["userErrors"]] == [["input", "webhookUrl"]]
    removed = await update(factory, token, clientId=system.id, removeWebhook=True)
    assert removed["client"]["webhookUrl"] is None
    async with owner_engine.connect() as connection:
        secret = await connection.scalar(text("SELECT webhook_secret_enc FROM oauth_client WHERE client_id = :c"),
                                         {"c": system.client_id})
    assert secret is None


async def test_a_stale_version_and_an_unknown_client_are_refused(factory: Factory) -> None:
    token = await admin_token(factory)
    system = await factory.oauth_client(await factory.org())
    stale = await update(factory, token, clientId=system.id, name="New", expectedVersion=7)
    assert [(e["field"], e["code"]) for e in stale["userErrors"]] == [(["input", "expectedVersion"],
                                                                      "VERSION_CONFLICT")]
    for unknown in ("T0F1dGhDbGllbnQ6bm90aGluZw", system.client_id):  # a broken id; a client_id, not the id
        missing = await update(factory, token, clientId=unknown, name="New")
        assert [(e["field"], e["code"]) for e in missing["userErrors"]] == [(["input", "clientId"], "NOT_FOUND")]


async def test_narrowing_a_staff_apps_scopes_ends_its_sign_in_sessions(factory: Factory, app: FastAPI) -> None:
    token = await admin_token(factory)
    ngo = await factory.ngo()
    user = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    staff_app = await factory.oauth_client(ngo, redirect_uris=[REDIRECT], scopes=["user/*.cruds"])
    async with http_from(app) as http:
        tokens = await full_login(http, Staff(user=user, app_client=staff_app))
        moved = await update(factory, token, clientId=staff_app.id,
                             redirectUris=[REDIRECT, "http://127.0.0.1:8765/callback"])
        assert moved["client"]["redirectUris"] == [REDIRECT, "http://127.0.0.1:8765/callback"]
        refused = await update(factory, token, clientId=staff_app.id, redirectUris=["http://app.example.org/cb"])
        assert [e["field"] for e in refused["userErrors"]] == [["input", "redirectUris"]]
        renewed = await refresh(http, staff_app.client_id, tokens["refresh_token"])
        assert renewed.status_code == 200, renewed.text  # new redirect URIs end no session
        narrowed = await update(factory, token, clientId=staff_app.id, scopes=["user/Referral.rs"])
        assert narrowed["client"]["scopes"] == ["user/Referral.rs"]
        ended = await refresh(http, staff_app.client_id, renewed.json()["refresh_token"])
        assert ended.status_code == 400 and ended.json()["error"] == "invalid_grant"


async def test_the_readme_client_operations_run_as_written(factory: Factory) -> None:
    token = await admin_token(factory)
    partner = await factory.org()
    system = await factory.oauth_client(partner, name="Tumaini case system")
    listed = await factory.gql(token, readme_example("clients-of-a-partner"), {"org": partner.gid})
    [node] = [e["node"] for e in listed["data"]["oauthClients"]["edges"]]
    assert node["clientId"] == system.client_id and node["kind"] == "PARTNER_SYSTEM"
    moved = await factory.gql(token, readme_example("client-webhook"), {"id": node["id"], "version": node["version"]})
    result = moved["data"]["updateOAuthClient"]
    assert result["userErrors"] == [] and result["webhookSecret"].startswith("whsec_")
    assert result["client"]["webhookUrl"] == "https://hooks.tumaini.example/pamoja"
