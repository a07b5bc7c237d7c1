"""Care at the partner: counseling sessions (with safeguarding concerns), goals, milestones, assessments.

Who records care: the receiving partner's counselors, coordinators and system (`policy.may_record_care`,
further narrowed by OAuth scopes), only on a referral they can see (a counselor: one assigned to
them; anything else is NOT_FOUND) and only while it is ACCEPTED, IN_PROGRESS or ON_HOLD.

Decisions where the contract is silent (each is a guard against a plausible mistake):
- A partner system logging a session records the referral's assigned counselor as the counselor;
  with none assigned it is refused (INVALID on input.referralId): a session without a responsible
  person would be clinically meaningless.
- Care records belong to the referral's time: a session, milestone or assessment may be dated up to
  one day before the referral was created (paper records and same-day intakes are entered later),
  never earlier. A session may start at most one day in the future (clock skew, a cancellation
  logged ahead); milestones and assessments are facts and cannot be dated after today (East Africa
  Time). A goal's target date lies between the referral's creation date and five years ahead.
- A safeguarding concern's description is clinical text like the notes: giving either needs the
  SessionNote.c scope and being the referral's assigned counselor (or the partner's system; a
  coordinator who also counsels writes none on referrals assigned to others), and both are encrypted
  under the survivor's data key.
- Sessions are listed newest first (a dashboard wants the latest); goals, milestones and
  assessments oldest first (a care plan reads as a story).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from domain import policy
from domain.assessments import Instrument, parse_scores, score
from domain.enums import (
    Attendance,
    ConcernLevel,
    DataCategory,
    GoalAchievementStatus,
    GoalLifecycleStatus,
    OutcomeDomain,
    ReferralStatus,
    SessionModality,
    SessionType,
)
from domain.errors import FieldChecks, Forbidden, InvalidInput, InvalidTransition, NotFound, VersionConflict
from domain.goals import INITIAL_ACHIEVEMENT, INITIAL_LIFECYCLE, record_progress
from domain.ids import to_global_id
from domain.kenya import EAT
from domain.paging import Page, PageRequest
from domain.ports import (
    CareOwners,
    GoalChange,
    NewAssessment,
    NewGoal,
    NewGoalProgress,
    NewMilestone,
    NewSession,
    Unit,
)
from domain.principal import Principal
from domain.scopes import Action, Resource
from domain.use_cases.common import required_text, text
from domain.views import (
    AssessmentView,
    ConcernView,
    GoalProgressView,
    GoalView,
    MilestoneView,
    ReferralView,
    SessionView,
)

CARE_STATUSES = frozenset({ReferralStatus.ACCEPTED, ReferralStatus.IN_PROGRESS, ReferralStatus.ON_HOLD})
MIN_DURATION_MINUTES = 1
MAX_DURATION_MINUTES = 480
MAX_NOTES = 20_000
MAX_CONCERN_DESCRIPTION = 5_000
MAX_GOAL_DESCRIPTION = 1_000
MAX_TITLE = 200
MAX_NOTE = 2_000
MAX_INSTRUMENT_KEY = 64
MAX_SCORES = 200
FUTURE_SLACK = timedelta(days=1)
PAPER_SLACK = timedelta(days=1)
MAX_TARGET_AHEAD = timedelta(days=5 * 366)
SAFEGUARDING_PURPOSE = "SAFEGUARDING_RULE_7"
GOAL_VERSION_CONFLICT = "The goal was changed by someone else; reload it and try again."


def _field(*names: str) -> tuple[str, ...]:
    return ("input", *names)


# ----------------------------------------------------------------------------- shared checks


def _aware(value: datetime, field: tuple[str, ...]) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("Date and time must include a UTC offset.", field=field)


def _today(now: datetime) -> date:
    return now.astimezone(EAT).date()


def _earliest(referral: ReferralView) -> datetime:
    """The earliest instant care under this referral can have happened (paper records come late)."""
    return referral.created_at - PAPER_SLACK


def _clinical_text(value: str | None, *, field: tuple[str, ...], max_length: int) -> str | None:
    """Free clinical text: it may span lines (Windows line endings are normalised)."""
    return text(value, field=field, max_length=max_length, required=False, multiline=True)


def _fact_date(value: date, referral: ReferralView, now: datetime, field: tuple[str, ...]) -> None:
    """A date something happened: not after today (EAT), not before this referral's time."""
    if value > _today(now):
        raise InvalidInput(f"{field[-1]} cannot be in the future.", field=field)
    if value < _earliest(referral).astimezone(EAT).date():
        raise InvalidInput(f"{field[-1]} cannot be before the referral was made.", field=field)


