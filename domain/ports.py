"""What use cases need from persistence, as Protocols: db/ implements them, domain/ never imports db/.

A `Unit` is one transaction: its stores read and write inside it, and the audit rows and outbound
events it records commit (or roll back) together with the change they describe.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from domain.assessments import Instrument
from domain.enums import ConsentPurpose, DataCategory, DuplicateResolution, PhoneMatch, ReferralStatus
from domain.paging import Page, PageRequest
from domain.policy import CareRows, ReferralAccess, RowScope
from domain.views import (
    AssessmentView,
    ConcernView,
    ConsentView,
    DuplicateReviewView,
    GoalProgressView,
    GoalView,
    IdentityView,
    MilestoneView,
    OrganizationView,
    ReferralView,
    SessionView,
    StatusChangeView,
    SurvivorView,
)


@dataclass(frozen=True, slots=True)
class NewSurvivor:
    pseudonym: str
    legal_name: str
    birth_year: int
    sex: str
    county: str | None
    languages: tuple[str, ...]
    risk_level: str
    phone: str | None
    guardian_name: str | None
    guardian_phone: str | None
    location: str | None


@dataclass(frozen=True, slots=True)
class SurvivorFilter:
    county: str | None = None
    risk_level: str | None = None
    referral_statuses: tuple[ReferralStatus, ...] = ()
    search: str | None = None  # as typed: the use case turns it into one of the two below
    pseudonym_prefix: str | None = None
    phone: str | None = None  # E.164, matched through the blind index within phone_organization_id
    phone_organization_id: uuid.UUID | None = None
    under_legal_hold: bool | None = None  # the survivor's own organization only (policy.sees_data_protection)


@dataclass(frozen=True, slots=True)
class ReferralFilter:
    statuses: tuple[ReferralStatus, ...] = ()
    receiving_organization_id: uuid.UUID | None = None
    survivor_id: uuid.UUID | None = None
    assigned_to: uuid.UUID | None = None
    overdue: bool | None = None
    updated_since: datetime | None = None
    needs_assignment: bool | None = None


@dataclass(frozen=True, slots=True)
class NewConsent:
    survivor_id: uuid.UUID
    organization_id: uuid.UUID
    recipient_id: uuid.UUID
    purposes: tuple[ConsentPurpose, ...]
    data_categories: tuple[DataCategory, ...]
    given_by: str
    child_assent: bool | None
    valid_from: datetime
    valid_until: datetime | None
    form_version: str | None
    language: str | None
    witness: str | None
    recorded_by_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class NewReferral:
    survivor_id: uuid.UUID
    referring_organization_id: uuid.UUID
    receiving_organization_id: uuid.UUID
    consent_id: uuid.UUID
    service: str
    priority: str
    status: ReferralStatus
    reason: str
    respond_by: datetime | None
    created_by_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class ReferralChange:
    """A change to one referral; `expected_version` None means "whatever the current version is"."""

    referral_id: uuid.UUID
    expected_version: int | None
    values: Mapping[str, Any]


class SurvivorStore(Protocol):
    async def insert(self, new: NewSurvivor, *, organization_id: uuid.UUID,
                     registered_by_id: uuid.UUID | None) -> uuid.UUID: ...
    async def phone_matches(self, *, organization_id: uuid.UUID,
                            phones: Sequence[str]) -> Mapping[uuid.UUID, frozenset[PhoneMatch]]: ...
    async def flag_duplicates(self, *, organization_id: uuid.UUID, survivor_id: uuid.UUID,
                              matches: Mapping[uuid.UUID, frozenset[PhoneMatch]],
                              registered_by_id: uuid.UUID | None) -> None: ...
    async def possible_duplicates(self, scope: RowScope, survivor_ids: Sequence[uuid.UUID]
                                  ) -> Mapping[uuid.UUID, list[SurvivorView]]: ...
    async def duplicate_reviews(self, *, organization_id: uuid.UUID, resolved: bool | None,
                                page: PageRequest) -> Page[DuplicateReviewView]: ...
    async def duplicate_review(self, *, review_id: uuid.UUID,
                               organization_id: uuid.UUID) -> DuplicateReviewView | None: ...
    async def resolve_duplicate_review(self, *, review_id: uuid.UUID, organization_id: uuid.UUID,
                                       resolution: DuplicateResolution, by: uuid.UUID | None,
                                       expected_version: int | None) -> DuplicateReviewView | None: ...
    async def by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, SurvivorView]: ...
    async def through_referrals(self, scope: RowScope,
                                ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, SurvivorView]: ...
    async def page(self, scope: RowScope, filter: SurvivorFilter, page: PageRequest) -> Page[SurvivorView]: ...
    async def identity(self, survivor_id: uuid.UUID) -> IdentityView | None: ...
    async def identities(self, survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, IdentityView]: ...


class ConsentStore(Protocol):
    async def insert(self, new: NewConsent) -> uuid.UUID: ...
    async def by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, ConsentView]: ...
    async def by_survivor(self, scope: RowScope,
                          survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[ConsentView]]: ...
    async def lock(self, scope: RowScope, consent_id: uuid.UUID) -> ConsentView | None: ...
    async def withdraw(self, consent_id: uuid.UUID, *, expected_version: int | None, at: datetime,
                       reason: str) -> bool: ...


class ReferralStore(Protocol):
    async def insert(self, new: NewReferral) -> uuid.UUID: ...
    async def by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, ReferralView]: ...
    async def page(self, scope: RowScope, filter: ReferralFilter, page: PageRequest) -> Page[ReferralView]: ...
    async def by_survivor(self, scope: RowScope, survivor_ids: Sequence[uuid.UUID],
                          page: PageRequest) -> Mapping[uuid.UUID, Page[ReferralView]]: ...
    async def lock(self, scope: RowScope, referral_id: uuid.UUID) -> ReferralView | None: ...
    async def change(self, change: ReferralChange) -> bool: ...
    async def record_status(self, *, referral_id: uuid.UUID, organization_id: uuid.UUID,
                            from_status: ReferralStatus | None, to_status: ReferralStatus, reason: str | None,
                            actor: str, actor_user_id: uuid.UUID | None, actor_client_id: str | None) -> None: ...
    async def history(self, referral_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[StatusChangeView]]: ...
    async def open_relying_on(self, consent_id: uuid.UUID) -> Sequence[ReferralView]: ...
    async def touch(self, referral_id: uuid.UUID) -> None: ...


# ----------------------------------------------------------------------------- care
# Care records are written by the receiving partner (`organization_id`) and carry the referral's
# referring organization too, because row-level security lets each side read by its own column.
# Ids are made by the caller: the row may not be readable back (RLS), and the session id is part
# of the associated data its encrypted notes are bound to.


@dataclass(frozen=True, slots=True)
class CareOwners:
    """Whose record it is, copied from the referral: both columns are needed by row-level security."""

    referral_id: uuid.UUID
    survivor_id: uuid.UUID
    organization_id: uuid.UUID
    referring_organization_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class NewSession:
    """Notes and the concern's description are plaintext here; the store encrypts them."""

    id: uuid.UUID
    owners: CareOwners
    counselor_id: uuid.UUID
    started_at: datetime
    duration_minutes: int
    modality: str
    session_type: str
    attendance: str
    notes: str | None
    concern_level: str | None
    concern_raised_at: datetime | None
    concern_description: str | None


