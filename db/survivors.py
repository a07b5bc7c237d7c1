"""SQL for survivors: pseudonymous rows, and identifying fields encrypted under a per-survivor key."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam, insert, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Uuid

from db import values
from db.crypto import MasterKeys, blind_index, decrypt_field, encrypt_field, new_data_key
from db.cursors import fetch_page
from db.engine import Db
from db.scopes import in_force as consent_in_force_at
from db.scopes import referral_visible, survivor_visible
from db.tables import Consent, DuplicateReview, Referral, Survivor, SurvivorIdentity, SurvivorKey
from domain import policy
from domain.consent import age_band
from domain.enums import (
    DataCategory,
    DuplicateResolution,
    ErasureReason,
    LegalHoldReason,
    PhoneMatch,
    ReferralStatus,
    RiskLevel,
    Sex,
)
from domain.paging import Page, PageRequest
from domain.policy import ReferralAccess, RowScope, Side
from domain.ports import NewSurvivor, SurvivorFilter
from domain.views import DuplicateReviewView, IdentityView, SurvivorView

survivor_t = Survivor.__table__  # type: ignore[attr-defined]
identity_t = SurvivorIdentity.__table__  # type: ignore[attr-defined]
key_t = SurvivorKey.__table__  # type: ignore[attr-defined]
referral_t = Referral.__table__  # type: ignore[attr-defined]
consent_t = Consent.__table__  # type: ignore[attr-defined]
review_t = DuplicateReview.__table__  # type: ignore[attr-defined]

IDENTITY_COLUMNS = ("legal_name", "phone", "guardian_name", "guardian_phone", "location")
REFERRER_CATEGORIES = frozenset({DataCategory.IDENTITY, DataCategory.CONTACT, DataCategory.CASE_SUMMARY})

_COLUMNS = (survivor_t.c.id, survivor_t.c.organization_id, survivor_t.c.pseudonym, survivor_t.c.birth_year,
            survivor_t.c.sex, survivor_t.c.county, survivor_t.c.languages, survivor_t.c.risk_level,
            survivor_t.c.version, survivor_t.c.created_at, survivor_t.c.erased_at, survivor_t.c.legal_hold_at,
            survivor_t.c.legal_hold_reason, survivor_t.c.erasure_requested_at, survivor_t.c.erasure_reason)


_STATUS = values.members(ReferralStatus)
_SEX = values.members(Sex)
_RISK = values.members(RiskLevel)

SURVIVORS_BY_ID = select(*_COLUMNS).where(survivor_t.c.id == any_(bindparam("ids", type_=ARRAY(Uuid()))))


def pseudonym_pattern(prefix: str) -> str:
    """The ILIKE pattern of a pseudonym search (escape character `\\`): the prefix taken literally."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def phone_indexes(index_key: bytes, phone: str) -> tuple[bytes, bytes]:
    """A phone number's blind indexes as a survivor's phone and as a guardian's."""
    return blind_index(index_key, "phone", phone), blind_index(index_key, "guardian_phone", phone)


def search_conditions(survivor: Any, *, pseudonym: Any,
                      phone: tuple[Any, Any, Any] | None) -> list[ColumnElement[bool]]:
    """`survivors(filter: {search})` in SQL, each value an SQL expression (a bound value in the store, a
    parameter in a compiled read): a pseudonym by its ILIKE pattern (pseudonym_pattern); a phone as
    (organization id, phone index, guardian phone index): the organization's own survivors only."""
    conditions: list[ColumnElement[bool]] = []
    if pseudonym is not None:
        conditions.append(survivor.c.pseudonym.ilike(pseudonym, escape="\\"))
    if phone is not None:
        organization_id, as_phone, as_guardian = phone
        conditions.append(select(identity_t.c.survivor_id).where(
            identity_t.c.survivor_id == survivor.c.id, identity_t.c.organization_id == organization_id,
            (identity_t.c.phone_index == as_phone) | (identity_t.c.guardian_phone_index == as_guardian)).exists())
    return conditions


def key_aad(survivor_id: uuid.UUID) -> str:
    return f"survivor_key.wrapped_key:{survivor_id}"


