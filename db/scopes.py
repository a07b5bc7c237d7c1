"""The only translation of domain.policy row scopes into SQL.

This is a translation, not a second copy of the rule: every condition here restates a decision
taken in domain/policy.py (who) and domain/consent.py (consent in force: half-open validity,
withdrawal effective at its instant, naming the organization and a purpose). PostgreSQL row-level
security (migration 0003) backs these filters up at organization granularity.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, any_, bindparam, false, literal, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text, Uuid

from db.tables import Consent, Referral, Survivor
from domain.enums import ConsentPurpose, DataCategory, ReferralStatus, Role
from domain.policy import (
    ACCEPTED_OR_LATER,
    BIRTH_YEAR_WHEN,
    CATEGORY_GRANTS,
    CONCERN_SIDES,
    NOTE_GRANTS,
    CareRows,
    Condition,
    Reader,
    RowScope,
    Side,
)
from domain.principal import Principal
from domain.scopes import Action, Resource

consent_t = Consent.__table__  # type: ignore[attr-defined]
referral_t = Referral.__table__  # type: ignore[attr-defined]
survivor_t = Survivor.__table__  # type: ignore[attr-defined]

# The aliases the conditions below correlate through, made once: an alias copies every column of its
# table, and making them per call was most of the statement-building time of a small read. No
# condition nests an alias inside itself, so sharing the objects cannot change what SQL correlates.
SCOPE_SURVIVOR = survivor_t.alias("scope_survivor")
SCOPE_CONSENT = consent_t.alias("scope_consent")
SCOPE_REFERRAL = referral_t.alias("scope_referral")
FEEDBACK_CONSENT = consent_t.alias("feedback_consent")


def _text_array(values: list[str]) -> Any:
    return literal(values, type_=ARRAY(Text))


def consent_in_force(consent: Any, scope: RowScope, purposes: tuple[ConsentPurpose, ...],
                     category: DataCategory | None = None) -> ColumnElement[bool]:
    """domain.consent.covers, in SQL, for the scope's organization at the scope's instant."""
    at = scope.at
    conditions = [
        consent.c.status == "ACTIVE",
        or_(consent.c.withdrawn_at.is_(None), consent.c.withdrawn_at > at),
        consent.c.valid_from <= at,
        or_(consent.c.valid_until.is_(None), consent.c.valid_until > at),
        consent.c.purposes.op("&&")(_text_array([p.value for p in purposes])),
    ]
    if category is not None:
        conditions.append(consent.c.data_categories.any_() == category.value)
    return and_(*conditions)


def _managed_survivor(survivor: Any, scope: RowScope) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = survivor.c.organization_id == scope.organization_id
    if scope.case_manager_id is not None:
        condition = and_(condition, or_(survivor.c.registered_by_id == scope.case_manager_id,
                                        survivor.c.case_manager_id == scope.case_manager_id))
    return condition


def referral_visible(scope: RowScope, referral: Any = referral_t, consent: Any = None) -> ColumnElement[bool]:
    """Rows of `referral` the scope may see. `consent`: the referral's own consent, when the statement has
    joined it already (`consent.id = referral.consent_id`, the column is not null): the partner's conditions
    on it are asked of that row rather than of a sub-select finding it again (one index probe per row)."""
    if scope.side is Side.REFERRER:
        condition: ColumnElement[bool] = referral.c.referring_organization_id == scope.organization_id
        if scope.case_manager_id is not None:
            s = SCOPE_SURVIVOR
            condition = and_(condition, select(s.c.id).where(
                s.c.id == referral.c.survivor_id, _managed_survivor(s, scope)).exists())
        return condition
    if scope.side is Side.RECEIVER:
        c = SCOPE_CONSENT if consent is None else consent
        names_partner = and_(c.c.recipient_id == scope.organization_id, consent_in_force(c, scope, scope.purposes))
        condition = and_(
            referral.c.receiving_organization_id == scope.organization_id,
            referral.c.status != ReferralStatus.DRAFT.value,
            select(c.c.id).where(c.c.id == referral.c.consent_id, names_partner).exists() if consent is None
            else names_partner,
        )
        if scope.counselor_id is not None:
            condition = and_(condition, referral.c.assigned_counselor_id == scope.counselor_id)
        return condition
    return false()


def survivor_visible(scope: RowScope, survivor: Any = survivor_t) -> ColumnElement[bool]:
    if scope.side is Side.REFERRER:
        return _managed_survivor(survivor, scope)
    if scope.side is Side.RECEIVER:
        r = SCOPE_REFERRAL
        return select(r.c.id).where(r.c.survivor_id == survivor.c.id, referral_visible(scope, r)).exists()
    return false()


def consent_visible(scope: RowScope, consent: Any = consent_t) -> ColumnElement[bool]:
    """The referrer sees every consent of its survivors; a partner only in-force consents naming it."""
    if scope.side is Side.REFERRER:
        s = SCOPE_SURVIVOR
        return and_(consent.c.organization_id == scope.organization_id, select(s.c.id).where(
            s.c.id == consent.c.survivor_id, _managed_survivor(s, scope)).exists())
    if scope.side is Side.RECEIVER:
        r = SCOPE_REFERRAL
        return and_(
            consent.c.recipient_id == scope.organization_id,
            consent_in_force(consent, scope, scope.purposes),
            select(r.c.id).where(r.c.survivor_id == consent.c.survivor_id, referral_visible(scope, r)).exists(),
        )
    return false()


def _condition(condition: Condition, consent: Any, referral_status: Any, at: Any) -> ColumnElement[bool]:
    if condition is Condition.IN_FORCE:
        return in_force(consent, at)
    rendered: ColumnElement[bool]
    if condition is Condition.FEEDBACK:
        rendered = consent.c.purposes.any_() == ConsentPurpose.FEEDBACK_TO_REFERRER.value
    else:
        rendered = referral_status.in_([s.value for s in ACCEPTED_OR_LATER])
    return rendered


def in_force(consent: Any, at: Any) -> ColumnElement[bool]:
    """The consent is active, not withdrawn and within its validity at `at` (Condition.IN_FORCE)."""
    return and_(consent.c.status == "ACTIVE", or_(consent.c.withdrawn_at.is_(None), consent.c.withdrawn_at > at),
                consent.c.valid_from <= at, or_(consent.c.valid_until.is_(None), consent.c.valid_until > at))


def birth_year_shown(scope: RowScope, survivor: Any) -> ColumnElement[bool]:
    """domain.policy.shows_birth_year in SQL: whether `scope` sees `survivor`'s birth year."""
    if scope.side is Side.REFERRER:
        return true()
    if scope.side is not Side.RECEIVER:
        return false()
    r = referral_t.alias("birth_referral")
    c = consent_t.alias("birth_consent")
    return select(r.c.id).select_from(r.join(c, c.c.id == r.c.consent_id)).where(
        r.c.survivor_id == survivor.c.id, referral_visible(scope, r),
        *[_condition(condition, c, r.c.status, scope.at) for condition in sorted(BIRTH_YEAR_WHEN)]).exists()


