"""Every record of the domain as a table.

SQLModel classes define the tables (and so Alembic's target metadata); reads and writes go through
SQLAlchemy Core on `Model.__table__`, so hot paths never build ORM objects per row. Identifying
survivor fields, session notes, safeguarding descriptions and every other free text that describes
a child (referral reasons and outcomes, status and withdrawal reasons, consent witnesses, goal
descriptions and progress notes, milestone titles and notes) live in `*_enc` columns that hold
AES-256-GCM ciphertext under the survivor's data key only (see db/crypto.py, db/sealed.py). Every
mutable record carries `version` for optimistic concurrency.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


def _pk() -> Any:
    return Field(
        default=None,
        sa_column=Column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    )


def _fk(target: str, *, nullable: bool = False, index: bool = True) -> Any:
    return Field(
        default=None,
        sa_column=Column(UUID(as_uuid=True), ForeignKey(target), nullable=nullable, index=index),
    )


def _ts(*, nullable: bool = False, default_now: bool = True) -> Any:
    return Field(
        default=None,
        sa_column=Column(
            DateTime(timezone=True),
            nullable=nullable,
            server_default=text("now()") if default_now else None,
        ),
    )


def _texts() -> Any:
    return Field(
        default_factory=list,
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    )


def _version() -> Any:
    return Field(default=1, sa_column=Column(BigInteger, nullable=False, server_default=text("1")))


def _bytes(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(LargeBinary, nullable=nullable))


def _json(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSONB, nullable=nullable))


# ----------------------------------------------------------------------------- directory


class Organization(SQLModel, table=True):
    """The NGO or a partner; the service directory entry follows Open Referral HSDS names."""

    __tablename__ = "organization"
    id: uuid.UUID | None = _pk()
    name: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text))
    counties: list[str] = _texts()
    languages: list[str] = _texts()
    sexes_served: list[str] = _texts()
    min_age: int | None = None
    max_age: int | None = None
    referral_email: str | None = Field(default=None, sa_column=Column(Text))
    referral_phone: str | None = Field(default=None, sa_column=Column(Text))
    active: bool = Field(default=True, nullable=False, sa_column_kwargs={"server_default": text("true")})
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    version: int = _version()


class OrganizationService(SQLModel, table=True):
    """One service an organization offers, with Gravity's capacity codes and HSDS eligibility."""

    __tablename__ = "organization_service"
    __table_args__ = (UniqueConstraint("organization_id", "service_type"),)
    id: uuid.UUID | None = _pk()
    organization_id: uuid.UUID = _fk("organization.id")
    service_type: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="ACTIVE", sa_column=Column(Text, nullable=False, server_default="ACTIVE"))
    capacity_status: str = Field(
        default="CAPACITY", sa_column=Column(Text, nullable=False, server_default="CAPACITY")
    )
    open_slots: int | None = None
    eligibility_description: str | None = Field(default=None, sa_column=Column(Text))
    min_age: int | None = None
    max_age: int | None = None
    updated_at: datetime | None = _ts()
    version: int = _version()


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"
    id: uuid.UUID | None = _pk()
    organization_id: uuid.UUID = _fk("organization.id")
    email: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    display_name: str = Field(sa_column=Column(Text, nullable=False))
    roles: list[str] = _texts()
    password_hash: str | None = Field(default=None, sa_column=Column(Text))
    active: bool = Field(default=True, nullable=False, sa_column_kwargs={"server_default": text("true")})
    failed_logins: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": text("0")})
    locked_until: datetime | None = _ts(nullable=True, default_now=False)
    created_at: datetime | None = _ts()
    version: int = _version()
    deactivated_at: datetime | None = _ts(nullable=True, default_now=False)
    deactivation_reason: str | None = Field(default=None, sa_column=Column(Text))
    # Access tokens issued at or before this instant are refused, whoever minted them: set when the
    # account is deactivated or its password is set, so neither a reactivation nor a new password
    # brings an earlier token back.
    signed_out_at: datetime | None = _ts(nullable=True, default_now=False)