def _owners(referral: ReferralView) -> CareOwners:
    return CareOwners(referral_id=referral.id, survivor_id=referral.survivor_id,
                      organization_id=referral.receiving_organization_id,
                      referring_organization_id=referral.referring_organization_id)


async def _care_referral(unit: Unit, principal: Principal, referral_id: uuid.UUID | None, *,
                         field: tuple[str, ...] = ("input", "referralId")) -> ReferralView:
    """The referral care is recorded on, locked: visible to the caller, theirs, and open for care."""
    if not policy.may_record_care(principal):
        raise Forbidden("Only the receiving partner's counselors, coordinators and system record care.")
    scope = policy.rows(principal, unit.now())
    referral = await unit.referrals.lock(scope, referral_id) if referral_id else None
    if referral is None or not policy.may_record_care_on(
            principal, receiving_organization_id=referral.receiving_organization_id):
        raise NotFound(field=field)
    if referral.status not in CARE_STATUSES:
        raise InvalidTransition(f"Care cannot be recorded on a referral in status {referral.status.value}; "
                                "it must be ACCEPTED, IN_PROGRESS or ON_HOLD.", field=field)
    return referral


def _read_purpose(principal: Principal, organization_id: uuid.UUID) -> str:
    return policy.care_read_purpose(principal, authoring_organization_id=organization_id)


# ----------------------------------------------------------------------------- sessions


async def log_session(*, unit: Unit, principal: Principal, referral_id: uuid.UUID | None, started_at: datetime,
                      duration_minutes: int, modality: SessionModality, session_type: SessionType,
                      attendance: Attendance, notes: str | None, concern_level: ConcernLevel | None,
                      concern_description: str | None) -> uuid.UUID:
    """Record one meeting; a concern is told to the referring organization at once (rule 7), ids only."""
    policy.require(principal, Resource.COUNSELING_SESSION, Action.CREATE)
    checks = FieldChecks()  # every refused field at once, so the caller fixes them in one round trip
    cleaned_notes = checks.check(lambda: _clinical_text(notes, field=_field("notes"), max_length=MAX_NOTES))
    description = checks.check(lambda: _clinical_text(
        concern_description, field=_field("safeguardingConcern", "description"),
        max_length=MAX_CONCERN_DESCRIPTION)) if concern_level is not None else None
    if not MIN_DURATION_MINUTES <= duration_minutes <= MAX_DURATION_MINUTES:
        checks.refuse(InvalidInput(
            f"durationMinutes must be between {MIN_DURATION_MINUTES} and {MAX_DURATION_MINUTES}.",
            field=_field("durationMinutes")))
    now = unit.now()
    if checks.passes(lambda: _aware(started_at, _field("startedAt"))) and started_at > now + FUTURE_SLACK:
        checks.refuse(InvalidInput("startedAt cannot be more than one day in the future.", field=_field("startedAt")))
    if cleaned_notes is not None or description is not None:
        policy.require(principal, Resource.SESSION_NOTE, Action.CREATE)
    checks.done()
    referral = await _care_referral(unit, principal, referral_id)
    if (cleaned_notes is not None or description is not None) and not policy.may_write_session_notes(
            principal, assigned_counselor_id=referral.assigned_counselor_id):
        raise InvalidInput("Clinical notes are written only by the counselor assigned to this referral or the "
                           "partner's system: assign yourself as its counselor first, or leave them out.",
                           field=_field("notes") if cleaned_notes is not None else
                           _field("safeguardingConcern", "description"))
    if started_at < _earliest(referral):
        raise InvalidInput("startedAt cannot be before the referral was made.", field=_field("startedAt"))
    counselor_id = principal.user_id or referral.assigned_counselor_id
    if counselor_id is None:
        raise InvalidInput("Assign a counselor to this referral before a partner system logs its sessions.",
                           field=_field("referralId"))
    session_id = uuid.uuid4()
    await unit.care.insert_session(NewSession(
        id=session_id, owners=_owners(referral), counselor_id=counselor_id, started_at=started_at,
        duration_minutes=duration_minutes, modality=modality.value, session_type=session_type.value,
        attendance=attendance.value, notes=cleaned_notes,
        concern_level=concern_level.value if concern_level else None,
        concern_raised_at=now if concern_level else None, concern_description=description,
    ))
    await unit.referrals.touch(referral.id)
    gid = to_global_id("CounselingSession", session_id)
    await unit.audit(action="create", record_type="CounselingSession", record_id=gid, outcome="allowed",
                     purpose="SERVICE_DELIVERY")
    if concern_level is not None:
        await unit.audit(action="create", record_type="SafeguardingConcern", record_id=gid, outcome="allowed",
                         purpose="SAFEGUARDING")
        # To the referring organization only; the partner raised it. Never the description (rule 4).
        await unit.emit(event_type="safeguarding.raised", organization_id=referral.referring_organization_id,
                        data={"referralId": to_global_id("Referral", referral.id), "sessionId": gid,
                              "concernLevel": concern_level.value})
    return session_id


