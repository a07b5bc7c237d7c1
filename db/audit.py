"""Writing audit events: ids and outcomes only, never the data itself (rule 3, rule 4)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import AuditEvent

audit_table = AuditEvent.__table__  # type: ignore[attr-defined]


async def write_audit(connection: AsyncConnection, *, actor: str, client_id: str | None,
                      organization_id: uuid.UUID | None, action: str, record_type: str,
                      record_id: str | None, purpose: str | None, request_id: str | None,
                      outcome: str) -> None:
    # inline(): no implicit `RETURNING seq`, which row-level security would check against the read
    # policy and so refuse events the writer may not read back (a failed anonymous login, say).
    await connection.execute(insert(audit_table).values(
        actor=actor, client_id=client_id, organization_id=organization_id, action=action,
        record_type=record_type, record_id=record_id, purpose=purpose, request_id=request_id,
        outcome=outcome,
    ).inline())


@dataclass(frozen=True, slots=True)
class AuditRow:
    actor: str
    client_id: str | None
    organization_id: uuid.UUID | None
    action: str
    record_type: str
    record_id: str | None
    purpose: str | None
    request_id: str | None
    outcome: str


async def write_audit_rows(connection: AsyncConnection, rows: Iterable[AuditRow]) -> None:
    """Several rows in one statement (inline, as write_audit)."""
    values = [asdict(row) for row in rows]
    if values:
        await connection.execute(insert(audit_table).values(values).inline())


class LaterAudit:
    """The audit rows of a read operation, kept until its REPEATABLE READ transaction has ended.

    The chain trigger links a row to the newest row it can see, and a REPEATABLE READ transaction
    sees only its snapshot: a row it wrote after another request had committed one would link to
    the wrong predecessor, and `pamoja audit verify` would report the trail broken. So a query's
    rows (reads of identity, notes, assessments and concerns; refusals) are written in a short READ
    COMMITTED transaction before its response leaves (api/graphql/extensions.py). The same row twice
    in one operation (one record's identity asked for in two places of a query) is written once.
    """

    def __init__(self) -> None:
        self._rows: dict[AuditRow, None] = {}  # insertion-ordered set

    def add(self, row: AuditRow) -> None:
        self._rows[row] = None

    def rows(self) -> list[AuditRow]:
        return list(self._rows)