class OAuthClient(SQLModel, table=True):
    """A partner system (or the NGO's own system): client credentials, scopes, webhook endpoint."""

    __tablename__ = "oauth_client"
    id: uuid.UUID | None = _pk()
    organization_id: uuid.UUID = _fk("organization.id")
    client_id: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    secret_hash: str | None = Field(default=None, sa_column=Column(Text))
    jwks: dict[str, Any] | None = _json()
    allowed_scopes: list[str] = _texts()
    webhook_url: str | None = Field(default=None, sa_column=Column(Text))
    webhook_secret_enc: bytes | None = _bytes()
    disabled: bool = Field(default=False, nullable=False, sa_column_kwargs={"server_default": text("false")})
    created_at: datetime | None = _ts()
    version: int = _version()
    # Staff login apps only (authorization code + PKCE); empty for partner systems (migration 0002).
    redirect_uris: list[str] = _texts()


# ----------------------------------------------------------------------------- survivors and consent


class Survivor(SQLModel, table=True):
    """Pseudonymous facts only; identifying fields are in survivor_identity, encrypted."""

    __tablename__ = "survivor"
    id: uuid.UUID | None = _pk()
    organization_id: uuid.UUID = _fk("organization.id")
    registered_by_id: uuid.UUID | None = _fk("staff_user.id", nullable=True)
    case_manager_id: uuid.UUID | None = _fk("staff_user.id", nullable=True)
    pseudonym: str = Field(sa_column=Column(Text, nullable=False))
    birth_year: int | None = None
    sex: str = Field(sa_column=Column(Text, nullable=False))
    county: str | None = Field(default=None, sa_column=Column(Text))
    languages: list[str] = _texts()
    risk_level: str = Field(default="MEDIUM", sa_column=Column(Text, nullable=False))
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    version: int = _version()
    # Data subject rights (migration 0010): a legal hold keeps the record whatever is asked; an erasure
    # request waits while one is in place; erased_at marks the pseudonymous skeleton left afterwards.
    legal_hold_at: datetime | None = _ts(nullable=True, default_now=False)
    legal_hold_by_id: uuid.UUID | None = _fk("staff_user.id", nullable=True, index=False)
    legal_hold_reason: str | None = Field(default=None, sa_column=Column(Text))
    erasure_requested_at: datetime | None = _ts(nullable=True, default_now=False)
    erasure_requested_by_id: uuid.UUID | None = _fk("staff_user.id", nullable=True, index=False)
    erasure_reason: str | None = Field(default=None, sa_column=Column(Text))
    erased_at: datetime | None = _ts(nullable=True, default_now=False)


class DuplicateReview(SQLModel, table=True):
    """A registration sharing a phone with a survivor its registrar may not see: for supervisors to review."""

    __tablename__ = "duplicate_review"
    __table_args__ = (
        UniqueConstraint("survivor_id", "matched_survivor_id"),
        Index("ix_duplicate_review_open", "organization_id", "created_at", "id"),
    )
    id: uuid.UUID | None = _pk()
    organization_id: uuid.UUID = _fk("organization.id", index=False)
    survivor_id: uuid.UUID = _fk("survivor.id", index=False)
    matched_survivor_id: uuid.UUID = _fk("survivor.id", index=False)
    matched_on: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    registered_by_id: uuid.UUID | None = _fk("staff_user.id", nullable=True, index=False)
    created_at: datetime | None = _ts()
    resolution: str | None = Field(default=None, sa_column=Column(Text))
    resolved_at: datetime | None = _ts(nullable=True, default_now=False)
    resolved_by_id: uuid.UUID | None = _fk("staff_user.id", nullable=True, index=False)
    version: int = _version()


