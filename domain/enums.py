"""The contract's enums, one place for every layer.

Each value equals its name so that the database, the GraphQL schema and the outbound events all
spell a status the same way and no translation table can drift.
"""

from enum import StrEnum


class Role(StrEnum):
    CASE_MANAGER = "CASE_MANAGER"
    SUPERVISOR = "SUPERVISOR"
    PARTNER_COORDINATOR = "PARTNER_COORDINATOR"
    COUNSELOR = "COUNSELOR"
    ANALYST = "ANALYST"
    ADMIN = "ADMIN"


class OrganizationKind(StrEnum):
    REFERRING_NGO = "REFERRING_NGO"
    PARTNER = "PARTNER"


class ServiceType(StrEnum):
    PSYCHOSOCIAL_COUNSELING = "PSYCHOSOCIAL_COUNSELING"
    TRAUMA_THERAPY = "TRAUMA_THERAPY"
    SHELTER = "SHELTER"
    MEDICAL = "MEDICAL"
    LEGAL_AID = "LEGAL_AID"
    FAMILY_REINTEGRATION = "FAMILY_REINTEGRATION"
    EDUCATION = "EDUCATION"
    LIVELIHOOD = "LIVELIHOOD"


class ServiceStatus(StrEnum):
    """Whether a partner's service takes people at all (Open Referral HSDS `service.status`)."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    TEMPORARILY_CLOSED = "TEMPORARILY_CLOSED"


class CapacityStatus(StrEnum):
    """Gravity's capacity codes, so a case manager can avoid referring into a full service."""

    CAPACITY = "CAPACITY"
    WAITLIST = "WAITLIST"
    NO_CAPACITY = "NO_CAPACITY"


class Sex(StrEnum):
    FEMALE = "FEMALE"
    MALE = "MALE"
    INTERSEX = "INTERSEX"
    UNDISCLOSED = "UNDISCLOSED"


