"""A request id is ours to trust: a client's X-Request-Id is kept only in a short, plain shape.

The id lands in audit rows, log lines and the response header. A client-chosen value with line breaks,
markup, other scripts or unbounded length would be written there as given (a forged-looking audit
entry, a broken log line), so anything outside the shape is replaced by an id the server makes.
"""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import Factory
from tests.flows import network, register_survivor

IDENTITY = "query($id: ID!) { node(id: $id) { ... on Survivor { identity { legalName } } } }"
GENERATED = re.compile(r"[0-9a-f]{32}")

UNSAFE = {
    "too-long": b"r" * 65,
    "too-short": b"req-1",
    "empty": b"",
    "newline": b"req-0123456789\nread allowed Survivor",
    "carriage-return": b"req-0123456789\r\nx-forged: 1",
    "tab": b"req-0123\t456789",
    "space": b"req 0123456789",
    "nul": b"req-0123456789\x00",
    "markup": b"<script>alert(1)</script>",
    "quote": b"req-0123456789'\"",
    "sql": b"1'; DROP TABLE audit_event; --",
    "unicode": "r\u00e9q-0123456789".encode(),
    "bidi-override": "req-\u202e0123456789".encode(),
    "latin-1-byte": b"req-0123456789\xff",
}
SAFE = {
    "uuid": str(uuid.UUID(int=0x1234)),
    "uuid-hex": uuid.UUID(int=0x5678).hex,
    "dotted": "gateway.req_0123-4567",
    "longest": "r" * 64,
    "shortest": "req-0123",
}


async def _identity_read_with(factory: Factory, owner_engine: AsyncEngine, request_id: bytes) -> tuple[str, str]:
    """The response's X-Request-Id and the request id on the audit row of the read it made."""
    net = await network(factory)
    survivor = await register_survivor(factory, net.token("manager"))
    response = await factory.client.post(
        "/graphql", json={"query": IDENTITY, "variables": {"id": survivor["id"]}},
        headers={"Authorization": f"Bearer {net.token('manager')}", "X-Request-Id": request_id})
    assert response.status_code == 200 and not response.json().get("errors"), response.text
    async with owner_engine.connect() as connection:
        audited = (await connection.execute(text(
            "SELECT request_id FROM audit_event WHERE record_id = :id AND record_type = 'SurvivorIdentity' "
            "AND action = 'read'"), {"id": survivor["id"]})).scalar_one()
    return response.headers["x-request-id"], audited


@pytest.mark.parametrize("request_id", UNSAFE.values(), ids=UNSAFE.keys())
async def test_an_unsafe_request_id_is_replaced_in_the_audit_row_and_the_response(
    factory: Factory, owner_engine: AsyncEngine, request_id: bytes,
) -> None:
    header, audited = await _identity_read_with(factory, owner_engine, request_id)
    assert header == audited
    assert GENERATED.fullmatch(audited), "the server's own id, not the client's"


@pytest.mark.parametrize("request_id", SAFE.values(), ids=SAFE.keys())
async def test_a_safe_request_id_is_kept_for_correlation(factory: Factory, owner_engine: AsyncEngine,
                                                         request_id: str) -> None:
    assert await _identity_read_with(factory, owner_engine, request_id.encode()) == (request_id, request_id)
