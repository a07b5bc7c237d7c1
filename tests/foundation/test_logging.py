"""No identifying data can reach a log line, whoever logs it: our code, a library, or an exception.

The name below stands for a survivor's legal name. It is passed the ways it could leak: as a
structlog key that is not allow-listed, inside a third-party library's message, inside an exception's
text and traceback. None of the JSON lines may contain it; allow-listed keys must survive.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import structlog
from alembic.script import ScriptDirectory

from cli.startup import database_in_use, log_database_in_use
from config.logging import HANDLER_NAME, configure_logging, get_logger
from config.settings import Settings
from db.engine import DatabaseUrls
from db.migrate import alembic_config, head_revision, upgrade
from domain.ids import to_global_id
from tests.conftest import create_database, drop_database
from tests.factories import Factory
from tests.flows import network

NAME = "Amina Wanjiru"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Configure logging as the app does, into a buffer; restore the previous setup afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_structlog = structlog.get_config()
    configure_logging(level="INFO", json=True)
    buffer = io.StringIO()
    handler = next(h for h in root.handlers if h.get_name() == HANDLER_NAME)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)


def _records(buffer: io.StringIO) -> list[dict[str, Any]]:
    text = buffer.getvalue()
    assert NAME not in text and "Wanjiru" not in text, f"identifying data reached the log: {text}"
    records = [json.loads(line) for line in text.splitlines()]
    assert records
    return records


def test_keys_outside_the_allow_list_are_dropped_and_allowed_ones_kept(log_lines: io.StringIO) -> None:
    get_logger("pamoja.survivors").info(
        "survivor registered", legal_name=NAME, guardian={"name": NAME}, request_id="req-0123456789", count=1,
    )
    [record] = _records(log_lines)
    assert record["event"] == "survivor registered"
    assert record["request_id"] == "req-0123456789" and record["count"] == 1
    assert record["logger"] == "pamoja.survivors" and record["level"] == "info"
    assert "legal_name" not in record and "guardian" not in record


def test_our_exceptions_are_reduced_to_their_type(log_lines: io.StringIO) -> None:
    try:
        raise ValueError(f"could not encrypt {NAME}")
    except ValueError:
        get_logger("pamoja.survivors").exception("encryption failed", request_id="req-0123456789")
    [record] = _records(log_lines)
    assert record["event"] == "encryption failed" and record["error_type"] == "ValueError"
    assert record["request_id"] == "req-0123456789"


def test_a_library_message_and_its_exception_are_withheld(log_lines: io.StringIO) -> None:
    library = logging.getLogger("sqlalchemy.engine.Engine")
    try:
        raise LookupError(f'Key (legal_name)=({NAME}) already exists')
    except LookupError:
        library.error("statement failed: Key (legal_name)=(%s) already exists", NAME, exc_info=True,
                      extra={"legal_name": NAME, "request_id": "req-0123456789"})
    library.warning(f"parameters: {NAME}")
    first, second = _records(log_lines)
    assert first["event"] == second["event"] == "library log message withheld"
    assert first["logger"] == "sqlalchemy.engine.Engine"
    assert first["error_type"] == "LookupError" and first["request_id"] == "req-0123456789"
    assert "legal_name" not in first and "exc_info" not in first and "exception" not in first
    assert second["level"] == "warning"


def _lines(buffer: io.StringIO, logger: str | None = None) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [record for record in records if logger in (None, record["logger"])]


def test_uvicorn_access_lines_are_not_logged_beside_ours(log_lines: io.StringIO) -> None:
    """Our access-log middleware writes one line per request with its request id; uvicorn's would be a second."""
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/healthz?who=once", "1.1", 200,
                extra={"request_id": "req-0123456789"})
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    assert [record["event"] for record in _lines(log_lines)] == ["Application startup complete."]


async def test_an_in_process_request_is_logged_once_with_its_request_id(client: httpx.AsyncClient,
                                                                        log_lines: io.StringIO) -> None:
    """`client` first: the app configures logging when it is built, and log_lines must be configured after."""
    request_id = "req-once-0123456789"
    response = await client.get("/healthz", headers={"X-Request-Id": request_id})
    assert response.headers["x-request-id"] == request_id
    [line] = [record for record in _lines(log_lines) if record.get("request_id") == request_id]
    assert (line["logger"], line["event"], line["path"], line["status"]) == ("pamoja.http", "request", "/healthz", 200)


SECRET = "s3cr%t/p@ss:word"