class RiskLevel(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class ConsentStatus(StrEnum):
    ACTIVE = "ACTIVE"
    WITHDRAWN = "WITHDRAWN"
    EXPIRED = "EXPIRED"


class ConsentGiver(StrEnum):
    """Who signed: the survivor, or for a child a parent or guardian (Children Act 2022)."""

    SURVIVOR = "SURVIVOR"
    GUARDIAN = "GUARDIAN"


class ConsentPurpose(StrEnum):
    REFERRAL = "REFERRAL"
    SERVICE_DELIVERY = "SERVICE_DELIVERY"
    FEEDBACK_TO_REFERRER = "FEEDBACK_TO_REFERRER"
    AGGREGATE_REPORTING = "AGGREGATE_REPORTING"


class DataCategory(StrEnum):
    IDENTITY = "IDENTITY"
    CONTACT = "CONTACT"
    CASE_SUMMARY = "CASE_SUMMARY"
    SESSION_ATTENDANCE = "SESSION_ATTENDANCE"
    SESSION_NOTES = "SESSION_NOTES"
    ASSESSMENTS = "ASSESSMENTS"


class ReferralPriority(StrEnum):
    ROUTINE = "ROUTINE"
    URGENT = "URGENT"
    ASAP = "ASAP"


class ReferralStatus(StrEnum):
    """Gravity's referral Task statuses: FHIR TaskStatus without `ready` and `received`."""

    DRAFT = "DRAFT"
    REQUESTED = "REQUESTED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    IN_PROGRESS = "IN_PROGRESS"
    ON_HOLD = "ON_HOLD"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    ENTERED_IN_ERROR = "ENTERED_IN_ERROR"


class SessionModality(StrEnum):
    INDIVIDUAL = "INDIVIDUAL"
    GROUP = "GROUP"
    FAMILY = "FAMILY"
    REMOTE = "REMOTE"


class SessionType(StrEnum):
    INTAKE = "INTAKE"
    ASSESSMENT = "ASSESSMENT"
    THERAPY = "THERAPY"
    FOLLOW_UP = "FOLLOW_UP"


class Attendance(StrEnum):
    ATTENDED = "ATTENDED"
    MISSED = "MISSED"
    CANCELLED = "CANCELLED"


class ConcernLevel(StrEnum):
    LOW = "LOW"
    HIGH = "HIGH"
    IMMEDIATE = "IMMEDIATE"


class OutcomeDomain(StrEnum):
    """The six domains of the NGO's survivor-outcome assessment; care goals use the same ones."""

    SAFETY = "SAFETY"
    LEGAL_PROTECTION = "LEGAL_PROTECTION"
    MENTAL_WELLBEING = "MENTAL_WELLBEING"
    ECONOMIC_EMPOWERMENT_AND_EDUCATION = "ECONOMIC_EMPOWERMENT_AND_EDUCATION"
    SOCIAL_SUPPORT = "SOCIAL_SUPPORT"
    PHYSICAL_WELLBEING = "PHYSICAL_WELLBEING"


class GoalLifecycleStatus(StrEnum):
    """FHIR Goal.lifecycleStatus, verbatim."""

    PROPOSED = "PROPOSED"
    PLANNED = "PLANNED"
    ACCEPTED = "ACCEPTED"
    ACTIVE = "ACTIVE"
    ON_HOLD = "ON_HOLD"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    ENTERED_IN_ERROR = "ENTERED_IN_ERROR"
    REJECTED = "REJECTED"


class GoalAchievementStatus(StrEnum):
    """FHIR Goal.achievementStatus, verbatim; the hierarchy lives in `domain.goals`."""

    IN_PROGRESS = "IN_PROGRESS"
    IMPROVING = "IMPROVING"
    WORSENING = "WORSENING"
    NO_CHANGE = "NO_CHANGE"
    ACHIEVED = "ACHIEVED"
    SUSTAINING = "SUSTAINING"
    NOT_ACHIEVED = "NOT_ACHIEVED"
    NO_PROGRESS = "NO_PROGRESS"
    NOT_ATTAINABLE = "NOT_ATTAINABLE"


class UserErrorCode(StrEnum):
    """Stable codes a client can branch on; messages may change, these may not."""

    INVALID = "INVALID"
    NOT_FOUND = "NOT_FOUND"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    DUPLICATE = "DUPLICATE"


class ActorKind(StrEnum):
    """Which side of a referral is acting, because the state machine allows each side different moves.

    REQUESTER is the referring organization's staff. OWNER is the receiving partner: its coordinator,
    its partner system, or the assigned counselor when recording care progress. SYSTEM is Pamoja
    itself, acting on a consent withdrawal.
    """

    REQUESTER = "REQUESTER"
    OWNER = "OWNER"
    SYSTEM = "SYSTEM"


# ----------------------------------------------------------------------------- data subject rights
# Codes rather than free text: the audit trail records why, and an erased record keeps no words.


class CorrectionReason(StrEnum):
    """Why identifying details were corrected (Data Protection Act 2019, s.40: rectification)."""

    SPELLING = "SPELLING"
    SUBJECT_REQUEST = "SUBJECT_REQUEST"
    CONTACT_CHANGED = "CONTACT_CHANGED"
    WRONG_DETAILS = "WRONG_DETAILS"


class LegalHoldReason(StrEnum):
    """Why a survivor's record must outlive an erasure request or its retention period."""

    PROSECUTION = "PROSECUTION"
    INVESTIGATION = "INVESTIGATION"
    COURT_ORDER = "COURT_ORDER"
    CIVIL_PROCEEDINGS = "CIVIL_PROCEEDINGS"
    SAFEGUARDING_INQUIRY = "SAFEGUARDING_INQUIRY"


class LegalHoldRelease(StrEnum):
    """Why a legal hold was lifted."""

    PROCEEDINGS_CONCLUDED = "PROCEEDINGS_CONCLUDED"
    ORDER_DISCHARGED = "ORDER_DISCHARGED"
    PLACED_IN_ERROR = "PLACED_IN_ERROR"


class ErasureReason(StrEnum):
    """Why a survivor's record was (or is to be) erased; RETENTION_EXPIRED is set by the retention run."""

    SUBJECT_REQUEST = "SUBJECT_REQUEST"
    GUARDIAN_REQUEST = "GUARDIAN_REQUEST"
    REGISTERED_IN_ERROR = "REGISTERED_IN_ERROR"
    RETENTION_EXPIRED = "RETENTION_EXPIRED"


class ErasureStatus(StrEnum):
    ERASED = "ERASED"
    WAITING_FOR_LEGAL_HOLD = "WAITING_FOR_LEGAL_HOLD"


class PhoneMatch(StrEnum):
    """Which stored number a new registration's phone or guardian phone matched."""

    PHONE = "PHONE"
    GUARDIAN_PHONE = "GUARDIAN_PHONE"


class DuplicateResolution(StrEnum):
    DIFFERENT_PEOPLE = "DIFFERENT_PEOPLE"
    SAME_PERSON = "SAME_PERSON"
