"""Per-request DataLoaders, one per relation, named `<thing>_by_<key>` / `<thing>_ref`.

Each batch function calls a use case (so a nested field gets the same policy and audit as a
top-level read) and returns results in key order.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from strawberry.dataloader import DataLoader

from db.directory import SqlDirectory
from db.staff import SqlStaff
from domain.paging import Page, PageRequest
from domain.use_cases import care, consents, referrals, survivors
from domain.use_cases import staff as staff_cases
from domain.views import (
    AssessmentView,
    ConcernView,
    ConsentView,
    GoalProgressView,
    GoalView,
    IdentityView,
    MilestoneView,
    OrganizationView,
    ReferralView,
    SessionView,
    StaffUserView,
    StatusChangeView,
    SurvivorView,
)
from partners import directory

if TYPE_CHECKING:
    from api.graphql.context import Context

K = TypeVar("K")
V = TypeVar("V")


def batch(fetch: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]],
          default: Callable[[], V] | None = None) -> Callable[[list[K]], Awaitable[list[V | None]]]:
    async def load(keys: list[K]) -> list[V | None]:
        found = await fetch(keys)
        return [found.get(k, default() if default else None) for k in keys]

    return load


class Loaders:
    def __init__(self, context: Context) -> None:
        self.context = context
        principal = context.principal

        async def organizations(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, OrganizationView]:
            return await directory.organizations_by_id(
                store=SqlDirectory(context.db), principal=principal, ids=ids, direct=False
            )

        async def staff(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, StaffUserView]:
            return await staff_cases.staff_by_id(store=SqlStaff(context.db), principal=principal, ids=ids,
                                                 direct=False)

        async def survivor_views(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, SurvivorView]:
            return await survivors.by_id(unit=context.unit, principal=principal, ids=ids)

        async def survivors_of(shown: Sequence[ReferralView]) -> Mapping[ReferralView, SurvivorView]:
            found = await survivors.of_referrals(unit=context.unit, principal=principal, referrals=shown)
            return {r: found[r.survivor_id] for r in shown if r.survivor_id in found}

        async def identities(views: Sequence[SurvivorView]) -> Mapping[SurvivorView, IdentityView]:
            return await survivors.identities(unit=context.unit, principal=principal, survivors=views)

        async def consent_views(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, ConsentView]:
            return await consents.by_id(unit=context.unit, principal=principal, ids=ids)

        async def consents_of(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[ConsentView]]:
            return await consents.by_survivor(unit=context.unit, principal=principal, survivor_ids=ids)

        async def referrals_of(keys: Sequence[tuple[uuid.UUID, PageRequest]]
                               ) -> Mapping[tuple[uuid.UUID, PageRequest], Page[ReferralView]]:
            by_request: dict[PageRequest, list[uuid.UUID]] = {}
            for survivor_id, request in keys:
                by_request.setdefault(request, []).append(survivor_id)
            found: dict[tuple[uuid.UUID, PageRequest], Page[ReferralView]] = {}
            for request, ids in by_request.items():
                pages = await referrals.by_survivor(unit=context.unit, principal=principal, survivor_ids=ids,
                                                    request=request)
                for survivor_id, page in pages.items():
                    found[(survivor_id, request)] = page
            return found

        async def histories(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[StatusChangeView]]:
            return await referrals.history(unit=context.unit, principal=principal, referral_ids=ids)

        self.organization_ref: DataLoader[uuid.UUID, Any] = DataLoader(batch(organizations))
        self.staff_ref: DataLoader[uuid.UUID, Any] = DataLoader(batch(staff))
        self.survivor_ref: DataLoader[uuid.UUID, Any] = DataLoader(batch(survivor_views))
        self.survivor_by_referral: DataLoader[ReferralView, Any] = DataLoader(batch(survivors_of))
        self.identity_by_survivor: DataLoader[SurvivorView, Any] = DataLoader(batch(identities))
        self.consent_ref: DataLoader[uuid.UUID, Any] = DataLoader(batch(consent_views))
        self.consents_by_survivor: DataLoader[uuid.UUID, Any] = DataLoader(batch(consents_of, default=list))
        self.referrals_by_survivor: DataLoader[tuple[uuid.UUID, PageRequest], Any] = DataLoader(
            batch(referrals_of, default=lambda: Page(items=[], keys=[], has_next=False, has_previous=False,
                                                     total_count=0)))
        self.history_by_referral: DataLoader[uuid.UUID, Any] = DataLoader(batch(histories, default=list))
        self._care_loaders(context)

    def _care_loaders(self, context: Context) -> None:
        """Sessions, concerns, goals, milestones, assessments: each a batched use case, key-ordered."""
        principal = context.principal

        async def referral_views(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, ReferralView]:
            return await referrals.by_id(unit=context.unit, principal=principal, ids=ids)

        async def sessions_of(keys: Sequence[tuple[ReferralView, PageRequest]]
                              ) -> Mapping[tuple[ReferralView, PageRequest], Page[SessionView]]:
            by_request: dict[PageRequest, list[ReferralView]] = {}
            for referral, request in keys:
                by_request.setdefault(request, []).append(referral)
            found: dict[tuple[ReferralView, PageRequest], Page[SessionView]] = {}
            for request, shown in by_request.items():
                pages = await care.sessions_of_referrals(unit=context.unit, principal=principal, referrals=shown,
                                                         request=request)
                for referral in shown:
                    if referral.id in pages:
                        found[(referral, request)] = pages[referral.id]
            return found

        async def notes_of(views: Sequence[SessionView]) -> Mapping[SessionView, str]:
            notes = await care.session_notes(unit=context.unit, principal=principal, sessions=views)
            return {v: notes[v.id] for v in views if v.id in notes}

        async def concern_of(views: Sequence[SessionView]) -> Mapping[SessionView, ConcernView]:
            concerns = await care.concern_of_sessions(unit=context.unit, principal=principal, sessions=views)
            return {v: concerns[v.id] for v in views if v.id in concerns}

        async def concerns_of(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[ConcernView]]:
            return await care.concerns_by_referral(unit=context.unit, principal=principal, referral_ids=ids)

        async def goal_views(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, GoalView]:
            return await care.goals_by_id(unit=context.unit, principal=principal, ids=ids)

        async def goals_of_referrals(shown: Sequence[ReferralView]) -> Mapping[ReferralView, Sequence[GoalView]]:
            found = await care.goals_of_referrals(unit=context.unit, principal=principal, referrals=shown)
            return {r: found[r.id] for r in shown if r.id in found}

        async def goals_of_survivors(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[GoalView]]:
            return await care.goals_by_survivor(unit=context.unit, principal=principal, survivor_ids=ids)

        async def progress_of(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[GoalProgressView]]:
            return await care.goal_history(unit=context.unit, principal=principal, goal_ids=ids)

        async def milestones_of(shown: Sequence[ReferralView]) -> Mapping[ReferralView, Sequence[MilestoneView]]:
            found = await care.milestones_of_referrals(unit=context.unit, principal=principal, referrals=shown)
            return {r: found[r.id] for r in shown if r.id in found}

        async def assessments_of(ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[AssessmentView]]:
            return await care.assessments_by_survivor(unit=context.unit, principal=principal, survivor_ids=ids)

        self.referral_ref: DataLoader[uuid.UUID, Any] = DataLoader(batch(referral_views))
        self.sessions_by_referral: DataLoader[tuple[ReferralView, PageRequest], Any] = DataLoader(
            batch(sessions_of, default=lambda: Page(items=[], keys=[], has_next=False, has_previous=False,
                                                    total_count=0)))
        self.notes_by_session: DataLoader[SessionView, Any] = DataLoader(batch(notes_of))
        self.concern_by_session: DataLoader[SessionView, Any] = DataLoader(batch(concern_of))
        self.concerns_by_referral: DataLoader[uuid.UUID, Any] = DataLoader(batch(concerns_of, default=list))
        self.goal_ref: DataLoader[uuid.UUID, Any] = DataLoader(batch(goal_views))
        self.goals_by_referral: DataLoader[ReferralView, Any] = DataLoader(batch(goals_of_referrals, default=list))
        self.goals_by_survivor: DataLoader[uuid.UUID, Any] = DataLoader(batch(goals_of_survivors, default=list))
        self.progress_by_goal: DataLoader[uuid.UUID, Any] = DataLoader(batch(progress_of, default=list))
        self.milestones_by_referral: DataLoader[ReferralView, Any] = DataLoader(batch(milestones_of, default=list))
        self.assessments_by_survivor: DataLoader[uuid.UUID, Any] = DataLoader(batch(assessments_of, default=list))
