"""FastAPI's native OpenTelemetry is off: a tracer configured in the process (an operator's
`opentelemetry-instrument`, FASTAPI_OTEL_AUTO_CONFIGURE=true, a vendor agent) must not receive request
paths with their query strings, or exceptions with their messages, from Pamoja. The access log
(api/main.RequestIdAndAccessLog) is the one record of a request, and it carries no query string."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import _logs, trace
from opentelemetry._logs import _internal as _logs_internal

from api.main import create_app
from config.settings import Settings


class RecordingTracer(trace.Tracer):
    def __init__(self, spans: list[dict[str, Any]]) -> None:
        self.spans = spans

    def start_span(self, name: str, context: Any = None, kind: Any = trace.SpanKind.INTERNAL,
                   attributes: Mapping[str, Any] | None = None, links: Sequence[Any] | None = None,
                   start_time: int | None = None, record_exception: bool = True,
                   set_status_on_exception: bool = True) -> trace.Span:
        self.spans.append({"name": name, **(attributes or {})})
        return trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)

    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return trace.use_span(self.start_span(name, *args, **kwargs), end_on_exit=True)


class RecordingTracerProvider(trace.TracerProvider):
    """A configured provider, as an SDK would be, that keeps each span's attributes."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return RecordingTracer(self.spans)


class RecordingLogger(_logs.Logger):
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def emit(self, record: Any = None, **fields: Any) -> None:
        self.records.append({"record": record, **fields})

    def enabled(self, *args: Any, **kwargs: Any) -> bool:
        return True


class RecordingLoggerProvider(_logs.LoggerProvider):
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def get_logger(self, *args: Any, **kwargs: Any) -> _logs.Logger:
        return RecordingLogger(self.records)


@pytest.fixture
def configured_tracer(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingTracerProvider]:
    provider = RecordingTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    yield provider


@pytest.fixture
def configured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingLoggerProvider]:
    provider = RecordingLoggerProvider()
    # The API's get_logger looks the provider up in its own module, as a configured SDK would be found there.
    for module in (_logs, _logs_internal):
        monkeypatch.setattr(module, "get_logger_provider", lambda: provider)
    yield provider


async def _get(app: FastAPI, path: str) -> int:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # an unhandled error is a 500
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return (await client.get(path)).status_code


async def test_a_configured_tracer_and_log_would_receive_query_strings_and_errors_from_a_plain_fastapi_app(
        configured_tracer: RecordingTracerProvider, configured_logs: RecordingLoggerProvider) -> None:
    """The control: without the setting, FastAPI traces each request with its query string and logs each
    unhandled exception, message included."""
    plain = FastAPI()

    @plain.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @plain.get("/fails")
    async def fails() -> None:
        raise ValueError("Sentinel-Exception")

    assert await _get(plain, "/healthz?state=Sentinel-Query") == 200
    assert await _get(plain, "/fails") == 500
    assert any("Sentinel-Query" in str(span) for span in configured_tracer.spans)
    assert any("Sentinel-Exception" in str(record.get("exception")) for record in configured_logs.records)


async def test_pamoja_sends_nothing_to_a_configured_tracer_or_log(
        configured_tracer: RecordingTracerProvider, configured_logs: RecordingLoggerProvider,
        settings: Settings) -> None:
    app = create_app(settings)  # not started: /readyz fails unhandled, with no state to read
    assert await _get(app, "/healthz?state=Sentinel-Query") == 200
    assert await _get(app, "/no-such-page?state=Sentinel-Query") == 404
    assert await _get(app, "/readyz?state=Sentinel-Query") == 500
    assert configured_tracer.spans == [] and configured_logs.records == []
