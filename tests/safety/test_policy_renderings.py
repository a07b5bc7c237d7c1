"""The data categories a side of a referral sees are one definition (domain.policy.CATEGORY_GRANTS) with two
renderings: evaluated in Python (policy.visible_categories) and rendered to SQL (db.scopes.category_visible).
Every case — both sides by every referral status by every subset of consented categories by every subset of
purposes by consents in force, withdrawn (before and after the instant), not yet valid, expired and marked
withdrawn — goes through both, in PostgreSQL, and any difference fails."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Text, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from db.scopes import category_visible
from domain import policy
from domain.enums import ConsentPurpose, DataCategory, ReferralStatus
from domain.policy import ReferralAccess, Side

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
BEFORE, AFTER = AT - timedelta(days=30), AT + timedelta(days=30)
REFERRER, RECEIVER = uuid.uuid4(), uuid.uuid4()
CATEGORIES = list(DataCategory)
PURPOSES = [ConsentPurpose.REFERRAL, ConsentPurpose.SERVICE_DELIVERY, ConsentPurpose.FEEDBACK_TO_REFERRER]
# (consent status, withdrawn_at, valid_from, valid_until)
CONSENTS = [("ACTIVE", None, BEFORE, None), ("ACTIVE", None, BEFORE, AFTER), ("ACTIVE", BEFORE, BEFORE, None),
            ("ACTIVE", AFTER, BEFORE, None), ("ACTIVE", None, AFTER, None),
            ("ACTIVE", None, BEFORE - timedelta(1), BEFORE),
            ("WITHDRAWN", BEFORE, BEFORE, None)]

CASES = text("""
    SELECT s.referral_status, c.data_categories, p.purposes, k.status, k.withdrawn_at, k.valid_from, k.valid_until
    FROM unnest(CAST(:statuses AS text[])) AS s(referral_status)
    CROSS JOIN (SELECT ARRAY(SELECT x FROM unnest(CAST(:categories AS text[])) WITH ORDINALITY AS t(x, i)
                             WHERE (m >> (i::int - 1)) & 1 = 1) AS data_categories
                FROM generate_series(0, 63) AS m) AS c
    CROSS JOIN (SELECT ARRAY(SELECT x FROM unnest(CAST(:purposes AS text[])) WITH ORDINALITY AS t(x, i)
                             WHERE (m >> (i::int - 1)) & 1 = 1) AS purposes
                FROM generate_series(0, 7) AS m) AS p
    CROSS JOIN jsonb_to_recordset(CAST(:consents AS jsonb))
               AS k(status text, withdrawn_at timestamptz, valid_from timestamptz, valid_until timestamptz)
""").columns(referral_status=Text, data_categories=ARRAY(Text), purposes=ARRAY(Text), status=Text,
             withdrawn_at=DateTime(timezone=True), valid_from=DateTime(timezone=True),
             valid_until=DateTime(timezone=True))


def _in_force(row: Any) -> bool:
    return (row.status == "ACTIVE" and (row.withdrawn_at is None or row.withdrawn_at > AT)
            and row.valid_from <= AT and (row.valid_until is None or row.valid_until > AT))


async def test_python_and_sql_renderings_of_the_category_grants_agree_on_every_case(
        owner_engine: AsyncEngine) -> None:
    consent = CASES.subquery("consent")
    at = bindparam("at", AT, type_=DateTime(timezone=True))
    labels = {(side, category): f"{side.value}_{category.value}".lower()
              for side in (Side.REFERRER, Side.RECEIVER) for category in CATEGORIES}
    statement = select(consent, *[
        category_visible(side, category, consent=consent, referral_status=consent.c.referral_status,
                         at=at).label(label) for (side, category), label in labels.items()])
    params = {"statuses": [s.value for s in ReferralStatus], "categories": [c.value for c in CATEGORIES],
              "purposes": [p.value for p in PURPOSES],
              "consents": json.dumps([{"status": s, "withdrawn_at": w and w.isoformat(),
                                       "valid_from": f.isoformat(), "valid_until": u and u.isoformat()}
                                      for s, w, f, u in CONSENTS])}
    async with owner_engine.connect() as connection:
        rows = (await connection.execute(statement, params)).all()
    assert len(rows) == len(ReferralStatus) * 64 * 8 * len(CONSENTS)
    differences = []
    for row in rows:
        access = ReferralAccess(
            referring_organization_id=REFERRER, receiving_organization_id=RECEIVER,
            status=ReferralStatus(row.referral_status), assigned_counselor_id=None,
            consent_categories=frozenset(DataCategory(c) for c in row.data_categories),
            consent_purposes=frozenset(ConsentPurpose(p) for p in row.purposes), consent_in_force=_in_force(row))
        for side, organization in ((Side.REFERRER, REFERRER), (Side.RECEIVER, RECEIVER)):
            in_python = policy.visible_categories(organization, access)
            in_sql = frozenset(c for c in CATEGORIES if getattr(row, labels[(side, c)]))
            if in_python != in_sql:
                differences.append((side, tuple(row), sorted(in_python), sorted(in_sql)))
    assert differences == []
    # and nobody else sees anything through a referral that is not theirs
    assert policy.visible_categories(uuid.uuid4(), access) == frozenset()