class SurvivorKey(SQLModel, table=True):
    """One data key per survivor, wrapped by a master key: destroying it erases the survivor."""

    __tablename__ = "survivor_key"
    survivor_id: uuid.UUID = Field(
        sa_column=Column(UUID(as_uuid=True), ForeignKey("survivor.id"), primary_key=True)
    )
    organization_id: uuid.UUID = _fk("organization.id")
    master_key_id: str = Field(sa_column=Column(Text, nullable=False, index=True))
    wrapped_key: bytes = _bytes(nullable=False)
    created_at: datetime | None = _ts()
    destroyed_at: datetime | None = _ts(nullable=True, default_now=False)


class SurvivorIdentity(SQLModel, table=True):
    __tablename__ = "survivor_identity"
    survivor_id: uuid.UUID = Field(
        sa_column=Column(UUID(as_uuid=True), ForeignKey("survivor.id"), primary_key=True)
    )
    organization_id: uuid.UUID = _fk("organization.id")
    legal_name_enc: bytes = _bytes(nullable=False)
    phone_enc: bytes | None = _bytes()
    guardian_name_enc: bytes | None = _bytes()
    guardian_phone_enc: bytes | None = _bytes()
    location_enc: bytes | None = _bytes()
    phone_index: bytes | None = Field(default=None, sa_column=Column(LargeBinary, index=True))
    guardian_phone_index: bytes | None = Field(default=None, sa_column=Column(LargeBinary, index=True))
    updated_at: datetime | None = _ts()
    version: int = _version()


class Consent(SQLModel, table=True):
    __tablename__ = "consent"
    id: uuid.UUID | None = _pk()
    survivor_id: uuid.UUID = _fk("survivor.id")
    organization_id: uuid.UUID = _fk("organization.id")
    recipient_id: uuid.UUID = _fk("organization.id")
    purposes: list[str] = _texts()
    data_categories: list[str] = _texts()
    given_by: str = Field(sa_column=Column(Text, nullable=False))
    child_assent: bool | None = None
    valid_from: datetime = _ts()
    valid_until: datetime | None = _ts(nullable=True, default_now=False)
    status: str = Field(default="ACTIVE", sa_column=Column(Text, nullable=False, server_default="ACTIVE"))
    withdrawn_at: datetime | None = _ts(nullable=True, default_now=False)
    withdrawal_reason_enc: bytes | None = _bytes()
    form_version: str | None = Field(default=None, sa_column=Column(Text))
    language: str | None = Field(default=None, sa_column=Column(Text))
    witness_enc: bytes | None = _bytes()
    recorded_by_id: uuid.UUID | None = _fk("staff_user.id", nullable=True)
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    version: int = _version()


# ----------------------------------------------------------------------------- referrals


class Referral(SQLModel, table=True):
    __tablename__ = "referral"
    __table_args__ = (
        Index("ix_referral_receiving_status", "receiving_organization_id", "status"),
        Index("ix_referral_counselor", "assigned_counselor_id", "receiving_organization_id", "status"),
        Index("ix_referral_activity", "last_activity_at", "id"),
        Index("ix_referral_survivor", "survivor_id", "receiving_organization_id"),
    )
    id: uuid.UUID | None = _pk()
    survivor_id: uuid.UUID = _fk("survivor.id")
    referring_organization_id: uuid.UUID = _fk("organization.id")
    receiving_organization_id: uuid.UUID = _fk("organization.id")
    consent_id: uuid.UUID = _fk("consent.id")
    service: str = Field(sa_column=Column(Text, nullable=False))
    priority: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))
    status_reason_enc: bytes | None = _bytes()
    reason_enc: bytes | None = _bytes()
    assigned_counselor_id: uuid.UUID | None = _fk("staff_user.id", nullable=True, index=False)
    created_by_id: uuid.UUID | None = _fk("staff_user.id", nullable=True, index=False)
    respond_by: datetime | None = _ts(nullable=True, default_now=False)
    overdue_notified_at: datetime | None = _ts(nullable=True, default_now=False)
    outcome_enc: bytes | None = _bytes()
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    last_activity_at: datetime | None = _ts()
    version: int = _version()