@dataclass(frozen=True, slots=True)
class NewGoal:
    id: uuid.UUID
    owners: CareOwners
    domain: str
    description: str
    target_date: date | None
    lifecycle_status: str
    achievement_status: str


@dataclass(frozen=True, slots=True)
class NewGoalProgress:
    goal_id: uuid.UUID
    organization_id: uuid.UUID
    referring_organization_id: uuid.UUID
    achievement_status: str
    lifecycle_status: str
    note: str | None
    actor: str


@dataclass(frozen=True, slots=True)
class GoalChange:
    goal_id: uuid.UUID
    expected_version: int
    lifecycle_status: str
    achievement_status: str


@dataclass(frozen=True, slots=True)
class NewMilestone:
    id: uuid.UUID
    owners: CareOwners
    goal_id: uuid.UUID | None
    title: str
    achieved_on: date
    note: str | None


@dataclass(frozen=True, slots=True)
class StoredInstrument:
    id: uuid.UUID
    instrument: Instrument


@dataclass(frozen=True, slots=True)
class NewAssessment:
    id: uuid.UUID
    owners: CareOwners
    instrument_id: uuid.UUID
    administered_on: date
    subdomain_scores: Mapping[str, int]
    domain_scores: Mapping[str, float]
    overall_score: float
    meets_threshold: bool


