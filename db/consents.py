"""SQL for consents."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from db.engine import Db
from db.scopes import consent_visible
from db.tables import Consent
from domain.consent import ConsentTerms, status_at
from domain.enums import ConsentGiver, ConsentPurpose, ConsentStatus, DataCategory
from domain.policy import RowScope
from domain.ports import NewConsent
from domain.views import ConsentView

consent_t = Consent.__table__  # type: ignore[attr-defined]


def _view(row: Any, now: datetime) -> ConsentView:
    terms = ConsentTerms(
        recipient_organization_id=row.recipient_id, purposes=frozenset(ConsentPurpose(p) for p in row.purposes),
        data_categories=frozenset(DataCategory(c) for c in row.data_categories), valid_from=row.valid_from,
        valid_until=row.valid_until, withdrawn_at=row.withdrawn_at,
    )
    status = ConsentStatus.WITHDRAWN if row.status == "WITHDRAWN" else status_at(terms, now)
    return ConsentView(
        id=row.id, survivor_id=row.survivor_id, organization_id=row.organization_id, recipient_id=row.recipient_id,
        purposes=tuple(ConsentPurpose(p) for p in row.purposes),
        data_categories=tuple(DataCategory(c) for c in row.data_categories), given_by=ConsentGiver(row.given_by),
        child_assent=row.child_assent, valid_from=row.valid_from, valid_until=row.valid_until, status=status,
        withdrawn_at=row.withdrawn_at, withdrawal_reason=row.withdrawal_reason, form_version=row.form_version,
        language=row.language, witness=row.witness, version=row.version,
    )


class SqlConsents:
    def __init__(self, db: Db, *, now: datetime) -> None:
        self.db = db
        self.now = now

    async def insert(self, new: NewConsent) -> uuid.UUID:
        consent_id: uuid.UUID = (await self.db.execute(insert(consent_t).values(
            survivor_id=new.survivor_id, organization_id=new.organization_id, recipient_id=new.recipient_id,
            purposes=[p.value for p in new.purposes], data_categories=[c.value for c in new.data_categories],
            given_by=new.given_by, child_assent=new.child_assent, valid_from=new.valid_from,
            valid_until=new.valid_until, form_version=new.form_version, language=new.language, witness=new.witness,
            recorded_by_id=new.recorded_by_id,
        ).returning(consent_t.c.id))).scalar_one()
        return consent_id

    async def by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, ConsentView]:
        if not ids or scope.is_empty:
            return {}
        rows = await self.db.all(select(consent_t).where(consent_t.c.id.in_(list(set(ids))), consent_visible(scope)))
        return {r.id: _view(r, self.now) for r in rows}

    async def by_survivor(self, scope: RowScope,
                          survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[ConsentView]]:
        if not survivor_ids or scope.is_empty:
            return {}
        rows = await self.db.all(select(consent_t).where(
            consent_t.c.survivor_id.in_(list(set(survivor_ids))), consent_visible(scope),
        ).order_by(consent_t.c.created_at, consent_t.c.id))
        found: dict[uuid.UUID, list[ConsentView]] = defaultdict(list)
        for r in rows:
            found[r.survivor_id].append(_view(r, self.now))
        return found

    async def lock(self, scope: RowScope, consent_id: uuid.UUID) -> ConsentView | None:
        row = await self.db.first(select(consent_t).where(consent_t.c.id == consent_id, consent_visible(scope))
                                  .with_for_update(of=consent_t))
        return _view(row, self.now) if row else None

    async def withdraw(self, consent_id: uuid.UUID, *, expected_version: int | None, at: datetime,
                       reason: str) -> bool:
        statement = update(consent_t).where(consent_t.c.id == consent_id, consent_t.c.status == "ACTIVE")
        if expected_version is not None:
            statement = statement.where(consent_t.c.version == expected_version)
        row = await self.db.first(statement.values(
            status="WITHDRAWN", withdrawn_at=at, withdrawal_reason=reason, version=consent_t.c.version + 1,
            updated_at=at,
        ).returning(consent_t.c.id))
        return row is not None