class ReferralStatusChange(SQLModel, table=True):
    """Append-only history: the API role may insert, never update or delete. The id is taken from its
    sequence before the insert when a reason is sealed, since the ciphertext is bound to it."""

    __tablename__ = "referral_status_change"
    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(), primary_key=True)
    )
    referral_id: uuid.UUID = _fk("referral.id")
    organization_id: uuid.UUID = _fk("organization.id", index=False)
    from_status: str | None = Field(default=None, sa_column=Column(Text))
    to_status: str = Field(sa_column=Column(Text, nullable=False))
    reason_enc: bytes | None = _bytes()
    actor: str = Field(sa_column=Column(Text, nullable=False))
    actor_user_id: uuid.UUID | None = _fk("staff_user.id", nullable=True, index=False)
    actor_client_id: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime | None = _ts()


# ----------------------------------------------------------------------------- care


class CounselingSession(SQLModel, table=True):
    __tablename__ = "counseling_session"
    __table_args__ = (Index("ix_session_referral_started", "referral_id", "started_at"),)
    id: uuid.UUID | None = _pk()
    referral_id: uuid.UUID = _fk("referral.id", index=False)
    survivor_id: uuid.UUID = _fk("survivor.id")
    organization_id: uuid.UUID = _fk("organization.id")
    referring_organization_id: uuid.UUID = _fk("organization.id")
    counselor_id: uuid.UUID = _fk("staff_user.id", index=False)
    started_at: datetime = _ts(default_now=False)
    duration_minutes: int
    modality: str = Field(sa_column=Column(Text, nullable=False))
    session_type: str = Field(sa_column=Column(Text, nullable=False))
    attendance: str = Field(sa_column=Column(Text, nullable=False))
    notes_enc: bytes | None = _bytes()
    concern_level: str | None = Field(default=None, sa_column=Column(Text))
    concern_raised_at: datetime | None = _ts(nullable=True, default_now=False)
    concern_description_enc: bytes | None = _bytes()
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    version: int = _version()


class CareGoal(SQLModel, table=True):
    __tablename__ = "care_goal"
    id: uuid.UUID | None = _pk()
    survivor_id: uuid.UUID = _fk("survivor.id")
    referral_id: uuid.UUID = _fk("referral.id")
    organization_id: uuid.UUID = _fk("organization.id")
    referring_organization_id: uuid.UUID = _fk("organization.id")
    domain: str = Field(sa_column=Column(Text, nullable=False))
    description_enc: bytes = _bytes(nullable=False)
    target_date: date | None = None
    lifecycle_status: str = Field(sa_column=Column(Text, nullable=False))
    achievement_status: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    version: int = _version()


class GoalProgress(SQLModel, table=True):
    """Dated achievement statuses of a goal (FHIR Goal.achievementStatus as a time series); the id is
    taken before the insert when a note is sealed, as for referral_status_change."""

    __tablename__ = "goal_progress"
    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(), primary_key=True)
    )
    goal_id: uuid.UUID = _fk("care_goal.id")
    organization_id: uuid.UUID = _fk("organization.id", index=False)
    referring_organization_id: uuid.UUID = _fk("organization.id", index=False)
    achievement_status: str = Field(sa_column=Column(Text, nullable=False))
    lifecycle_status: str = Field(sa_column=Column(Text, nullable=False))
    note_enc: bytes | None = _bytes()
    actor: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime | None = _ts()


class Milestone(SQLModel, table=True):
    __tablename__ = "milestone"
    id: uuid.UUID | None = _pk()
    referral_id: uuid.UUID = _fk("referral.id")
    survivor_id: uuid.UUID = _fk("survivor.id", index=False)
    organization_id: uuid.UUID = _fk("organization.id")
    referring_organization_id: uuid.UUID = _fk("organization.id")
    goal_id: uuid.UUID | None = _fk("care_goal.id", nullable=True, index=False)
    title_enc: bytes = _bytes(nullable=False)
    achieved_on: date
    note_enc: bytes | None = _bytes()
    created_at: datetime | None = _ts()
    version: int = _version()


