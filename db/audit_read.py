"""SQL for paging through an organization's audit rows (RLS also limits them to that organization)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from db.audit import audit_table
from db.cursors import fetch_page
from db.engine import Db
from domain.paging import Page, PageRequest
from domain.use_cases.audit import AuditFilter
from domain.views import AuditEventView


class SqlAuditTrail:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def page(self, *, organization_id: object, filter: AuditFilter,
                   request: PageRequest) -> Page[AuditEventView]:
        t = audit_table
        statement: Any = select(t.c.seq, t.c.at, t.c.actor, t.c.client_id, t.c.action, t.c.record_type,
                                t.c.record_id, t.c.purpose, t.c.request_id, t.c.outcome).where(
            t.c.organization_id == organization_id)
        if filter.record_id is not None:
            statement = statement.where(t.c.record_id == filter.record_id)
        if filter.actor is not None:
            statement = statement.where(t.c.actor == filter.actor)
        if filter.since:
            statement = statement.where(t.c.at >= filter.since)
        if filter.until:
            statement = statement.where(t.c.at < filter.until)
        rows, skeleton = await fetch_page(self.db, statement, order=[t.c.seq], key_parsers=[int], page=request)
        items = [AuditEventView(seq=r.seq, at=r.at, actor=r.actor, client_id=r.client_id, action=r.action,
                                record_type=r.record_type, record_id=r.record_id, purpose=r.purpose,
                                request_id=r.request_id, outcome=r.outcome) for r in rows]
        return Page(items=items, keys=skeleton.keys, has_next=skeleton.has_next,
                    has_previous=skeleton.has_previous, total_count=skeleton.total_count)