class SqlSurvivors:
    def __init__(self, db: Db, *, master: MasterKeys, index_key: bytes, now: datetime) -> None:
        self.db = db
        self.master = master
        self.index_key = index_key
        self.now = now

    # ------------------------------------------------------------------ keys

    async def data_key(self, survivor_id: uuid.UUID) -> bytes | None:
        row = await self.db.first(select(key_t.c.master_key_id, key_t.c.wrapped_key)
                                  .where(key_t.c.survivor_id == survivor_id, key_t.c.destroyed_at.is_(None)))
        if row is None:
            return None
        return self.master.unwrap(row.master_key_id, row.wrapped_key, aad=key_aad(survivor_id))

    # ------------------------------------------------------------------ writes

    async def insert(self, new: NewSurvivor, *, organization_id: uuid.UUID,
                     registered_by_id: uuid.UUID | None) -> uuid.UUID:
        survivor_id: uuid.UUID = (await self.db.execute(insert(survivor_t).values(
            organization_id=organization_id, registered_by_id=registered_by_id, case_manager_id=registered_by_id,
            pseudonym=new.pseudonym, birth_year=new.birth_year, sex=new.sex, county=new.county,
            languages=list(new.languages), risk_level=new.risk_level,
        ).returning(survivor_t.c.id))).scalar_one()
        data_key = new_data_key()
        master_id, wrapped = self.master.wrap(data_key, aad=key_aad(survivor_id))
        await self.db.execute(insert(key_t).values(survivor_id=survivor_id, organization_id=organization_id,
                                                   master_key_id=master_id, wrapped_key=wrapped))
        values = {"legal_name": new.legal_name, "phone": new.phone, "guardian_name": new.guardian_name,
                  "guardian_phone": new.guardian_phone, "location": new.location}
        encrypted = {
            f"{column}_enc": encrypt_field(data_key, value, table="survivor_identity", column=column,
                                           row_id=survivor_id)
            for column, value in values.items()
        }
        await self.db.execute(insert(identity_t).values(
            survivor_id=survivor_id, organization_id=organization_id, **encrypted,
            phone_index=blind_index(self.index_key, "phone", new.phone) if new.phone else None,
            guardian_phone_index=(blind_index(self.index_key, "guardian_phone", new.guardian_phone)
                                  if new.guardian_phone else None),
        ))
        return survivor_id

    async def phone_matches(self, *, organization_id: uuid.UUID,
                            phones: Sequence[str]) -> Mapping[uuid.UUID, frozenset[PhoneMatch]]:
        """Survivors of the organization whose phone or guardian phone is one of `phones` (blind indexes only:
        each number is looked up under both columns' keys), with which of their numbers matched."""
        if not phones:
            return {}
        as_phone = [blind_index(self.index_key, "phone", p) for p in phones]
        as_guardian = [blind_index(self.index_key, "guardian_phone", p) for p in phones]
        rows = await self.db.all(select(identity_t.c.survivor_id, identity_t.c.phone_index.in_(as_phone).label("p"),
                                        identity_t.c.guardian_phone_index.in_(as_guardian).label("g")).where(
            identity_t.c.organization_id == organization_id,
            identity_t.c.phone_index.in_(as_phone) | identity_t.c.guardian_phone_index.in_(as_guardian)))
        return {r.survivor_id: frozenset(m for m, hit in ((PhoneMatch.PHONE, r.p), (PhoneMatch.GUARDIAN_PHONE, r.g))
                                         if hit) for r in rows}

    async def flag_duplicates(self, *, organization_id: uuid.UUID, survivor_id: uuid.UUID,
                              matches: Mapping[uuid.UUID, frozenset[PhoneMatch]],
                              registered_by_id: uuid.UUID | None) -> None:
        if matches:
            await self.db.execute(insert(review_t).values([
                {"organization_id": organization_id, "survivor_id": survivor_id, "matched_survivor_id": other,
                 "matched_on": sorted(m.value for m in on), "registered_by_id": registered_by_id}
                for other, on in matches.items()]))

    async def possible_duplicates(self, scope: RowScope, survivor_ids: Sequence[uuid.UUID]
                                  ) -> Mapping[uuid.UUID, list[SurvivorView]]:
        """For each survivor, the survivors flagged at its registration that the scope may see."""
        if not survivor_ids or scope.is_empty:
            return {}
        rows = await self.db.all(select(review_t.c.survivor_id.label("flagged_for"), *_COLUMNS)
                                 .join(survivor_t, survivor_t.c.id == review_t.c.matched_survivor_id)
                                 .where(review_t.c.survivor_id.in_(list(set(survivor_ids))), survivor_visible(scope),
                                        survivor_t.c.erased_at.is_(None))
                                 .order_by(survivor_t.c.created_at, survivor_t.c.id))
        views = {v.id: v for v in await self._views(scope, rows)}
        found: dict[uuid.UUID, list[SurvivorView]] = defaultdict(list)
        for r in rows:
            found[r.flagged_for].append(views[r.id])
        return found

    async def duplicate_reviews(self, *, organization_id: uuid.UUID, resolved: bool | None,
                                page: PageRequest) -> Page[DuplicateReviewView]:
        r = review_t
        statement = select(r).where(r.c.organization_id == organization_id)
        if resolved is not None:
            statement = statement.where(r.c.resolved_at.is_not(None) if resolved else r.c.resolved_at.is_(None))
        rows, skeleton = await fetch_page(self.db, statement, order=[r.c.created_at, r.c.id],
                                          key_parsers=[datetime.fromisoformat, uuid.UUID], page=page)
        return Page(items=[_review(row) for row in rows], keys=skeleton.keys, has_next=skeleton.has_next,
                    has_previous=skeleton.has_previous, total_count=skeleton.total_count)

    async def resolve_duplicate_review(self, *, review_id: uuid.UUID, organization_id: uuid.UUID,
                                       resolution: DuplicateResolution, by: uuid.UUID | None,
                                       expected_version: int | None) -> DuplicateReviewView | None:
        r = review_t
        statement = update(r).where(r.c.id == review_id, r.c.organization_id == organization_id)
        if expected_version is not None:
            statement = statement.where(r.c.version == expected_version)
        row = await self.db.first(statement.values(resolution=resolution.value, resolved_at=self.now,
                                                   resolved_by_id=by, version=r.c.version + 1).returning(r))
        return _review(row) if row is not None else None

    async def duplicate_review(self, *, review_id: uuid.UUID, organization_id: uuid.UUID) -> DuplicateReviewView | None:
        row = await self.db.first(select(review_t).where(review_t.c.id == review_id,
                                                         review_t.c.organization_id == organization_id))
        return _review(row) if row is not None else None

    # ------------------------------------------------------------------ reads

    async def identity(self, survivor_id: uuid.UUID) -> IdentityView | None:
        return (await self.identities([survivor_id])).get(survivor_id)

    async def identities(self, survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, IdentityView]:
        """Decrypt many survivors' identities with one statement (identity rows joined to their keys)."""
        if not survivor_ids:
            return {}
        rows = await self.db.all(
            select(identity_t, key_t.c.master_key_id, key_t.c.wrapped_key)
            .join(key_t, key_t.c.survivor_id == identity_t.c.survivor_id)
            .where(identity_t.c.survivor_id.in_(list(set(survivor_ids))), key_t.c.destroyed_at.is_(None))
        )
        found: dict[uuid.UUID, IdentityView] = {}
        for row in rows:
            survivor_id = row.survivor_id
            data_key = self.master.unwrap(row.master_key_id, row.wrapped_key, aad=key_aad(survivor_id))
            found[survivor_id] = IdentityView(**{
                column: decrypt_field(data_key, getattr(row, f"{column}_enc"), table="survivor_identity",
                                      column=column, row_id=survivor_id)
                for column in IDENTITY_COLUMNS
            })
        return found

    async def access(self, scope: RowScope,
                     survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, list[ReferralAccess]]:
        """Each visible referral of these survivors with what its consent allows, for category decisions."""
        if not survivor_ids or scope.is_empty:
            return {}
        in_force = consent_in_force_at(consent_t, scope.at)
        rows = await self.db.all(
            select(referral_t.c.survivor_id, referral_t.c.referring_organization_id,
                   referral_t.c.receiving_organization_id, referral_t.c.status, referral_t.c.assigned_counselor_id,
                   consent_t.c.data_categories, consent_t.c.purposes, in_force.label("in_force"))
            .join(consent_t, consent_t.c.id == referral_t.c.consent_id)
            .where(referral_t.c.survivor_id.in_(list(set(survivor_ids))), referral_visible(scope))
        )
        found: dict[uuid.UUID, list[ReferralAccess]] = defaultdict(list)
        for r in rows:
            found[r.survivor_id].append(referral_access(r))
        return found

    def _view(self, row: Any, scope: RowScope, accesses: Sequence[ReferralAccess]) -> SurvivorView:
        if scope.side is Side.REFERRER:
            categories = REFERRER_CATEGORIES
        else:
            assert scope.organization_id is not None
            categories = frozenset().union(*(policy.visible_categories(scope.organization_id, a) for a in accesses))
        shows_birth_year = policy.shows_birth_year(scope.side, accesses)
        today = (scope.at or self.now).date()
        return SurvivorView(
            id=row.id, organization_id=row.organization_id, pseudonym=row.pseudonym,
            birth_year=row.birth_year if shows_birth_year else None, age_band=age_band(row.birth_year, today),
            sex=_SEX[row.sex], county=row.county, languages=tuple(row.languages), risk_level=_RISK[row.risk_level],
            categories=categories, version=row.version, erased_at=row.erased_at,
            **(_subject_state(row) if scope.side is Side.REFERRER else {}),
        )

    async def _views(self, scope: RowScope, rows: Sequence[Any]) -> list[SurvivorView]:
        accesses = await self.access(scope, [r.id for r in rows]) if scope.side is Side.RECEIVER else {}
        return [self._view(r, scope, accesses.get(r.id, [])) for r in rows]

    async def by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, SurvivorView]:
        if not ids or scope.is_empty:
            return {}
        rows = await self.db.all(select(*_COLUMNS).where(survivor_t.c.id.in_(list(set(ids))),
                                                         survivor_visible(scope)))
        return {v.id: v for v in await self._views(scope, rows)}

    async def through_referrals(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, SurvivorView]:
        """Survivors of referrals the scope was shown in this request: visible through those referrals,
        so the statement tests no visibility per row (categories still come from every visible referral)."""
        if not ids or scope.is_empty:
            return {}
        rows = await self.db.all(SURVIVORS_BY_ID, {"ids": list(set(ids))})
        return {v.id: v for v in await self._views(scope, rows)}

    async def page(self, scope: RowScope, filter: SurvivorFilter, page: PageRequest) -> Page[SurvivorView]:
        statement = select(*_COLUMNS).where(survivor_visible(scope))
        if filter.county:
            statement = statement.where(survivor_t.c.county == filter.county)
        if filter.risk_level:
            statement = statement.where(survivor_t.c.risk_level == filter.risk_level)
        if filter.under_legal_hold is not None:
            statement = statement.where(survivor_t.c.legal_hold_at.is_not(None) if filter.under_legal_hold
                                        else survivor_t.c.legal_hold_at.is_(None))
        phone = None
        if filter.phone and filter.phone_organization_id:
            as_phone, as_guardian = phone_indexes(self.index_key, filter.phone)
            phone = (literal(filter.phone_organization_id), literal(as_phone), literal(as_guardian))
        statement = statement.where(*search_conditions(
            survivor_t, phone=phone,
            pseudonym=literal(pseudonym_pattern(filter.pseudonym_prefix)) if filter.pseudonym_prefix else None))
        if filter.referral_statuses:
            r = referral_t.alias("filter_referral")
            statement = statement.where(select(r.c.id).where(
                r.c.survivor_id == survivor_t.c.id, r.c.status.in_([s.value for s in filter.referral_statuses]),
                referral_visible(scope, r)).exists())
        rows, skeleton = await fetch_page(self.db, statement, order=[survivor_t.c.created_at, survivor_t.c.id],
                                          key_parsers=[datetime.fromisoformat, uuid.UUID], page=page)
        views = await self._views(scope, rows)
        return Page(items=views, keys=skeleton.keys, has_next=skeleton.has_next,
                    has_previous=skeleton.has_previous, total_count=skeleton.total_count)


def _review(row: Any) -> DuplicateReviewView:
    return DuplicateReviewView(id=row.id, survivor_id=row.survivor_id, matched_survivor_id=row.matched_survivor_id,
                               matched_on=tuple(PhoneMatch(m) for m in row.matched_on), created_at=row.created_at,
                               resolution=DuplicateResolution(row.resolution) if row.resolution else None,
                               resolved_at=row.resolved_at, version=row.version)


def _subject_state(row: Any) -> dict[str, Any]:
    return {"own_organization": True, "legal_hold_at": row.legal_hold_at,
            "legal_hold_reason": LegalHoldReason(row.legal_hold_reason) if row.legal_hold_reason else None,
            "erasure_requested_at": row.erasure_requested_at,
            "erasure_reason": ErasureReason(row.erasure_reason) if row.erasure_reason else None}


def referral_access(row: Any) -> ReferralAccess:
    return ReferralAccess(
        referring_organization_id=row.referring_organization_id,
        receiving_organization_id=row.receiving_organization_id, status=_STATUS[row.status],
        assigned_counselor_id=row.assigned_counselor_id, consent_categories=values.categories(row.data_categories),
        consent_purposes=values.purposes(row.purposes), consent_in_force=bool(row.in_force),
    )
