"""compose.yaml and the Dockerfile cannot be run here, so their shape is checked against the code.

Every `pamoja ...` command they run is parsed by the real CLI parser (subcommand and options), every
PAMOJA_* variable they set must be a Settings field, and the API must never hold the owner's password.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from sqlalchemy.engine import make_url

from auth.ratelimit import RateLimits
from cli.main import build_parser
from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _interpolated(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?message} with a placeholder, enough to parse a URL."""
    return INTERPOLATION.sub(lambda match: f"value-of-{match.group(1).lower()}", value)


def _assert_cli_accepts(argv: list[str], where: str) -> None:
    assert argv and argv[0] == "pamoja", f"{where} should run the pamoja console script, runs {argv}"
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse exits 2 on an unknown subcommand or option
        raise AssertionError(f"{where}: `{' '.join(argv)}` is not a valid pamoja command line") from exc
    assert callable(args.handler)


def test_the_stack_has_database_migration_and_api(services: dict[str, Any]) -> None:
    assert {"db", "migrate", "api"} <= set(services)


def test_database_is_postgres_16_with_a_healthcheck_and_a_named_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    db = services["db"]
    assert str(db["image"]).split(":")[0] == "postgres"
    assert str(db["image"]).split(":")[1].startswith("16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = str(db["volumes"][0]).split(":")[0]
    assert volume in compose["volumes"], "the database volume must be a named volume"
    password = str(db["environment"]["POSTGRES_PASSWORD"])
    assert password.startswith("${POSTGRES_PASSWORD"), "the database password comes from the environment"


def test_every_pamoja_command_in_compose_exists_in_the_cli(services: dict[str, Any]) -> None:
    commands = {name: _command(service) for name, service in services.items() if _command(service)[:1] == ["pamoja"]}
    assert {"migrate", "api"} <= set(commands)
    for name, argv in commands.items():
        _assert_cli_accepts(argv, f"compose service {name}")
    assert commands["migrate"][1] == "migrate"
    assert commands["api"][1] == "serve"
    assert "--no-migrate" in commands["api"], "replicas must not race to migrate: the migrate service does it"


def test_migration_runs_once_after_the_database_is_healthy(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert str(migrate.get("restart", "no")) == "no"
    url = make_url(_interpolated(migrate["environment"]["DATABASE_URL"]))
    assert (url.host, url.port, url.database) == ("db", 5432, services["db"]["environment"]["POSTGRES_DB"])
    assert "PAMOJA_APP_DB_PASSWORD" in migrate["environment"], "migrate sets the runtime role's password"


def test_api_runs_two_replicas_after_migration_without_a_fixed_host_port(services: dict[str, Any]) -> None:
    api = services["api"]
    replicas = api["deploy"]["replicas"]
    assert replicas == 2
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for mapping in api.get("ports", []):
        parts = str(mapping).split(":")
        host_port = parts[-2] if len(parts) >= 2 else ""
        if host_port:
            low, _, high = host_port.partition("-")
            assert high, f"{mapping}: {replicas} replicas cannot share one fixed host port"
            assert int(high) - int(low) + 1 >= replicas
    healthcheck = " ".join(api["healthcheck"]["test"])
    port = _command(api)[_command(api).index("--port") + 1]
    assert f"127.0.0.1:{port}/healthz" in healthcheck


def test_api_is_production_with_required_secrets_and_only_the_runtime_role(services: dict[str, Any]) -> None:
    environment = services["api"]["environment"]
    assert environment["PAMOJA_ENV"] == "production"
    for name in ("PAMOJA_PUBLIC_URL", "PAMOJA_MASTER_KEYS", "PAMOJA_BLIND_INDEX_KEY", "PAMOJA_APP_DB_PASSWORD"):
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", str(environment[name])), (
            f"{name} must be a required variable (${{{name}:?...}}), never a default"
        )
    url = make_url(_interpolated(environment["DATABASE_URL"]))
    assert url.username == Settings.model_fields["app_db_role"].default, "the API must not connect as the owner"
    assert url.password == "value-of-pamoja_app_db_password"
    assert (url.host, url.database) == ("db", services["db"]["environment"]["POSTGRES_DB"])


@pytest.mark.parametrize("service", ["api", "worker"])
def test_api_and_worker_connect_only_as_the_runtime_role(services: dict[str, Any], service: str) -> None:
    """The worker relays webhooks: it needs neither the owner's DDL rights nor a way around row security."""
    environment = services[service]["environment"]
    url = make_url(_interpolated(environment["DATABASE_URL"]))
    assert url.username == Settings.model_fields["app_db_role"].default, f"{service} must not connect as the owner"
    assert "POSTGRES_PASSWORD" not in str(environment), f"{service} must never hold the owner's password"
    assert services[service]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_sets_only_variables_the_settings_read(services: dict[str, Any]) -> None:
    known = {f"PAMOJA_{name.upper()}" for name in Settings.model_fields} | {"DATABASE_URL", "FORWARDED_ALLOW_IPS"}
    for name, service in services.items():
        if name == "db":
            continue
        unknown = set(service.get("environment", {})) - known
        assert not unknown, f"compose service {name} sets variables no setting reads: {sorted(unknown)}"


def _dockerfile_final_stage() -> list[str]:
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    instructions = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from:]


