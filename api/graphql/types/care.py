"""Care records: counseling sessions and safeguarding concerns, care goals, milestones, assessments.

Every nested field goes through a per-request DataLoader that calls a use case, so notes are
decrypted (and their reads audited) only when asked for and only where policy allows, and a
concern shown to the referring organization is audited as a rule-7 disclosure.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.graphql.relay import Node
from api.graphql.types.staff import StaffUser
from domain import enums
from domain.assessments import Instrument
from domain.ids import to_global_id
from domain.views import (
    AssessmentView,
    ConcernView,
    GoalProgressView,
    GoalView,
    MilestoneView,
    SessionView,
    revealed,
)

if TYPE_CHECKING:
    from api.graphql.types.referral import Referral
    from api.graphql.types.survivor import Survivor

ReferralRef = Annotated["Referral", strawberry.lazy("api.graphql.types.referral")]
SurvivorRef = Annotated["Survivor", strawberry.lazy("api.graphql.types.survivor")]


@strawberry.type(description="A safeguarding concern raised in a session: its level and when, never its text. "
                             "Always visible to the referring NGO (rule 7); each such disclosure is audited.")
class SafeguardingConcern:
    level: enums.ConcernLevel
    raised_at: datetime

    @classmethod
    def from_view(cls, view: ConcernView) -> SafeguardingConcern:
        return cls(level=view.level, raised_at=view.raised_at)


@strawberry.type(description="One counseling meeting logged by the receiving partner.")
class CounselingSession(Node):
    id: strawberry.ID
    started_at: datetime
    duration_minutes: int = strawberry.field(description="1 to 480 minutes.")
    modality: enums.SessionModality
    session_type: enums.SessionType
    attendance: enums.Attendance
    version: int
    view: strawberry.Private[SessionView]

    @classmethod
    def from_view(cls, v: SessionView) -> CounselingSession:
        return cls(id=strawberry.ID(to_global_id("CounselingSession", v.id)), started_at=v.started_at,
                   duration_minutes=v.duration_minutes, modality=v.modality, session_type=v.session_type,
                   attendance=v.attendance, version=v.version, view=v)

    @strawberry.field
    async def referral(self, info: strawberry.Info) -> ReferralRef:
        from api.graphql.types.referral import Referral

        return Referral.from_view(await info.context.loaders.referral_ref.load(self.view.referral_id))

    @strawberry.field
    async def counselor(self, info: strawberry.Info) -> StaffUser:
        return StaffUser.from_view(await info.context.loaders.staff_ref.load(self.view.counselor_id))

    @strawberry.field(description="Clinical notes: null unless the caller is the authoring partner's clinical staff "
                                  "or consent shares SESSION_NOTES. Every read is audited.")
    async def notes(self, info: strawberry.Info) -> str | None:
        if not self.view.has_notes:
            return None
        found: str | None = await info.context.loaders.notes_by_session.load(self.view)
        return found

    @strawberry.field(description="The concern raised in this session, if any (level and time only).")
    async def safeguarding_concern(self, info: strawberry.Info) -> SafeguardingConcern | None:
        if self.view.concern_level is None:
            return None
        found = await info.context.loaders.concern_by_session.load(self.view)
        return SafeguardingConcern.from_view(found) if found else None


# Free text about the child is sealed at rest and decrypted only by these resolvers, for a field
# asked for (db/sealed.py); they sit among the plain fields so the schema keeps its order. Goals and
# milestones of a survivor whose data key is destroyed are not read at all (db/care.py), so their
# required description and title always open.


def _progress_note(self: GoalProgress) -> str | None:
    return revealed(self.view.note)


def _goal_description(self: CareGoal) -> str:
    description = self.view.description.reveal()
    assert description is not None  # db/care.py reads no goal whose survivor's key is destroyed
    return description


def _milestone_title(self: Milestone) -> str:
    title = self.view.title.reveal()
    assert title is not None  # db/care.py reads no milestone whose survivor's key is destroyed
    return title


def _milestone_note(self: Milestone) -> str | None:
    return revealed(self.view.note)


@strawberry.type(description="One dated entry of a goal's achievement status (FHIR Goal.achievementStatus).")
class GoalProgress:
    at: datetime
    achievement_status: enums.GoalAchievementStatus
    note: str | None = strawberry.field(resolver=_progress_note, description="Encrypted at rest.")
    view: strawberry.Private[GoalProgressView]

    @classmethod
    def from_view(cls, v: GoalProgressView) -> GoalProgress:
        return cls(at=v.at, achievement_status=v.achievement_status, view=v)


@strawberry.type(description="A goal in a survivor's care plan at a partner, in one of the six outcome domains.")
class CareGoal(Node):
    id: strawberry.ID
    domain: enums.OutcomeDomain
    description: str = strawberry.field(resolver=_goal_description, description="Encrypted at rest.")
    target_date: date | None
    lifecycle_status: enums.GoalLifecycleStatus
    achievement_status: enums.GoalAchievementStatus
    version: int
    view: strawberry.Private[GoalView]

    @classmethod
    def from_view(cls, v: GoalView) -> CareGoal:
        return cls(id=strawberry.ID(to_global_id("CareGoal", v.id)), domain=v.domain, target_date=v.target_date,
                   lifecycle_status=v.lifecycle_status, achievement_status=v.achievement_status, version=v.version,
                   view=v)

    @strawberry.field
    async def survivor(self, info: strawberry.Info) -> SurvivorRef:
        from api.graphql.types.survivor import Survivor

        return Survivor.from_view(await info.context.loaders.survivor_ref.load(self.view.survivor_id))

    @strawberry.field
    async def referral(self, info: strawberry.Info) -> ReferralRef | None:
        from api.graphql.types.referral import Referral

        view = await info.context.loaders.referral_ref.load(self.view.referral_id)
        return Referral.from_view(view) if view else None

    @strawberry.field(description="Every achievement status the goal has had, oldest first.")
    async def history(self, info: strawberry.Info) -> list[GoalProgress]:
        return [GoalProgress.from_view(p) for p in await info.context.loaders.progress_by_goal.load(self.view.id)]


@strawberry.type(description="A dated step reached in the healing process (returned to school, reunited, ...).")
class Milestone(Node):
    id: strawberry.ID
    title: str = strawberry.field(resolver=_milestone_title, description="Encrypted at rest.")
    achieved_on: date
    note: str | None = strawberry.field(resolver=_milestone_note, description="Encrypted at rest.")
    view: strawberry.Private[MilestoneView]

    @classmethod
    def from_view(cls, v: MilestoneView) -> Milestone:
        return cls(id=strawberry.ID(to_global_id("Milestone", v.id)), achieved_on=v.achieved_on, view=v)

    @strawberry.field
    async def referral(self, info: strawberry.Info) -> ReferralRef:
        from api.graphql.types.referral import Referral

        return Referral.from_view(await info.context.loaders.referral_ref.load(self.view.referral_id))

    @strawberry.field
    async def goal(self, info: strawberry.Info) -> CareGoal | None:
        if self.view.goal_id is None:
            return None
        view = await info.context.loaders.goal_ref.load(self.view.goal_id)
        return CareGoal.from_view(view) if view else None


@strawberry.type
class DomainScore:
    domain: enums.OutcomeDomain
    score: float = strawberry.field(description="Mean of the sub-domain scores, 1 (most vulnerable) to 4 "
                                                "(least vulnerable).")


@strawberry.type(description="A scored instrument administered to a survivor. Every read is audited.")
class Assessment(Node):
    id: strawberry.ID
    instrument: str = strawberry.field(description="The instrument's key, e.g. survivor-outcome.")
    administered_on: date
    domain_scores: list[DomainScore]
    overall_score: float = strawberry.field(description="Mean of the domain scores.")
    meets_restoration_threshold: bool = strawberry.field(
        description="Whether the exact overall mean reaches the configured restoration threshold.")
    view: strawberry.Private[AssessmentView]

    @classmethod
    def from_view(cls, v: AssessmentView) -> Assessment:
        return cls(id=strawberry.ID(to_global_id("Assessment", v.id)), instrument=v.instrument,
                   administered_on=v.administered_on,
                   domain_scores=[DomainScore(domain=d, score=s) for d, s in v.domain_scores],
                   overall_score=v.overall_score, meets_restoration_threshold=v.meets_restoration_threshold, view=v)

    @strawberry.field
    async def survivor(self, info: strawberry.Info) -> SurvivorRef:
        from api.graphql.types.survivor import Survivor

        return Survivor.from_view(await info.context.loaders.survivor_ref.load(self.view.survivor_id))


@strawberry.type(description="One sub-domain of an instrument: its key is what `recordAssessment` takes in `scores`.")
class AssessmentSubdomain:
    key: str
    domain: enums.OutcomeDomain
    label: str


@strawberry.type(description="An assessment instrument: its scale, threshold and sub-domains, so `scores` can be "
                             "filled without reading the source.")
class AssessmentInstrument:
    key: str = strawberry.field(description="What `recordAssessment(input: {instrument})` takes.")
    version: str
    name: str
    scale_min: int = strawberry.field(description="The lowest score a sub-domain may get.")
    scale_max: int = strawberry.field(description="The highest score a sub-domain may get.")
    restoration_threshold: float = strawberry.field(description="The overall score that counts as restored.")
    domains: list[enums.OutcomeDomain]
    subdomains: list[AssessmentSubdomain]

    @classmethod
    def from_instrument(cls, instrument: Instrument) -> AssessmentInstrument:
        return cls(key=instrument.key, version=instrument.version, name=instrument.name,
                   scale_min=instrument.scale_min, scale_max=instrument.scale_max,
                   restoration_threshold=instrument.restoration_threshold, domains=list(instrument.domains),
                   subdomains=[AssessmentSubdomain(key=s.key, domain=s.domain, label=s.label)
                               for s in instrument.subdomains])
