"""SqlUnit: one request's transaction as the use cases see it (domain.ports.Unit)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy import insert, select

from db.audit import AuditRow, LaterAudit, audit_table
from db.care import SqlCare
from db.consents import SqlConsents
from db.crypto import MasterKeys
from db.directory import SqlDirectory, counselor_rows
from db.engine import Db
from db.outbox import enqueue
from db.referrals import SqlReferrals
from db.sealed import DataKeys
from db.subject_rights import SqlSubjectRecords
from db.survivors import SqlSurvivors
from db.tables import Referral, StaffUser
from domain.policy import DirectoryScope
from domain.ports import CounselorCaseload
from domain.principal import Principal
from domain.views import OrganizationView

users_t = StaffUser.__table__  # type: ignore[attr-defined]
referral_t = Referral.__table__  # type: ignore[attr-defined]



class SqlDirectoryPort:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def organization(self, organization_id: uuid.UUID) -> OrganizationView | None:
        found = await SqlDirectory(self.db).organizations_by_id(scope=DirectoryScope(include_inactive=True),
                                                                ids=[organization_id])
        return found.get(organization_id)

    async def counselor_in(self, *, user_id: uuid.UUID, organization_id: uuid.UUID) -> bool:
        found = await self.db.scalar(select(users_t.c.id).where(
            users_t.c.id == user_id, users_t.c.organization_id == organization_id, users_t.c.active.is_(True),
            users_t.c.roles.any_() == "COUNSELOR"))
        return found is not None

    async def counselors(self, organization_id: uuid.UUID) -> Sequence[CounselorCaseload]:
        """One statement: the organization's active counselors with their open caseloads, by name."""
        rows = await self.db.all(counselor_rows(organization_id))
        return [CounselorCaseload(id=r.id, display_name=r.display_name, open_referrals=r.open_referrals)
                for r in rows]


class SqlUnit:
    def __init__(self, db: Db, *, principal: Principal, request_id: str | None, master: MasterKeys,
                 index_key: bytes, now: datetime | None = None, later_audit: LaterAudit | None = None) -> None:
        self.db = db
        self.later_audit = later_audit
        self.principal = principal
        self.request_id = request_id
        self._now = now or datetime.now(UTC)
        # One cache of survivors' data keys for every store: care records under referrals shown in this
        # request open their sealed text with the keys those referrals brought (db/sealed.py).
        keys = DataKeys(db, master)
        self.survivors = SqlSurvivors(db, master=master, index_key=index_key, now=self._now)
        self.consents = SqlConsents(db, keys=keys, now=self._now)
        self.referrals = SqlReferrals(db, keys=keys, now=self._now)
        self.directory = SqlDirectoryPort(db)
        self.care = SqlCare(db, survivors=self.survivors, keys=keys, master=master, now=self._now)
        self._master, self._index_key = master, index_key

    def now(self) -> datetime:
        return self._now

    @functools.cached_property
    def subjects(self) -> SqlSubjectRecords:
        """A survivor's rights (hold, erasure, export, correction): built only by the requests that use them."""
        return SqlSubjectRecords(self.db, survivors=self.survivors, master=self._master, index_key=self._index_key,
                                 now=self._now, audit=self.audit, emit=self.emit)

    @property
    def actor_id(self) -> str:
        return self.principal.actor_id

    async def audit(self, *, action: str, record_type: str, record_id: str | None, outcome: str,
                    purpose: str | None = None) -> None:
        await self.audit_many(action=action, record_type=record_type, record_ids=[record_id], outcome=outcome,
                              purpose=purpose)

    async def audit_many(self, *, action: str, record_type: str, record_ids: Sequence[str | None], outcome: str,
                         purpose: str | None = None) -> None:
        """One audit row per record in a single statement, so a batched read is audited without N+1; in a
        read operation the rows wait for its transaction to end (db.audit.LaterAudit says why)."""
        rows = [AuditRow(actor=self.actor_id, client_id=self.principal.client_id,
                         organization_id=self.principal.organization_id, action=action, record_type=record_type,
                         record_id=record_id, purpose=purpose, request_id=self.request_id, outcome=outcome)
                for record_id in record_ids]
        if self.later_audit is not None:
            for row in rows:
                self.later_audit.add(row)
        elif rows:
            await self.db.execute(insert(audit_table).values([asdict(row) for row in rows]))

    async def emit(self, *, event_type: str, organization_id: uuid.UUID, data: Mapping[str, str]) -> None:
        """Write an outbound event in this transaction; db.outbox refuses anything but ids and codes."""
        await enqueue(self.db, event_type=event_type, organization_id=organization_id,
                      data={**data, "occurredAt": self._now.isoformat()})
