"""GraphQL over HTTP (graphql-over-http spec): `application/graphql-response+json` and its status codes.

Strawberry answers every executed request with 200 and `application/json`. A client that accepts
the spec's media type gets it, with 400 for a document that does not parse and 422 for one that
fails validation (no `data` at all), and 200 whenever `data` is present. Legacy `application/json`
clients keep strawberry's answers unchanged, as the spec allows.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MEDIA_TYPE = "application/graphql-response+json"
# How every GraphQL body begins (api/graphql/router.encode_json writes `data` first, in this style).
DATA_FIRST = '{"data" : '
_DATA_FIRST, _DATA_NULL = DATA_FIRST.encode(), f"{DATA_FIRST}null".encode()


def _prefers_spec_media_type(accept: str) -> bool:
    best_json = -1.0
    best_spec = -1.0
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        quality = 1.0
        for p in pieces[1:]:
            if p.startswith("q="):
                try:
                    quality = float(p[2:])
                except ValueError:
                    quality = 0.0
        if pieces[0] == MEDIA_TYPE:
            best_spec = max(best_spec, quality)
        elif pieces[0] in ("application/json", "*/*", "application/*"):
            best_json = max(best_json, quality)
    return best_spec > 0 and best_spec >= best_json


def status_for(body: dict[str, Any]) -> int:
    if body.get("data") is not None:
        return 200
    errors = body.get("errors") or []
    if any(str(e.get("message", "")).startswith("Syntax Error") for e in errors if isinstance(e, dict)):
        return 400
    return 422


class GraphQLResponseMediaType:
    def __init__(self, app: ASGIApp, *, path: str = "/graphql") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not _prefers_spec_media_type(headers.get("accept", "")):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                await self._finish(start, b"".join(chunks), send)
                return
            await send(message)

        await self.app(scope, receive, buffered)

    async def _finish(self, start: Message | None, body: bytes, send: Send) -> None:
        assert start is not None
        status = int(start["status"])
        raw_headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-type",
                                                                                           b"content-length")]
        content_type = b"application/json"
        if status == 200 and _answered_with_data(body):
            content_type = MEDIA_TYPE.encode()  # 200, read from the first bytes: an answer is not parsed here
        elif status == 200:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and ("data" in parsed or "errors" in parsed):
                status = status_for(parsed)
                content_type = MEDIA_TYPE.encode()
        raw_headers += [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


def _answered_with_data(body: bytes) -> bool:
    """`data` present and not null: 200 whatever else the body holds (a compiled dashboard is 50+ KB that
    would otherwise be parsed just to find this out)."""
    return body.startswith(_DATA_FIRST) and not body.startswith(_DATA_NULL)