def category_visible(side: Side, category: DataCategory, *, consent: Any, referral_status: Any,
                     at: Any) -> ColumnElement[bool]:
    """domain.policy.CATEGORY_GRANTS rendered to SQL: whether `side` of a referral (its status column and
    its consent's row) sees `category` at instant `at`. The Python rendering is policy.visible_categories;
    tests/safety/test_policy_renderings.py compares the two on every case."""
    options: list[ColumnElement[bool]] = []
    for grant in CATEGORY_GRANTS:
        if grant.side is not side or category not in grant.categories:
            continue
        parts = [_condition(c, consent, referral_status, at) for c in sorted(grant.when)]
        if grant.consented:
            parts.append(consent.c.data_categories.any_() == category.value)
        options.append(and_(true(), *parts))
    return or_(false(), *options)


def notes_visible(principal: Principal, *, session: Any, referral: Any, consent: Any, at: Any) -> ColumnElement[bool]:
    """domain.policy.NOTE_GRANTS rendered to SQL for one principal: whether it may read the clinical notes of
    `session` (under `referral` and its `consent`) at `at`. Python: policy.may_read_session_notes."""
    if not principal.allows(Resource.SESSION_NOTE, Action.READ):
        return false()
    org = literal(principal.organization_id, type_=Uuid())
    options: list[ColumnElement[bool]] = []
    for grant in NOTE_GRANTS:
        parts: list[ColumnElement[bool]] = [
            session.c.organization_id == org if grant.at_author else session.c.organization_id != org]
        if grant.reader is Reader.SYSTEM:
            parts.append(true() if principal.is_system else false())
        elif grant.reader is Reader.ASSIGNED_COUNSELOR:
            parts.append(referral.c.assigned_counselor_id == literal(principal.user_id, type_=Uuid())
                         if principal.has_role(Role.COUNSELOR) and principal.user_id is not None else false())
        parts += [_condition(c, consent, referral.c.status, at) for c in sorted(grant.when)]
        if grant.names_notes:
            parts.append(consent.c.data_categories.any_() == DataCategory.SESSION_NOTES.value)
        if grant.by_category:
            parts.append(or_(*[
                and_(column == org, category_visible(side, DataCategory.SESSION_NOTES, consent=consent,
                                                     referral_status=referral.c.status, at=at))
                for side, column in ((Side.REFERRER, referral.c.referring_organization_id),
                                     (Side.RECEIVER, referral.c.receiving_organization_id))]))
        options.append(and_(*parts))
    return or_(false(), *options)