async def sessions_by_id(*, unit: Unit, principal: Principal,
                         ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, SessionView]:
    policy.require(principal, Resource.COUNSELING_SESSION, Action.READ)
    return await unit.care.sessions_by_id(policy.rows(principal, unit.now()), ids)


def _shown(principal: Principal, referrals: Sequence[ReferralView], category: DataCategory) -> policy.CareRows:
    """Callers pass referrals they were shown in this request (views read under the caller's row scope at
    this instant): whether their care records show is then the category rule alone."""
    return policy.care_rows(principal.organization_id, [(r.id, r.access) for r in referrals], category)


async def sessions_of_referrals(*, unit: Unit, principal: Principal, referrals: Sequence[ReferralView],
                                request: PageRequest) -> Mapping[uuid.UUID, Page[SessionView]]:
    policy.require(principal, Resource.COUNSELING_SESSION, Action.SEARCH)
    rows = _shown(principal, referrals, DataCategory.SESSION_ATTENDANCE)
    return await unit.care.sessions_under(rows, request, {r.id: r.access for r in referrals})


async def session_notes(*, unit: Unit, principal: Principal,
                        sessions: Sequence[SessionView]) -> Mapping[uuid.UUID, str]:
    """Decrypt the notes the policy lets this caller read, and audit every one of those reads."""
    allowed = [s for s in sessions if s.has_notes and policy.may_read_session_notes(
        principal, s.access, authoring_org=s.organization_id)]
    if not allowed:
        return {}
    notes = await unit.care.session_notes(allowed)
    by_purpose: dict[str, list[str]] = defaultdict(list)
    for session in allowed:
        if session.id in notes:
            by_purpose[_read_purpose(principal, session.organization_id)].append(
                to_global_id("CounselingSession", session.id))
    for purpose, record_ids in sorted(by_purpose.items()):
        await unit.audit_many(action="read", record_type="SessionNote", record_ids=record_ids, outcome="allowed",
                              purpose=purpose)
    return notes


async def _disclosed(unit: Unit, principal: Principal, concerns: Sequence[ConcernView]) -> None:
    """Rule 7: every concern shown to the referring organization leaves a disclosure audit row."""
    record_ids = [to_global_id("CounselingSession", c.session_id) for c in concerns
                  if policy.is_referrer(principal, referring_organization_id=c.access.referring_organization_id)]
    if record_ids:
        await unit.audit_many(action="disclose", record_type="SafeguardingConcern", record_ids=record_ids,
                              outcome="allowed", purpose=SAFEGUARDING_PURPOSE)


