"""Staff sign-in: authorization code + PKCE through the real login page, refresh rotation, throttling.

The browser is an httpx client that keeps cookies: it opens the authorization URL, reads the
server-rendered form, submits it, follows nothing (the redirect target is the app's), and the app
then redeems the code at the token endpoint.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.clients import RegisteredClient
from domain.enums import Role
from tests.factories import Factory, User
from tests.oauth_helpers import VIEWER, extra_app, http_from, pkce, query_of, read_form

REDIRECT = "https://app.pamoja.example/callback"
PASSWORD = "correct horse battery staple"
HASH = PasswordHasher().hash(PASSWORD)


@dataclass
class Staff:
    user: User
    app_client: RegisteredClient


@pytest.fixture
async def staff(factory: Factory) -> Staff:
    ngo = await factory.ngo()
    user = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    app_client = await factory.oauth_client(ngo, redirect_uris=[REDIRECT], scopes=["user/*.cruds"])
    return Staff(user=user, app_client=app_client)


def authorize_url(client_id: str, challenge: str, **extra: str) -> str:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "st-123",
              "code_challenge": challenge, "code_challenge_method": "S256", **extra}
    return "/oauth/authorize?" + urlencode(params)


async def sign_in(http: httpx.AsyncClient, client_id: str, email: str, password: str, challenge: str,
                  **extra: str) -> httpx.Response:
    page = await http.get(authorize_url(client_id, challenge, **extra))
    assert page.status_code == 200, page.text
    action, fields = read_form(page.text)
    fields.update(email=email, password=password)
    return await http.post(action, data=fields)


async def redeem(http: httpx.AsyncClient, client_id: str, code: str, verifier: str) -> httpx.Response:
    return await http.post("/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                                 "redirect_uri": REDIRECT, "client_id": client_id,
                                                 "code_verifier": verifier})


async def refresh(http: httpx.AsyncClient, client_id: str, token: str, **extra: str) -> httpx.Response:
    return await http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                 "client_id": client_id, **extra})


async def viewer(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})


async def full_login(http: httpx.AsyncClient, staff: Staff, **extra: str) -> dict[str, Any]:
    verifier, challenge = pkce()
    submitted = await sign_in(http, staff.app_client.client_id, staff.user.email, PASSWORD, challenge, **extra)
    assert submitted.status_code == 302, submitted.text
    code = query_of(submitted.headers["location"])["code"]
    tokens = await redeem(http, staff.app_client.client_id, code, verifier)
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    return body


async def test_the_full_pkce_login_through_the_login_page(staff: Staff, app: FastAPI) -> None:
    verifier, challenge = pkce()
    async with http_from(app) as http:
        page = await http.get(authorize_url(staff.app_client.client_id, challenge))
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "pamoja_login_csrf" in page.headers["set-cookie"]
        assert "httponly" in page.headers["set-cookie"].lower()
        assert "samesite=strict" in page.headers["set-cookie"].lower()
        action, fields = read_form(page.text)
        assert action == "/oauth/authorize" and fields["csrf_token"]
        fields.update(email=staff.user.email.upper(), password=PASSWORD)
        submitted = await http.post(action, data=fields)
        assert submitted.status_code == 302, submitted.text
        location = submitted.headers["location"]
        assert location.startswith(REDIRECT + "?")
        params = query_of(location)
        assert params["state"] == "st-123" and params["code"]

        tokens = await redeem(http, staff.app_client.client_id, params["code"], verifier)
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["refresh_token"]
        seen = await viewer(http, body["access_token"])
        assert seen.status_code == 200
        who = seen.json()["data"]["viewer"]
        assert who["user"] == {"id": staff.user.gid}
        assert who["roles"] == ["CASE_MANAGER"] and who["clientId"] == staff.app_client.client_id
        assert "user/Referral.crus" in who["scopes"] and "user/AuditEvent.rs" not in who["scopes"]

        # The code works once; its second use also revokes what the first one issued.
        again = await redeem(http, staff.app_client.client_id, params["code"], verifier)
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        assert (await viewer(http, body["access_token"])).status_code == 401
        assert (await refresh(http, staff.app_client.client_id, body["refresh_token"])).status_code == 400


async def test_pkce_is_required_and_must_be_s256_and_must_match(staff: Staff, app: FastAPI) -> None:
    verifier, challenge = pkce()
    cid = staff.app_client.client_id
    async with http_from(app) as http:
        for broken in ({"code_challenge": ""}, {"code_challenge_method": "plain"}, {"code_challenge_method": ""}):
            response = await http.get(authorize_url(cid, challenge, **broken))
            assert response.status_code == 302, broken
            assert query_of(response.headers["location"])["error"] == "invalid_request", broken
        submitted = await sign_in(http, cid, staff.user.email, PASSWORD, challenge)
        code = query_of(submitted.headers["location"])["code"]
        wrong = await redeem(http, cid, code, pkce()[0])
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        missing = await http.post("/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                                         "redirect_uri": REDIRECT, "client_id": cid})
        assert missing.json()["error"] == "invalid_request"
        assert (await redeem(http, cid, code, verifier)).status_code == 200


async def test_a_bad_client_or_redirect_uri_is_never_redirected_to(staff: Staff, app: FastAPI) -> None:
    _, challenge = pkce()
    async with http_from(app) as http:
        evil = await http.get(authorize_url(staff.app_client.client_id, challenge,
                                            redirect_uri="https://evil.example/steal"))
        assert evil.status_code == 400 and "location" not in evil.headers
        unknown = await http.get(authorize_url("pmj_nobody", challenge))
        assert unknown.status_code == 400 and "location" not in unknown.headers


async def test_scopes_narrow_to_the_role_and_outside_the_client_is_invalid_scope(factory: Factory,
                                                                                 app: FastAPI) -> None:
    partner = await factory.org()
    counselor = await factory.user(partner, Role.COUNSELOR, password_hash=HASH)
    narrow_app = await factory.oauth_client(partner, redirect_uris=[REDIRECT],
                                            scopes=["user/Referral.rus", "user/AuditEvent.rs"])
    staff = Staff(user=counselor, app_client=narrow_app)
    async with http_from(app) as http:
        body = await full_login(http, staff, scope="user/Referral.rs user/AuditEvent.rs")
        assert body["scope"] == "user/Referral.rs"
        who = (await viewer(http, body["access_token"])).json()["data"]["viewer"]
        assert who["scopes"] == ["user/Referral.rs"] and who["roles"] == ["COUNSELOR"]
        # Without a scope: the role's defaults, cut to what the app may ask for.
        assert (await full_login(http, staff))["scope"] == "user/Referral.rus"
        _, challenge = pkce()
        outside = await http.get(authorize_url(narrow_app.client_id, challenge, scope="user/Consent.rs"))
        assert outside.status_code == 302
        assert query_of(outside.headers["location"])["error"] == "invalid_scope"


async def test_refresh_tokens_rotate_and_a_reuse_revokes_the_family(staff: Staff, app: FastAPI) -> None:
    cid = staff.app_client.client_id
    async with http_from(app) as http:
        first = await full_login(http, staff)
        second = await refresh(http, cid, first["refresh_token"])
        assert second.status_code == 200, second.text
        rotated = second.json()
        assert rotated["refresh_token"] != first["refresh_token"]
        assert (await viewer(http, rotated["access_token"])).status_code == 200
        narrower = await refresh(http, cid, rotated["refresh_token"], scope="user/Referral.rs")
        assert narrower.status_code == 200 and narrower.json()["scope"] == "user/Referral.rs"
        latest = narrower.json()
        wider = await refresh(http, cid, latest["refresh_token"], scope="user/AuditEvent.rs")
        assert wider.json()["error"] == "invalid_scope"

        # An attacker replays the first (already used) refresh token: the whole family dies.
        replay = await refresh(http, cid, first["refresh_token"])
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert (await refresh(http, cid, latest["refresh_token"])).json()["error"] == "invalid_grant"
        assert (await viewer(http, latest["access_token"])).status_code == 401
        assert (await viewer(http, rotated["access_token"])).status_code == 401
        # Another login starts a new, healthy family.
        fresh = await full_login(http, staff)
        assert (await refresh(http, cid, fresh["refresh_token"])).status_code == 200


async def test_a_refresh_token_is_bound_to_its_client_and_can_be_revoked(staff: Staff, factory: Factory,
                                                                         app: FastAPI) -> None:
    other_app = await factory.oauth_client(await factory.ngo(), redirect_uris=[REDIRECT])
    async with http_from(app) as http:
        tokens = await full_login(http, staff)
        stolen = await refresh(http, other_app.client_id, tokens["refresh_token"])
        assert stolen.json()["error"] == "invalid_grant"
        revoked = await http.post("/oauth/revoke", data={"token": tokens["refresh_token"],
                                                         "client_id": staff.app_client.client_id})
        assert revoked.status_code == 200
        assert (await refresh(http, staff.app_client.client_id, tokens["refresh_token"])).status_code == 400
        assert (await viewer(http, tokens["access_token"])).status_code == 401


async def test_wrong_password_and_unknown_user_get_the_same_generic_answer(staff: Staff, app: FastAPI,
                                                                          owner_engine: AsyncEngine) -> None:
    _, challenge = pkce()
    cid = staff.app_client.client_id
    async with http_from(app) as http:
        wrong = await sign_in(http, cid, staff.user.email, "not the password", challenge)
        nobody = await sign_in(http, cid, f"{secrets.token_hex(5)}@example.org", PASSWORD, challenge)
    assert wrong.status_code == nobody.status_code == 401
    assert "Incorrect e-mail or password." in wrong.text and "Incorrect e-mail or password." in nobody.text
    assert "location" not in wrong.headers
    async with owner_engine.connect() as connection:
        outcomes = (await connection.execute(text(
            "SELECT outcome FROM audit_event WHERE action = 'login' AND client_id = :c ORDER BY seq"
        ), {"c": cid})).scalars().all()
    assert outcomes == ["denied", "denied"]


async def test_the_login_form_refuses_a_post_without_its_csrf_pair(staff: Staff, app: FastAPI) -> None:
    _, challenge = pkce()
    async with http_from(app) as http:
        page = await http.get(authorize_url(staff.app_client.client_id, challenge))
        action, fields = read_form(page.text)
        fields.update(email=staff.user.email, password=PASSWORD)
        forged = dict(fields, csrf_token="0" * 64)
        assert (await http.post(action, data=forged)).status_code == 403
    async with http_from(app) as cookieless:  # a cross-site form post: no cookie of ours
        response = await cookieless.post(action, data=fields)
        assert response.status_code == 403 and "location" not in response.headers


@pytest.fixture
async def strict_app(settings: Any) -> AsyncIterator[FastAPI]:
    """The app with a quick throttle: slower after 2 failures (0.5 s, doubling), locked after 4."""
    application = extra_app(settings.model_copy(update={
        "login_slowdown_after_failures": 2, "login_slowdown_base_seconds": 0.5,
        "login_lockout_after_failures": 4, "login_lockout_seconds": 900,
    }))
    async with application.router.lifespan_context(application):
        yield application


async def test_repeated_failures_slow_down_then_lock_the_account_from_that_address(
        staff: Staff, strict_app: FastAPI) -> None:
    _, challenge = pkce()
    cid, email = staff.app_client.client_id, staff.user.email

    async def attempt(password: str) -> httpx.Response:
        async with http_from(strict_app, "10.97.0.1") as http:  # new connections, one address
            return await sign_in(http, cid, email, password, challenge)

    assert (await attempt("wrong-1")).status_code == 401
    assert (await attempt("wrong-2")).status_code == 401
    slowed = await attempt(PASSWORD)  # too soon: refused without even checking the password
    assert slowed.status_code == 429 and "Wait" in slowed.text and int(slowed.headers["retry-after"]) >= 1
    await asyncio.sleep(0.55)
    assert (await attempt("wrong-3")).status_code == 401
    assert (await attempt("wrong-4")).status_code == 429  # 1 s not yet passed
    await asyncio.sleep(1.05)
    locked = await attempt("wrong-4")
    assert locked.status_code == 429 and "15 minutes" in locked.text
    still = await attempt(PASSWORD)
    assert still.status_code == 429 and "location" not in still.headers
    assert int(still.headers["retry-after"]) > 800


async def test_a_stranger_cannot_lock_the_counselor_out_of_her_own_sign_in(
        staff: Staff, strict_app: FastAPI) -> None:
    """The lock holds per (e-mail, address); per e-mail, guesses are only slowed, and only from addresses
    that already failed for it, so the account holder signing in from a clean address is heard at once."""
    _, challenge = pkce()
    cid, email = staff.app_client.client_id, staff.user.email

    async def attempt(address: str, password: str) -> httpx.Response:
        async with http_from(strict_app, address) as http:
            return await sign_in(http, cid, email, password, challenge)

    attacker = "10.97.1.1"
    assert [(await attempt(attacker, f"wrong-{n}")).status_code for n in range(2)] == [401, 401]
    await asyncio.sleep(0.55)
    assert (await attempt(attacker, "wrong-2")).status_code == 401
    await asyncio.sleep(1.05)
    assert (await attempt(attacker, "wrong-3")).status_code == 429  # the fourth failure locks this pair
    for n in range(4, 10):
        assert (await attempt(attacker, f"wrong-{n}")).status_code == 429
    # Guessing from another address: one try is heard, then the e-mail's delay (4 failures -> 2 s) applies.
    helper = "10.97.1.2"
    assert (await attempt(helper, "wrong-again")).status_code == 401
    slowed = await attempt(helper, PASSWORD)
    assert slowed.status_code == 429 and "Wait" in slowed.text and "location" not in slowed.headers
    # The counselor on her own device signs in at once, and the attacker stays locked.
    own = await attempt("10.97.1.3", PASSWORD)
    assert own.status_code == 302 and "code=" in own.headers["location"], own.text
    still = await attempt(attacker, PASSWORD)
    assert still.status_code == 429 and "location" not in still.headers
    assert int(still.headers["retry-after"]) > 800


async def test_the_login_form_budget_per_app_is_not_reset_by_a_second_client_id(
        staff: Staff, settings: Any) -> None:
    limited = extra_app(settings.model_copy(update={"login_rate_limit_per_client": "2/minute"}))
    _, challenge = pkce()
    cid = staff.app_client.client_id
    async with limited.router.lifespan_context(limited), http_from(limited) as http:
        codes = [(await sign_in(http, cid, staff.user.email, "nope", challenge)).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        page = await http.get(authorize_url(cid, challenge))
        action, fields = read_form(page.text)
        fields.update(email=staff.user.email, password=PASSWORD)
        for extra in ("made-up-client", cid.upper(), f" {cid} "):
            body = urlencode([*fields.items(), ("client_id", extra)])
            refused = await http.post(action, content=body,
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert refused.status_code in (400, 429) and "location" not in refused.headers, refused.text


async def test_the_login_form_is_rate_limited_per_address(staff: Staff, settings: Any) -> None:
    limited = extra_app(settings.model_copy(update={"login_rate_limit_per_address": "2/minute"}))
    _, challenge = pkce()
    async with limited.router.lifespan_context(limited), http_from(limited, "10.98.0.1") as http:
        codes = [(await sign_in(http, staff.app_client.client_id, staff.user.email, "nope", challenge)).status_code
                 for _ in range(3)]
        assert codes == [401, 401, 429]
        refused = await sign_in(http, staff.app_client.client_id, staff.user.email, PASSWORD, challenge)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