class AssessmentInstrument(SQLModel, table=True):
    """An instrument as data (domains, sub-domains, scale, threshold), never as code."""

    __tablename__ = "assessment_instrument"
    __table_args__ = (UniqueConstraint("key", "version"),)
    id: uuid.UUID | None = _pk()
    key: str = Field(sa_column=Column(Text, nullable=False))
    version: str = Field(sa_column=Column(Text, nullable=False))
    name: str = Field(sa_column=Column(Text, nullable=False))
    definition: dict[str, Any] = _json(nullable=False)
    active: bool = Field(default=True, nullable=False, sa_column_kwargs={"server_default": text("true")})
    created_at: datetime | None = _ts()


class Assessment(SQLModel, table=True):
    __tablename__ = "assessment"
    id: uuid.UUID | None = _pk()
    survivor_id: uuid.UUID = _fk("survivor.id")
    referral_id: uuid.UUID = _fk("referral.id")
    organization_id: uuid.UUID = _fk("organization.id")
    referring_organization_id: uuid.UUID = _fk("organization.id")
    instrument_id: uuid.UUID = _fk("assessment_instrument.id", index=False)
    administered_on: date
    subdomain_scores: dict[str, Any] = _json(nullable=False)
    domain_scores: dict[str, Any] = _json(nullable=False)
    overall_score: float
    meets_threshold: bool
    created_at: datetime | None = _ts()
    version: int = _version()


# ----------------------------------------------------------------------------- audit, outbox, idempotency