async def concern_of_sessions(*, unit: Unit, principal: Principal,
                              sessions: Sequence[SessionView]) -> Mapping[uuid.UUID, ConcernView]:
    """The concern of sessions the caller was already shown (CounselingSession.safeguardingConcern)."""
    concerns = [
        ConcernView(session_id=s.id, referral_id=s.referral_id, level=s.concern_level,
                    raised_at=s.concern_raised_at, access=s.access)
        for s in sessions
        if s.concern_level is not None and s.concern_raised_at is not None
        and policy.sees_safeguarding(principal, s.access)
    ]
    await _disclosed(unit, principal, concerns)
    return {c.session_id: c for c in concerns}


async def concerns_by_referral(*, unit: Unit, principal: Principal,
                               referral_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[ConcernView]]:
    """Referral.safeguardingConcerns: whoever sees the referral on either side, whatever the consent."""
    policy.require(principal, Resource.REFERRAL, Action.READ)
    found = await unit.care.concerns_by_referral(policy.rows(principal, unit.now()), referral_ids)
    shown = {rid: [c for c in concerns if policy.sees_safeguarding(principal, c.access)]
             for rid, concerns in found.items()}
    await _disclosed(unit, principal, [c for concerns in shown.values() for c in concerns])
    return shown


# ----------------------------------------------------------------------------- goals


async def set_goal(*, unit: Unit, principal: Principal, referral_id: uuid.UUID | None, domain: OutcomeDomain,
                   description: str, target_date: date | None) -> uuid.UUID:
    policy.require(principal, Resource.CARE_GOAL, Action.CREATE)
    checks = FieldChecks()  # every refused field at once, so the caller fixes them in one round trip
    cleaned = checks.check(lambda: required_text(description, field=_field("description"),
                                                 max_length=MAX_GOAL_DESCRIPTION, multiline=True))
    now = unit.now()
    if target_date is not None and target_date > _today(now) + MAX_TARGET_AHEAD:
        checks.refuse(InvalidInput("targetDate cannot be more than five years ahead.", field=_field("targetDate")))
    checks.done()
    assert cleaned is not None
    referral = await _care_referral(unit, principal, referral_id)
    if target_date is not None and target_date < referral.created_at.astimezone(EAT).date():
        raise InvalidInput("targetDate cannot be before the referral was made.", field=_field("targetDate"))
    goal_id = uuid.uuid4()
    owners = _owners(referral)
    await unit.care.insert_goal(NewGoal(
        id=goal_id, owners=owners, domain=domain.value, description=cleaned, target_date=target_date,
        lifecycle_status=INITIAL_LIFECYCLE.value, achievement_status=INITIAL_ACHIEVEMENT.value,
    ))
    # The first entry of the dated series: the goal's status from the moment it was set.
    await unit.care.insert_progress(NewGoalProgress(
        goal_id=goal_id, organization_id=owners.organization_id,
        referring_organization_id=owners.referring_organization_id,
        achievement_status=INITIAL_ACHIEVEMENT.value, lifecycle_status=INITIAL_LIFECYCLE.value, note=None,
        actor=principal.actor,
    ))
    await unit.referrals.touch(referral.id)
    await unit.audit(action="create", record_type="CareGoal", record_id=to_global_id("CareGoal", goal_id),
                     outcome="allowed", purpose="SERVICE_DELIVERY")
    return goal_id