class CareStore(Protocol):
    async def insert_session(self, new: NewSession) -> None: ...
    async def sessions_by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, SessionView]: ...
    async def sessions_under(self, rows: CareRows, page: PageRequest,
                             accesses: Mapping[uuid.UUID, ReferralAccess]) -> Mapping[uuid.UUID, Page[SessionView]]: ...
    async def session_notes(self, sessions: Sequence[SessionView]) -> Mapping[uuid.UUID, str]: ...
    async def concerns_by_referral(self, scope: RowScope,
                                   referral_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[ConcernView]]: ...
    async def insert_goal(self, new: NewGoal) -> None: ...
    async def goals_by_id(self, scope: RowScope, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, GoalView]: ...
    async def goals_under(self, rows: CareRows) -> Mapping[uuid.UUID, Sequence[GoalView]]: ...
    async def goals_by_survivor(self, scope: RowScope,
                                survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[GoalView]]: ...
    async def lock_goal(self, scope: RowScope, goal_id: uuid.UUID) -> GoalView | None: ...
    async def change_goal(self, change: GoalChange) -> bool: ...
    async def insert_progress(self, new: NewGoalProgress) -> None: ...
    async def progress(self, goal_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[GoalProgressView]]: ...
    async def insert_milestone(self, new: NewMilestone) -> None: ...
    async def milestones_by_id(self, scope: RowScope,
                               ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, MilestoneView]: ...
    async def milestones_under(self, rows: CareRows) -> Mapping[uuid.UUID, Sequence[MilestoneView]]: ...
    async def instrument(self, key: str) -> StoredInstrument | None: ...
    async def instruments(self) -> Sequence[StoredInstrument]: ...
    async def insert_assessment(self, new: NewAssessment) -> None: ...
    async def assessments_by_id(self, scope: RowScope,
                                ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, AssessmentView]: ...
    async def assessments_by_survivor(self, scope: RowScope, survivor_ids: Sequence[uuid.UUID]
                                      ) -> Mapping[uuid.UUID, Sequence[AssessmentView]]: ...


@dataclass(frozen=True, slots=True)
class CounselorCaseload:
    """An active counselor and the open referrals (accepted, in progress, on hold) assigned to her."""

    id: uuid.UUID
    display_name: str
    open_referrals: int


class Directory(Protocol):
    async def organization(self, organization_id: uuid.UUID) -> OrganizationView | None: ...
    async def counselor_in(self, *, user_id: uuid.UUID, organization_id: uuid.UUID) -> bool: ...
    async def counselors(self, organization_id: uuid.UUID) -> Sequence[CounselorCaseload]: ...


class Unit(Protocol):
    """One transaction's worth of stores, plus the audit trail and the outbox."""

    # Read-only members: a Protocol's plain attribute is settable and so invariant (mypy 2), which a
    # concrete store such as SqlConsents would not match; a property is covariant.
    @property
    def survivors(self) -> SurvivorStore: ...
    @property
    def consents(self) -> ConsentStore: ...
    @property
    def referrals(self) -> ReferralStore: ...
    @property
    def directory(self) -> Directory: ...
    @property
    def care(self) -> CareStore: ...

    def now(self) -> datetime: ...
    async def audit(self, *, action: str, record_type: str, record_id: str | None, outcome: str,
                    purpose: str | None = None) -> None: ...
    async def audit_many(self, *, action: str, record_type: str, record_ids: Sequence[str], outcome: str,
                         purpose: str | None = None) -> None: ...
    async def emit(self, *, event_type: str, organization_id: uuid.UUID, data: Mapping[str, str]) -> None: ...
