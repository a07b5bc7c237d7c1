"""The operator CLI, run as the real console script in a subprocess against a throwaway database.

Each command is what an operator types: exit status, stdout (one JSON object with --json), a one-line
reason on stderr when it refuses, and the database afterwards (a refused command changes nothing).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shlex
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher

from db.urls import plain
from domain.ids import from_global_id, to_global_id
from tests.conftest import create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("pamoja")
# Quotes, a backslash, a percent sign and a dollar: what naive quoting of ALTER ROLE gets wrong.
APP_PASSWORD = "it's a \\secret\\ 100% $1 pw"


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class CliDatabase:
    url: str
    role: str
    env: dict[str, str]
    cwd: Path
    migrate: Result


async def pamoja(*args: str, env: dict[str, str], cwd: Path, stdin: str | None = None) -> Result:
    """Run `pamoja ARGS` as an operator would, in an empty folder (no ./var to fall back on)."""
    argv = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "cli.main"]
    process = await asyncio.create_subprocess_exec(
        *argv, *args, env=env, cwd=cwd,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), timeout=60)
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


def base_env() -> dict[str, str]:
    """The caller's environment without any Pamoja configuration, so only what a test sets applies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAMOJA_") and k != "DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture(scope="module")
async def cli_db(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CliDatabase]:
    """A fresh database migrated by `pamoja migrate`, with its own runtime role (a cluster-wide object)."""
    suffix = secrets.token_hex(4)
    name, role = f"pamoja_cli_{suffix}", f"pamoja_app_cli_{suffix}"
    url = await create_database(server_url, name)
    env = base_env()
    env.update(DATABASE_URL=url, PAMOJA_APP_DB_ROLE=role)
    cwd = tmp_path_factory.mktemp("cli")
    migrate = await pamoja("migrate", env={**env, "PAMOJA_APP_DB_PASSWORD": APP_PASSWORD}, cwd=cwd)
    try:
        yield CliDatabase(url=url, role=role, env=env, cwd=cwd, migrate=migrate)
    finally:
        await drop_database(server_url, name)
        connection = await asyncpg.connect(plain(server_url))
        try:
            await connection.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await connection.close()


async def fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(plain(url))
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def counts(url: str) -> tuple[int, int, int]:
    row = (await fetch(url, "SELECT (SELECT count(*) FROM organization) AS o, (SELECT count(*) FROM staff_user) AS u,"
                            " (SELECT count(*) FROM audit_event) AS a"))[0]
    return row["o"], row["u"], row["a"]


def scram_verifies(verifier: str, password: str) -> bool:
    """Whether a PostgreSQL SCRAM-SHA-256 verifier (RFC 5803 form) was made from this password."""
    _, iterations_salt, keys = verifier.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, _server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), base64.b64decode(stored_key))


def one_json_object(stdout: str) -> dict[str, object]:
    lines = stdout.splitlines()
    assert len(lines) == 1, f"--json must print exactly one line, printed {lines!r}"
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


async def add_org(cli_db: CliDatabase, name: str, *extra: str, kind: str = "PARTNER") -> str:
    result = await pamoja("org", "add", "--name", name, "--kind", kind, *extra, "--json",
                          env=cli_db.env, cwd=cli_db.cwd)
    assert result.returncode == 0, result.stderr
    gid = one_json_object(result.stdout)["id"]
    assert isinstance(gid, str)
    return gid


async def test_migrate_reaches_head_and_sets_the_runtime_role_password(cli_db: CliDatabase) -> None:
    from db.migrate import head_revision

    assert cli_db.migrate.returncode == 0, cli_db.migrate.stderr
    assert cli_db.migrate.stdout == "migrated to head\n"
    assert APP_PASSWORD not in cli_db.migrate.stdout + cli_db.migrate.stderr
    version = await fetch(cli_db.url, "SELECT version_num FROM alembic_version")
    assert [row["version_num"] for row in version] == [head_revision()]
    role = await fetch(cli_db.url, "SELECT rolpassword, rolsuper, rolbypassrls FROM pg_authid WHERE rolname = $1",
                       cli_db.role)
    assert len(role) == 1 and not role[0]["rolsuper"] and not role[0]["rolbypassrls"]
    verifier = role[0]["rolpassword"]
    assert verifier is not None and verifier.startswith("SCRAM-SHA-256$")
    assert scram_verifies(verifier, APP_PASSWORD)
    assert not scram_verifies(verifier, APP_PASSWORD.replace("'", "''"))