async def update_goal_progress(*, unit: Unit, principal: Principal, goal_id: uuid.UUID | None,
                               expected_version: int | None, achievement: GoalAchievementStatus,
                               lifecycle: GoalLifecycleStatus | None, note: str | None) -> uuid.UUID:
    """A new dated achievement status (and maybe lifecycle move) as one checked, versioned change."""
    policy.require(principal, Resource.CARE_GOAL, Action.UPDATE)
    if not policy.may_record_care(principal):
        raise Forbidden("Only the receiving partner's counselors, coordinators and system record care.")
    cleaned_note = _clinical_text(note, field=_field("note"), max_length=MAX_NOTE)
    goal = await unit.care.lock_goal(policy.rows(principal, unit.now()), goal_id) if goal_id else None
    if goal is None or not policy.may_record_care_on(principal, receiving_organization_id=goal.organization_id):
        raise NotFound(field=_field("goalId"))
    referral = await _care_referral(unit, principal, goal.referral_id, field=_field("goalId"))
    if expected_version is not None and expected_version != goal.version:
        raise VersionConflict(GOAL_VERSION_CONFLICT, field=_field("expectedVersion"))
    new_lifecycle = record_progress(current=goal.lifecycle_status, requested=lifecycle, achievement=achievement)
    if not await unit.care.change_goal(GoalChange(goal_id=goal.id, expected_version=goal.version,
                                                  lifecycle_status=new_lifecycle.value,
                                                  achievement_status=achievement.value)):
        raise VersionConflict(GOAL_VERSION_CONFLICT, field=_field("expectedVersion"))
    await unit.care.insert_progress(NewGoalProgress(
        goal_id=goal.id, organization_id=referral.receiving_organization_id,
        referring_organization_id=referral.referring_organization_id, achievement_status=achievement.value,
        lifecycle_status=new_lifecycle.value, note=cleaned_note, actor=principal.actor,
    ))
    await unit.referrals.touch(referral.id)
    await unit.audit(action="update", record_type="CareGoal", record_id=to_global_id("CareGoal", goal.id),
                     outcome="allowed", purpose="SERVICE_DELIVERY")
    return goal.id


async def goals_by_id(*, unit: Unit, principal: Principal, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, GoalView]:
    policy.require(principal, Resource.CARE_GOAL, Action.READ)
    return await unit.care.goals_by_id(policy.rows(principal, unit.now()), ids)


async def goals_of_referrals(*, unit: Unit, principal: Principal,
                             referrals: Sequence[ReferralView]) -> Mapping[uuid.UUID, Sequence[GoalView]]:
    policy.require(principal, Resource.CARE_GOAL, Action.SEARCH)
    return await unit.care.goals_under(_shown(principal, referrals, DataCategory.ASSESSMENTS))


async def goals_by_survivor(*, unit: Unit, principal: Principal,
                            survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[GoalView]]:
    policy.require(principal, Resource.CARE_GOAL, Action.SEARCH)
    return await unit.care.goals_by_survivor(policy.rows(principal, unit.now()), survivor_ids)


async def goal_history(*, unit: Unit, principal: Principal,
                       goal_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[GoalProgressView]]:
    """Callers pass ids of goals they were already shown; the history is part of the goal."""
    return await unit.care.progress(goal_ids)


# ----------------------------------------------------------------------------- milestones


async def record_milestone(*, unit: Unit, principal: Principal, referral_id: uuid.UUID | None,
                           goal_id: uuid.UUID | None, title: str, achieved_on: date,
                           note: str | None) -> uuid.UUID:
    """`goal_id` None means no goal given; an id that names no visible goal of this referral is NOT_FOUND."""
    policy.require(principal, Resource.MILESTONE, Action.CREATE)
    checks = FieldChecks()  # every refused field at once, so the caller fixes them in one round trip
    cleaned_title = checks.check(lambda: required_text(title, field=_field("title"), max_length=MAX_TITLE))
    cleaned_note = checks.check(lambda: _clinical_text(note, field=_field("note"), max_length=MAX_NOTE))
    checks.done()
    assert cleaned_title is not None
    now = unit.now()
    referral = await _care_referral(unit, principal, referral_id)
    _fact_date(achieved_on, referral, now, _field("achievedOn"))
    if goal_id is not None:
        goal = (await unit.care.goals_by_id(policy.rows(principal, now), [goal_id])).get(goal_id)
        if goal is None or goal.referral_id != referral.id:
            raise NotFound("No such goal on this referral.", field=_field("goalId"))
    milestone_id = uuid.uuid4()
    await unit.care.insert_milestone(NewMilestone(id=milestone_id, owners=_owners(referral), goal_id=goal_id,
                                                  title=cleaned_title, achieved_on=achieved_on, note=cleaned_note))
    await unit.referrals.touch(referral.id)
    await unit.audit(action="create", record_type="Milestone", record_id=to_global_id("Milestone", milestone_id),
                     outcome="allowed", purpose="SERVICE_DELIVERY")
    return milestone_id


