"""What use cases hand to the api layer: plain frozen records, already filtered by policy.

A view carries only what the caller may see; fields the caller may not see are None or absent,
so a resolver cannot leak them by accident. Free text that describes a child comes sealed
(`SealedText`): it is decrypted only when a resolver reveals it, for a field asked for and shown.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from domain.enums import (
    Attendance,
    CapacityStatus,
    ConcernLevel,
    ConsentGiver,
    ConsentPurpose,
    ConsentStatus,
    DataCategory,
    DuplicateResolution,
    ErasureReason,
    GoalAchievementStatus,
    GoalLifecycleStatus,
    LegalHoldReason,
    OrganizationKind,
    OutcomeDomain,
    PhoneMatch,
    ReferralPriority,
    ReferralStatus,
    RiskLevel,
    Role,
    ServiceType,
    SessionModality,
    SessionType,
    Sex,
)
from domain.policy import ReferralAccess


class SealedText(Protocol):
    """Free text about a survivor, still encrypted under the survivor's data key (db/sealed.py)."""

    def reveal(self) -> str | None:
        """The text; None once the survivor's data key is destroyed (the survivor erased)."""


def revealed(text: SealedText | None) -> str | None:
    return text.reveal() if text is not None else None


@dataclass(frozen=True, slots=True)
class OrganizationView:
    id: uuid.UUID
    name: str
    kind: OrganizationKind
    counties: tuple[str, ...]
    languages: tuple[str, ...]
    services: tuple[ServiceType, ...]
    min_age: int | None
    max_age: int | None
    capacity_status: CapacityStatus
    open_slots: int | None
    active: bool
    version: int = 1


@dataclass(frozen=True, slots=True)
class StaffUserView:
    """A person at the NGO or a partner. `email` and `deactivation_reason` are an administrator's
    only (None for everyone else); whether the account is active is everyone's who sees the person."""

    id: uuid.UUID
    display_name: str
    organization_id: uuid.UUID
    roles: tuple[Role, ...]
    active: bool = True
    version: int = 1
    deactivated_at: datetime | None = None
    email: str | None = None
    deactivation_reason: str | None = None


@dataclass(frozen=True, slots=True)
class IdentityView:
    """Decrypted identifying fields; built only after the policy allowed IDENTITY and/or CONTACT."""

    legal_name: str | None
    guardian_name: str | None
    phone: str | None
    guardian_phone: str | None
    location: str | None


@dataclass(frozen=True, slots=True)
class SurvivorView:
    id: uuid.UUID
    organization_id: uuid.UUID
    pseudonym: str
    birth_year: int | None
    age_band: str | None
    sex: Sex
    county: str | None
    languages: tuple[str, ...]
    risk_level: RiskLevel
    categories: frozenset[DataCategory]
    version: int
    erased_at: datetime | None = None
    own_organization: bool = False  # read by the organization that registered the survivor
    # The survivor's organization only (None for a partner): a legal hold and a waiting erasure request.
    legal_hold_at: datetime | None = None
    legal_hold_reason: LegalHoldReason | None = None
    erasure_requested_at: datetime | None = None
    erasure_reason: ErasureReason | None = None


@dataclass(frozen=True, slots=True)
class ConsentView:
    id: uuid.UUID
    survivor_id: uuid.UUID
    organization_id: uuid.UUID
    recipient_id: uuid.UUID
    purposes: tuple[ConsentPurpose, ...]
    data_categories: tuple[DataCategory, ...]
    given_by: ConsentGiver
    child_assent: bool | None
    valid_from: datetime
    valid_until: datetime | None
    status: ConsentStatus
    withdrawn_at: datetime | None
    withdrawal_reason: SealedText | None
    form_version: str | None
    language: str | None
    witness: SealedText | None
    version: int


@dataclass(frozen=True, slots=True)
class StatusChangeView:
    from_status: ReferralStatus | None
    to_status: ReferralStatus
    at: datetime
    reason: SealedText | None
    actor: str


