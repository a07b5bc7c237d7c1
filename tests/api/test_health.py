"""Health endpoints: /healthz is the process, /readyz the database at the migrations' head."""

from __future__ import annotations

import httpx


async def test_healthz_answers_without_touching_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


async def test_readyz_reports_database_and_migrations(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "migrations": "head"}


async def test_graphql_without_a_token_is_401_before_graphql_runs(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ viewer { clientId } }"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
