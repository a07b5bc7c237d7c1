"""Signing in to the console as a browser does, over HTTP (tests/console/test_browser.py does it in Chromium)."""

from __future__ import annotations

import re
from html import unescape

import httpx

from tests.oauth.test_staff_login import PASSWORD
from tests.oauth_helpers import read_form


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """The console's sign-in button, Pamoja's login page, and the way back; returns the home page."""
    started = await http.post("/app/sign-in")
    assert started.status_code == 303, started.text
    login = await http.get(started.headers["location"])
    assert login.status_code == 200, login.text
    action, fields = read_form(login.text)
    fields.update(email=email, password=password)
    back = await http.post(action, data=fields)
    assert back.status_code == 302, back.text
    landed = await http.get(back.headers["location"].removeprefix(str(http.base_url).rstrip("/")))
    assert landed.status_code == 303 and landed.headers["location"] == "/app", landed.text
    home = await http.get("/app")
    assert home.status_code == 200, home.text
    return home


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return unescape(found.group(1))


def hidden_fields(page: str, form_action: str) -> dict[str, str]:
    """The hidden inputs of the form posting to `form_action` (the CSRF token, ids, the idempotency key)."""
    start = page.index(f'action="{form_action}"')
    end = page.index("</form>", start)
    return {name: unescape(value) for name, value in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page[start:end])}
