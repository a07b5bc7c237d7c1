"""The compiled-read lane: a query the whole pipeline has already answered with one compiled statement is
answered again without FastAPI's routing and dependency injection or strawberry's extension pipeline.

Why: for a small read those layers were half of the worker's CPU per request (a referral by id under
load: 1.65 ms of worker CPU through them, 0.75 ms here; README, benchmark), more than the statement itself
costs PostgreSQL. A document reaches this lane only after the full pipeline parsed,
validated (depth, aliases, tokens, one named operation) and compiled the very same text with the very same
operationName and answered it from the compiler; what depends on the request is checked again here, as the
pipeline checks it: the token (auth.resource.Authenticator.credentials), the cost with the request's
variables (api/graphql/cost.py), the variables and every argument and scope (ReadCompiler.run), and a
remembered caller's re-check in the statement that sets the row-security context (db.engine.transaction).

Anything else, or anything that goes wrong (a missing or refused token, an unusual body, a stale caller, a
compiled read that steps aside, a failure or timeout), is handed to the full pipeline with the body as it
came, and the full pipeline answers, with its own errors, audit rows and status codes. The lane sends only
the success the full pipeline would have sent, byte for byte (tests/api/test_compiled_read_lane.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, OperationDefinitionNode
from starlette.types import ASGIApp, Receive, Scope, Send

from api.body_size import replayed
from api.graphql.compiler import CompiledJson, CompiledOperation, ReadCompiler, StepAside
from api.graphql.context import Context
from api.graphql.cost import over_the_limit
from api.graphql.http import DATA_FIRST
from api.state import AppState
from auth.resource import bearer_of
from auth.tokens import InvalidToken
from config.logging import get_logger
from db.engine import transaction
from db.one_call import StaleCaller, TemporaryFunctionsRefused, read_in_one_call

logger = get_logger("pamoja.graphql")
# The members of a GraphQL request body the lane takes; a body with any other goes to the full pipeline.
REQUEST_KEYS = frozenset({"query", "operationName", "variables", "extensions"})
# The request headers the lane reads: sent twice, the request is the full pipeline's.
READ_HEADERS = (b"authorization", b"content-type", b"accept")


class CompiledReadLane:
    """Plain ASGI in front of the GraphQL endpoint (inside the request id, body size and media type layers,
    which apply to both)."""

    def __init__(self, app: ASGIApp, *, path: str = "/graphql") -> None:
        self.app = app
        self.path = path
        # A read in one call (db/one_call.py) until the database refuses temporary functions.
        self.one_call = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path \
                or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        token = bearer_of(headers[b"authorization"].decode("latin-1")) if headers is not None else None
        if headers is None or token is None or not _plain_json(headers) or not _answered_whole(headers):
            await self.app(scope, receive, send)
            return
        body, ended = await _body(receive)
        if ended:
            return  # the client went away before sending its whole body: nobody to answer
        request_id = scope.get("state", {}).get("request_id", "")  # set by api/main.RequestIdAndAccessLog
        try:
            answer = await self._answer(scope["app"], body, token, request_id)
        except Exception as exc:  # the pipeline meets it again and answers as it always has
            logger.warning("compiled-read lane handed a request over after an error", error_type=type(exc).__name__,
                           request_id=request_id)
            answer = None
        if answer is None:
            await self.app(scope, replayed(body, receive), send)
            return
        scope.setdefault("state", {})["read"] = "compiled"  # the access line says which engine answered
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", str(len(answer)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, app: Any, body: bytes, token: str, request_id: str) -> bytes | None:
        """The response body, or None: the full pipeline answers."""
        compiler: ReadCompiler = app.state.graphql_schema.compiler
        request = _request(body)
        known = compiler.answered(request.query, request.operation_name) if request is not None else None
        if request is None or known is None:
            return None
        document, compiled = known
        if _cost_varies(document) and over_the_limit(compiler.schema, document, request.variables) is not None:
            return None
        state: AppState = app.state.pamoja
        try:
            caller = await state.authenticator.credentials(token)
        except InvalidToken:
            return None
        context = Context.of_caller(caller, state, request_id)
        try:
            async with asyncio.timeout(state.settings.request_timeout_seconds):
                if self.one_call:
                    data = await self._in_one_call(compiler, compiled, context, request.variables)
                else:
                    data = await self._in_transaction(compiler, compiled, context, request.variables)
        except (StepAside, StaleCaller):
            return None  # the pipeline steps aside too (counted, audited where it must be), or reads the caller
        except TemporaryFunctionsRefused:
            self.one_call = False
            logger.warning("compiled-read lane reads in a transaction: the database refuses temporary functions",
                           request_id=request_id)
            return None
        assert isinstance(data, CompiledJson)  # Context.of_caller asks for the statement's text (raw_json)
        compiler.in_lane += 1
        return (DATA_FIRST + data.text + "}").encode()


    @staticmethod
    async def _in_one_call(compiler: ReadCompiler, compiled: CompiledOperation, context: Context,
                           variables: dict[str, Any]) -> Any:
        """One round trip: the row-security context, the caller's re-check and the read (db/one_call.py)."""
        state = context.state
        async with read_in_one_call(state.engine, context.row_security(), context.still_valid) as rows:
            return await compiler.run(compiled, context, variables, rows)

    @staticmethod
    async def _in_transaction(compiler: ReadCompiler, compiled: CompiledOperation, context: Context,
                              variables: dict[str, Any]) -> Any:
        """Where the database refuses temporary functions: begin, set the context and re-check, read, commit."""
        async with transaction(context.state.engine, context.row_security(), isolation="REPEATABLE READ",
                               check=context.still_valid) as db:
            if not db.still_valid:
                raise StaleCaller  # the caller changed or is gone: the full pipeline reads it again
            context._db = db
            return await compiler.run(compiled, context, variables)


@dataclass(frozen=True, slots=True)
class _Request:
    query: str
    operation_name: str | None
    variables: dict[str, Any]


def _request(body: bytes) -> _Request | None:
    """The body as the full pipeline reads it, when it is one plain query (no batch, no extensions)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON (or not UTF-8), or nested past what the parser takes
        return None
    if not isinstance(data, dict) or not data.keys() <= REQUEST_KEYS:
        return None
    query, name, variables = data.get("query"), data.get("operationName"), data.get("variables")
    if not isinstance(query, str) or not isinstance(name, (str, type(None))) \
            or not isinstance(variables, (dict, type(None))) or data.get("extensions") not in (None, {}):
        return None
    return _Request(query, name, variables or {})


def _cost_varies(document: DocumentNode) -> bool:
    """Whether a known document's cost can differ from request to request: only through its variables. One
    without any was costed when the full pipeline answered it (api/graphql/cost.CostLimit), against the same
    fixed limit; costing it again (50 µs for the benchmark's dashboard) would find the same."""
    return any(isinstance(d, OperationDefinitionNode) and d.variable_definitions for d in document.definitions)


def _headers(scope: Scope) -> dict[bytes, bytes] | None:
    """The headers the lane reads, by their lower-case names (as ASGI gives them); None if one came twice."""
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", ()):
        if name in READ_HEADERS:
            if name in found:
                return None
            found[name] = value
    return found if b"authorization" in found else None


def _plain_json(headers: dict[bytes, bytes]) -> bool:
    media_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return media_type == b"application/json"


def _answered_whole(headers: dict[bytes, bytes]) -> bool:
    """Not a client asking for a streamed answer (multipart/mixed, server-sent events): those are the full
    pipeline's."""
    accept = headers.get(b"accept", b"").lower()
    return b"multipart" not in accept and b"event-stream" not in accept


async def _body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, and whether the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False