class AuditEvent(SQLModel, table=True):
    """Append-only and hash-chained; a trigger fills at/prev_hash/row_hash. Ids only, never data."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_organization", "organization_id", "seq"),
        # breach answers (pamoja audit report): by record, by person, by client
        Index("ix_audit_event_record", "record_id", "seq"),
        Index("ix_audit_event_actor", "actor", "seq"),
        Index("ix_audit_event_client", "client_id", "seq"),
    )
    seq: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    at: datetime | None = _ts()
    actor: str = Field(sa_column=Column(Text, nullable=False))
    client_id: str | None = Field(default=None, sa_column=Column(Text))
    organization_id: uuid.UUID | None = Field(default=None, sa_column=Column(UUID(as_uuid=True)))
    action: str = Field(sa_column=Column(Text, nullable=False))
    record_type: str = Field(sa_column=Column(Text, nullable=False))
    record_id: str | None = Field(default=None, sa_column=Column(Text))
    purpose: str | None = Field(default=None, sa_column=Column(Text))
    request_id: str | None = Field(default=None, sa_column=Column(Text))
    outcome: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: bytes | None = _bytes()
    row_hash: bytes | None = _bytes()


class OutboxEvent(SQLModel, table=True):
    """What partner systems are told, written in the same transaction as the change it reports."""

    __tablename__ = "outbox_event"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: uuid.UUID | None = _pk()
    event_type: str = Field(sa_column=Column(Text, nullable=False))
    organization_id: uuid.UUID = _fk("organization.id")
    payload: dict[str, Any] = _json(nullable=False)
    status: str = Field(default="PENDING", sa_column=Column(Text, nullable=False, server_default="PENDING"))
    attempts: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": text("0")})
    next_attempt_at: datetime | None = _ts()
    delivered_at: datetime | None = _ts(nullable=True, default_now=False)
    created_at: datetime | None = _ts()


class IdempotencyRecord(SQLModel, table=True):
    """First result of a mutation per (principal, key); a retry replays it (Stripe's design)."""

    __tablename__ = "idempotency_record"
    __table_args__ = (Index("ix_idempotency_organization", "organization_id"),)
    principal_key: str = Field(sa_column=Column(Text, primary_key=True))
    key: str = Field(sa_column=Column(Text, primary_key=True))
    organization_id: uuid.UUID | None = Field(default=None, sa_column=Column(UUID(as_uuid=True), nullable=True))
    operation: str = Field(sa_column=Column(Text, nullable=False))
    request_hash: bytes = _bytes(nullable=False)
    response: dict[str, Any] | None = _json()
    created_at: datetime | None = _ts()
    expires_at: datetime = _ts(default_now=False)


# ----------------------------------------------------------------------------- token signing


class SigningKey(SQLModel, table=True):
    """Pamoja's own token-signing keys; the private half is encrypted under a master key."""

    __tablename__ = "signing_key"
    kid: str = Field(sa_column=Column(Text, primary_key=True))
    alg: str = Field(sa_column=Column(Text, nullable=False))
    private_key_enc: bytes = _bytes(nullable=False)
    master_key_id: str = Field(sa_column=Column(Text, nullable=False))
    public_jwk: dict[str, Any] = _json(nullable=False)
    created_at: datetime | None = _ts()
    retire_after: datetime | None = _ts(nullable=True, default_now=False)


class RevokedToken(SQLModel, table=True):
    """Access tokens revoked before their expiry (RFC 7009); rows can be pruned after expires_at."""

    __tablename__ = "revoked_token"
    jti: str = Field(sa_column=Column(Text, primary_key=True))
    expires_at: datetime = _ts(default_now=False)
    revoked_at: datetime | None = _ts()


# ----------------------------------------------------------------------------- OAuth server state (migration 0002)


class OAuthAuthorizationCode(SQLModel, table=True):
    """A staff login's one-time code, stored as a hash; redeemed once, with its PKCE S256 challenge."""

    __tablename__ = "oauth_authorization_code"
    code_hash: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    client_id: str = Field(sa_column=Column(Text, ForeignKey("oauth_client.client_id"), nullable=False))
    user_id: uuid.UUID = _fk("staff_user.id", index=False)
    redirect_uri: str = Field(sa_column=Column(Text, nullable=False))
    scope: str = Field(sa_column=Column(Text, nullable=False))
    code_challenge: str = Field(sa_column=Column(Text, nullable=False))
    code_challenge_method: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime | None = _ts()
    expires_at: datetime = _ts(default_now=False)
    used_at: datetime | None = _ts(nullable=True, default_now=False)
    family_id: uuid.UUID | None = Field(default=None, sa_column=Column(UUID(as_uuid=True)))


class OAuthRefreshToken(SQLModel, table=True):
    """Staff refresh tokens, hashed; each use rotates it within its family, a reuse revokes the family."""

    __tablename__ = "oauth_refresh_token"
    token_hash: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    family_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), nullable=False, index=True))
    client_id: str = Field(sa_column=Column(Text, ForeignKey("oauth_client.client_id"), nullable=False))
    user_id: uuid.UUID = _fk("staff_user.id", index=False)
    scope: str = Field(sa_column=Column(Text, nullable=False))
    access_jti: str = Field(sa_column=Column(Text, nullable=False))
    access_expires_at: datetime = _ts(default_now=False)
    created_at: datetime | None = _ts()
    expires_at: datetime = _ts(default_now=False)
    used_at: datetime | None = _ts(nullable=True, default_now=False)
    revoked_at: datetime | None = _ts(nullable=True, default_now=False)


class OAuthAssertionJti(SQLModel, table=True):
    """`jti` of client assertions (private_key_jwt) seen until they expire, so none can be replayed."""

    __tablename__ = "oauth_assertion_jti"
    client_id: str = Field(sa_column=Column(Text, primary_key=True))
    jti: str = Field(sa_column=Column(Text, primary_key=True))
    expires_at: datetime = _ts(default_now=False)