async def test_migrate_again_is_a_no_op(cli_db: CliDatabase) -> None:
    result = await pamoja("migrate", env=cli_db.env, cwd=cli_db.cwd)
    assert (result.returncode, result.stdout) == (0, "migrated to head\n"), result.stderr


async def test_org_add_json_prints_one_object_with_an_organization_id(cli_db: CliDatabase) -> None:
    name = f"Coast Counselling Centre {secrets.token_hex(3)}"
    result = await pamoja(
        "org", "add", "--name", name, "--kind", "PARTNER", "--county", "Mombasa", "--county", "3",
        "--service", "PSYCHOSOCIAL_COUNSELING", "--language", "sw", "--language", "nyf",
        "--min-age", "10", "--max-age", "17", "--json", env=cli_db.env, cwd=cli_db.cwd,
    )
    assert result.returncode == 0, result.stderr
    data = one_json_object(result.stdout)
    assert data["name"] == name and data["kind"] == "PARTNER"
    decoded = from_global_id(str(data["id"]))
    assert decoded is not None and decoded[0] == "Organization"
    rows = await fetch(cli_db.url, "SELECT name, kind, counties, languages, min_age, max_age FROM organization "
                                   "WHERE id = $1", decoded[1])
    assert [tuple(row) for row in rows] == [(name, "PARTNER", ["001", "003"], ["sw", "nyf"], 10, 17)]
    audited = await fetch(cli_db.url, "SELECT actor, action FROM audit_event WHERE record_id = $1", data["id"])
    assert [tuple(row) for row in audited] == [("operator:cli", "create")]


async def test_the_readme_quick_start_commands_run_as_written(cli_db: CliDatabase) -> None:
    """Each line of the quick start's block, pasted in order; only `<NGO id>` is filled in, from the
    first command's output, as the README tells the reader to."""
    block = re.search(r"<!-- tested: quick-start-people -->\s*```bash\n(.*?)```", (ROOT / "README.md").read_text(),
                      re.S)
    assert block, "the README's quick start block is missing"
    commands = [line.split("  #")[0].strip() for line in block.group(1).replace("\\\n", " ").splitlines()
                if line.strip()]
    ngo_id = ""
    outputs = []
    for command in commands:
        argv = shlex.split(command.replace("<NGO id>", ngo_id))
        assert argv[0] == ".venv/bin/pamoja", command
        result = await pamoja(*argv[1:], env=cli_db.env, cwd=cli_db.cwd)
        assert result.returncode == 0, (command, result.stderr)
        outputs.append(result.stdout)
        if not ngo_id:
            ngo_id = str(one_json_object(result.stdout)["id"])
    assert len(outputs) == 4
    assert outputs[-1].splitlines()[-1].count(".") == 2, "the token is the last line"


async def test_org_list_finds_the_id_an_org_option_takes(cli_db: CliDatabase) -> None:
    name = f"Malindi Safe House {secrets.token_hex(3)}"
    added = one_json_object((await pamoja("org", "add", "--name", name, "--kind", "PARTNER", "--json",
                                          env=cli_db.env, cwd=cli_db.cwd)).stdout)
    listed = one_json_object((await pamoja("org", "list", "--kind", "PARTNER", "--json",
                                           env=cli_db.env, cwd=cli_db.cwd)).stdout)
    organizations = listed["organizations"]
    assert isinstance(organizations, list) and listed["count"] == len(organizations)
    assert {"id": added["id"], "name": name, "kind": "PARTNER", "counties": [], "active": True} in organizations
    assert all(o["kind"] == "PARTNER" for o in organizations)
    table = await pamoja("org", "list", env=cli_db.env, cwd=cli_db.cwd)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "KIND", "STATUS", "ID"]
    assert any(row.startswith(name) and row.endswith(str(added["id"])) for row in rows)


