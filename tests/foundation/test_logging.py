"""No identifying data can reach a log line, whoever logs it: our code, a library, or an exception.

The name below stands for a survivor's legal name. It is passed the ways it could leak: as a
structlog key that is not allow-listed, inside a third-party library's message, inside an exception's
text and traceback. None of the JSON lines may contain it; allow-listed keys must survive.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from api.logging import HANDLER_NAME, configure_logging, get_logger

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