@pytest.mark.parametrize(("url", "expected"), [
    (f"postgresql://pamoja_app:{quote(SECRET, safe='')}@db:5432/pamoja",
     "postgresql://pamoja_app:***@db:5432/pamoja"),
    (f"postgresql+asyncpg://owner:{quote(SECRET, safe='')}@10.0.0.5/pamoja?sslmode=require",
     "postgresql://owner:***@10.0.0.5/pamoja?sslmode=require"),
    (f"postgres://owner@db/pamoja?password={quote(SECRET, safe='')}&sslpassword={quote(SECRET, safe='')}",
     "postgresql://owner@db/pamoja?password=***&sslpassword=***"),
    ("postgresql://pamoja_app@127.0.0.1:5432/pamoja", "postgresql://pamoja_app@127.0.0.1:5432/pamoja"),
])
def test_the_database_in_use_is_named_without_its_password(tmp_path: Path, url: str, expected: str) -> None:
    settings = Settings(env="test", database_url=url, data_dir=tmp_path)
    described = database_in_use(settings, url)
    assert described == expected
    assert SECRET not in described and quote(SECRET, safe="") not in described


def test_the_embedded_database_is_named_by_its_folder(tmp_path: Path) -> None:
    settings = Settings(env="test", database_url=None, data_dir=tmp_path / "var")
    embedded_url = f"postgresql://postgres:@/pamoja?host={tmp_path / 'var' / 'pgdata'}"
    assert database_in_use(settings, embedded_url) == f"embedded PostgreSQL in {tmp_path / 'var' / 'pgdata'}"


@pytest.fixture
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    name = f"pamoja_startup_{secrets.token_hex(4)}"
    url = await create_database(server_url, name)
    yield url
    await drop_database(server_url, name)


async def test_startup_says_the_migrations_are_at_head(log_lines: io.StringIO, database_urls: DatabaseUrls) -> None:
    settings = Settings(env="test", database_url=database_urls.owner)
    await log_database_in_use(settings, database_urls.app)
    used, migrations = _lines(log_lines, "pamoja.startup")
    assert used["event"] == "database in use" and used["database"] == database_in_use(settings, database_urls.app)
    assert (migrations["event"], migrations["revision"], migrations["level"]) == (
        "migrations at head", head_revision(), "info")


async def test_startup_says_which_revision_the_database_is_at_and_what_to_run(
    log_lines: io.StringIO, scratch_database: str
) -> None:
    settings = Settings(env="test", database_url=scratch_database)
    first = ScriptDirectory.from_config(alembic_config(scratch_database)).get_base()
    assert first is not None
    await log_database_in_use(settings, scratch_database)  # nothing applied yet
    await asyncio.to_thread(upgrade, scratch_database, first)
    await log_database_in_use(settings, scratch_database)  # the first revision only
    empty, behind = [r for r in _lines(log_lines, "pamoja.startup") if r["event"] != "database in use"]
    for record, revision in ((empty, None), (behind, first)):
        assert record["level"] == "warning"
        assert "pamoja migrate" in record["event"]
        assert record["revision"] == revision and record["head"] == head_revision()


async def test_startup_says_when_the_database_cannot_be_reached(log_lines: io.StringIO) -> None:
    url = f"postgresql://pamoja_app:{quote(SECRET, safe='')}@127.0.0.1:1/pamoja"
    await log_database_in_use(Settings(env="test", database_url=url), url)
    used, unreachable = _lines(log_lines, "pamoja.startup")
    assert used["database"] == "postgresql://pamoja_app:***@127.0.0.1:1/pamoja"
    assert unreachable["level"] == "warning" and "error_type" in unreachable
    assert SECRET not in log_lines.getvalue()


async def test_a_querys_access_line_says_which_engine_answered(factory: Factory, log_lines: io.StringIO) -> None:
    """An operator can count, from the access log, the queries the read compiler answered, those it handed to
    the resolvers at run time and those it does not take; a mutation's line says nothing of it."""
    net = await network(factory)
    unseen = to_global_id("Referral", uuid.uuid4())
    asked = {
        "compiled": "{ referrals(first: 5) { totalCount } }",
        "stepped_aside": f'{{ node(id: "{unseen}") {{ id }} }}',  # shows nothing: the resolver path audits it
        "resolvers": "{ __schema { queryType { name } } }",
        None: "mutation { __typename }",
    }
    for n, query in enumerate(asked.values()):
        await factory.client.post("/graphql", json={"query": query}, headers={
            "Authorization": f"Bearer {net.token('counselor')}", "X-Request-Id": f"req-engine-{n:02d}"})
    lines = {record["request_id"]: record for record in _lines(log_lines)
             if str(record.get("request_id", "")).startswith("req-engine-") and record["event"] == "request"}
    assert [lines[f"req-engine-{n:02d}"].get("read") for n in range(len(asked))] == list(asked)