@dataclass(frozen=True, slots=True)
class ReferralView:
    id: uuid.UUID
    survivor_id: uuid.UUID
    referring_organization_id: uuid.UUID
    receiving_organization_id: uuid.UUID
    consent_id: uuid.UUID
    service: ServiceType
    priority: ReferralPriority
    status: ReferralStatus
    status_reason: SealedText | None
    reason: SealedText | None  # the needs summary: shown only with CASE_SUMMARY (categories)
    assigned_counselor_id: uuid.UUID | None
    respond_by: datetime | None
    overdue: bool
    outcome: SealedText | None
    created_at: datetime
    updated_at: datetime
    version: int
    categories: frozenset[DataCategory]
    access: ReferralAccess  # the consent terms behind `categories`, for decisions about its care records


# ----------------------------------------------------------------------------- care (sessions, goals, ...)
# Care records carry the ReferralAccess of their referral so that use cases can ask the policy about
# notes and safeguarding without another query; it is metadata about consent, never survivor data.


@dataclass(frozen=True, slots=True)
class SessionView:
    id: uuid.UUID
    referral_id: uuid.UUID
    survivor_id: uuid.UUID
    organization_id: uuid.UUID
    counselor_id: uuid.UUID
    started_at: datetime
    duration_minutes: int
    modality: SessionModality
    session_type: SessionType
    attendance: Attendance
    has_notes: bool
    concern_level: ConcernLevel | None
    concern_raised_at: datetime | None
    version: int
    access: ReferralAccess


@dataclass(frozen=True, slots=True)
class ConcernView:
    """A safeguarding concern as the referrer may always see it (rule 7): level and time, never the text."""

    session_id: uuid.UUID
    referral_id: uuid.UUID
    level: ConcernLevel
    raised_at: datetime
    access: ReferralAccess


@dataclass(frozen=True, slots=True)
class GoalView:
    id: uuid.UUID
    survivor_id: uuid.UUID
    referral_id: uuid.UUID
    organization_id: uuid.UUID
    domain: OutcomeDomain
    description: SealedText
    target_date: date | None
    lifecycle_status: GoalLifecycleStatus
    achievement_status: GoalAchievementStatus
    version: int


@dataclass(frozen=True, slots=True)
class GoalProgressView:
    goal_id: uuid.UUID
    at: datetime
    achievement_status: GoalAchievementStatus
    lifecycle_status: GoalLifecycleStatus
    note: SealedText | None


@dataclass(frozen=True, slots=True)
class MilestoneView:
    id: uuid.UUID
    referral_id: uuid.UUID
    survivor_id: uuid.UUID
    organization_id: uuid.UUID
    goal_id: uuid.UUID | None
    title: SealedText
    achieved_on: date
    note: SealedText | None
    version: int


@dataclass(frozen=True, slots=True)
class AssessmentView:
    id: uuid.UUID
    survivor_id: uuid.UUID
    referral_id: uuid.UUID
    organization_id: uuid.UUID
    referring_organization_id: uuid.UUID
    instrument: str
    administered_on: date
    domain_scores: tuple[tuple[OutcomeDomain, float], ...]
    overall_score: float
    meets_restoration_threshold: bool


@dataclass(frozen=True, slots=True)
class AuditEventView:
    seq: int
    at: datetime
    actor: str
    client_id: str | None
    action: str
    record_type: str
    record_id: str | None
    purpose: str | None
    request_id: str | None
    outcome: str


@dataclass(frozen=True, slots=True)
class DuplicateReviewView:
    """A registration that shared a phone with another survivor of the organization, for supervisors."""

    id: uuid.UUID
    survivor_id: uuid.UUID
    matched_survivor_id: uuid.UUID
    matched_on: tuple[PhoneMatch, ...]
    created_at: datetime
    resolution: DuplicateResolution | None
    resolved_at: datetime | None
    version: int
