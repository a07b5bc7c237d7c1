"""A bound on request bodies, enforced before anything parses them.

Without it a client could make a worker read, hold and JSON-parse hundreds of megabytes in one
request. The declared Content-Length is refused at once when too large; a chunked body, which
declares nothing, is counted as it arrives and refused as soon as it passes the limit. A body within
the limit is handed on whole (the JSON and form parsers read it whole anyway).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """413 with a short JSON error for a body over `max_bytes`, on every path (GraphQL and OAuth forms).

    Plain ASGI, like the request-id middleware: no extra task per request.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, graphql_path: str = "/graphql") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its whole body: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replayed(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        text = f"The request body is larger than {self.max_bytes} bytes; send less."
        if scope["path"].rstrip("/") == self.graphql_path:
            payload: object = {"errors": [{"message": text, "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}
        else:
            payload = {"error": "invalid_request", "error_description": text}
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def replayed(body: bytes, receive: Receive) -> Receive:
    """`receive` for the next layer: the whole body, read already, then whatever the client sends next."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()  # after the body, only a disconnect can come
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
