"""The operator's OAuth commands, run as the real `pamoja` console script against the test database.

What the commands print is then used exactly as an operator would hand it on: the partner's secret
at /oauth/token, the minted staff token at /graphql.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from db.crypto import MasterKeys
from db.engine import DatabaseUrls
from db.webhook_secrets import open_webhook_secret
from domain.enums import Role
from tests.factories import Factory
from tests.oauth_helpers import VIEWER, ec_key, http_from, public_jwks

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("pamoja")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, object]:
        assert self.code == 0, self.err
        parsed: dict[str, object] = json.loads(self.out)
        return parsed


@pytest.fixture
def cli_env(database_urls: DatabaseUrls) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAMOJA_") and k != "DATABASE_URL"}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=database_urls.owner, PAMOJA_APP_DATABASE_URL=database_urls.app,
               PAMOJA_PUBLIC_URL="http://testserver", PAMOJA_ENV="test")
    return env


async def pamoja(env: dict[str, str], *args: str, cwd: Path) -> Result:
    argv = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "cli.main"]
    process = await asyncio.create_subprocess_exec(*argv, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def test_client_add_with_a_secret_and_a_webhook_then_rotate_and_disable(
        factory: Factory, app: FastAPI, cli_env: dict[str, str], tmp_path: Path, owner_engine: AsyncEngine,
        settings: Settings) -> None:
    partner = await factory.org()
    added = (await pamoja(cli_env, "client", "add", "--org", partner.gid, "--name", "Case system",
                          "--scope", "system/Referral.rus", "--scope", "system/Organization.rs",
                          "--webhook-url", "http://127.0.0.1:9/hooks", "--json", cwd=tmp_path)).json()
    assert set(added) == {"id", "client_id", "client_secret", "webhook_secret"}
    assert str(added["webhook_secret"]).startswith("whsec_")
    client_id, secret = str(added["client_id"]), str(added["client_secret"])
    async with owner_engine.connect() as connection:
        sealed = (await connection.execute(text("SELECT webhook_secret_enc FROM oauth_client WHERE client_id = :c"),
                                           {"c": client_id})).scalar_one()
    # The webhook worker opens exactly what the CLI stored.
    master = MasterKeys.parse(settings.master_keys.get_secret_value())
    assert open_webhook_secret(master, client_id=client_id, sealed=sealed) == added["webhook_secret"]

    async with http_from(app) as http:
        issued = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        assert issued.status_code == 200, issued.text
        assert issued.json()["scope"] == "system/Referral.rus system/Organization.rs"

        rotated = (await pamoja(cli_env, "client", "rotate-secret", client_id, "--json", cwd=tmp_path)).json()
        assert rotated["client_id"] == client_id and rotated["client_secret"] != secret
        old = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        assert old.json()["error"] == "invalid_client"
        new_secret = str(rotated["client_secret"])
        token = (await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(client_id, new_secret))).json()["access_token"]

        disabled = (await pamoja(cli_env, "client", "disable", str(added["id"]), "--json", cwd=tmp_path)).json()
        assert disabled["disabled"] == "true"
        refused = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=(client_id, new_secret))
        assert refused.json()["error"] == "invalid_client"
        stale = await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})
        assert stale.status_code == 401
    async with owner_engine.connect() as connection:
        actions = (await connection.execute(text(
            "SELECT action FROM audit_event WHERE record_id = :id AND actor = 'operator:cli' ORDER BY seq"
        ), {"id": added["id"]})).scalars().all()
    assert actions == ["create", "rotate_secret", "disable"]


async def test_client_list_shows_what_an_operator_checks_and_never_a_secret(
        factory: Factory, cli_env: dict[str, str], tmp_path: Path) -> None:
    partner, other = await factory.org(), await factory.org()
    added = (await pamoja(cli_env, "client", "add", "--org", partner.gid, "--name", "Tumaini case system",
                          "--scope", "system/Referral.rus", "--webhook-url", "http://127.0.0.1:9/hooks", "--json",
                          cwd=tmp_path)).json()
    await factory.oauth_client(other)
    listed = (await pamoja(cli_env, "client", "list", "--org", partner.gid, "--json", cwd=tmp_path)).json()
    assert listed["count"] == 1
    [client] = listed["clients"]  # type: ignore[misc]
    assert client["id"] == added["id"] and client["client_id"] == added["client_id"]
    assert (client["kind"], client["authentication"], client["active"]) == ("partner system", "client_secret", True)
    assert client["scopes"] == ["system/Referral.rus"] and client["webhook_url"] == "http://127.0.0.1:9/hooks"
    everything = await pamoja(cli_env, "client", "list", cwd=tmp_path)
    assert everything.code == 0, everything.err
    assert everything.out.splitlines()[0].split() == ["CLIENT_ID", "NAME", "ORGANIZATION", "KIND", "STATUS", "SCOPES"]
    for shown in (json.dumps(listed), everything.out):
        assert str(added["client_secret"]) not in shown and str(added["webhook_secret"]) not in shown
        assert "pmjs_" not in shown and "whsec_" not in shown and "$argon2" not in shown
    refused = await pamoja(cli_env, "client", "list", "--org", "not-an-id", cwd=tmp_path)
    assert refused.code != 0 and "--org" in refused.err and refused.out == ""


async def test_client_update_changes_what_is_given_within_the_ceiling_and_is_audited(
        factory: Factory, app: FastAPI, cli_env: dict[str, str], tmp_path: Path, owner_engine: AsyncEngine) -> None:
    partner = await factory.org()
    added = (await pamoja(cli_env, "client", "add", "--org", partner.gid, "--name", "Case system",
                          "--scope", "system/Referral.rus", "--json", cwd=tmp_path)).json()
    client_id, secret = str(added["client_id"]), str(added["client_secret"])
    updated = (await pamoja(cli_env, "client", "update", client_id, "--name", "Tumaini case system",
                            "--scope", "system/Referral.rus", "--scope", "system/Survivor.rs",
                            "--webhook-url", "http://127.0.0.1:9/hooks", "--json", cwd=tmp_path)).json()
    assert updated["id"] == added["id"] and str(updated["webhook_secret"]).startswith("whsec_")
    [client] = (await pamoja(cli_env, "client", "list", "--org", partner.gid, "--json",
                             cwd=tmp_path)).json()["clients"]  # type: ignore[misc]
    assert (client["name"], client["scopes"], client["webhook_url"]) == (
        "Tumaini case system", ["system/Referral.rus", "system/Survivor.rs"], "http://127.0.0.1:9/hooks")
    async with http_from(app) as http:
        issued = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        assert issued.json()["scope"] == "system/Referral.rus system/Survivor.rs"

    over = await pamoja(cli_env, "client", "update", client_id, "--scope", "system/Survivor.cruds", cwd=tmp_path)
    assert over.code != 0 and over.out == ""
    assert "--scope system/Survivor.cruds is beyond what a partner organization's system may hold (ceiling: " \
        in over.err, over.err
    for refused in (["--redirect-uri", "https://app.example/cb"], [], ["--webhook-url", "ftp://x"]):
        result = await pamoja(cli_env, "client", "update", client_id, *refused, cwd=tmp_path)
        assert result.code != 0 and len(result.err.splitlines()) == 1, result.err
    removed = await pamoja(cli_env, "client", "update", str(added["id"]), "--no-webhook-url", cwd=tmp_path)
    assert removed.code == 0, removed.err
    async with owner_engine.connect() as connection:
        row = (await connection.execute(text("SELECT webhook_url, webhook_secret_enc, allowed_scopes FROM oauth_client "
                                             "WHERE client_id = :c"), {"c": client_id})).one()
        actions = (await connection.execute(text(
            "SELECT action FROM audit_event WHERE record_id = :id AND actor = 'operator:cli' ORDER BY seq"
        ), {"id": added["id"]})).scalars().all()
    assert (row.webhook_url, row.webhook_secret_enc) == (None, None)
    assert row.allowed_scopes == ["system/Referral.rus", "system/Survivor.rs"]
    assert actions == ["create", "update", "update"]


async def test_client_add_with_a_jwks_prints_no_secret(factory: Factory, cli_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    partner = await factory.org()
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(public_jwks(ec_key())))
    added = (await pamoja(cli_env, "client", "add", "--org", partner.gid, "--name", "Key system",
                          "--scope", "system/Referral.rs", "--jwks-file", str(jwks_file), "--json",
                          cwd=tmp_path)).json()
    assert set(added) == {"id", "client_id"}
    rotate = await pamoja(cli_env, "client", "rotate-secret", str(added["client_id"]), cwd=tmp_path)
    assert rotate.code == 2 and "no secret" in rotate.err


async def test_client_add_refuses_what_it_must_and_changes_nothing(
        factory: Factory, cli_env: dict[str, str], tmp_path: Path, owner_engine: AsyncEngine) -> None:
    partner = await factory.org()
    private_file = tmp_path / "private.json"
    private_file.write_text(json.dumps({"keys": [ec_key().as_dict(private=True)]}))
    refusals = {
        "beyond the ceiling": ["--scope", "system/AuditEvent.rs"],
        "a user scope for a system": ["--scope", "user/Referral.rs"],
        "a malformed scope": ["--scope", "system/Referral.xyz"],
        "a private JWKS": ["--scope", "system/Referral.rs", "--jwks-file", str(private_file)],
        "an http webhook elsewhere": ["--scope", "system/Referral.rs", "--webhook-url", "http://example.org/h"],
    }
    for reason, extra in refusals.items():
        result = await pamoja(cli_env, "client", "add", "--org", partner.gid, "--name", "Nope", *extra, cwd=tmp_path)
        assert result.code == 2, reason
        assert result.err.startswith("pamoja: ") and result.err.count("\n") == 1, reason
    async with owner_engine.connect() as connection:
        count = (await connection.execute(text("SELECT count(*) FROM oauth_client WHERE organization_id = :o"),
                                          {"o": partner.id})).scalar_one()
    assert count == 0


async def test_pamoja_token_mints_an_audited_staff_token(factory: Factory, app: FastAPI, cli_env: dict[str, str],
                                                         tmp_path: Path, owner_engine: AsyncEngine) -> None:
    user = await factory.user(await factory.ngo(), Role.CASE_MANAGER)
    result = await pamoja(cli_env, "token", "--user", user.email, "--scope", "user/Referral.rs", "--ttl", "120",
                          cwd=tmp_path)
    assert result.code == 0, result.err
    token = result.out.strip().splitlines()[-1]
    async with http_from(app) as http:
        response = await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    who = response.json()["data"]["viewer"]
    assert who["user"] == {"id": user.gid} and who["scopes"] == ["user/Referral.rs"]
    assert who["clientId"] == "pamoja-cli"
    async with owner_engine.connect() as connection:
        audited = (await connection.execute(text(
            "SELECT count(*) FROM audit_event "
            "WHERE action = 'issue_token' AND record_id = :u AND actor = 'operator:cli'"
        ), {"u": user.gid})).scalar_one()
    assert audited == 1
    for bad in (["--ttl", "100000"], ["--scope", "user/AuditEvent.rs"]):
        refused = await pamoja(cli_env, "token", "--user", user.email, *bad, cwd=tmp_path)
        assert refused.code == 2, bad
    nobody = await pamoja(cli_env, "token", "--user", "nobody@example.org", cwd=tmp_path)
    assert nobody.code == 2


async def test_keys_rotate_publishes_the_new_key_and_keeps_the_old_one_until_it_retires(
        factory: Factory, app: FastAPI, cli_env: dict[str, str], tmp_path: Path) -> None:
    user = await factory.user(await factory.ngo(), Role.SUPERVISOR)
    before = await factory.token(user)
    rotated = (await pamoja(cli_env, "keys", "rotate", "--json", cwd=tmp_path)).json()
    assert rotated["retiring"], rotated
    after = await factory.token(user)
    async with http_from(app) as http:
        kids = {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}
        assert rotated["kid"] in kids and set(rotated["retiring"]) <= kids  # type: ignore[arg-type]
        for token in (before, after):
            response = await http.post("/graphql", json={"query": VIEWER},
                                       headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
