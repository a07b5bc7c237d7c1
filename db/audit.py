"""Writing audit events: ids and outcomes only, never the data itself (rule 3, rule 4)."""

from __future__ import annotations

import uuid

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
