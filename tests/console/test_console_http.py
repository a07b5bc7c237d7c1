"""The console over HTTP: sign-in through Pamoja's own login (the tokens stay on the server), CSRF on
every form, sign-out and idle expiry that end the session, a record of another partner answered as
"not found", no-store on pages, and Swahili. The whole journey in a real browser is test_browser.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.main import create_app
from config.settings import Settings
from domain.enums import Role
from tests.console.helpers import csrf_of, hidden_fields, sign_in
from tests.factories import Factory
from tests.flows import network, referred_case
from tests.oauth.test_staff_login import HASH
from tests.oauth_helpers import http_from


async def test_signing_in_keeps_the_tokens_on_the_server(factory: Factory, app: FastAPI,
                                                          owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    amina = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    async with http_from(app) as http:
        assert (await http.get("/app")).headers["location"] == "/app/sign-in"
        home = await sign_in(http, amina.email)
        assert "Survivors" in home.text and home.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
        [cookie] = list(http.cookies.jar)
        assert cookie.name == "pamoja-console" and cookie.has_nonstandard_attr("HttpOnly")
        assert "eyJ" not in home.text and "eyJ" not in cookie.value  # no token reaches the browser
    async with owner_engine.connect() as connection:
        row = (await connection.execute(text(
            "SELECT access_token_enc, refresh_token_enc FROM console_session WHERE staff_user_id = :u"),
            {"u": amina.id})).one()
    assert row.access_token_enc and b"eyJ" not in row.access_token_enc and row.refresh_token_enc


async def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(factory: Factory, app: FastAPI,
                                                                             owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    amina = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    async with http_from(app) as http:
        await sign_in(http, amina.email)
        form = await http.get("/app/act/registerSurvivor")
        fields = hidden_fields(form.text, "/app/act/registerSurvivor")
        data = {**fields, "pseudonym": "Csrf-probe", "legalName": "Probe Person", "birthYear": "2012",
                "sex": "FEMALE"}
        for forged in ({k: v for k, v in data.items() if k != "csrf"}, {**data, "csrf": "forged"}):
            refused = await http.post("/app/act/registerSurvivor", data=forged)
            assert refused.status_code == 403 and "This form has expired" in refused.text
    async with owner_engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM survivor WHERE organization_id = :o"),
                                       {"o": ngo.id}) == 0


async def test_sign_out_ends_the_session_and_revokes_its_tokens(factory: Factory, app: FastAPI,
                                                                owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    amina = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    async with http_from(app) as http:
        home = await sign_in(http, amina.email)
        kept = dict(http.cookies)
        out = await http.post("/app/sign-out", data={"csrf": csrf_of(home.text)})
        assert out.status_code == 303 and out.headers["location"] == "/app/sign-in?notice=signed-out"
        http.cookies.update(kept)  # the old cookie, replayed
        assert (await http.get("/app")).headers["location"] == "/app/sign-in"
    async with owner_engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM console_session WHERE staff_user_id = :u"),
                                       {"u": amina.id}) == 0
        live = await connection.scalar(text(
            "SELECT count(*) FROM oauth_refresh_token WHERE user_id = :u AND revoked_at IS NULL"), {"u": amina.id})
    assert live == 0


async def test_an_idle_session_expires(factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    amina = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    async with http_from(app) as http:
        await sign_in(http, amina.email)
        async with owner_engine.begin() as connection:
            await connection.execute(text("UPDATE console_session SET last_seen_at = :t WHERE staff_user_id = :u"),
                                     {"t": datetime.now(UTC) - timedelta(hours=1), "u": amina.id})
        ended = await http.get("/app/survivors")
        assert ended.status_code == 303 and ended.headers["location"] == "/app/sign-in?notice=session-ended"
        notice = await http.get(ended.headers["location"])
        assert "Your session ended" in notice.text


async def test_another_partners_referral_is_not_found_like_a_missing_one(factory: Factory, app: FastAPI) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    stranger_org = await factory.org()
    stranger = await factory.user(stranger_org, Role.COUNSELOR, password_hash=HASH)
    async with http_from(app) as http:
        await sign_in(http, stranger.email)
        pages = {path: await http.get(path) for path in (
            f"/app/referrals/{case.referral['id']}",
            "/app/referrals/UmVmZXJyYWw6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw",
            "/app/referrals/bm90LWFuLWlk", f"/app/survivors/{case.survivor['id']}")}
    assert {page.status_code for page in pages.values()} == {404}
    # The same page, but for the address it was asked at (kept to come back to after a language change).
    assert len({page.text.replace(path, "") for path, page in pages.items()}) == 1


async def test_the_console_speaks_swahili_once_chosen(factory: Factory, app: FastAPI) -> None:
    ngo = await factory.ngo()
    amina = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    async with http_from(app) as http:
        home = await sign_in(http, amina.email)
        switched = await http.post("/app/language", data={"language": "sw", "csrf": csrf_of(home.text),
                                                          "next": "/app"})
        assert switched.status_code == 303
        page = await http.get("/app")
        assert '<html lang="sw">' in page.text and "Waathirika" in page.text
        # Remembered with the session, and for the next sign-in in this browser.
        assert http.cookies.get("pamoja-language") == "sw"


async def test_the_sign_in_page_says_what_to_do_before_any_organization(app: FastAPI) -> None:
    async with http_from(app) as http:
        page = await http.get("/app/sign-in")
        assert page.status_code == 200 and 'id="sign-in"' in page.text


async def test_a_deactivated_person_is_signed_out_of_the_console(factory: Factory, app: FastAPI,
                                                                  owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    amina = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    admin = await factory.token(await factory.user(ngo, Role.ADMIN))
    async with http_from(app) as http:
        await sign_in(http, amina.email)
        body = await factory.gql(admin, """mutation($id: ID!) { deactivateStaffUser(input: {staffUserId: $id}) {
            userErrors { message } } }""", {"id": amina.gid})
        assert body["data"]["deactivateStaffUser"]["userErrors"] == []
        ended = await http.get("/app")
        assert ended.status_code == 303 and ended.headers["location"].startswith("/app/sign-in")


async def test_pages_refuse_other_sites_as_the_next_page(factory: Factory, app: FastAPI) -> None:
    async with http_from(app) as http:
        answer = await http.post("/app/language", data={"language": "sw", "next": "https://evil.example/"})
        assert answer.headers["location"] == "/app"
        for sneaky in ("//evil.example/app", "/app\\@evil.example"):
            again = await http.post("/app/language", data={"language": "en", "next": sneaky})
            assert again.headers["location"] in ("/app", sneaky) and not again.headers["location"].startswith("//")




async def test_a_form_shows_each_refusal_beside_its_field_and_keeps_what_was_typed(factory: Factory,
                                                                                   app: FastAPI) -> None:
    ngo = await factory.ngo()
    amina = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    async with http_from(app) as http:
        await sign_in(http, amina.email)
        form = await http.get("/app/act/registerSurvivor")
        assert '<label for="f-pseudonym">Pseudonym *</label>' in form.text
        fields = hidden_fields(form.text, "/app/act/registerSurvivor")
        unreadable = await http.post("/app/act/registerSurvivor", data={
            **fields, "pseudonym": "Zawadi-form", "legalName": "Zawadi Test", "birthYear": "twenty", "sex": "FEMALE"})
        assert unreadable.status_code == 422 and "Enter a whole number." in unreadable.text
        assert 'value="Zawadi-form"' in unreadable.text
        refused = await http.post("/app/act/registerSurvivor", data={
            **fields, "pseudonym": "Zawadi-form", "legalName": "Zawadi Test", "birthYear": "1890", "sex": "FEMALE"})
        assert refused.status_code == 422
        beside = refused.text.split('id="f-birthYear-hint"', 1)[1].split("</p>", 1)[0]
        assert "error-text" in beside


async def test_possible_duplicates_are_shown_before_registering_someone_twice(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    async with owner_engine.begin() as connection:  # the case manager who registered her signs in
        await connection.execute(text("UPDATE staff_user SET password_hash = :h WHERE id = :u"),
                                 {"h": HASH, "u": net.manager.id})
    async with http_from(app) as http:
        await sign_in(http, net.manager.email)
        form = await http.get("/app/act/registerSurvivor")
        data = {**hidden_fields(form.text, "/app/act/registerSurvivor"), "pseudonym": case.survivor["pseudonym"],
                "legalName": "Someone Else", "birthYear": "2012", "sex": "FEMALE"}
        held = await http.post("/app/act/registerSurvivor", data=data)
        assert held.status_code == 409 and f'/app/survivors/{case.survivor["id"]}' in held.text
        registered = await http.post("/app/act/registerSurvivor", data={**data, "confirmNew": "on"})
        assert registered.status_code == 303 and registered.headers["location"].startswith("/app/survivors/")


async def test_each_role_finds_its_pages_and_is_refused_the_others(factory: Factory, app: FastAPI) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    supervisor = await factory.user(net.ngo, Role.SUPERVISOR, password_hash=HASH)
    admin = await factory.user(net.ngo, Role.ADMIN, password_hash=HASH)
    coordinator = await factory.user(net.partner, Role.PARTNER_COORDINATOR, password_hash=HASH)
    counselor = await factory.user(net.partner, Role.COUNSELOR, password_hash=HASH)
    async with http_from(app) as http:
        await sign_in(http, supervisor.email)
        trail = await http.get("/app/audit", params={"record": case.referral["id"]})
        assert trail.status_code == 200 and "create (REFERRAL)" in trail.text
    async with http_from(app) as http:
        home = await sign_in(http, admin.email)
        assert "Staff" in (await http.get("/app/users")).text
        found = await http.post("/app/users", data={"csrf": csrf_of(home.text), "q": net.counselor.email})
        assert net.counselor.email in found.text
        assert "pamoja-console" in (await http.get("/app/clients")).text
    async with http_from(app) as http:
        await sign_in(http, counselor.email)
        for path in ("/app/users", "/app/clients", "/app/audit"):
            refused = await http.get(path)
            assert refused.status_code == 403 and net.counselor.email not in refused.text
    async with http_from(app) as http:
        await sign_in(http, coordinator.email)
        services = await http.get("/app/services")
        assert "Psychosocial counseling" in services.text
        link = f"/app/act/setService?organizationId={net.partner.gid}&service=PSYCHOSOCIAL_COUNSELING"
        form = await http.get(link)
        saved = await http.post("/app/act/setService", data={
            **hidden_fields(form.text, "/app/act/setService"), "capacityStatus": "WAITLIST", "openSlots": "0"})
        assert saved.status_code == 303 and saved.headers["location"] == "/app/services?done=setService"
        assignable = await http.get(f"/app/act/assignCounselor?referralId={case.referral['id']}&expectedVersion=1")
        assert counselor.name in assignable.text  # counselors are chosen by name, with their caseload


async def test_a_survivor_search_never_goes_into_the_address(factory: Factory, app: FastAPI,
                                                              owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net)
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE staff_user SET password_hash = :h WHERE id = :u"),
                                 {"h": HASH, "u": net.manager.id})
    async with http_from(app) as http:
        home = await sign_in(http, net.manager.email)
        page = await http.get("/app/survivors")
        assert '<form method="post" action="/app/survivors"' in page.text
        found = await http.post("/app/survivors", data={"csrf": csrf_of(home.text), "q": case.survivor["pseudonym"]})
        assert found.status_code == 200 and f'/app/survivors/{case.survivor["id"]}' in found.text
        assert case.survivor["pseudonym"] not in str(found.url)
        forged = await http.post("/app/survivors", data={"q": case.survivor["pseudonym"]})
        assert forged.status_code == 403 and case.survivor["pseudonym"] not in forged.text


async def test_the_administrator_runs_staff_accounts_and_clients_from_the_console(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    partner = await factory.org()
    admin = await factory.user(ngo, Role.ADMIN, password_hash=HASH)
    counselor = await factory.user(partner, Role.COUNSELOR)
    system = await factory.oauth_client(partner)
    async with http_from(app) as http:
        home = await sign_in(http, admin.email)
        csrf = csrf_of(home.text)
        # A password link is shown once, on the page, never in an address.
        form = await http.get(f"/app/act/issuePasswordReset?staffUserId={counselor.gid}")
        shown = await http.post("/app/act/issuePasswordReset", data=hidden_fields(form.text,
                                                                                   "/app/act/issuePasswordReset"))
        assert shown.status_code == 200 and "/account/password?token=" in shown.text
        assert "token=" not in str(shown.url)
        # Roles are chosen from the list, and must fit the organization.
        form = await http.get(f"/app/act/setStaffRoles?staffUserId={counselor.gid}&expectedVersion=1")
        assert 'type="checkbox" name="roles" value="PARTNER_COORDINATOR"' in form.text
        wrong = await http.post("/app/act/setStaffRoles", data={
            **hidden_fields(form.text, "/app/act/setStaffRoles"), "roles": ["CASE_MANAGER"]})
        assert wrong.status_code == 422 and 'id="f-roles-hint"' in wrong.text
        # Deactivation from the list.
        found = await http.post("/app/users", data={"csrf": csrf, "q": counselor.email})
        deactivate = re.search(r'href="(/app/act/deactivateStaffUser\?[^"]+)"', found.text)
        assert deactivate, found.text
        form = await http.get(deactivate.group(1).replace("&amp;", "&"))
        done = await http.post("/app/act/deactivateStaffUser", data={
            **hidden_fields(form.text, "/app/act/deactivateStaffUser"), "reason": "Left the centre."})
        assert done.status_code == 303 and done.headers["location"] == "/app/users?done=deactivateStaffUser"
        # A client's first webhook URL: its secret shown once.
        form = await http.get(f"/app/act/updateOAuthClient?clientId={system.id}&expectedVersion=1")
        secret = await http.post("/app/act/updateOAuthClient", data={
            **hidden_fields(form.text, "/app/act/updateOAuthClient"), "webhookUrl": "https://hooks.example.org/p"})
        assert secret.status_code == 200 and "whsec_" in secret.text
    async with owner_engine.connect() as connection:
        active = await connection.scalar(text("SELECT active FROM staff_user WHERE id = :u"), {"u": counselor.id})
    assert active is False


async def test_an_expiring_access_token_is_renewed_by_refresh_rotation(factory: Factory, app: FastAPI,
                                                                         owner_engine: AsyncEngine) -> None:
    ngo = await factory.ngo()
    amina = await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH)
    session = "SELECT access_token_enc, refresh_token_enc FROM console_session WHERE staff_user_id = :u"
    async with http_from(app) as http:
        await sign_in(http, amina.email)
        async with owner_engine.begin() as connection:
            before = (await connection.execute(text(session), {"u": amina.id})).one()
            await connection.execute(text("UPDATE console_session SET access_expires_at = now() - interval '1 minute' "
                                          "WHERE staff_user_id = :u"), {"u": amina.id})
        assert (await http.get("/app/survivors")).status_code == 200
    async with owner_engine.connect() as connection:
        after = (await connection.execute(text(session), {"u": amina.id})).one()
        tokens = (await connection.execute(text(
            "SELECT used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked FROM oauth_refresh_token "
            "WHERE user_id = :u ORDER BY used_at NULLS LAST"), {"u": amina.id})).all()
    assert after.access_token_enc != before.access_token_enc and after.refresh_token_enc != before.refresh_token_enc
    assert [(t.used, t.revoked) for t in tokens] == [(True, False), (False, False)]  # the old one spent, a new one


async def test_people_on_the_console_do_not_share_one_token_budget(factory: Factory, settings: Settings) -> None:
    """The console is one OAuth client for everyone: its per-client limit counts per person's address."""
    tight = settings.model_copy(update={"token_rate_limit_per_client": "2/minute"})
    application = create_app(tight)
    ngo = await factory.ngo()
    people = [await factory.user(ngo, Role.CASE_MANAGER, password_hash=HASH) for _ in range(3)]
    async with application.router.lifespan_context(application):
        for number, person in enumerate(people):  # three sign-ins from three addresses: past a shared budget
            async with http_from(application, f"10.9.8.{number + 1}") as http:
                await sign_in(http, person.email)