def concern_visible(principal: Principal, referral: Any) -> ColumnElement[bool]:
    """domain.policy.CONCERN_SIDES rendered to SQL: rule 7 for the concerns under `referral`."""
    org = literal(principal.organization_id, type_=Uuid())
    columns = {Side.REFERRER: referral.c.referring_organization_id, Side.RECEIVER: referral.c.receiving_organization_id}
    return or_(false(), *[columns[side] == org for side in sorted(CONCERN_SIDES)])


def care_visible(scope: RowScope, row: Any, category: DataCategory) -> ColumnElement[bool]:
    """Care records (sessions, goals, milestones, assessments) of visible referrals.

    The partner sees its own records; the referrer sees them only as feedback: the referral's
    consent, in force, must name FEEDBACK_TO_REFERRER and the record's data category.
    """
    r = SCOPE_REFERRAL
    visible_referral = select(r.c.id).where(r.c.id == row.c.referral_id, referral_visible(scope, r))
    if scope.side is Side.RECEIVER:
        return and_(row.c.organization_id == scope.organization_id, visible_referral.exists())
    if scope.side is Side.REFERRER:
        c = FEEDBACK_CONSENT
        feedback = select(c.c.id).where(
            c.c.id == r.c.consent_id,
            category_visible(Side.REFERRER, category, consent=c, referral_status=r.c.status, at=scope.at),
        )
        return visible_referral.where(feedback.exists()).exists()
    return false()


# ----------------------------------------------------------------------------- care under shown referrals

_IDS = ARRAY(Uuid())


def care_under_shown(table: Any) -> ColumnElement[bool]:
    """Care records under referrals the caller was already shown in this request, as policy.care_rows
    decided: its own records on `own` and `feedback` referrals, the partner's on `feedback` ones. Bind
    parameters only (care_under_params), so the statement is built once. All listed referrals first (one
    index scan on referral_id), then the owner test per row: written as an OR of two ANYs, PostgreSQL ANDs
    in the whole organization's index (12,000 rows) instead."""
    return and_(
        table.c.referral_id == any_(bindparam("referral_ids", type_=_IDS)),
        or_(table.c.organization_id == bindparam("organization_id", type_=Uuid()),
            table.c.referral_id == any_(bindparam("feedback", type_=_IDS))),
    )


def care_under_params(rows: CareRows) -> dict[str, Any]:
    return {"referral_ids": [*rows.own, *rows.feedback], "feedback": list(rows.feedback),
            "organization_id": rows.organization_id}
