"""Structured JSON logs that cannot carry a survivor's data.

Every log line, ours or a library's (uvicorn, strawberry, sqlalchemy), passes through structlog's
processor chain, which keeps only allow-listed keys. Exceptions are reduced to their type name:
driver errors echo column values ("Key (email)=(…) already exists"), and tracebacks can hold
identifying strings, so neither reaches a log line. Messages from third-party loggers are replaced by
their logger name and a fixed text unless the logger is known to log only safe, fixed strings.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

ALLOWED_KEYS = frozenset({
    "timestamp", "level", "logger", "event", "request_id", "method", "path", "status", "duration_ms",
    "event_kind", "error_type", "error_code", "operation", "client_id", "organization_id", "count",
    "attempt", "status_code", "outbox_event_id", "event_type", "latency_ms", "revision", "host", "port",
    "workers", "delivered", "failed", "key_id",
    "error_kind", "overdue", "dispatched", "retried", "dead",
    # the access line of a GraphQL query: "compiled", "stepped_aside" or "resolvers" (api/main.py)
    "read",
    # startup: the database in use (embedded folder or URL with passwords masked) and the migration head
    "database", "head",
    # housekeeping counts
    "idempotency_records", "revoked_tokens", "assertion_jtis", "authorization_codes", "login_throttles",
})

# Loggers whose messages are fixed strings we wrote or checked; all others are reduced to a marker.
SAFE_MESSAGE_LOGGERS = ("pamoja", "api", "auth", "db", "cli", "partners", "uvicorn.error", "alembic")


def _allow_list(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    exc = event_dict.pop("exc_info", None)
    if exc:
        exc_type = exc[0] if isinstance(exc, tuple) else type(exc) if isinstance(exc, BaseException) else None
        if exc_type is None and exc is True:
            exc_type = sys.exc_info()[0]
        if exc_type is not None:
            event_dict.setdefault("error_type", exc_type.__name__)
    logger_name = str(event_dict.get("logger", ""))
    # Whole dotted segments only: "auth" must not vouch for "authlib", which logs client records.
    safe = any(logger_name == name or logger_name.startswith(name + ".") for name in SAFE_MESSAGE_LOGGERS)
    if event_dict.get("_from_stdlib") and not safe:
        event_dict["event"] = "library log message withheld"
    return {key: value for key, value in event_dict.items() if key in ALLOWED_KEYS}


def _mark_stdlib(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    record = event_dict.get("_record")
    if record is not None:
        event_dict["_from_stdlib"] = True
        event_dict["logger"] = record.name
        for key in ALLOWED_KEYS:
            if key in record.__dict__ and key not in event_dict:
                event_dict[key] = record.__dict__[key]
        if record.exc_info:
            event_dict["exc_info"] = record.exc_info
    return event_dict


HANDLER_NAME = "pamoja-json"


def configure_logging(*, level: str = "INFO", json: bool = True) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.stdlib.add_logger_name,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _mark_stdlib],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _allow_list, renderer],
        pass_foreign_args=False,
    )
    # Both our structlog calls and stdlib records render in this one formatter; stdlib records are
    # tagged by _mark_stdlib so the allow-list can withhold library messages.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    # Replace our own handler (and any bare stream handler, which would print unfiltered lines);
    # keep other sinks, e.g. a test's capture of every rendered line.
    root.handlers[:] = [h for h in root.handlers
                        if h.get_name() != HANDLER_NAME and type(h) is not logging.StreamHandler] + [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "strawberry.execution"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # api.main.RequestIdAndAccessLog logs each request once, with its request id and without the query
    # string; uvicorn's access line would be a second line per request.
    logging.getLogger("uvicorn.access").disabled = True


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
