"""AuditEvent: who did what to which record, when, why and with what outcome; ids only."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.views import AuditEventView


@strawberry.type(description="One append-only, hash-chained audit row. Carries ids, never the data itself.")
class AuditEvent:
    seq: int
    at: datetime
    actor: str = strawberry.field(description="A staff user's global id, or client:<client id>.")
    client_id: str | None
    action: str
    record_type: str
    record_id: str | None
    purpose: str | None
    request_id: str | None
    outcome: str = strawberry.field(description="allowed, denied or rejected.")

    @classmethod
    def from_view(cls, v: AuditEventView) -> AuditEvent:
        return cls(seq=v.seq, at=v.at, actor=v.actor, client_id=v.client_id, action=v.action,
                   record_type=v.record_type, record_id=v.record_id, purpose=v.purpose, request_id=v.request_id,
                   outcome=v.outcome)


@strawberry.input
class AuditEventFilter:
    record_id: strawberry.ID | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