async def milestones_by_id(*, unit: Unit, principal: Principal,
                           ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, MilestoneView]:
    policy.require(principal, Resource.MILESTONE, Action.READ)
    return await unit.care.milestones_by_id(policy.rows(principal, unit.now()), ids)


async def milestones_of_referrals(*, unit: Unit, principal: Principal, referrals: Sequence[ReferralView]
                                  ) -> Mapping[uuid.UUID, Sequence[MilestoneView]]:
    policy.require(principal, Resource.MILESTONE, Action.SEARCH)
    return await unit.care.milestones_under(_shown(principal, referrals, DataCategory.ASSESSMENTS))


# ----------------------------------------------------------------------------- assessments


async def instruments(*, unit: Unit) -> Sequence[Instrument]:
    """The instruments an assessment may use, with their sub-domain keys and labels: reference data
    any signed-in caller may read, so nobody has to read the source to fill `scores`."""
    return [stored.instrument for stored in await unit.care.instruments()]


async def record_assessment(*, unit: Unit, principal: Principal, referral_id: uuid.UUID | None, instrument: str,
                            administered_on: date, scores: Sequence[tuple[str, int]],
                            restoration_threshold: float) -> uuid.UUID:
    """Score with the instrument stored as data (latest active version of its key), then keep both."""
    policy.require(principal, Resource.ASSESSMENT, Action.CREATE)
    key = required_text(instrument, field=_field("instrument"), max_length=MAX_INSTRUMENT_KEY)
    if len(scores) > MAX_SCORES:
        raise InvalidInput(f"scores accepts at most {MAX_SCORES} entries.", field=_field("scores"))
    by_subdomain = parse_scores(scores)
    now = unit.now()
    referral = await _care_referral(unit, principal, referral_id)
    _fact_date(administered_on, referral, now, _field("administeredOn"))
    stored = await unit.care.instrument(key)
    if stored is None:
        raise InvalidInput("Unknown assessment instrument.", field=_field("instrument"))
    result = score(stored.instrument, by_subdomain, threshold=restoration_threshold)
    assessment_id = uuid.uuid4()
    await unit.care.insert_assessment(NewAssessment(
        id=assessment_id, owners=_owners(referral), instrument_id=stored.id, administered_on=administered_on,
        subdomain_scores=by_subdomain, domain_scores={d.value: s for d, s in result.domain_scores},
        overall_score=result.overall, meets_threshold=result.meets_restoration_threshold,
    ))
    await unit.referrals.touch(referral.id)
    await unit.audit(action="create", record_type="Assessment",
                     record_id=to_global_id("Assessment", assessment_id), outcome="allowed",
                     purpose="SERVICE_DELIVERY")
    return assessment_id


async def _audit_assessment_reads(unit: Unit, principal: Principal, views: Sequence[AssessmentView]) -> None:
    """Assessments are clinical data: every read leaves an audit row (rule 3)."""
    by_purpose: dict[str, list[str]] = defaultdict(list)
    for view in views:
        by_purpose[_read_purpose(principal, view.organization_id)].append(to_global_id("Assessment", view.id))
    for purpose, record_ids in sorted(by_purpose.items()):
        await unit.audit_many(action="read", record_type="Assessment", record_ids=record_ids, outcome="allowed",
                              purpose=purpose)


async def assessments_by_id(*, unit: Unit, principal: Principal,
                            ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, AssessmentView]:
    policy.require(principal, Resource.ASSESSMENT, Action.READ)
    found = await unit.care.assessments_by_id(policy.rows(principal, unit.now()), ids)
    await _audit_assessment_reads(unit, principal, list(found.values()))
    return found


async def assessments_by_survivor(*, unit: Unit, principal: Principal, survivor_ids: Sequence[uuid.UUID]
                                  ) -> Mapping[uuid.UUID, Sequence[AssessmentView]]:
    policy.require(principal, Resource.ASSESSMENT, Action.SEARCH)
    found = await unit.care.assessments_by_survivor(policy.rows(principal, unit.now()), survivor_ids)
    await _audit_assessment_reads(unit, principal, [v for views in found.values() for v in views])
    return found
