"""The README's integration examples, run as a partner would run them, against a live server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from db.engine import DatabaseUrls
from db.webhook_secrets import new_webhook_secret
from partners.webhooks import build_body, signed_headers
from tests.factories import Factory
from tests.flows import network, referred_case

README = Path(__file__).resolve().parents[2] / "README.md"


def example(name: str) -> tuple[str, str]:
    """The fenced block right after `<!-- tested: name -->`: (language, code)."""
    match = re.search(rf"<!-- tested: {re.escape(name)} -->\s*```(\w+)\n(.*?)```", README.read_text(), re.S)
    assert match, f"README example {name} is missing"
    return match.group(1), match.group(2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_api(database_urls: DatabaseUrls) -> Iterator[str]:
    port = _free_port()
    api = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": database_urls.owner, "PAMOJA_APP_DATABASE_URL": database_urls.app,
           "PAMOJA_PUBLIC_URL": api, "PAMOJA_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--no-migrate", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the live API did not become ready")
        yield api
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.fixture
async def partner_system(factory: Factory, live_api: str, database_urls: DatabaseUrls) -> AsyncIterator[dict[str, str]]:
    """The partner's system as the README registers it: its `client add` command run as written (only the
    placeholder filled in), so an example asking for more than those scopes fails here."""
    net = await network(factory)
    case = await referred_case(factory, net)
    language, code = example("client-add")
    assert language == "bash"
    command = code.replace("<partner id>", net.partner.gid).replace(
        ".venv/bin/pamoja", str(Path(sys.executable).with_name("pamoja")))
    result = await _run(["bash", "-euo", "pipefail", "-c", command],
                        {"DATABASE_URL": database_urls.owner, "PAMOJA_APP_DATABASE_URL": database_urls.app})
    assert result.returncode == 0, result.stderr
    client = json.loads(result.stdout.strip().splitlines()[-1])
    yield {"API": live_api, "CLIENT_ID": client["client_id"], "CLIENT_SECRET": client["client_secret"],
           "referral": case.referral["id"]}


async def _run(command: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, command, input=stdin, capture_output=True, text=True,
                                   env={**os.environ, **env}, timeout=60, check=False)


async def test_the_curl_example_lists_the_requested_referral(partner_system: dict[str, str]) -> None:
    language, code = example("curl-requested")
    assert language == "bash"
    result = await _run(["bash", "-euo", "pipefail", "-c", code], partner_system)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    ids = [edge["node"]["id"] for edge in body["data"]["referrals"]["edges"]]
    assert partner_system["referral"] in ids


async def test_the_python_example_polls_and_accepts_once(partner_system: dict[str, str]) -> None:
    language, code = example("python-poll-accept")
    assert language == "python"
    result = await _run([sys.executable, "-"], partner_system, stdin=code)
    assert result.returncode == 0, result.stderr
    assert f"accepted {partner_system['referral']} now version 2" in result.stdout


@pytest.mark.parametrize("tamper", [False, True])
async def test_the_webhook_verification_example(tamper: bool) -> None:
    language, code = example("python-verify-webhook")
    assert language == "python"
    secret = new_webhook_secret()
    event_id = str(uuid.uuid4())
    body = build_body(event_id=event_id, event_type="referral.requested", created_at=datetime.now(UTC),
                      data={"status": "REQUESTED"})
    headers = signed_headers(secret=secret, message_id=event_id, body=body)
    if tamper:
        body = body.replace(b"REQUESTED", b"ACCEPTED!")
    env = {"WEBHOOK_BODY": body.decode(), "WEBHOOK_HEADERS": json.dumps(headers), "WEBHOOK_SECRET": secret}
    result = await _run([sys.executable, "-"], env, stdin=code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("rejected" if tamper else "referral.requested")
