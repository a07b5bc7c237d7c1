"""Administration, by actor: the NGO's administrator may, every other actor of the matrix is refused.

For `staffUsers`, `oauthClients` and each staff and client mutation: the administrator succeeds;
each of the ten other actors (case managers, supervisor, coordinators, counselors, analyst, both
partner systems, a system even for its own client) gets a top-level FORBIDDEN, no data, nothing
changed in any staff account, password link or OAuth client, and an audit row recording the
refusal. An administrator whose token was narrowed to other scopes is refused the same way (a scope
only narrows a role).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.enums import Role
from tests.factories import Factory, User
from tests.matrix.conftest import ACTORS, Cast, build_cast


@dataclass(frozen=True)
class Operation:
    query: str
    variables: Callable[[Cast, Any], dict[str, Any]]  # given the target: a User, or an OAuthClient id
    succeeded: Callable[[dict[str, Any]], bool]


def _input(**extra: Any) -> Callable[[Cast, User], dict[str, Any]]:
    return lambda cast, target: {"input": {"staffUserId": target.gid, **extra}}


def _changed(name: str, check: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
    return lambda data: data[name]["userErrors"] == [] and check(data[name])


OPERATIONS: dict[str, Operation] = {
    "staffUsers": Operation(
        "query($f: StaffUserFilter) { staffUsers(first: 10, filter: $f) { totalCount edges { node { id email } } } }",
        lambda cast, target: {"f": {"organizationId": cast.orgs["partner"].gid}},
        lambda data: data["staffUsers"]["totalCount"] >= 4 and all(e["node"]["email"]
                                                                   for e in data["staffUsers"]["edges"])),
    "registerStaffUser": Operation(
        """mutation($input: RegisterStaffUserInput!) { registerStaffUser(input: $input) {
           staffUser { id roles } userErrors { field code message } } }""",
        lambda cast, target: {"input": {"organizationId": cast.orgs["partner"].gid, "email": f"new.{target.email}",
                                        "displayName": "New Counselor", "roles": ["COUNSELOR"]}},
        _changed("registerStaffUser", lambda p: p["staffUser"]["roles"] == ["COUNSELOR"])),
    "setStaffRoles": Operation(
        """mutation($input: SetStaffRolesInput!) { setStaffRoles(input: $input) {
           staffUser { id roles } userErrors { field code message } } }""",
        _input(roles=["PARTNER_COORDINATOR", "COUNSELOR"]),
        _changed("setStaffRoles", lambda p: p["staffUser"]["roles"] == ["PARTNER_COORDINATOR", "COUNSELOR"])),
    "updateStaffUser": Operation(
        """mutation($input: UpdateStaffUserInput!) { updateStaffUser(input: $input) {
           staffUser { id displayName } userErrors { field code message } } }""",
        _input(displayName="Corrected Name"),
        _changed("updateStaffUser", lambda p: p["staffUser"]["displayName"] == "Corrected Name")),
    "deactivateStaffUser": Operation(
        """mutation($input: DeactivateStaffUserInput!) { deactivateStaffUser(input: $input) {
           staffUser { id active } openReferralCount userErrors { field code message } } }""",
        _input(reason="Left the centre."),
        _changed("deactivateStaffUser", lambda p: p["staffUser"]["active"] is False)),
    "reactivateStaffUser": Operation(
        """mutation($input: ReactivateStaffUserInput!) { reactivateStaffUser(input: $input) {
           staffUser { id active } userErrors { field code message } } }""",
        _input(), _changed("reactivateStaffUser", lambda p: p["staffUser"]["active"] is True)),
    "issuePasswordReset": Operation(
        """mutation($input: IssuePasswordResetInput!) { issuePasswordReset(input: $input) {
           staffUser { id } link userErrors { field code message } } }""",
        _input(), _changed("issuePasswordReset", lambda p: "/account/password?token=" in p["link"])),
    "oauthClients": Operation(
        "query($f: OAuthClientFilter) { oauthClients(first: 10, filter: $f) { totalCount "
        "edges { node { id clientId scopes kind organization { id } } } } }",
        lambda cast, target: {"f": {"organizationId": cast.orgs["partner"].gid}},
        lambda data: data["oauthClients"]["totalCount"] >= 1 and all(
            e["node"]["kind"] == "PARTNER_SYSTEM" for e in data["oauthClients"]["edges"])),
    "updateOAuthClient": Operation(
        """mutation($input: UpdateOAuthClientInput!) { updateOAuthClient(input: $input) {
           client { id name scopes } userErrors { field code message } } }""",
        lambda cast, target: {"input": {"clientId": target, "name": "Renamed system",
                                        "scopes": ["system/Referral.rus"]}},
        _changed("updateOAuthClient", lambda p: p["client"]["name"] == "Renamed system"
                 and p["client"]["scopes"] == ["system/Referral.rus"])),
}
QUERIES = ("staffUsers", "oauthClients")
REFUSED = [actor for actor in ACTORS if actor != "admin"]


@pytest.fixture(scope="module")
async def cast(matrix_factory: Factory, owner_engine: AsyncEngine) -> Cast:
    return await build_cast(matrix_factory, owner_engine)


async def target_for(cast: Cast, name: str, actor: str = "admin") -> Any:
    """A counselor of the partner of its own, deactivated first when the operation reactivates; for
    a client operation a partner system of its own (the calling system's own client, for a system)."""
    if name == "updateOAuthClient":
        return cast.client_gids[actor] if actor in cast.client_gids else \
            (await cast.factory.oauth_client(cast.orgs["partner"])).id
    target = await cast.factory.user(cast.orgs["partner"], Role.COUNSELOR)
    if name == "reactivateStaffUser":
        async with cast.engine.begin() as connection:
            await connection.execute(text("UPDATE staff_user SET active = false WHERE id = :id"), {"id": target.id})
    return target


async def accounts(cast: Cast) -> list[tuple[Any, ...]]:
    """Every staff account of the cast's organizations with their password links, and every OAuth
    client, comparable."""
    orgs = {"orgs": [org.id for org in cast.orgs.values()]}
    async with cast.engine.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT u.id, u.roles, u.active, u.version, u.signed_out_at, "
            "       (SELECT count(*) FROM staff_password_link l WHERE l.staff_user_id = u.id) "
            "FROM staff_user u WHERE u.organization_id = ANY(:orgs) ORDER BY u.id"), orgs)).all()
        rows += (await connection.execute(text(
            "SELECT id, name, allowed_scopes, redirect_uris, webhook_url, webhook_secret_enc, disabled, version "
            "FROM oauth_client WHERE organization_id = ANY(:orgs) ORDER BY id"), orgs)).all()
    return [tuple(row) for row in rows]


