"""GraphiQL in a browser, outside production: GET /graphql from a browser opens the page without a
token; the page signs the person in through Pamoja's own login (authorization code + PKCE, with the
public client `pamoja-graphiql`) or takes a pasted token, and sends it with each query. Every
query still needs the token: POST /graphql without one stays 401. In production nothing is mounted."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from api.state import AppState
from auth.clients import GRAPHIQL_CLIENT_ID, ensure_graphiql_client
from auth.resource import current_principal
from config.settings import Settings
from domain.principal import Principal

PAGE = (Path(__file__).parent / "graphiql.html").read_text()
UNPKG = "https://unpkg.com"


def _wants_page(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _headers(nonce: str) -> dict[str, str]:
    """The page's scripts come from unpkg (pinned, with SRI) and its own nonce; it talks to this origin only."""
    return {
        "Content-Security-Policy": f"default-src 'none'; script-src 'nonce-{nonce}' {UNPKG}; "
                                   f"style-src 'unsafe-inline' {UNPKG}; font-src {UNPKG} data:; "
                                   "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                   "base-uri 'none'; form-action 'none'",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",  # the sign-in code arrives in this page's address
        "Cache-Control": "no-store",
    }


def page(*, public_url: str, sign_in: bool, nonce: str) -> str:
    config = {"endpoint": "/graphql", "authorize": "/oauth/authorize", "token": "/oauth/token",
              "clientId": GRAPHIQL_CLIENT_ID, "redirectUri": f"{public_url}/graphql", "signIn": sign_in}
    # JSON inside a <script> element: "<" escaped so no value can close the element.
    return PAGE.replace("__PAMOJA_CONFIG__", json.dumps(config).replace("<", "\\u003c")) \
        .replace("__PAMOJA_NONCE__", nonce)


async def _principal_unless_page(request: Request) -> Principal | None:
    """A browser asking for the page needs no token; any other GET is the API's and does."""
    return None if _wants_page(request) else await current_principal(request)


def mount_graphiql(app: FastAPI, settings: Settings) -> None:
    """Before the GraphQL router, so a browser's GET reaches the page instead of the 401."""
    if not settings.graphiql_enabled or settings.is_production:
        return

    @app.get("/graphql", include_in_schema=False)
    async def graphiql(request: Request, principal: Principal | None = Depends(_principal_unless_page)) -> Response:
        if principal is not None:
            return Response("Send GraphQL queries with POST.", status_code=405, headers={"Allow": "POST"},
                            media_type="text/plain")
        state: AppState = request.app.state.pamoja
        async with state.engine.begin() as connection:
            sign_in = await ensure_graphiql_client(connection, redirect_uri=f"{settings.public_url}/graphql")
        nonce = secrets.token_urlsafe(16)
        return HTMLResponse(page(public_url=settings.public_url, sign_in=sign_in, nonce=nonce),
                            headers=_headers(nonce))
