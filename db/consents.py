"""SQL for consents. The witness's name and the withdrawal reason are sealed under the survivor's
data key (db/sealed.py); reads join the key so a resolver can reveal them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from db.crypto import encrypt_field
from db.engine import Db
from db.scopes import consent_visible
from db.sealed import ERASED, KEY_COLUMNS, DataKeys, with_key
from db.tables import Consent
from domain.consent import ConsentTerms, status_at
from domain.enums import ConsentGiver, ConsentPurpose, ConsentStatus, DataCategory
from domain.errors import InvalidInput
from domain.policy import RowScope
from domain.ports import NewConsent
from domain.views import ConsentView

consent_t = Consent.__table__  # type: ignore[attr-defined]

CONSENT_TABLE = "consent"
_SELECT = select(consent_t, *KEY_COLUMNS).select_from(with_key(consent_t, consent_t.c.survivor_id))


def _view(row: Any, now: datetime, keys: DataKeys) -> ConsentView:
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
        withdrawn_at=row.withdrawn_at,
        withdrawal_reason=keys.sealed(row, "withdrawal_reason", table=CONSENT_TABLE, row_id=row.id),
        form_version=row.form_version, language=row.language,
        witness=keys.sealed(row, "witness", table=CONSENT_TABLE, row_id=row.id), version=row.version,
    )


class SqlConsents:
    def __init__(self, db: Db, *, keys: DataKeys, now: datetime) -> None:
        self.db = db
        self.keys = keys
        self.now = now

    def _views(self, rows: Sequence[Any]) -> list[ConsentView]:
        self.keys.offer(rows)
        return [_view(r, self.now, self.keys) for r in rows]

    async def _data_key(self, survivor_id: uuid.UUID, field: str) -> bytes:
        data_key = await self.keys.load(survivor_id)
        if data_key is None:
            raise InvalidInput(ERASED, field=("input", field))
        return data_key

    async def insert(self, new: NewConsent) -> uuid.UUID:
        """The id is made here: the witness's name is sealed bound to it before the row exists."""
        consent_id = uuid.uuid4()
        witness_enc = None
        if new.witness is not None:
            witness_enc = encrypt_field(await self._data_key(new.survivor_id, "witness"), new.witness,
                                        table=CONSENT_TABLE, column="witness", row_id=consent_id)
        await self.db.execute(insert(consent_t).values(
            id=consent_id, survivor_id=new.survivor_id, organization_id=new.organization_id,
            recipient_id=new.recipient_id, purposes=[p.value for p in new.purposes],
            data_categories=[c.value for c in new.data_categories], given_by=new.given_by,
            child_assent=new.child_assent, valid_from=new.valid_from, valid_until=new.valid_until,
            form_version=new.form_version, language=new.language, witness_enc=witness_enc,
            recorded_by_id=new.recorded_by_id,
        ))
        return consent_id

    async def by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, ConsentView]:
        if not ids or scope.is_empty:
            return {}
        rows = await self.db.all(_SELECT.where(consent_t.c.id.in_(list(set(ids))), consent_visible(scope)))
        return {v.id: v for v in self._views(rows)}

    async def by_survivor(self, scope: RowScope,
                          survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[ConsentView]]:
        if not survivor_ids or scope.is_empty:
            return {}
        rows = await self.db.all(_SELECT.where(
            consent_t.c.survivor_id.in_(list(set(survivor_ids))), consent_visible(scope),
        ).order_by(consent_t.c.created_at, consent_t.c.id))
        found: dict[uuid.UUID, list[ConsentView]] = defaultdict(list)
        for view in self._views(rows):
            found[view.survivor_id].append(view)
        return found

    async def lock(self, scope: RowScope, consent_id: uuid.UUID) -> ConsentView | None:
        row = await self.db.first(_SELECT.where(consent_t.c.id == consent_id, consent_visible(scope))
                                  .with_for_update(of=consent_t))
        return self._views([row])[0] if row else None

    async def withdraw(self, consent_id: uuid.UUID, *, expected_version: int | None, at: datetime,
                       reason: str) -> bool:
        survivor_id = await self.db.scalar(select(consent_t.c.survivor_id).where(consent_t.c.id == consent_id))
        if survivor_id is None:
            return False
        reason_enc = encrypt_field(await self._data_key(survivor_id, "reason"), reason, table=CONSENT_TABLE,
                                   column="withdrawal_reason", row_id=consent_id)
        statement = update(consent_t).where(consent_t.c.id == consent_id, consent_t.c.status == "ACTIVE")
        if expected_version is not None:
            statement = statement.where(consent_t.c.version == expected_version)
        row = await self.db.first(statement.values(
            status="WITHDRAWN", withdrawn_at=at, withdrawal_reason_enc=reason_enc, version=consent_t.c.version + 1,
            updated_at=at,
        ).returning(consent_t.c.id))
        return row is not None
