"""The FastAPI application factory: `create_app(settings)` builds one fully configured app."""

from __future__ import annotations

import gc
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.body_size import BodySizeLimit
from api.state import AppState
from auth.external import ExternalIssuers
from auth.password_reset import mount_password_page
from auth.resource import Authenticator, KeyCache
from auth.routes import mount_oauth
from config.logging import configure_logging, get_logger
from config.settings import Settings
from db.crypto import MasterKeys, blind_index_key
from db.engine import make_engine, on_connection_beyond_pool, resolve_urls
from db.migrate import head_revision

logger = get_logger("pamoja.http")
GC_THRESHOLD = 20_000
# A client's X-Request-Id is kept (to correlate with its own logs) only in this shape, a UUID among
# them: it is written into audit rows, log lines and the response header as it is.
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def create_app(settings: Settings) -> FastAPI:
    configure_logging(level=settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        urls = resolve_urls(
            database_url=settings.database_url,
            app_database_url=settings.app_database_url,
            app_role=settings.app_db_role,
            app_password=settings.app_db_password.get_secret_value() if settings.app_db_password else None,
            data_dir=settings.data_dir,
        )
        engine = make_engine(urls.app, pool_size=settings.db_pool_size, overflow=settings.db_pool_overflow,
                             statement_timeout_ms=settings.db_statement_timeout_ms)
        on_connection_beyond_pool(engine, lambda size: logger.warning(
            "a worker opened a database connection beyond its pool: raise PAMOJA_DB_POOL_SIZE if this repeats",
            count=size))
        master = MasterKeys.parse(settings.master_keys.get_secret_value())
        authenticator = Authenticator(
            engine=engine, key_cache=KeyCache(engine=engine, master=master),
            issuer=settings.issuer, audience=settings.audience,
            external=ExternalIssuers.from_settings(settings.trusted_issuers, production=settings.is_production),
        )
        app.state.pamoja = AppState(
            settings=settings, engine=engine, urls=urls, master_keys=master,
            blind_index_key=blind_index_key(settings.blind_index_key.get_secret_value()),
            authenticator=authenticator,
        )
        # A GraphQL response allocates thousands of short-lived objects; with CPython's default
        # threshold (700) the collector ran ~25 times per dashboard request (bench/run.py --profile).
        # Objects alive after start-up are frozen out of collection; young collections run less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        try:
            yield
        finally:
            await app.state.pamoja.refused_reads.close()
            await engine.dispose()

    app = FastAPI(
        title="Pamoja",
        lifespan=lifespan,
        docs_url=None if settings.is_production else "/docs",
        redoc_url=None,
        openapi_url=None if settings.is_production else "/openapi.json",
        # FastAPI's native OpenTelemetry off: a tracer configured in the process would receive every path with
        # its query string and every exception's message; the access log below is the one record of a
        # request. It also saves three provider look-ups per request (tests/safety/test_telemetry.py).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process is up; says nothing about the database (that is /readyz)."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Ready when the database answers and its schema is at the migrations' head."""
        state: AppState = request.app.state.pamoja
        head = head_revision()
        try:
            async with state.engine.connect() as connection:
                current = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except Exception as exc:  # any failure means not ready; the type is enough to diagnose
            logger.warning("not ready", error_type=type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        if current != head:
            return JSONResponse({"status": "unavailable", "database": "ok", "migrations": "behind"},
                                status_code=503)
        return JSONResponse({"status": "ok", "database": "ok", "migrations": "head"})

    from api.graphiql import mount_graphiql
    from api.graphql.http import GraphQLResponseMediaType
    from api.graphql.lane import CompiledReadLane
    from api.graphql.router import mount_graphql
    from console.pages import mount_console

    mount_oauth(app, settings)
    mount_password_page(app, settings)
    mount_graphiql(app, settings)
    mount_graphql(app, settings)
    mount_console(app)
    # Innermost: answers a query the full pipeline already compiled, inside the layers below (api/graphql/lane.py).
    app.add_middleware(CompiledReadLane)
    app.add_middleware(GraphQLResponseMediaType)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdAndAccessLog)
    return app


class RequestIdAndAccessLog:
    """A request id on every log line and response; the access log carries no query strings.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs each request
    through an extra task and stream, about a millisecond of CPU per request for what is a header.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), "")
        request_id = incoming if CLIENT_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"x-request-id", request_id.encode("latin-1"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            read = scope["state"].get("read")  # a GraphQL query: which engine answered (CompiledReads)
            logger.info("request", method=scope["method"], path=scope["path"], status=status,
                        duration_ms=round((time.perf_counter() - started) * 1000, 1), request_id=request_id,
                        **({"read": read} if read else {}))


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` (several workers each build their app from the environment)."""
    return create_app(Settings())