async def test_user_add_with_two_roles_and_a_password_from_stdin(cli_db: CliDatabase) -> None:
    org = await add_org(cli_db, f"Kilifi Field Office {secrets.token_hex(3)}", kind="REFERRING_NGO")
    email = f"Wanjiku.{secrets.token_hex(3)}@Example.org"
    password = "correct horse battery staple"
    result = await pamoja(
        "user", "add", "--org", org, "--email", email, "--name", "Grace Wanjiku",
        "--role", "CASE_MANAGER", "--role", "SUPERVISOR", "--password-stdin", "--json",
        env=cli_db.env, cwd=cli_db.cwd, stdin=password + "\n",
    )
    assert result.returncode == 0, result.stderr
    data = one_json_object(result.stdout)
    decoded = from_global_id(str(data["id"]))
    assert decoded is not None and decoded[0] == "StaffUser"
    assert data["roles"] == ["CASE_MANAGER", "SUPERVISOR"] and data["organization"] == org
    assert password not in result.stdout + result.stderr
    rows = await fetch(cli_db.url, "SELECT organization_id, email, roles, password_hash FROM staff_user WHERE id = $1",
                       decoded[1])
    assert len(rows) == 1
    row = rows[0]
    assert to_global_id("Organization", row["organization_id"]) == org
    assert row["email"] == email.lower() and row["roles"] == ["CASE_MANAGER", "SUPERVISOR"]
    assert row["password_hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(row["password_hash"], password)


async def test_user_add_with_no_password_link_stores_no_hash(cli_db: CliDatabase) -> None:
    org = await add_org(cli_db, f"Kwale Clinic {secrets.token_hex(3)}")
    result = await pamoja("user", "add", "--org", org, "--email", f"c.{secrets.token_hex(3)}@example.org",
                          "--name", "Counselor", "--role", "counselor", "--no-password-link", env=cli_db.env,
                          cwd=cli_db.cwd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("staff user ")
    gid = result.stdout.split()[-1]
    decoded = from_global_id(gid, "StaffUser")
    assert decoded is not None
    rows = await fetch(cli_db.url, "SELECT roles, password_hash FROM staff_user WHERE id = $1", decoded[1])
    assert [tuple(row) for row in rows] == [(["COUNSELOR"], None)]


@dataclass(frozen=True)
class Existing:
    org: str
    org_name: str
    email: str


@pytest.fixture(scope="module")
async def existing(cli_db: CliDatabase) -> Existing:
    name = f"Mombasa Partner {secrets.token_hex(3)}"
    org = await add_org(cli_db, name)
    email = f"existing.{secrets.token_hex(3)}@example.org"
    result = await pamoja("user", "add", "--org", org, "--email", email, "--name", "Existing",
                          "--role", "PARTNER_COORDINATOR", env=cli_db.env, cwd=cli_db.cwd)
    assert result.returncode == 0, result.stderr
    return Existing(org=org, org_name=name, email=email)


REFUSALS = {
    "unknown role": (lambda e: ["user", "add", "--org", e.org, "--email", "new.role@example.org", "--name", "N",
                                "--role", "CASE_MANAGER", "--role", "WIZARD"], "unknown role"),
    "missing organization": (lambda e: ["user", "add", "--org", to_global_id("Organization", uuid.uuid4()),
                                        "--email", "nobody@example.org", "--name", "N", "--role", "COUNSELOR"],
                             "No such organization"),
    "not an organization id": (lambda e: ["user", "add", "--org", "not-an-id", "--email", "x@example.org",
                                          "--name", "N", "--role", "COUNSELOR"], "not an organization id"),
    "duplicate e-mail in another case": (lambda e: ["user", "add", "--org", e.org, "--email", e.email.upper(),
                                                    "--name", "N", "--role", "COUNSELOR"], "already exists"),
    "duplicate organization name": (lambda e: ["org", "add", "--name", f"  {e.org_name.upper()} ", "--kind",
                                               "PARTNER"], "already exists"),
    "unknown county": (lambda e: ["org", "add", "--name", f"Atlantis {e.org_name}", "--kind", "PARTNER",
                                  "--county", "Mombasa", "--county", "Atlantis"], "county"),
    "ages reversed": (lambda e: ["org", "add", "--name", f"Ages {e.org_name}", "--kind", "PARTNER",
                                 "--min-age", "18", "--max-age", "10"], "--min-age"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_bad_arguments_exit_non_zero_with_one_line_and_change_nothing(
    cli_db: CliDatabase, existing: Existing, case: str
) -> None:
    build, reason = REFUSALS[case]
    before = await counts(cli_db.url)
    result = await pamoja(*build(existing), "--json", env=cli_db.env, cwd=cli_db.cwd)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected a one-line reason, got {result.stderr!r}"
    assert lines[0].startswith("pamoja: ") and reason in lines[0]
    assert await counts(cli_db.url) == before


async def test_production_without_its_secrets_refuses_in_one_line_without_echoing_values(tmp_path: Path) -> None:
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    env = base_env()
    env.update(PAMOJA_ENV="production", PAMOJA_MASTER_KEYS=f"k1:{secret}", PAMOJA_PUBLIC_URL="http://pamoja.example")
    result = await pamoja("migrate", env=env, cwd=tmp_path)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for problem in ("PAMOJA_BLIND_INDEX_KEY", "DATABASE_URL", "PAMOJA_PUBLIC_URL"):
        assert problem in lines[0]
    assert "PAMOJA_MASTER_KEYS" not in lines[0] and secret not in result.stderr
    assert not (tmp_path / "var").exists(), "a refused start must not create an embedded database"


async def test_schema_prints_the_sdl_that_schema_graphql_must_equal(tmp_path: Path) -> None:
    """What `make schema` writes; test_schema_file.py checks the committed file is that text."""
    from api.graphql.schema import schema_sdl

    result = await pamoja("schema", env=base_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == schema_sdl()
    assert result.stdout.endswith("\n") and "type Query" in result.stdout


async def test_housekeeping_prints_what_it_deleted_per_kind(cli_db: CliDatabase) -> None:
    await fetch(cli_db.url,
                "INSERT INTO revoked_token (jti, expires_at) VALUES ('cli-expired', now() - interval '1 day')")
    result = await pamoja("housekeeping", "--json", env=cli_db.env, cwd=cli_db.cwd)
    assert result.returncode == 0, result.stderr
    swept = one_json_object(result.stdout)
    assert set(swept) == {"idempotency_records", "revoked_tokens", "assertion_jtis", "authorization_codes",
                          "login_throttles", "console_sessions"}
    assert swept["revoked_tokens"] == 1 and all(isinstance(v, int) for v in swept.values())
    assert await fetch(cli_db.url, "SELECT 1 FROM revoked_token WHERE jti = 'cli-expired'") == []
    again = await pamoja("housekeeping", env=cli_db.env, cwd=cli_db.cwd)
    assert again.returncode == 0 and again.stdout.startswith("housekeeping: 0 idempotency records"), again


async def test_the_worker_sweeps_on_its_interval_and_stops_cleanly_on_sigterm(cli_db: CliDatabase) -> None:
    await fetch(cli_db.url,
                "INSERT INTO revoked_token (jti, expires_at) VALUES ('worker-expired', now() - interval '1 day')")
    argv = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "cli.main"]
    process = await asyncio.create_subprocess_exec(
        *argv, "worker", "--json", env={**cli_db.env, "PAMOJA_HOUSEKEEPING_INTERVAL_SECONDS": "0.2"},
        cwd=cli_db.cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(100):
            if not await fetch(cli_db.url, "SELECT 1 FROM revoked_token WHERE jti = 'worker-expired'"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the worker did not sweep the expired row within 10 s")
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0
    assert set(one_json_object(stdout.decode())) >= {"delivered", "dead"}


ENV_LINE = re.compile(r"^(PAMOJA_[A-Z_]+)=([A-Za-z0-9_:=-]+)$")


def generated_keys(stdout: str) -> dict[str, str]:
    """The variables `pamoja keys generate` printed; every other line is a `#` comment."""
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("#"):
            continue
        match = ENV_LINE.fullmatch(line)
        assert match, f"not a line an env file, a shell and compose all read unquoted: {line!r}"
        found[match.group(1)] = match.group(2)
    return found


async def test_keys_generate_prints_fresh_keys_that_production_accepts_from_an_env_file(tmp_path: Path) -> None:
    """No database and no configuration needed: it is how the first production secrets are made."""
    env = {**base_env(), "PAMOJA_ENV": "production"}
    first, second = [await pamoja("keys", "generate", env=env, cwd=tmp_path) for _ in range(2)]
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    keys, other = generated_keys(first.stdout), generated_keys(second.stdout)
    assert set(keys) == {"PAMOJA_MASTER_KEYS", "PAMOJA_BLIND_INDEX_KEY"}
    assert not set(keys.values()) & set(other.values()), "each run draws new keys"
    key_id, _, master = keys["PAMOJA_MASTER_KEYS"].partition(":")
    assert key_id == "k1"
    for encoded in (master, keys["PAMOJA_BLIND_INDEX_KEY"]):
        assert len(base64.urlsafe_b64decode(encoded)) == 32
    assert not (tmp_path / "var").exists(), "generating keys starts no database"

    env_file = tmp_path / "pamoja.env"
    env_file.write_text(first.stdout)
    from config.settings import Settings
    from db.crypto import MasterKeys

    settings = Settings(_env_file=env_file, env="production",
                        database_url="postgresql://pamoja@db/pamoja", public_url="https://pamoja.example.org")
    assert settings.master_keys.get_secret_value() == keys["PAMOJA_MASTER_KEYS"]
    assert settings.blind_index_key.get_secret_value() == keys["PAMOJA_BLIND_INDEX_KEY"]
    assert MasterKeys.parse(settings.master_keys.get_secret_value()).current_id == "k1"


async def test_keys_generate_with_a_key_id_for_a_rotation_and_as_json(tmp_path: Path) -> None:
    result = await pamoja("keys", "generate", "--key-id", "k2", "--json", env=base_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = one_json_object(result.stdout)
    assert set(data) == {"PAMOJA_MASTER_KEYS", "PAMOJA_BLIND_INDEX_KEY"}
    assert str(data["PAMOJA_MASTER_KEYS"]).startswith("k2:")


@pytest.mark.parametrize("key_id", ["", "k:1", "k,1", "k 1", "k\t1", "k=1", "ключ"])
async def test_keys_generate_refuses_a_key_id_the_settings_could_not_read(tmp_path: Path, key_id: str) -> None:
    result = await pamoja("keys", "generate", "--key-id", key_id, env=base_env(), cwd=tmp_path)
    assert result.returncode != 0 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("pamoja: --key-id ")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_serving(cli_db: CliDatabase, port: int,
                        *options: str) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader]:
    """`pamoja serve` on the test's database, and its log (JSON, on stderr; its stdout is not read)."""
    argv = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "cli.main"]
    env = {**cli_db.env, "PAMOJA_APP_DB_PASSWORD": APP_PASSWORD, "PAMOJA_LOG_JSON": "true"}
    process = await asyncio.create_subprocess_exec(
        *argv, "serve", "--no-migrate", "--port", str(port), *options, env=env, cwd=cli_db.cwd,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    return process, process.stderr


async def test_serve_logs_its_database_and_migrations_then_each_request_once(cli_db: CliDatabase) -> None:
    """What a newcomer reads in the first lines, and one line per request (ours, with the request id)."""
    from db.migrate import head_revision

    port = free_port()
    process, log = await start_serving(cli_db, port)
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not lines or "startup complete" not in lines[-1]:
                line = await log.readline()
                assert line, f"pamoja serve ended before serving: {lines}"
                lines.append(line.decode())
        request_id = f"one-request-{secrets.token_hex(4)}"
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/healthz?who=once", headers={"X-Request-Id": request_id})
        assert response.status_code == 200 and response.headers["x-request-id"] == request_id
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), timeout=30)
    output = "".join(lines) + rest.decode()
    assert APP_PASSWORD not in output and quote(APP_PASSWORD, safe="") not in output
    records = [json.loads(line) for line in output.splitlines()]

    [database] = [r for r in records if r["event"] == "database in use"]
    # The query as an operator reads it (an embedded server's socket folder is `host=/tmp/…`, not `%2Ftmp`).
    assert database["database"] == f"postgresql://{cli_db.role}:***@{unquote(plain(cli_db.url).split('@', 1)[1])}"
    [migrations] = [r for r in records if r.get("revision") is not None]
    assert migrations["event"] == "migrations at head" and migrations["revision"] == head_revision()

    about_the_request = [r for r in records if r.get("request_id") == request_id]
    assert about_the_request == [r for r in records if r["event"] == "request"], "one line per request"
    [request] = about_the_request
    assert (request["logger"], request["method"], request["path"], request["status"]) == (
        "pamoja.http", "GET", "/healthz", 200)
    assert not [r for r in records if r["logger"] == "uvicorn.access"]
    assert "who=once" not in output, "no query string in the access log"


async def test_serve_with_two_workers_splits_keep_alive_connections_evenly(cli_db: CliDatabase) -> None:
    """Long-lived connections opened one after another end up 4/4 on two workers (the kernel alone gives
    9/7 or 16/0), and the board the workers share is removed when the server stops."""
    import psutil  # type: ignore[import-untyped]

    from cli.accepting import BOARD_ENV

    port = free_port()
    process, log = await start_serving(cli_db, port, "--workers", "2")
    started, opened = 0, []
    try:
        async with asyncio.timeout(60):
            while started < 2:
                line = await log.readline()
                assert line, "pamoja serve ended before serving"
                started += b"startup complete" in line
        for _ in range(8):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: pamoja\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            assert head.startswith(b"HTTP/1.1 200")
            opened.append(writer)
        workers = [child for child in psutil.Process(process.pid).children()  # not multiprocessing's helper
                   if any(c.status == psutil.CONN_LISTEN for c in child.net_connections("tcp"))]
        held = sorted(sum(1 for c in worker.net_connections("tcp") if c.laddr.port == port and c.raddr)
                      for worker in workers)
        assert held == [4, 4]
        board = workers[0].environ()[BOARD_ENV]
        assert await asyncio.to_thread(os.path.exists, board)
    finally:
        for writer in opened:
            writer.close()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0
    assert not await asyncio.to_thread(os.path.exists, board)
