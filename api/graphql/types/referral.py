"""Referral: a consented hand-off of a survivor to a partner, with its status history."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.graphql.relay import Connection, Node, page_request, to_connection
from api.graphql.types.staff import StaffUser
from domain import enums
from domain.enums import DataCategory
from domain.ids import to_global_id
from domain.views import ReferralView, StatusChangeView, revealed

if TYPE_CHECKING:
    from api.graphql.types.care import CareGoal, CounselingSession, Milestone, SafeguardingConcern
    from api.graphql.types.organization import Organization
    from api.graphql.types.survivor import Consent, Survivor

OrganizationRef = Annotated["Organization", strawberry.lazy("api.graphql.types.organization")]
SurvivorRef = Annotated["Survivor", strawberry.lazy("api.graphql.types.survivor")]
ConsentRef = Annotated["Consent", strawberry.lazy("api.graphql.types.survivor")]
CounselingSessionRef = Annotated["CounselingSession", strawberry.lazy("api.graphql.types.care")]
CareGoalRef = Annotated["CareGoal", strawberry.lazy("api.graphql.types.care")]
MilestoneRef = Annotated["Milestone", strawberry.lazy("api.graphql.types.care")]
SafeguardingConcernRef = Annotated["SafeguardingConcern", strawberry.lazy("api.graphql.types.care")]


# Free text about the child is sealed at rest and decrypted only by these resolvers, for a field
# asked for and shown (db/sealed.py); they sit among the plain fields so the schema keeps its order.


def _change_reason(self: ReferralStatusChange) -> str | None:
    return revealed(self.view.reason)


def _status_reason(self: Referral) -> str | None:
    return revealed(self.view.status_reason)


def _needs_summary(self: Referral) -> str | None:
    return revealed(self.view.reason) if DataCategory.CASE_SUMMARY in self.view.categories else None


def _outcome(self: Referral) -> str | None:
    return revealed(self.view.outcome)


@strawberry.type
class ReferralStatusChange:
    from_: enums.ReferralStatus | None = strawberry.field(name="from")
    to: enums.ReferralStatus
    at: datetime
    reason: str | None = strawberry.field(resolver=_change_reason, description="Encrypted at rest.")
    actor: str = strawberry.field(description="Who made the change, as a display name or client id; never a "
                                              "survivor's data.")
    view: strawberry.Private[StatusChangeView]

    @classmethod
    def from_view(cls, v: StatusChangeView) -> ReferralStatusChange:
        return cls(from_=v.from_status, to=v.to_status, at=v.at, actor=v.actor, view=v)


@strawberry.type(description="A survivor referred to a partner for a service, relying on a consent.")
class Referral(Node):
    id: strawberry.ID
    service: enums.ServiceType
    priority: enums.ReferralPriority
    status: enums.ReferralStatus
    status_reason: str | None = strawberry.field(resolver=_status_reason, description="Encrypted at rest.")
    reason: str | None = strawberry.field(
        resolver=_needs_summary, description="The needs summary (data category CASE_SUMMARY); encrypted at rest.")
    respond_by: datetime | None = strawberry.field(description="Response deadline set by priority while REQUESTED.")
    overdue: bool = strawberry.field(description="True once respondBy has passed while still REQUESTED.")
    outcome: str | None = strawberry.field(resolver=_outcome, description="Encrypted at rest.")
    created_at: datetime
    updated_at: datetime = strawberry.field(
        description="Last change of the referral or of its sessions, goals and milestones.")
    version: int
    view: strawberry.Private[ReferralView]

    @classmethod
    def from_view(cls, v: ReferralView) -> Referral:
        return cls(
            id=strawberry.ID(to_global_id("Referral", v.id)), service=v.service, priority=v.priority,
            status=v.status, respond_by=v.respond_by, overdue=v.overdue, created_at=v.created_at,
            updated_at=v.updated_at, version=v.version, view=v,
        )

    @strawberry.field
    async def survivor(self, info: strawberry.Info) -> SurvivorRef:
        from api.graphql.types.survivor import Survivor

        return Survivor.from_view(await info.context.loaders.survivor_by_referral.load(self.view))

    @strawberry.field
    async def referring_organization(self, info: strawberry.Info) -> OrganizationRef:
        from api.graphql.types.organization import Organization

        view = await info.context.loaders.organization_ref.load(self.view.referring_organization_id)
        return Organization.from_view(view)

    @strawberry.field
    async def receiving_organization(self, info: strawberry.Info) -> OrganizationRef:
        from api.graphql.types.organization import Organization

        view = await info.context.loaders.organization_ref.load(self.view.receiving_organization_id)
        return Organization.from_view(view)

    @strawberry.field
    async def consent(self, info: strawberry.Info) -> ConsentRef:
        from api.graphql.types.survivor import Consent

        return Consent.from_view(await info.context.loaders.consent_ref.load(self.view.consent_id))

    @strawberry.field
    async def assigned_counselor(self, info: strawberry.Info) -> StaffUser | None:
        if self.view.assigned_counselor_id is None:
            return None
        view = await info.context.loaders.staff_ref.load(self.view.assigned_counselor_id)
        return StaffUser.from_view(view) if view else None

    @strawberry.field
    async def history(self, info: strawberry.Info) -> list[ReferralStatusChange]:
        changes = await info.context.loaders.history_by_referral.load(self.view.id)
        return [ReferralStatusChange.from_view(c) for c in changes]

    # ------------------------------------------------------------------ care (sessions, goals, ...)

    @strawberry.field(description="Sessions logged by the partner, newest first. The referring NGO sees them only "
                                  "where consent names FEEDBACK_TO_REFERRER and SESSION_ATTENDANCE.")
    async def sessions(self, info: strawberry.Info, first: int | None = None,
                       after: str | None = None) -> Connection[CounselingSessionRef]:
        from api.graphql.types.care import CounselingSession

        request = page_request(first, after)
        page = await info.context.loaders.sessions_by_referral.load((self.view, request))
        return to_connection(page, CounselingSession.from_view)

    @strawberry.field(description="Care goals set under this referral. The referring NGO sees them only where "
                                  "consent names FEEDBACK_TO_REFERRER and ASSESSMENTS.")
    async def goals(self, info: strawberry.Info) -> list[CareGoalRef]:
        from api.graphql.types.care import CareGoal

        return [CareGoal.from_view(v) for v in await info.context.loaders.goals_by_referral.load(self.view)]

    @strawberry.field(description="Healing milestones reached under this referral, oldest first; feedback rules as "
                                  "for goals.")
    async def milestones(self, info: strawberry.Info) -> list[MilestoneRef]:
        from api.graphql.types.care import Milestone

        return [Milestone.from_view(v) for v in await info.context.loaders.milestones_by_referral.load(self.view)]

    @strawberry.field(description="Safeguarding concerns raised in this referral's sessions: always visible to the "
                                  "referring NGO, whatever the consent says (rule 7); each disclosure is audited.")
    async def safeguarding_concerns(self, info: strawberry.Info) -> list[SafeguardingConcernRef]:
        from api.graphql.types.care import SafeguardingConcern

        found = await info.context.loaders.concerns_by_referral.load(self.view.id)
        return [SafeguardingConcern.from_view(v) for v in found]