async def refusals(cast: Cast, actor: str, name: str) -> int:
    who = cast.users[actor].gid if actor in cast.users else f"client:{cast.clients[actor]}"
    async with cast.engine.connect() as connection:
        found = await connection.scalar(text(
            "SELECT count(*) FROM audit_event WHERE actor = :who AND action = :name AND outcome = 'denied' "
            "AND purpose = 'FORBIDDEN'"), {"who": who, "name": f"query.{name}" if name in QUERIES else name})
    return int(found or 0)


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_the_administrator_may(cast: Cast, name: str) -> None:
    operation = OPERATIONS[name]
    body = await cast.gql("admin", operation.query, operation.variables(cast, await target_for(cast, name)))
    assert not body.get("errors"), body
    assert operation.succeeded(body["data"]), body


@pytest.mark.parametrize("actor", REFUSED)
@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_every_other_actor_is_refused_and_nothing_changes(cast: Cast, name: str, actor: str) -> None:
    operation = OPERATIONS[name]
    target = await target_for(cast, name, actor)
    before, audited = await accounts(cast), await refusals(cast, actor, name)
    body = await cast.gql(actor, operation.query, operation.variables(cast, target))
    assert [e["extensions"]["code"] for e in body.get("errors") or []] == ["FORBIDDEN"], body
    assert (body.get("data") or {}).get(name) is None, body
    assert await accounts(cast) == before
    assert await refusals(cast, actor, name) == audited + 1


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_an_administrator_token_without_the_admin_scopes_is_refused(cast: Cast, name: str) -> None:
    operation = OPERATIONS[name]
    token = await cast.factory.token(cast.users["admin"], scopes=["user/Organization.cruds", "user/AuditEvent.rs"])
    target = await target_for(cast, name)
    before = await accounts(cast)
    body = await cast.factory.gql(token, operation.query, operation.variables(cast, target), expect_errors=True)
    assert [e["extensions"]["code"] for e in body.get("errors") or []] == ["FORBIDDEN"], body
    assert await accounts(cast) == before
