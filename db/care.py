"""SQL for care records: sessions (notes and concerns encrypted), goals and their progress, milestones,
assessment instruments and assessments. Goal descriptions, progress notes, milestone titles and notes
are sealed under the survivor's data key too (db/sealed.py), revealed only when a resolver asks; a
goal or milestone whose survivor's key is destroyed is erased with it and no longer read (its
description or title, required by the contract, could not be shown).

Reads are lean: SQLAlchemy Core selecting only the columns a view needs, one statement per batch,
filtered by db/scopes.py (`care_visible`, `referral_visible`) and joined to the referral and its
consent so each record carries what the policy needs to judge notes and safeguarding. Ids are made
in Python, never read back with RETURNING: a row written for one side may not be readable by it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.types import Uuid

from db import values
from db.crypto import MasterKeys, decrypt_field, encrypt_field
from db.cursors import after_values
from db.engine import Db
from db.scopes import care_under_params, care_under_shown, care_visible, consent_in_force, referral_visible
from db.sealed import ERASED, KEY_COLUMNS, DataKeys, with_key
from db.survivors import SqlSurvivors, key_aad, referral_access
from db.tables import (
    Assessment,
    AssessmentInstrument,
    CareGoal,
    Consent,
    CounselingSession,
    GoalProgress,
    Milestone,
    Referral,
    SurvivorKey,
)
from domain.assessments import Instrument
from domain.enums import (
    Attendance,
    ConcernLevel,
    ConsentPurpose,
    DataCategory,
    GoalAchievementStatus,
    GoalLifecycleStatus,
    OutcomeDomain,
    SessionModality,
    SessionType,
)
from domain.errors import InvalidInput
from domain.paging import Page, PageRequest
from domain.policy import CareRows, ReferralAccess, RowScope
from domain.ports import GoalChange, NewAssessment, NewGoal, NewGoalProgress, NewMilestone, NewSession, StoredInstrument
from domain.views import AssessmentView, ConcernView, GoalProgressView, GoalView, MilestoneView, SessionView

session_t = CounselingSession.__table__  # type: ignore[attr-defined]
goal_t = CareGoal.__table__  # type: ignore[attr-defined]
progress_t = GoalProgress.__table__  # type: ignore[attr-defined]
milestone_t = Milestone.__table__  # type: ignore[attr-defined]
instrument_t = AssessmentInstrument.__table__  # type: ignore[attr-defined]
assessment_t = Assessment.__table__  # type: ignore[attr-defined]
referral_t = Referral.__table__  # type: ignore[attr-defined]
consent_t = Consent.__table__  # type: ignore[attr-defined]
key_t = SurvivorKey.__table__  # type: ignore[attr-defined]

SESSION_TABLE = "counseling_session"
GOAL_TABLE = "care_goal"
PROGRESS_TABLE = "goal_progress"
MILESTONE_TABLE = "milestone"
NEXT_PROGRESS_ID = func.nextval(func.pg_get_serial_sequence(PROGRESS_TABLE, "id"))
_MODALITY = values.members(SessionModality)
_SESSION_TYPE = values.members(SessionType)
_ATTENDANCE = values.members(Attendance)
_CONCERN = values.members(ConcernLevel)
_DOMAIN = values.members(OutcomeDomain)
_LIFECYCLE = values.members(GoalLifecycleStatus)
_ACHIEVEMENT = values.members(GoalAchievementStatus)
ALL_PURPOSES = tuple(ConsentPurpose)


def _access_columns(scope: RowScope) -> list[Any]:
    """The referral's sides and its consent's terms, as db.survivors.referral_access reads them."""
    return [
        referral_t.c.referring_organization_id.label("referring_organization_id"),
        referral_t.c.receiving_organization_id.label("receiving_organization_id"),
        referral_t.c.status.label("status"),
        referral_t.c.assigned_counselor_id.label("assigned_counselor_id"),
        consent_t.c.data_categories.label("data_categories"),
        consent_t.c.purposes.label("purposes"),
        consent_in_force(consent_t, scope, ALL_PURPOSES).label("in_force"),
    ]


def _with_referral(table: Any) -> Any:
    return table.join(referral_t, referral_t.c.id == table.c.referral_id).join(
        consent_t, consent_t.c.id == referral_t.c.consent_id)


def _session_select(scope: RowScope) -> Any:
    s = session_t.c
    return select(
        s.id, s.referral_id, s.survivor_id, s.organization_id, s.counselor_id, s.started_at, s.duration_minutes,
        s.modality, s.session_type, s.attendance, s.notes_enc.is_not(None).label("has_notes"), s.concern_level,
        s.concern_raised_at, s.version, *_access_columns(scope),
    ).select_from(_with_referral(session_t)).where(care_visible(scope, session_t, DataCategory.SESSION_ATTENDANCE))


def _session_view(row: Any, access: ReferralAccess | None = None) -> SessionView:
    return SessionView(
        id=row.id, referral_id=row.referral_id, survivor_id=row.survivor_id, organization_id=row.organization_id,
        counselor_id=row.counselor_id, started_at=row.started_at, duration_minutes=row.duration_minutes,
        modality=_MODALITY[row.modality], session_type=_SESSION_TYPE[row.session_type],
        attendance=_ATTENDANCE[row.attendance], has_notes=bool(row.has_notes),
        concern_level=_CONCERN[row.concern_level] if row.concern_level else None,
        concern_raised_at=row.concern_raised_at, version=row.version,
        access=access if access is not None else referral_access(row),
    )


_GOAL_COLUMNS = (goal_t.c.id, goal_t.c.survivor_id, goal_t.c.referral_id, goal_t.c.organization_id, goal_t.c.domain,
                 goal_t.c.description_enc, goal_t.c.target_date, goal_t.c.lifecycle_status,
                 goal_t.c.achievement_status, goal_t.c.version)


def _goal_select(scope: RowScope) -> Any:
    return select(*_GOAL_COLUMNS, *KEY_COLUMNS).select_from(with_key(goal_t, goal_t.c.survivor_id)).where(
        care_visible(scope, goal_t, DataCategory.ASSESSMENTS))


def _goal_view(row: Any, keys: DataKeys) -> GoalView:
    description = keys.sealed(row, "description", table=GOAL_TABLE, row_id=row.id)
    assert description is not None  # NOT NULL
    return GoalView(
        id=row.id, survivor_id=row.survivor_id, referral_id=row.referral_id, organization_id=row.organization_id,
        domain=_DOMAIN[row.domain], description=description, target_date=row.target_date,
        lifecycle_status=_LIFECYCLE[row.lifecycle_status],
        achievement_status=_ACHIEVEMENT[row.achievement_status], version=row.version,
    )


_MILESTONE_COLUMNS = (milestone_t.c.id, milestone_t.c.referral_id, milestone_t.c.survivor_id,
                      milestone_t.c.organization_id, milestone_t.c.goal_id, milestone_t.c.title_enc,
                      milestone_t.c.achieved_on, milestone_t.c.note_enc, milestone_t.c.version)


def _milestone_select(scope: RowScope) -> Any:
    return select(*_MILESTONE_COLUMNS, *KEY_COLUMNS).select_from(with_key(milestone_t, milestone_t.c.survivor_id)) \
        .where(care_visible(scope, milestone_t, DataCategory.ASSESSMENTS)) \
        .order_by(milestone_t.c.achieved_on, milestone_t.c.created_at, milestone_t.c.id)


def _milestone_view(row: Any, keys: DataKeys) -> MilestoneView:
    title = keys.sealed(row, "title", table=MILESTONE_TABLE, row_id=row.id)
    assert title is not None  # NOT NULL
    return MilestoneView(id=row.id, referral_id=row.referral_id, survivor_id=row.survivor_id,
                         organization_id=row.organization_id, goal_id=row.goal_id, title=title,
                         achieved_on=row.achieved_on,
                         note=keys.sealed(row, "note", table=MILESTONE_TABLE, row_id=row.id), version=row.version)


def _assessment_select(scope: RowScope) -> Any:
    a = assessment_t.c
    return select(
        a.id, a.survivor_id, a.referral_id, a.organization_id, a.referring_organization_id,
        instrument_t.c.key.label("instrument"), a.administered_on, a.domain_scores, a.overall_score,
        a.meets_threshold,
    ).select_from(assessment_t.join(instrument_t, instrument_t.c.id == a.instrument_id)).where(
        care_visible(scope, assessment_t, DataCategory.ASSESSMENTS)
    ).order_by(a.administered_on, a.created_at, a.id)


def _assessment_view(row: Any) -> AssessmentView:
    stored: Mapping[str, float] = row.domain_scores or {}
    return AssessmentView(
        id=row.id, survivor_id=row.survivor_id, referral_id=row.referral_id, organization_id=row.organization_id,
        referring_organization_id=row.referring_organization_id, instrument=row.instrument,
        administered_on=row.administered_on,
        domain_scores=tuple((domain, float(stored[domain.value])) for domain in OutcomeDomain
                            if domain.value in stored),
        overall_score=float(row.overall_score), meets_restoration_threshold=bool(row.meets_threshold),
    )


# ----------------------------------------------------------------------------- under shown referrals
# Care records under referrals the caller was already shown in this request (policy.care_rows has
# decided which): no join, no per-row visibility test, one statement built once with bind parameters,
# so a request pays neither SQLAlchemy's statement building nor PostgreSQL's EXISTS per row. Their
# sealed text opens with the survivor's key those referrals' statements brought (db/sealed.py).

def _sessions_under(after: bool) -> Any:
    s = session_t.c
    counted = select(
        s.id, s.referral_id, s.survivor_id, s.organization_id, s.counselor_id, s.started_at, s.duration_minutes,
        s.modality, s.session_type, s.attendance, s.notes_enc.is_not(None).label("has_notes"), s.concern_level,
        s.concern_raised_at, s.version, func.count().over(partition_by=s.referral_id).label("_count"),
    ).where(care_under_shown(session_t)).subquery()
    ranked = select(counted, func.row_number().over(
        partition_by=counted.c.referral_id, order_by=(counted.c.started_at.desc(), counted.c.id.desc()),
    ).label("_rank"))
    if after:
        ranked = ranked.where(tuple_(counted.c.started_at, counted.c.id) < tuple_(
            bindparam("after_started"), bindparam("after_id", type_=Uuid())))
    ranked_q = ranked.subquery()
    return select(ranked_q).where(ranked_q.c._rank <= bindparam("limit")).order_by(
        ranked_q.c.referral_id, ranked_q.c._rank)


SESSIONS_UNDER = _sessions_under(after=False)
SESSIONS_UNDER_AFTER = _sessions_under(after=True)
# How many sessions each referral shown has, for pages past the last one (which bring no row to count on).
SESSION_COUNTS = select(session_t.c.referral_id, func.count().label("_count")).where(
    care_under_shown(session_t)).group_by(session_t.c.referral_id)
GOALS_UNDER = select(*_GOAL_COLUMNS).where(care_under_shown(goal_t)).order_by(goal_t.c.created_at, goal_t.c.id)
MILESTONES_UNDER = select(*_MILESTONE_COLUMNS).where(care_under_shown(milestone_t)).order_by(
    milestone_t.c.achieved_on, milestone_t.c.created_at, milestone_t.c.id)


def _owner_values(owners: Any) -> dict[str, uuid.UUID]:
    return {"referral_id": owners.referral_id, "survivor_id": owners.survivor_id,
            "organization_id": owners.organization_id, "referring_organization_id": owners.referring_organization_id}


def _grouped(rows: Sequence[Any], key: str, convert: Any) -> dict[uuid.UUID, list[Any]]:
    found: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for row in rows:
        found[getattr(row, key)].append(convert(row))
    return found


class SqlCare:
    def __init__(self, db: Db, *, survivors: SqlSurvivors, keys: DataKeys, master: MasterKeys,
                 now: datetime) -> None:
        self.db = db
        self.survivors = survivors
        self.keys = keys
        self.master = master
        self.now = now

    def _goals(self, rows: Sequence[Any], *, with_keys: bool = True) -> list[GoalView]:
        """Views of goals read with their survivors' keys (or, under shown referrals, with theirs)."""
        if with_keys:
            self.keys.offer(rows)
        return [_goal_view(r, self.keys) for r in rows if self.keys.has(r.survivor_id)]

    def _milestones(self, rows: Sequence[Any], *, with_keys: bool = True) -> list[MilestoneView]:
        if with_keys:
            self.keys.offer(rows)
        return [_milestone_view(r, self.keys) for r in rows if self.keys.has(r.survivor_id)]

    async def _data_key(self, survivor_id: uuid.UUID, field: str) -> bytes:
        data_key = await self.keys.load(survivor_id)
        if data_key is None:
            raise InvalidInput(ERASED, field=("input", field))
        return data_key

    # ------------------------------------------------------------------ sessions

    async def insert_session(self, new: NewSession) -> None:
        """Notes and the concern's description are sealed under the survivor's key, bound to this row."""
        notes_enc = description_enc = None
        if new.notes is not None or new.concern_description is not None:
            data_key = await self.survivors.data_key(new.owners.survivor_id)
            if data_key is None:  # an erased survivor: nothing clinical can be added any more
                raise InvalidInput("Clinical text cannot be recorded for this survivor.", field=("input", "notes"))
            notes_enc = encrypt_field(data_key, new.notes, table=SESSION_TABLE, column="notes", row_id=new.id)
            description_enc = encrypt_field(data_key, new.concern_description, table=SESSION_TABLE,
                                            column="concern_description", row_id=new.id)
        await self.db.execute(insert(session_t).values(
            id=new.id, **_owner_values(new.owners), counselor_id=new.counselor_id, started_at=new.started_at,
            duration_minutes=new.duration_minutes, modality=new.modality, session_type=new.session_type,
            attendance=new.attendance, notes_enc=notes_enc, concern_level=new.concern_level,
            concern_raised_at=new.concern_raised_at, concern_description_enc=description_enc,
        ))

    async def sessions_by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, SessionView]:
        if not ids or scope.is_empty:
            return {}
        rows = await self.db.all(_session_select(scope).where(session_t.c.id.in_(list(set(ids)))))
        return {r.id: _session_view(r) for r in rows}

    async def sessions_under(self, rows: CareRows, page: PageRequest,
                             accesses: Mapping[uuid.UUID, ReferralAccess]) -> Mapping[uuid.UUID, Page[SessionView]]:
        """One page per referral, newest first, in one statement: the count covers every session of
        the referral the caller sees, the rank only those after the cursor (past the last page, a
        second statement counts them)."""
        if rows.is_empty:
            return {}
        params = {**care_under_params(rows), "limit": page.first + 1}
        statement = SESSIONS_UNDER
        if page.after_key is not None:
            statement = SESSIONS_UNDER_AFTER
            params["after_started"], params["after_id"] = after_values(page.after_key,
                                                                       [datetime.fromisoformat, uuid.UUID])
        found = await self.db.all(statement, params)
        grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for r in found:
            grouped[r.referral_id].append(r)
        counts = {referral_id: int(items[0]._count) for referral_id, items in grouped.items()}
        if page.after_key is not None and len(grouped) < len(rows.own) + len(rows.feedback):
            counts.update({r.referral_id: int(r._count) for r in await self.db.all(
                SESSION_COUNTS, care_under_params(rows)) if r.referral_id not in grouped})
        result: dict[uuid.UUID, Page[SessionView]] = {}
        for referral_id in (*rows.own, *rows.feedback):
            items = grouped.get(referral_id, [])
            shown = items[: page.first]
            access = accesses[referral_id]
            result[referral_id] = Page(
                items=[_session_view(r, access) for r in shown],
                keys=[(r.started_at.isoformat(), str(r.id)) for r in shown], has_next=len(items) > page.first,
                has_previous=page.after_key is not None, total_count=counts.get(referral_id, 0),
            )
        return result

    async def _data_keys(self, survivor_ids: set[uuid.UUID]) -> dict[uuid.UUID, bytes]:
        """Many survivors' data keys in one statement (SqlSurvivors.data_key reads one)."""
        rows = await self.db.all(select(key_t.c.survivor_id, key_t.c.master_key_id, key_t.c.wrapped_key).where(
            key_t.c.survivor_id.in_(list(survivor_ids)), key_t.c.destroyed_at.is_(None)))
        return {r.survivor_id: self.master.unwrap(r.master_key_id, r.wrapped_key, aad=key_aad(r.survivor_id))
                for r in rows}

    async def session_notes(self, sessions: Sequence[SessionView]) -> Mapping[uuid.UUID, str]:
        if not sessions:
            return {}
        rows = await self.db.all(select(session_t.c.id, session_t.c.survivor_id, session_t.c.notes_enc).where(
            session_t.c.id.in_([s.id for s in sessions]), session_t.c.notes_enc.is_not(None)))
        if not rows:
            return {}
        keys = await self._data_keys({r.survivor_id for r in rows})
        found: dict[uuid.UUID, str] = {}
        for r in rows:
            key = keys.get(r.survivor_id)
            if key is None:
                continue
            plain = decrypt_field(key, r.notes_enc, table=SESSION_TABLE, column="notes", row_id=r.id)
            if plain is not None:
                found[r.id] = plain
        return found

    async def concerns_by_referral(self, scope: RowScope, referral_ids: Sequence[uuid.UUID]
                                   ) -> Mapping[uuid.UUID, Sequence[ConcernView]]:
        """Concerns of referrals the scope sees, whatever the feedback consent says (rule 7)."""
        if not referral_ids or scope.is_empty:
            return {}
        rows = await self.db.all(
            select(session_t.c.id, session_t.c.referral_id, session_t.c.concern_level,
                   session_t.c.concern_raised_at, *_access_columns(scope))
            .select_from(_with_referral(session_t))
            .where(session_t.c.referral_id.in_(list(set(referral_ids))), session_t.c.concern_level.is_not(None),
                   session_t.c.concern_raised_at.is_not(None), referral_visible(scope, referral_t))
            .order_by(session_t.c.referral_id, session_t.c.concern_raised_at, session_t.c.id)
        )
        return _grouped(rows, "referral_id", lambda r: ConcernView(
            session_id=r.id, referral_id=r.referral_id, level=ConcernLevel(r.concern_level),
            raised_at=r.concern_raised_at, access=referral_access(r)))

    # ------------------------------------------------------------------ goals

    async def insert_goal(self, new: NewGoal) -> None:
        data_key = await self._data_key(new.owners.survivor_id, "description")
        await self.db.execute(insert(goal_t).values(
            id=new.id, **_owner_values(new.owners), domain=new.domain, target_date=new.target_date,
            description_enc=encrypt_field(data_key, new.description, table=GOAL_TABLE, column="description",
                                          row_id=new.id),
            lifecycle_status=new.lifecycle_status, achievement_status=new.achievement_status,
        ))

    async def goals_by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, GoalView]:
        if not ids or scope.is_empty:
            return {}
        rows = await self.db.all(_goal_select(scope).where(goal_t.c.id.in_(list(set(ids)))))
        return {v.id: v for v in self._goals(rows)}

    async def _goals_by(self, scope: RowScope, column: str,
                        ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[GoalView]]:
        if not ids or scope.is_empty:
            return {}
        rows = await self.db.all(_goal_select(scope).where(goal_t.c[column].in_(list(set(ids))))
                                 .order_by(goal_t.c.created_at, goal_t.c.id))
        return _grouped(self._goals(rows), column, lambda view: view)

    async def goals_under(self, rows: CareRows) -> Mapping[uuid.UUID, Sequence[GoalView]]:
        if rows.is_empty:
            return {}
        found = await self.db.all(GOALS_UNDER, care_under_params(rows))
        return _grouped(self._goals(found, with_keys=False), "referral_id", lambda view: view)

    async def goals_by_survivor(self, scope: RowScope,
                                survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[GoalView]]:
        return await self._goals_by(scope, "survivor_id", survivor_ids)

    async def lock_goal(self, scope: RowScope, goal_id: uuid.UUID) -> GoalView | None:
        if scope.is_empty:
            return None
        row = await self.db.first(_goal_select(scope).where(goal_t.c.id == goal_id).with_for_update(of=goal_t))
        return self._goals([row])[0] if row else None

    async def change_goal(self, change: GoalChange) -> bool:
        row = await self.db.first(
            update(goal_t).where(goal_t.c.id == change.goal_id, goal_t.c.version == change.expected_version)
            .values(lifecycle_status=change.lifecycle_status, achievement_status=change.achievement_status,
                    version=goal_t.c.version + 1, updated_at=func.now())
            .returning(goal_t.c.id))
        return row is not None

    async def insert_progress(self, new: NewGoalProgress) -> None:
        """A note is sealed bound to the row's id, so the id comes from the sequence first (with the key)."""
        sealed: dict[str, Any] = {}
        if new.note is not None:
            row, data_key = await self.keys.of_row(
                select(NEXT_PROGRESS_ID.label("id"), goal_t.c.survivor_id, *KEY_COLUMNS)
                .select_from(with_key(goal_t, goal_t.c.survivor_id)).where(goal_t.c.id == new.goal_id))
            if data_key is None:
                raise InvalidInput(ERASED, field=("input", "note"))
            sealed = {"id": row.id, "note_enc": encrypt_field(data_key, new.note, table=PROGRESS_TABLE,
                                                              column="note", row_id=row.id)}
        await self.db.execute(insert(progress_t).values(
            goal_id=new.goal_id, organization_id=new.organization_id,
            referring_organization_id=new.referring_organization_id, achievement_status=new.achievement_status,
            lifecycle_status=new.lifecycle_status, actor=new.actor, at=func.clock_timestamp(), **sealed,
        ))

    async def progress(self, goal_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[GoalProgressView]]:
        if not goal_ids:
            return {}
        p = progress_t.c
        rows = await self.db.all(
            select(p.id, p.goal_id, p.at, p.achievement_status, p.lifecycle_status, p.note_enc, goal_t.c.survivor_id,
                   *KEY_COLUMNS)
            .select_from(with_key(progress_t.join(goal_t, goal_t.c.id == p.goal_id), goal_t.c.survivor_id))
            .where(p.goal_id.in_(list(set(goal_ids)))).order_by(p.id))
        self.keys.offer(rows)
        return _grouped(rows, "goal_id", lambda r: GoalProgressView(
            goal_id=r.goal_id, at=r.at, achievement_status=GoalAchievementStatus(r.achievement_status),
            lifecycle_status=GoalLifecycleStatus(r.lifecycle_status),
            note=self.keys.sealed(r, "note", table=PROGRESS_TABLE, row_id=r.id)))

    # ------------------------------------------------------------------ milestones

    async def insert_milestone(self, new: NewMilestone) -> None:
        data_key = await self._data_key(new.owners.survivor_id, "title")
        await self.db.execute(insert(milestone_t).values(
            id=new.id, **_owner_values(new.owners), goal_id=new.goal_id, achieved_on=new.achieved_on,
            title_enc=encrypt_field(data_key, new.title, table=MILESTONE_TABLE, column="title", row_id=new.id),
            note_enc=encrypt_field(data_key, new.note, table=MILESTONE_TABLE, column="note", row_id=new.id),
        ))

    async def milestones_by_id(self, scope: RowScope,
                               ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, MilestoneView]:
        if not ids or scope.is_empty:
            return {}
        rows = await self.db.all(_milestone_select(scope).where(milestone_t.c.id.in_(list(set(ids)))))
        return {v.id: v for v in self._milestones(rows)}

    async def milestones_under(self, rows: CareRows) -> Mapping[uuid.UUID, Sequence[MilestoneView]]:
        if rows.is_empty:
            return {}
        found = await self.db.all(MILESTONES_UNDER, care_under_params(rows))
        return _grouped(self._milestones(found, with_keys=False), "referral_id", lambda view: view)

    # ------------------------------------------------------------------ assessments

    async def instrument(self, key: str) -> StoredInstrument | None:
        """The latest active version of an instrument (instruments are data: migrations seed them)."""
        row = await self.db.first(
            select(instrument_t.c.id, instrument_t.c.definition)
            .where(instrument_t.c.key == key, instrument_t.c.active.is_(True))
            .order_by(instrument_t.c.created_at.desc(), instrument_t.c.version.desc()).limit(1))
        if row is None:
            return None
        return StoredInstrument(id=row.id, instrument=Instrument.from_dict(row.definition))

    async def instruments(self) -> Sequence[StoredInstrument]:
        """The latest active version of every instrument, by key."""
        rows = await self.db.all(
            select(instrument_t.c.id, instrument_t.c.definition).where(instrument_t.c.active.is_(True))
            .ext(distinct_on(instrument_t.c.key))
            .order_by(instrument_t.c.key, instrument_t.c.created_at.desc(), instrument_t.c.version.desc()))
        return [StoredInstrument(id=row.id, instrument=Instrument.from_dict(row.definition)) for row in rows]

    async def insert_assessment(self, new: NewAssessment) -> None:
        await self.db.execute(insert(assessment_t).values(
            id=new.id, **_owner_values(new.owners), instrument_id=new.instrument_id,
            administered_on=new.administered_on, subdomain_scores=dict(new.subdomain_scores),
            domain_scores=dict(new.domain_scores), overall_score=new.overall_score,
            meets_threshold=new.meets_threshold,
        ))

    async def assessments_by_id(self, scope: RowScope,
                                ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, AssessmentView]:
        if not ids or scope.is_empty:
            return {}
        rows = await self.db.all(_assessment_select(scope).where(assessment_t.c.id.in_(list(set(ids)))))
        return {r.id: _assessment_view(r) for r in rows}

    async def assessments_by_survivor(self, scope: RowScope, survivor_ids: Sequence[uuid.UUID]
                                      ) -> Mapping[uuid.UUID, Sequence[AssessmentView]]:
        if not survivor_ids or scope.is_empty:
            return {}
        rows = await self.db.all(_assessment_select(scope).where(
            assessment_t.c.survivor_id.in_(list(set(survivor_ids)))))
        return _grouped(rows, "survivor_id", _assessment_view)