def test_dockerfile_is_slim_and_runs_as_a_non_root_user() -> None:
    stage = _dockerfile_final_stage()
    assert stage[0].split()[1].startswith("python:3.11-slim")
    users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
    assert users, "the image must switch to an unprivileged user"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(line.upper().startswith("HEALTHCHECK ") for line in stage)
    assert "EXPOSE 8000" in stage


def test_dockerfile_command_exists_in_the_cli() -> None:
    commands = [line for line in _dockerfile_final_stage() if line.upper().startswith("CMD ")]
    assert commands
    argv = json.loads(commands[-1][len("CMD "):])
    _assert_cli_accepts(argv, "Dockerfile CMD")


def test_build_context_leaves_out_local_state_and_secrets() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "var", ".env", ".git"} <= ignored


def test_the_api_believes_forwarded_headers_only_from_the_proxy_in_front_of_it(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    """Nothing in compose.yaml proxies: the TLS proxy on the host reaches the published ports, which
    the containers see coming from the network's gateway. Trusting any other address (or `*`) would let
    a caller choose the client address the per-address rate limits count."""
    api = services["api"]
    for mapping in api["ports"]:
        assert str(mapping).startswith("127.0.0.1:"), f"{mapping}: only the host (its proxy) may reach the API"
    [ipam] = compose["networks"]["default"]["ipam"]["config"]
    gateway = ipaddress.ip_address(ipam["gateway"])
    assert gateway in ipaddress.ip_network(ipam["subnet"])
    assert str(api["environment"]["FORWARDED_ALLOW_IPS"]) == str(gateway)
    for name, service in services.items():
        if name != "api":
            assert "FORWARDED_ALLOW_IPS" not in service.get("environment", {}), f"{name} serves no HTTP"


def _rate_limit_storage(services: dict[str, Any]) -> SplitResult:
    return urlsplit(str(services["api"]["environment"]["PAMOJA_RATE_LIMIT_STORAGE"]))


def test_the_replicas_count_rate_limits_in_one_redis(services: dict[str, Any]) -> None:
    storage = _rate_limit_storage(services)
    assert storage.scheme == "async+redis" and storage.hostname == "redis"
    redis = services["redis"]
    assert str(redis["image"]).split(":")[0] == "redis"
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert not redis.get("ports"), "the counters stay inside the compose network"
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_redis_client_for_the_limits_library_is_a_dependency() -> None:
    """`async+redis://` needs coredis, which `limits` installs only with its async-redis extra."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [limits] = [Requirement(d) for d in dependencies if Requirement(d).name == "limits"]
    assert "async-redis" in limits.extras


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A throwaway redis-server on 127.0.0.1, standing in for compose's `redis` service."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed on this machine")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_two_replicas_share_their_rate_limit_counters_through_compose_storage(
    services: dict[str, Any], redis_port: int
) -> None:
    """compose.yaml's storage URI, pointed at a local redis: what one replica counts, the other sees."""
    storage = _rate_limit_storage(services)._replace(netloc=f"127.0.0.1:{redis_port}").geturl()
    first, second = [RateLimits(storage=storage, token_per_client="3/minute", token_per_address="100/minute",
                                login_per_client="100/minute", login_per_address="100/minute") for _ in range(2)]
    client = f"pmj_{secrets.token_hex(6)}"
    assert await first.hit((first.token_client, client)) is None
    assert await first.hit((first.token_client, client)) is None
    assert await second.hit((second.token_client, client)) is None
    wait = await second.hit((second.token_client, client))
    assert wait is not None and 1 <= wait <= 60, "the fourth request in a minute is refused, whichever replica"
    assert await first.hit((first.token_client, client)) is not None
