"""The console's data protection pages: a supervisor holds, exports and erases a survivor's record and
reviews possible duplicates; a case manager corrects a name; the forms are the schema's own."""

from __future__ import annotations

import json
import re
import secrets

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.console.helpers import csrf_of, hidden_fields, sign_in
from tests.factories import Factory
from tests.flows import network, referred_case, register_survivor
from tests.oauth.test_staff_login import HASH
from tests.oauth_helpers import http_from


async def _passwords(engine: AsyncEngine, *user_ids: object) -> None:
    async with engine.begin() as connection:
        for user_id in user_ids:
            await connection.execute(text("UPDATE staff_user SET password_hash = :h WHERE id = :u"),
                                     {"h": HASH, "u": user_id})


def _link(page: str, mutation: str) -> str:
    found = re.search(rf'href="(/app/act/{mutation}\?[^"]+)"', page)
    assert found, f"no link to {mutation}"
    return found.group(1).replace("&amp;", "&")


async def test_a_supervisor_holds_exports_and_erases_from_the_survivor_page(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True)
    await _passwords(owner_engine, net.supervisor.id, net.manager.id)
    page_of = f"/app/survivors/{case.survivor['id']}"
    async with http_from(app) as http:
        await sign_in(http, net.supervisor.email)
        page = await http.get(page_of)
        assert page.status_code == 200 and "/app/act/placeLegalHold" in page.text
        form = await http.get(_link(page.text, "placeLegalHold"))
        assert 'name="reason"' in form.text and 'value="PROSECUTION"' in form.text
        done = await http.post("/app/act/placeLegalHold", data={
            **hidden_fields(form.text, "/app/act/placeLegalHold"), "reason": "PROSECUTION"})
        assert done.status_code == 303 and done.headers["location"].startswith(page_of)
        page = await http.get(page_of)
        assert "/app/act/liftLegalHold" in page.text and "/app/act/placeLegalHold" not in page.text
        form = await http.get(_link(page.text, "requestSurvivorErasure"))
        assert 'value="RETENTION_EXPIRED"' not in form.text  # the retention run's own reason is not offered
        waits = await http.post("/app/act/requestSurvivorErasure", data={
            **hidden_fields(form.text, "/app/act/requestSurvivorErasure"), "reason": "SUBJECT_REQUEST"})
        assert waits.status_code == 303
        page = await http.get(page_of)
        assert "waits until the legal hold is lifted" in page.text

        exported = await http.post(f"{page_of}/export", data={"csrf": csrf_of(page.text)})
        assert exported.status_code == 200 and exported.headers["cache-control"] == "no-store"
        assert exported.headers["content-disposition"].startswith("attachment;")
        assert json.loads(exported.text)["survivor"]["id"] == case.survivor["id"]
        refused = await http.post(f"{page_of}/export", data={"csrf": "forged"})
        assert refused.status_code == 403

        form = await http.get(_link(page.text, "liftLegalHold"))
        await http.post("/app/act/liftLegalHold", data={
            **hidden_fields(form.text, "/app/act/liftLegalHold"), "reason": "PROCEEDINGS_CONCLUDED"})
        page = await http.get(page_of)
        form = await http.get(_link(page.text, "requestSurvivorErasure"))
        erased = await http.post("/app/act/requestSurvivorErasure", data={
            **hidden_fields(form.text, "/app/act/requestSurvivorErasure"), "reason": "SUBJECT_REQUEST"})
        assert erased.status_code == 303
        page = await http.get(page_of)
        assert "Erased" in page.text and "/app/act/requestSurvivorErasure" not in page.text
    async with http_from(app) as http:  # a case manager corrects, but neither holds, erases nor exports
        await sign_in(http, net.manager.email)
        other = await register_survivor(factory, net.token("manager"))
        page = await http.get(f"/app/survivors/{other['id']}")
        assert "/app/act/correctSurvivorIdentity" in page.text and "/app/act/placeLegalHold" not in page.text
        assert "/export" not in page.text
        form = await http.get(_link(page.text, "correctSurvivorIdentity"))
        fixed_name = f"Corrected {secrets.token_hex(3)}"
        done = await http.post("/app/act/correctSurvivorIdentity", data={
            **hidden_fields(form.text, "/app/act/correctSurvivorIdentity"), "reason": "SPELLING",
            "legalName": fixed_name})
        assert done.status_code == 303, done.text
        refused = await http.post(f"/app/survivors/{other['id']}/export", data={"csrf": csrf_of(page.text)})
        assert refused.status_code == 403
    body = await factory.gql(net.token("manager"), """query($id: ID!) { node(id: $id) { ... on Survivor {
        identity { legalName } } } }""", {"id": other["id"]})
    assert body["data"]["node"]["identity"]["legalName"] == fixed_name


async def test_a_supervisor_reviews_possible_duplicates_in_the_console(
        factory: Factory, app: FastAPI, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    await _passwords(owner_engine, net.supervisor.id)
    shared = f"+2547{secrets.randbelow(10**8):08d}"
    first = await register_survivor(factory, net.token("manager"), phone=shared)
    second = await register_survivor(factory, net.token("manager"), guardianPhone=shared)
    async with http_from(app) as http:
        await sign_in(http, net.supervisor.email)
        listed = await http.get("/app/duplicates")
        assert listed.status_code == 200
        assert first["pseudonym"] in listed.text and second["pseudonym"] in listed.text
        form = await http.get(_link(listed.text, "resolveDuplicateReview"))
        done = await http.post("/app/act/resolveDuplicateReview",
                               data=hidden_fields(form.text, "/app/act/resolveDuplicateReview"))
        assert done.status_code == 303 and done.headers["location"] == "/app/duplicates?done=resolveDuplicateReview"
        listed = await http.get("/app/duplicates")
        assert second["pseudonym"] not in listed.text
