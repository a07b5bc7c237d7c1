"""Mutations on care: log a session (with a safeguarding concern), set and progress goals, record
milestones and assessments. Each is one input, a payload with userErrors, run by `run_mutation`
(savepoint, idempotency, audit of refusals)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import strawberry

from api.graphql.context import Context
from api.graphql.errors import UserError
from api.graphql.mutations.base import decode_id, run_mutation
from api.graphql.types.care import Assessment, CareGoal, CounselingSession, Milestone
from domain import enums
from domain.use_cases import care

# An id that was given but decodes to nothing must still be "not found", not "not given".
NOTHING = uuid.UUID(int=0)

# ----------------------------------------------------------------------------- inputs and payloads


@strawberry.input
class SafeguardingConcernInput:
    level: enums.ConcernLevel
    description: str | None = strawberry.field(
        default=None, description="Kept with the session's clinical notes, encrypted; not sent in any event.")


@strawberry.input
class LogSessionInput:
    idempotency_key: str | None = None
    referral_id: strawberry.ID
    started_at: datetime = strawberry.field(description="With a UTC offset; at most one day ahead, not before the "
                                                        "referral was made (less one day for paper records).")
    duration_minutes: int = strawberry.field(description="1 to 480.")
    modality: enums.SessionModality
    session_type: enums.SessionType
    attendance: enums.Attendance
    notes: str | None = strawberry.field(default=None, description="Clinical notes, up to 20,000 characters; "
                                                                   "encrypted at rest.")
    safeguarding_concern: SafeguardingConcernInput | None = strawberry.field(
        default=None, description="Raising one tells the referring organization at once (rule 7).")


@strawberry.type
class CounselingSessionPayload:
    session: CounselingSession | None
    user_errors: list[UserError]


@strawberry.input
class SetCareGoalInput:
    idempotency_key: str | None = None
    referral_id: strawberry.ID
    domain: enums.OutcomeDomain
    description: str
    target_date: date | None = None


@strawberry.input
class UpdateGoalProgressInput:
    idempotency_key: str | None = None
    goal_id: strawberry.ID
    expected_version: int | None = None
    achievement_status: enums.GoalAchievementStatus
    lifecycle_status: enums.GoalLifecycleStatus | None = None
    note: str | None = None


@strawberry.type
class CareGoalPayload:
    goal: CareGoal | None
    user_errors: list[UserError]


@strawberry.input
class RecordMilestoneInput:
    idempotency_key: str | None = None
    referral_id: strawberry.ID
    goal_id: strawberry.ID | None = None
    title: str
    achieved_on: date
    note: str | None = None


@strawberry.type
class MilestonePayload:
    milestone: Milestone | None
    user_errors: list[UserError]


@strawberry.input
class SubdomainScoreInput:
    subdomain: str
    score: int


@strawberry.input
class RecordAssessmentInput:
    idempotency_key: str | None = None
    referral_id: strawberry.ID
    instrument: str = strawberry.field(description="An instrument key, e.g. survivor-outcome (its latest version).")
    administered_on: date
    scores: list[SubdomainScoreInput]


@strawberry.type
class AssessmentPayload:
    assessment: Assessment | None
    user_errors: list[UserError]


# ----------------------------------------------------------------------------- loading results


async def load_session(context: Context, session_id: uuid.UUID) -> CounselingSession | None:
    found = await care.sessions_by_id(unit=context.unit, principal=context.principal, ids=[session_id])
    return CounselingSession.from_view(found[session_id]) if session_id in found else None


async def load_goal(context: Context, goal_id: uuid.UUID) -> CareGoal | None:
    found = await care.goals_by_id(unit=context.unit, principal=context.principal, ids=[goal_id])
    return CareGoal.from_view(found[goal_id]) if goal_id in found else None


async def load_milestone(context: Context, milestone_id: uuid.UUID) -> Milestone | None:
    found = await care.milestones_by_id(unit=context.unit, principal=context.principal, ids=[milestone_id])
    return Milestone.from_view(found[milestone_id]) if milestone_id in found else None


async def load_assessment(context: Context, assessment_id: uuid.UUID) -> Assessment | None:
    found = await care.assessments_by_id(unit=context.unit, principal=context.principal, ids=[assessment_id])
    return Assessment.from_view(found[assessment_id]) if assessment_id in found else None


# ----------------------------------------------------------------------------- the mutations


@strawberry.type
class CareMutations:
    @strawberry.mutation(description="Log a counseling session on a referral assigned to you (a partner system: "
                                     "the referral's assigned counselor is recorded). A safeguarding concern is "
                                     "sent to the referring organization at once, without its description.")
    async def log_session(self, info: strawberry.Info, input: LogSessionInput) -> CounselingSessionPayload:
        async def execute(context: Context) -> uuid.UUID:
            concern = input.safeguarding_concern
            return await care.log_session(
                unit=context.unit, principal=context.principal, referral_id=decode_id(input.referral_id, "Referral"),
                started_at=input.started_at, duration_minutes=input.duration_minutes, modality=input.modality,
                session_type=input.session_type, attendance=input.attendance, notes=input.notes,
                concern_level=concern.level if concern else None,
                concern_description=concern.description if concern else None,
            )

        session, errors = await run_mutation(info, operation="logSession", record_type="CounselingSession",
                                             input=input, execute=execute, load=load_session)
        return CounselingSessionPayload(session=session, user_errors=errors)

    @strawberry.mutation(description="Set a care goal (ACTIVE, IN_PROGRESS) on a referral in care.")
    async def set_care_goal(self, info: strawberry.Info, input: SetCareGoalInput) -> CareGoalPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await care.set_goal(
                unit=context.unit, principal=context.principal, referral_id=decode_id(input.referral_id, "Referral"),
                domain=input.domain, description=input.description, target_date=input.target_date,
            )

        goal, errors = await run_mutation(info, operation="setCareGoal", record_type="CareGoal", input=input,
                                          execute=execute, load=load_goal)
        return CareGoalPayload(goal=goal, user_errors=errors)

    @strawberry.mutation(description="Record a goal's achievement status now (and optionally move its lifecycle); "
                                     "each call adds a dated entry to the goal's history.")
    async def update_goal_progress(self, info: strawberry.Info, input: UpdateGoalProgressInput) -> CareGoalPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await care.update_goal_progress(
                unit=context.unit, principal=context.principal, goal_id=decode_id(input.goal_id, "CareGoal"),
                expected_version=input.expected_version, achievement=input.achievement_status,
                lifecycle=input.lifecycle_status, note=input.note,
            )

        goal, errors = await run_mutation(info, operation="updateGoalProgress", record_type="CareGoal", input=input,
                                          execute=execute, load=load_goal)
        return CareGoalPayload(goal=goal, user_errors=errors)

    @strawberry.mutation(description="Record a healing milestone reached on a date (not in the future), optionally "
                                     "towards one of the referral's goals.")
    async def record_milestone(self, info: strawberry.Info, input: RecordMilestoneInput) -> MilestonePayload:
        async def execute(context: Context) -> uuid.UUID:
            return await care.record_milestone(
                unit=context.unit, principal=context.principal, referral_id=decode_id(input.referral_id, "Referral"),
                goal_id=(decode_id(input.goal_id, "CareGoal") or NOTHING) if input.goal_id is not None else None,
                title=input.title, achieved_on=input.achieved_on, note=input.note,
            )

        milestone, errors = await run_mutation(info, operation="recordMilestone", record_type="Milestone",
                                               input=input, execute=execute, load=load_milestone)
        return MilestonePayload(milestone=milestone, user_errors=errors)

    @strawberry.mutation(description="Record and score an assessment with a stored instrument: each domain is the "
                                     "mean of its sub-domain scores, overall the mean of the domains.")
    async def record_assessment(self, info: strawberry.Info, input: RecordAssessmentInput) -> AssessmentPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await care.record_assessment(
                unit=context.unit, principal=context.principal, referral_id=decode_id(input.referral_id, "Referral"),
                instrument=input.instrument, administered_on=input.administered_on,
                scores=[(s.subdomain, s.score) for s in input.scores],
                restoration_threshold=context.state.settings.restoration_threshold,
            )

        assessment, errors = await run_mutation(info, operation="recordAssessment", record_type="Assessment",
                                                input=input, execute=execute, load=load_assessment)
        return AssessmentPayload(assessment=assessment, user_errors=errors)
