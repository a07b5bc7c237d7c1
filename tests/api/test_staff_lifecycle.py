"""Staff accounts over their lifetime, as the NGO's administrator runs them through GraphQL (issue 11).

Listing and finding people, roles that must fit the organization's kind, deactivation that cuts a
live token on its next request and hands open referrals to the coordinator, reactivation, and the
one-time link through which a person sets a password once. Every change leaves an audit row naming
the administrator. Who else is refused each of these is tests/matrix/test_staff_admin_by_actor.py.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.enums import OrganizationKind, Role
from domain.ids import to_global_id
from tests.factories import Factory, User
from tests.flows import Network, act, network, referred_case
from tests.oauth.test_staff_login import HASH, PASSWORD, Staff, full_login, read_form, redeem, refresh, sign_in
from tests.oauth_helpers import VIEWER, http_from, pkce, query_of

STAFF = "id displayName roles active deactivatedAt version email deactivationReason organization { id }"
LIST = f"""query($f: StaffUserFilter, $first: Int, $after: String) {{
  staffUsers(first: $first, after: $after, filter: $f) {{ totalCount pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{ {STAFF} }} }} }} }}"""
REGISTER = f"""mutation($input: RegisterStaffUserInput!) {{ registerStaffUser(input: $input) {{
  staffUser {{ {STAFF} }} userErrors {{ field code message }} }} }}"""
SET_ROLES = f"""mutation($input: SetStaffRolesInput!) {{ setStaffRoles(input: $input) {{
  staffUser {{ {STAFF} }} userErrors {{ field code message }} }} }}"""
DEACTIVATE = f"""mutation($input: DeactivateStaffUserInput!) {{ deactivateStaffUser(input: $input) {{
  staffUser {{ {STAFF} }} openReferralCount userErrors {{ field code message }} }} }}"""
REACTIVATE = f"""mutation($input: ReactivateStaffUserInput!) {{ reactivateStaffUser(input: $input) {{
  staffUser {{ {STAFF} }} userErrors {{ field code message }} }} }}"""
RESET = """mutation($input: IssuePasswordResetInput!) { issuePasswordReset(input: $input) {
  staffUser { id } link expiresAt userErrors { field code message } } }"""
NEEDS_ASSIGNMENT = """{ referrals(first: 50, filter: {needsAssignment: true}) { edges { node { id
  assignedCounselor { id active } } } } }"""
REDIRECT = "https://app.pamoja.example/callback"
README = Path(__file__).resolve().parents[2] / "README.md"
NEW_PASSWORD = "a river of red lanterns"


async def admin_of(factory: Factory, net: Network) -> tuple[User, str]:
    admin = await factory.user(net.ngo, Role.ADMIN)
    return admin, await factory.token(admin)


async def payload(factory: Factory, token: str, query: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    body = await factory.gql(token, query, {"input": data})
    result: dict[str, Any] = body["data"][name]
    return result


async def done(factory: Factory, token: str, query: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    result = await payload(factory, token, query, name, data)
    assert result["userErrors"] == [], result
    return result


async def audit_rows(engine: AsyncEngine, record_id: str) -> list[tuple[str, str, str, str | None]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT actor, action, outcome, purpose FROM audit_event WHERE record_id = :id ORDER BY seq"),
            {"id": record_id})).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def ask(http: httpx.AsyncClient, token: str, query: str = VIEWER) -> httpx.Response:
    return await http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})


# ----------------------------------------------------------------------------- finding people


async def test_an_admin_lists_and_finds_staff_by_organization_role_state_and_search(factory: Factory) -> None:
    net = await network(factory)
    _, admin = await admin_of(factory, net)
    partner = {"f": {"organizationId": net.partner.gid}}
    everyone = (await factory.gql(admin, LIST, partner))["data"]["staffUsers"]
    assert everyone["totalCount"] == 3
    assert sorted(e["node"]["email"] for e in everyone["edges"]) == \
        sorted([net.coordinator.email, net.counselor.email, net.other_counselor.email])
    assert [e["node"]["email"] for e in everyone["edges"]] == sorted(e["node"]["email"] for e in everyone["edges"])

    counselors = await factory.gql(admin, LIST, {"f": {"organizationId": net.partner.gid, "role": "COUNSELOR"}})
    assert {e["node"]["id"] for e in counselors["data"]["staffUsers"]["edges"]} == \
        {net.counselor.gid, net.other_counselor.gid}
    by_email = await factory.gql(admin, LIST, {"f": {"search": net.counselor.email[:9].upper()}})
    assert [e["node"]["id"] for e in by_email["data"]["staffUsers"]["edges"]] == [net.counselor.gid]
    by_name = await factory.gql(admin, LIST, {"f": {"search": net.coordinator.name.split()[-1].upper()}})
    assert [e["node"]["id"] for e in by_name["data"]["staffUsers"]["edges"]] == [net.coordinator.gid]
    wildcard = await factory.gql(admin, LIST, {"f": {"organizationId": net.partner.gid, "search": "%"}})
    assert wildcard["data"]["staffUsers"]["totalCount"] == 0

    first = (await factory.gql(admin, LIST, {**partner, "first": 2}))["data"]["staffUsers"]
    assert first["pageInfo"]["hasNextPage"] and len(first["edges"]) == 2
    rest = (await factory.gql(admin, LIST, {**partner, "first": 2, "after": first["pageInfo"]["endCursor"]}))
    assert [e["node"]["email"] for e in first["edges"] + rest["data"]["staffUsers"]["edges"]] == \
        [e["node"]["email"] for e in everyone["edges"]]

    await done(factory, admin, DEACTIVATE, "deactivateStaffUser", {"staffUserId": net.other_counselor.gid})
    inactive = await factory.gql(admin, LIST, {"f": {"organizationId": net.partner.gid, "active": False}})
    assert [e["node"]["id"] for e in inactive["data"]["staffUsers"]["edges"]] == [net.other_counselor.gid]
    active = await factory.gql(admin, LIST, {"f": {"organizationId": net.partner.gid, "active": True}})
    assert active["data"]["staffUsers"]["totalCount"] == 2


async def test_the_email_and_deactivation_reason_are_shown_to_administrators_only(factory: Factory) -> None:
    net = await network(factory)
    _, admin = await admin_of(factory, net)
    await done(factory, admin, DEACTIVATE, "deactivateStaffUser",
               {"staffUserId": net.other_counselor.gid, "reason": "Moved to Nairobi."})
    node = f"query($id: ID!) {{ node(id: $id) {{ ... on StaffUser {{ {STAFF} }} }} }}"
    seen = (await factory.gql(admin, node, {"id": net.other_counselor.gid}))["data"]["node"]
    assert seen["email"] == net.other_counselor.email and seen["deactivationReason"] == "Moved to Nairobi."
    assert seen["active"] is False and seen["deactivatedAt"]
    colleague = (await factory.gql(net.token("coordinator"), node, {"id": net.other_counselor.gid}))["data"]["node"]
    assert colleague["id"] == net.other_counselor.gid and colleague["active"] is False
    assert colleague["email"] is None and colleague["deactivationReason"] is None


# ----------------------------------------------------------------------------- registering and roles


async def test_an_admin_registers_a_person_without_a_password_and_it_is_audited(factory: Factory,
                                                                                 owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    admin_user, admin = await admin_of(factory, net)
    email = f"Neema.{secrets.token_hex(4)}@Tumaini.example"
    key = secrets.token_hex(8)
    data = {"organizationId": net.partner.gid, "email": f" {email} ", "displayName": "Neema M.",
            "roles": ["COUNSELOR", "COUNSELOR"], "idempotencyKey": key}
    first = await done(factory, admin, REGISTER, "registerStaffUser", data)
    user = first["staffUser"]
    assert user["email"] == email.lower() and user["roles"] == ["COUNSELOR"] and user["active"] is True
    assert user["organization"] == {"id": net.partner.gid} and user["version"] == 1
    assert await done(factory, admin, REGISTER, "registerStaffUser", data) == first  # a retry adds nobody
    async with owner_engine.connect() as connection:
        stored = (await connection.execute(text("SELECT count(*), max(password_hash) FROM staff_user "
                                                "WHERE email = :e"), {"e": email.lower()})).one()
    assert tuple(stored) == (1, None)
    assert await audit_rows(owner_engine, user["id"]) == [(admin_user.gid, "create", "allowed", "STAFF_ADMIN")]
    again = await payload(factory, admin, REGISTER, "registerStaffUser", {**data, "idempotencyKey": None,
                                                                          "email": email.upper()})
    assert [(e["field"], e["code"]) for e in again["userErrors"]] == [(["input", "email"], "DUPLICATE")]
    bad = await payload(factory, admin, REGISTER, "registerStaffUser", {**data, "idempotencyKey": None,
                                                                        "email": "not an address"})
    assert [(e["field"], e["code"]) for e in bad["userErrors"]] == [(["input", "email"], "INVALID")]
    assert "not an address" not in bad["userErrors"][0]["message"]


UPDATE = f"""mutation($input: UpdateStaffUserInput!) {{ updateStaffUser(input: $input) {{
  staffUser {{ {STAFF} }} userErrors {{ field code message }} }} }}"""


async def test_an_admin_corrects_a_name_or_e_mail_with_expected_version_and_audit(factory: Factory,
                                                                                 owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    admin_user, admin = await admin_of(factory, net)
    counselor = net.counselor.gid
    renamed = await done(factory, admin, UPDATE, "updateStaffUser",
                         {"staffUserId": counselor, "displayName": "Zawadi Mwangi", "expectedVersion": 1})
    assert renamed["staffUser"]["displayName"] == "Zawadi Mwangi" and renamed["staffUser"]["version"] == 2
    address = f"zawadi.{secrets.token_hex(4)}@tumaini.example"
    moved = await done(factory, admin, UPDATE, "updateStaffUser", {"staffUserId": counselor, "email": address})
    assert moved["staffUser"]["email"] == address and moved["staffUser"]["displayName"] == "Zawadi Mwangi"
    stale = await payload(factory, admin, UPDATE, "updateStaffUser",
                          {"staffUserId": counselor, "displayName": "Z. M.", "expectedVersion": 1})
    assert [(e["field"], e["code"]) for e in stale["userErrors"]] == [(["input", "expectedVersion"],
                                                                       "VERSION_CONFLICT")]
    taken = await payload(factory, admin, UPDATE, "updateStaffUser",
                          {"staffUserId": counselor, "email": net.coordinator.email})
    assert [(e["field"], e["code"]) for e in taken["userErrors"]] == [(["input", "email"], "DUPLICATE")]
    both_bad = await payload(factory, admin, UPDATE, "updateStaffUser",
                             {"staffUserId": counselor, "email": "nope", "displayName": "x" * 201})
    assert sorted(tuple(e["field"]) for e in both_bad["userErrors"]) == [("input", "displayName"),
                                                                         ("input", "email")]
    nothing = await payload(factory, admin, UPDATE, "updateStaffUser", {"staffUserId": counselor})
    assert [e["code"] for e in nothing["userErrors"]] == ["INVALID"]
    rows = [r for r in await audit_rows(owner_engine, counselor) if r[1] == "update_details"]
    assert rows == [(admin_user.gid, "update_details", "allowed", "STAFF_ADMIN")] * 2


PARTNER_ROLES = {Role.PARTNER_COORDINATOR, Role.COUNSELOR}


@pytest.mark.parametrize("kind", list(OrganizationKind))
@pytest.mark.parametrize("role", list(Role))
async def test_a_role_must_fit_the_organization_kind(factory: Factory, kind: OrganizationKind, role: Role) -> None:
    net = await network(factory)
    _, admin = await admin_of(factory, net)
    org, person = (net.partner, net.counselor) if kind is OrganizationKind.PARTNER else (net.ngo, net.manager)
    fits = (role in PARTNER_ROLES) == (kind is OrganizationKind.PARTNER)
    allowed = "PARTNER_COORDINATOR, COUNSELOR" if kind is OrganizationKind.PARTNER else \
        "CASE_MANAGER, SUPERVISOR, ANALYST, ADMIN"
    registered = await payload(factory, admin, REGISTER, "registerStaffUser", {
        "organizationId": org.gid, "email": f"{secrets.token_hex(5)}@example.org", "displayName": "New Person",
        "roles": [role.value]})
    changed = await payload(factory, admin, SET_ROLES, "setStaffRoles", {"staffUserId": person.gid,
                                                                         "roles": [role.value]})
    for result, record in ((registered, "staffUser"), (changed, "staffUser")):
        if fits:
            assert result["userErrors"] == [] and result[record]["roles"] == [role.value], result
        else:
            assert result[record] is None
            assert [(e["field"], e["code"]) for e in result["userErrors"]] == [(["input", "roles"], "INVALID")]
            message = result["userErrors"][0]["message"]
            assert message.startswith("roles ") and message.endswith(f"may only be {allowed}."), message


async def test_roles_change_on_the_live_token_with_expected_version_and_audit(factory: Factory,
                                                                              owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    admin_user, admin = await admin_of(factory, net)
    both = await factory.user(net.ngo, Role.CASE_MANAGER, Role.SUPERVISOR)
    token = await factory.token(both)
    audit_query = "{ auditEvents(first: 1) { totalCount } }"
    assert not (await factory.gql(token, audit_query)).get("errors")

    stale = await payload(factory, admin, SET_ROLES, "setStaffRoles",
                          {"staffUserId": both.gid, "roles": ["CASE_MANAGER"], "expectedVersion": 7})
    assert [(e["field"], e["code"]) for e in stale["userErrors"]] == [(["input", "expectedVersion"],
                                                                       "VERSION_CONFLICT")]
    changed = await done(factory, admin, SET_ROLES, "setStaffRoles",
                         {"staffUserId": both.gid, "roles": ["CASE_MANAGER"], "expectedVersion": 1})
    assert changed["staffUser"]["roles"] == ["CASE_MANAGER"] and changed["staffUser"]["version"] == 2
    refused = await factory.gql(token, audit_query, expect_errors=True)
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    empty = await payload(factory, admin, SET_ROLES, "setStaffRoles", {"staffUserId": both.gid, "roles": []})
    assert [(e["field"], e["code"]) for e in empty["userErrors"]] == [(["input", "roles"], "INVALID")]
    assert "CASE_MANAGER, SUPERVISOR, ANALYST, ADMIN" in empty["userErrors"][0]["message"]
    assert (admin_user.gid, "set_roles", "allowed", "STAFF_ADMIN") in await audit_rows(owner_engine, both.gid)
    async with owner_engine.connect() as connection:
        refusals = (await connection.execute(text(
            "SELECT action, outcome, purpose FROM audit_event WHERE actor = :a AND record_id IS NULL ORDER BY seq"),
            {"a": admin_user.gid})).all()
    assert [tuple(r) for r in refusals] == [("setStaffRoles", "rejected", "VERSION_CONFLICT"),
                                            ("setStaffRoles", "rejected", "INVALID")]
    nothing = await payload(factory, admin, SET_ROLES, "setStaffRoles",
                            {"staffUserId": to_global_id("StaffUser", secrets.token_hex(16)), "roles": ["COUNSELOR"]})
    assert [(e["field"], e["code"]) for e in nothing["userErrors"]] == [(["input", "staffUserId"], "NOT_FOUND")]


async def test_an_admin_cannot_lock_herself_out(factory: Factory) -> None:
    net = await network(factory)
    admin_user, admin = await admin_of(factory, net)
    drop = await payload(factory, admin, SET_ROLES, "setStaffRoles", {"staffUserId": admin_user.gid,
                                                                      "roles": ["SUPERVISOR"]})
    assert [(e["field"], e["code"]) for e in drop["userErrors"]] == [(["input", "roles"], "INVALID")]
    gone = await payload(factory, admin, DEACTIVATE, "deactivateStaffUser", {"staffUserId": admin_user.gid})
    assert [(e["field"], e["code"]) for e in gone["userErrors"]] == [(["input", "staffUserId"], "INVALID")]
    kept = await done(factory, admin, SET_ROLES, "setStaffRoles", {"staffUserId": admin_user.gid,
                                                                   "roles": ["ADMIN", "SUPERVISOR"]})
    assert kept["staffUser"]["roles"] == ["SUPERVISOR", "ADMIN"]


# ----------------------------------------------------------------------------- deactivation


async def test_deactivation_cuts_a_live_token_on_its_next_request_and_reactivation_does_not_revive_it(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    admin_user, admin = await admin_of(factory, net)
    async with http_from(app) as http:
        live = net.token("counselor")
        assert (await ask(http, live)).status_code == 200
        await asyncio.sleep(1.1)  # tokens count whole seconds: this one is from before the sign-out
        deactivated = await done(factory, admin, DEACTIVATE, "deactivateStaffUser",
                                 {"staffUserId": net.counselor.gid, "reason": "Left the centre.",
                                  "expectedVersion": 1})
        assert deactivated["staffUser"]["active"] is False and deactivated["staffUser"]["version"] == 2
        cut = await ask(http, live)
        assert cut.status_code == 401 and cut.headers["www-authenticate"].startswith("Bearer")
        assert (await ask(http, await factory.token(net.counselor))).status_code == 401

        twice = await payload(factory, admin, DEACTIVATE, "deactivateStaffUser", {"staffUserId": net.counselor.gid})
        assert [(e["field"], e["code"]) for e in twice["userErrors"]] == [(["input", "staffUserId"],
                                                                           "INVALID_TRANSITION")]
        back = await done(factory, admin, REACTIVATE, "reactivateStaffUser", {"staffUserId": net.counselor.gid})
        assert back["staffUser"]["active"] is True and back["staffUser"]["deactivatedAt"] is None
        assert back["staffUser"]["deactivationReason"] is None
        assert (await ask(http, live)).status_code == 401, "a token from before the deactivation came back"
        assert (await ask(http, await factory.token(net.counselor))).status_code == 200
        again = await payload(factory, admin, REACTIVATE, "reactivateStaffUser", {"staffUserId": net.counselor.gid})
        assert [e["code"] for e in again["userErrors"]] == ["INVALID_TRANSITION"]
    rows = await audit_rows(owner_engine, net.counselor.gid)
    assert [(a, action) for a, action, outcome, _ in rows if outcome == "allowed"] == \
        [(admin_user.gid, "deactivate"), (admin_user.gid, "reactivate")]


async def test_deactivation_ends_sign_in_sessions_and_refuses_sign_in(factory: Factory, app: FastAPI) -> None:
    net = await network(factory)
    _, admin = await admin_of(factory, net)
    person = await factory.user(net.partner, Role.COUNSELOR, password_hash=HASH)
    staff = Staff(user=person, app_client=await factory.oauth_client(net.partner, redirect_uris=[REDIRECT]))
    async with http_from(app) as http:
        session = await full_login(http, staff)
        other_device = await full_login(http, staff)
        await done(factory, admin, DEACTIVATE, "deactivateStaffUser", {"staffUserId": person.gid})
        for tokens in (session, other_device):
            assert (await ask(http, tokens["access_token"])).status_code == 401
            refused = await refresh(http, staff.app_client.client_id, tokens["refresh_token"])
            assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        _, challenge = pkce()
        page = await sign_in(http, staff.app_client.client_id, person.email, PASSWORD, challenge)
        assert page.status_code == 401 and "Incorrect e-mail or password." in page.text


async def test_a_deactivated_counselors_open_referrals_wait_for_the_coordinator(factory: Factory) -> None:
    net = await network(factory)
    _, admin = await admin_of(factory, net)
    coordinator = net.token("coordinator")
    carried = await referred_case(factory, net, accept=True, assign=True)
    unassigned = await referred_case(factory, net, accept=True)
    waiting = (await factory.gql(coordinator, NEEDS_ASSIGNMENT))["data"]["referrals"]["edges"]
    assert [e["node"]["id"] for e in waiting] == [unassigned.referral["id"]]

    result = await done(factory, admin, DEACTIVATE, "deactivateStaffUser", {"staffUserId": net.counselor.gid})
    assert result["openReferralCount"] == 1
    waiting = (await factory.gql(coordinator, NEEDS_ASSIGNMENT))["data"]["referrals"]["edges"]
    assert {e["node"]["id"]: e["node"]["assignedCounselor"] for e in waiting} == {
        carried.referral["id"]: {"id": net.counselor.gid, "active": False}, unassigned.referral["id"]: None}
    again = await act(factory, coordinator, "assignCounselor", "AssignCounselorInput",
                      referralId=carried.referral["id"], counselorId=net.counselor.gid)
    assert [(e["field"], e["code"]) for e in again["userErrors"]] == [(["input", "counselorId"], "NOT_FOUND")]
    moved = await act(factory, coordinator, "assignCounselor", "AssignCounselorInput",
                      referralId=carried.referral["id"], counselorId=net.other_counselor.gid)
    assert moved["userErrors"] == [] and moved["referral"]["assignedCounselor"] == {"id": net.other_counselor.gid}
    waiting = (await factory.gql(coordinator, NEEDS_ASSIGNMENT))["data"]["referrals"]["edges"]
    assert [e["node"]["id"] for e in waiting] == [unassigned.referral["id"]]
    others = "{ referrals(first: 50, filter: {needsAssignment: false}) { edges { node { id } } } }"
    assert [e["node"]["id"] for e in (await factory.gql(coordinator, others))["data"]["referrals"]["edges"]] == \
        [carried.referral["id"]]


# ----------------------------------------------------------------------------- password links


async def issue_link(factory: Factory, admin: str, user: User) -> str:
    result = await done(factory, admin, RESET, "issuePasswordReset", {"staffUserId": user.gid})
    assert result["staffUser"] == {"id": user.gid} and result["expiresAt"]
    link: str = result["link"]
    assert link.startswith("http://testserver/account/password?token=")
    return link


def local(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


async def submit(http: httpx.AsyncClient, link: str, password: str, confirm: str | None = None) -> httpx.Response:
    page = await http.get(local(link))
    assert page.status_code == 200, page.text
    action, fields = read_form(page.text)
    fields.update(password=password, confirm=password if confirm is None else confirm)
    return await http.post(action, data=fields)


async def test_a_password_link_sets_a_password_once_and_ends_other_sessions(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    admin_user, admin = await admin_of(factory, net)
    person = await factory.user(net.partner, Role.COUNSELOR, password_hash=HASH)
    staff = Staff(user=person, app_client=await factory.oauth_client(net.partner, redirect_uris=[REDIRECT]))
    async with http_from(app) as http:
        before = await full_login(http, staff)
        link = await issue_link(factory, admin, person)
        token = link.split("token=")[1]
        page = await http.get(local(link))
        assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer" and "pamoja_password_csrf" in page.headers["set-cookie"]
        assert person.email in page.text and (await http.get(local(link))).status_code == 200  # opening spends nothing

        short = await submit(http, link, "too short")
        assert short.status_code == 400 and "at least 12 characters" in short.text
        differ = await submit(http, link, NEW_PASSWORD, "another river of lanterns")
        assert differ.status_code == 400 and "differ" in differ.text
        same_as_email = await submit(http, link, person.email)
        assert same_as_email.status_code == 400 and "e-mail" in same_as_email.text
        forged = await http.post("/account/password", data={"token": token, "password": NEW_PASSWORD,
                                                             "confirm": NEW_PASSWORD, "csrf_token": "x"})
        assert forged.status_code == 403

        ok = await submit(http, link, NEW_PASSWORD)
        assert ok.status_code == 200 and "Password set" in ok.text
        assert (await http.get(local(link))).status_code == 410

        assert (await ask(http, before["access_token"])).status_code == 401
        assert (await refresh(http, staff.app_client.client_id, before["refresh_token"])).status_code == 400
        verifier, challenge = pkce()
        old = await sign_in(http, staff.app_client.client_id, person.email, PASSWORD, challenge)
        assert old.status_code == 401
        new = await sign_in(http, staff.app_client.client_id, person.email, NEW_PASSWORD, challenge)
        assert new.status_code == 302, new.text
        tokens = await redeem(http, staff.app_client.client_id, query_of(new.headers["location"])["code"], verifier)
        assert (await ask(http, tokens.json()["access_token"])).status_code == 200
    async with owner_engine.connect() as connection:
        stored = (await connection.execute(text("SELECT password_hash FROM staff_user WHERE id = :id"),
                                           {"id": person.id})).scalar_one()
        hashes = (await connection.execute(text("SELECT token_hash FROM staff_password_link "
                                                "WHERE staff_user_id = :id"), {"id": person.id})).scalars().all()
    assert stored.startswith("$argon2id$") and PasswordHasher().verify(stored, NEW_PASSWORD)
    assert len(hashes) == 1 and token.encode() not in hashes[0] and len(hashes[0]) == 32
    rows = await audit_rows(owner_engine, person.gid)
    assert (admin_user.gid, "issue_password_link", "allowed", "STAFF_ADMIN") in rows
    assert (person.name, "set_password", "allowed", "password link") in rows


async def test_a_password_link_expires_and_a_newer_one_replaces_it(factory: Factory, app: FastAPI,
                                                                    owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    _, admin = await admin_of(factory, net)
    async with http_from(app) as http:
        first = await issue_link(factory, admin, net.counselor)
        second = await issue_link(factory, admin, net.counselor)
        assert first != second
        gone = await http.get(local(first))
        assert gone.status_code == 410 and "Ask your administrator for a new link" in gone.text
        async with owner_engine.begin() as connection:
            await connection.execute(text("UPDATE staff_password_link SET expires_at = now() - interval '1 second' "
                                          "WHERE staff_user_id = :id AND used_at IS NULL"), {"id": net.counselor.id})
        assert (await http.get(local(second))).status_code == 410
        for broken in ("", "x" * 500, secrets.token_urlsafe(32)):
            assert (await http.get(f"/account/password?token={broken}")).status_code == 410


async def test_a_link_stops_working_when_the_account_is_deactivated_and_none_is_issued_then(
        factory: Factory, app: FastAPI) -> None:
    net = await network(factory)
    _, admin = await admin_of(factory, net)
    link = await issue_link(factory, admin, net.counselor)
    async with http_from(app) as http:
        page = await http.get(local(link))
        await done(factory, admin, DEACTIVATE, "deactivateStaffUser", {"staffUserId": net.counselor.gid})
        action, fields = read_form(page.text)
        fields.update(password=NEW_PASSWORD, confirm=NEW_PASSWORD)
        assert (await http.post(action, data=fields)).status_code == 410
    refused = await payload(factory, admin, RESET, "issuePasswordReset", {"staffUserId": net.counselor.gid})
    assert refused["link"] is None
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["input", "staffUserId"],
                                                                         "INVALID_TRANSITION")]
    await done(factory, admin, REACTIVATE, "reactivateStaffUser", {"staffUserId": net.counselor.gid})
    async with http_from(app) as http:
        assert (await http.get(local(link))).status_code == 410, "a link ended by the deactivation came back"


async def test_the_password_page_is_rate_limited_per_address(factory: Factory, app: FastAPI, settings: Any) -> None:
    limit = int(settings.login_rate_limit_per_address.split("/")[0])
    async with http_from(app) as http:
        answers = [(await http.post("/account/password", data={"token": "x"})).status_code for _ in range(limit + 1)]
    assert answers[:limit] == [403] * limit and answers[-1] == 429


# ----------------------------------------------------------------------------- README "Operating Pamoja"


def readme_example(name: str) -> str:
    """The fenced block after `<!-- tested: name -->` (the convention of tests/readme)."""
    found = re.search(rf"<!-- tested: {re.escape(name)} -->\s*```graphql\n(.*?)```", README.read_text(), re.S)
    assert found, f"README example {name} is missing"
    return found.group(1)


async def test_the_readme_staff_operations_run_as_written(factory: Factory) -> None:
    net = await network(factory)
    _, admin = await admin_of(factory, net)
    carried = await referred_case(factory, net, accept=True, assign=True)
    found = await factory.gql(admin, readme_example("staff-find"), {"search": net.counselor.email[:10]})
    assert [e["node"]["id"] for e in found["data"]["staffUsers"]["edges"]] == [net.counselor.gid]
    linked = await factory.gql(admin, readme_example("staff-password-link"), {"id": net.counselor.gid})
    assert linked["data"]["issuePasswordReset"]["link"].startswith("http://testserver/account/password?token=")
    left = await factory.gql(admin, readme_example("staff-deactivate"), {"id": net.counselor.gid})
    assert left["data"]["deactivateStaffUser"]["openReferralCount"] == 1
    waiting = await factory.gql(net.token("coordinator"), readme_example("staff-needs-assignment"))
    assert [(e["node"]["id"], e["node"]["assignedCounselor"]["active"])
            for e in waiting["data"]["referrals"]["edges"]] == [(carried.referral["id"], False)]