class _Controls(HTMLParser):
    """Every visible form control of a page, and the labels it has (WCAG 2.1: 1.3.1, 3.3.2, 4.1.2)."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.labelled: set[str] = set()
        self.inside_label = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "label":
            self.inside_label += 1
            if found.get("for"):
                self.labelled.add(found["for"])
        if tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.controls.append({**found, "_wrapped": "yes" if self.inside_label else ""})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.inside_label -= 1


async def test_every_form_control_has_a_label(factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE staff_user SET password_hash = :h WHERE id = ANY(:u)"),
                                 {"h": HASH, "u": [net.manager.id, net.counselor.id]})
    referral = case.referral["id"]
    pages = {
        net.manager.email: ["/app/act/registerSurvivor", f"/app/survivors/{case.survivor['id']}",
                            f"/app/act/recordConsent?survivorId={case.survivor['id']}", "/app/survivors"],
        net.counselor.email: [f"/app/act/logSession?referralId={referral}",
                              f"/app/act/setCareGoal?referralId={referral}",
                              f"/app/act/recordMilestone?referralId={referral}", f"/app/referrals/{referral}"],
    }
    for email, paths in pages.items():
        async with http_from(app) as http:
            await sign_in(http, email)
            for path in paths:
                page = await http.get(path)
                assert page.status_code == 200, (path, page.status_code)
                parsed = _Controls()
                parsed.feed(page.text)
                assert parsed.controls, path
                for control in parsed.controls:
                    assert control["_wrapped"] or control.get("id") in parsed.labelled, (path, control)