class LoginThrottle(SQLModel, table=True):
    """Failed staff logins per submitted e-mail (keyed hash, known or not), for slowing and locking."""

    __tablename__ = "login_throttle"
    key_hash: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    failures: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": text("0")})
    last_failure_at: datetime | None = _ts(nullable=True, default_now=False)
    locked_until: datetime | None = _ts(nullable=True, default_now=False)


class StaffPasswordLink(SQLModel, table=True):
    """A one-time link to set a staff password (migration 0007), stored as its token's SHA-256.

    Spent when used, when a newer link is issued, or when the account is deactivated (`used_at`).
    """

    __tablename__ = "staff_password_link"
    token_hash: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    staff_user_id: uuid.UUID = _fk("staff_user.id")
    created_at: datetime | None = _ts()
    expires_at: datetime = _ts(default_now=False)
    used_at: datetime | None = _ts(nullable=True, default_now=False)


class ConsoleSession(SQLModel, table=True):
    """A staff console session (migration 0009): the cookie's SHA-256, the CSRF token, the language,
    and the person's tokens sealed under the master key `key_id`; while signing in, the OAuth state
    and the sealed PKCE verifier instead."""

    __tablename__ = "console_session"
    id_hash: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    staff_user_id: uuid.UUID | None = _fk("staff_user.id", nullable=True)
    csrf_token: str = Field(sa_column=Column(Text, nullable=False))
    language: str = Field(sa_column=Column(Text, nullable=False))
    key_id: str = Field(sa_column=Column(Text, nullable=False))
    login_state: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    login_verifier_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    access_token_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    refresh_token_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    access_expires_at: datetime | None = _ts(nullable=True, default_now=False)
    created_at: datetime | None = _ts()
    last_seen_at: datetime | None = _ts()
    expires_at: datetime = _ts(default_now=False)


# ----------------------------------------------------------------------------- webhook delivery (partner network)


class WebhookDelivery(SQLModel, table=True):
    """One outbox event to one partner-system endpoint: its delivery state and retry schedule.

    `attempts` counts every attempt ever (the log's numbering); `attempts_base` is the count at the
    last (re)queue, so a redelivery gets a fresh budget of attempts. `claim_token` marks a worker's
    lease: only the worker holding it may record the outcome.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("outbox_event_id", "oauth_client_id", name="uq_webhook_delivery_event_client"),
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
    )
    id: uuid.UUID | None = _pk()
    outbox_event_id: uuid.UUID = _fk("outbox_event.id", index=False)
    oauth_client_id: uuid.UUID = _fk("oauth_client.id")
    organization_id: uuid.UUID = _fk("organization.id")
    status: str = Field(default="PENDING", sa_column=Column(Text, nullable=False, server_default="PENDING"))
    attempts: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": text("0")})
    attempts_base: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": text("0")})
    next_attempt_at: datetime | None = _ts()
    claim_token: uuid.UUID | None = Field(default=None, sa_column=Column(UUID(as_uuid=True), nullable=True))
    last_attempt_at: datetime | None = _ts(nullable=True, default_now=False)
    last_status_code: int | None = None
    last_error_kind: str | None = Field(default=None, sa_column=Column(Text))
    delivered_at: datetime | None = _ts(nullable=True, default_now=False)
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


class WebhookDeliveryAttempt(SQLModel, table=True):
    """The delivery log a partner can query: one row per attempt, never a response body."""

    __tablename__ = "webhook_delivery_attempt"
    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    delivery_id: uuid.UUID = _fk("webhook_delivery.id")
    outbox_event_id: uuid.UUID = _fk("outbox_event.id")
    organization_id: uuid.UUID = _fk("organization.id")
    oauth_client_id: uuid.UUID = _fk("oauth_client.id", index=False)
    attempt: int
    at: datetime | None = _ts()
    status_code: int | None = None
    latency_ms: int
    error_kind: str | None = Field(default=None, sa_column=Column(Text))
    outcome: str = Field(sa_column=Column(Text, nullable=False))
