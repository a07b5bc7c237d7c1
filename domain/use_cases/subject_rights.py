"""A survivor's rights over her record (Kenya's Data Protection Act 2019): access, rectification, erasure
under legal hold, retention.

One set of rules for the supervisor's GraphQL mutations, the operator's `pamoja subject …` and
`pamoja retention run`, and the worker's daily retention: each caller hands in a `SubjectRecords`
store bound to its transaction, and `principal` None means the operator (or the worker), whose
authority is the machine they run on. Every outcome is audited with a reason code, never words:
the audit trail keeps the fact of a correction or an erasure, not the data.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from domain import policy
from domain.enums import CorrectionReason, ErasureReason, ErasureStatus, LegalHoldReason, LegalHoldRelease
from domain.errors import FieldChecks, Forbidden, InvalidInput, InvalidTransition, NotFound, VersionConflict
from domain.ids import to_global_id
from domain.kenya import normalize_phone
from domain.principal import Principal
from domain.referrals import OPEN_STATUSES
from domain.scopes import Action, Resource
from domain.use_cases.common import required_text, text

EXPORT_FORMAT = "pamoja.subject-export"
EXPORT_VERSION = 1
SURVIVOR_ERASED = "SURVIVOR_ERASED"  # the reason code of referrals cancelled by an erasure
OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))


@dataclass(frozen=True, slots=True)
class SubjectState:
    survivor_id: uuid.UUID
    organization_id: uuid.UUID
    version: int
    legal_hold_at: datetime | None
    legal_hold_reason: LegalHoldReason | None
    erasure_requested_at: datetime | None
    erasure_reason: ErasureReason | None
    erased_at: datetime | None


@dataclass(frozen=True, slots=True)
class ErasedReferral:
    referral_id: uuid.UUID
    referring_organization_id: uuid.UUID
    receiving_organization_id: uuid.UUID
    previous_status: str
    cancelled: bool


@dataclass(frozen=True, slots=True)
class RetentionCandidate:
    survivor_id: uuid.UUID
    organization_id: uuid.UUID
    reason: ErasureReason
    last_closed_at: datetime | None
    legal_hold_at: datetime | None


@dataclass(frozen=True, slots=True)
class IdentityCorrection:
    """New values; None leaves a field as it is, "" clears it (every field but the legal name)."""

    legal_name: str | None = None
    phone: str | None = None
    guardian_name: str | None = None
    guardian_phone: str | None = None
    location: str | None = None

    def changes(self) -> dict[str, str | None]:
        return {name: (value or None) for name, value in (
            ("legal_name", self.legal_name), ("phone", self.phone), ("guardian_name", self.guardian_name),
            ("guardian_phone", self.guardian_phone), ("location", self.location)) if value is not None}


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    survivor_id: uuid.UUID
    status: ErasureStatus
    legal_hold_at: datetime | None = None
    legal_hold_reason: LegalHoldReason | None = None

    @property
    def explanation(self) -> str:
        return explain(self.status)


def explain(status: ErasureStatus) -> str:
    """What became of an erasure request, in words (the GraphQL payload and the operator's command)."""
    if status is ErasureStatus.ERASED:
        return ("Erased: the survivor's data key is destroyed and every free-text field cleared; partners were "
                "told (survivor.erased).")
    return ("The record is under a legal hold: the request is recorded and waits until a supervisor lifts the "
            "hold; the next retention run then erases the record.")


class SubjectRecords(Protocol):
    async def state(self, survivor_id: uuid.UUID, *, lock: bool = False) -> SubjectState | None: ...
    async def visible(self, scope: policy.RowScope, survivor_id: uuid.UUID) -> bool: ...
    async def set_legal_hold(self, survivor_id: uuid.UUID, *, reason: LegalHoldReason | None,
                             by: uuid.UUID | None) -> None: ...
    async def request_erasure(self, survivor_id: uuid.UUID, *, reason: ErasureReason, by: uuid.UUID | None) -> None: ...
    async def erase(self, survivor_id: uuid.UUID, *, reason: ErasureReason,
                    open_statuses: Sequence[str]) -> Sequence[ErasedReferral]: ...
    async def correct_identity(self, survivor_id: uuid.UUID, changes: Mapping[str, str | None]) -> None: ...
    async def export(self, survivor_id: uuid.UUID) -> dict[str, Any]: ...
    async def retention_due(self, *, cutoff: datetime,
                            open_statuses: Sequence[str]) -> Sequence[RetentionCandidate]: ...
    async def audit(self, *, action: str, record_type: str, record_id: str, purpose: str,
                    outcome: str = "allowed") -> None: ...
    async def emit(self, *, event_type: str, organization_id: uuid.UUID, data: Mapping[str, str]) -> None: ...
    def now(self) -> datetime: ...


def _field(name: str) -> tuple[str, ...]:
    return ("input", name)


def _supervisor(principal: Principal, organization_id: uuid.UUID) -> bool:
    return policy.may_exercise_subject_rights(principal, survivor_organization_id=organization_id)


def _corrector(principal: Principal, organization_id: uuid.UUID) -> bool:
    return policy.may_correct_identity(principal, survivor_organization_id=organization_id)


SUPERVISORS_ONLY = "Only a supervisor of the organization that registered the survivor may do this."
CORRECTORS_ONLY = "Only the case managers and supervisors of the organization that registered the survivor " \
    "correct her identifying details."


async def _subject(store: SubjectRecords, principal: Principal | None, survivor_id: uuid.UUID | None, *,
                   may: Callable[[Principal, uuid.UUID], bool] = _supervisor, refusal: str = SUPERVISORS_ONLY,
                   lock: bool = True) -> SubjectState:
    """The survivor's state, locked; NotFound for a survivor the caller may not see (or that does not exist),
    Forbidden for one it sees but may not act on (say a case manager asking for an erasure)."""
    state = await store.state(survivor_id, lock=lock) if survivor_id else None
    if state is None:
        raise NotFound(field=_field("survivorId"))
    if principal is not None:
        if not await store.visible(policy.rows(principal, store.now()), state.survivor_id):
            raise NotFound(field=_field("survivorId"))
        if not may(principal, state.organization_id):
            raise Forbidden(refusal)
    return state


def _check_version(state: SubjectState, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != state.version:
        raise VersionConflict("The survivor was changed by someone else; reload it and try again.",
                              field=_field("expectedVersion"))


def _not_erased(state: SubjectState) -> None:
    if state.erased_at is not None:
        raise InvalidTransition("This survivor's record was erased; nothing is left to change.",
                                field=_field("survivorId"))


# ----------------------------------------------------------------------------- rectification


def validate_correction(correction: IdentityCorrection) -> IdentityCorrection:
    """Every refused field at once; the refused value is never repeated. An empty or blank text clears a field
    (spaces alone are no value), however it is spelled."""
    correction = IdentityCorrection(**{
        name: ("" if value is not None and name != "legal_name" and not value.strip() else value)
        for name, value in dataclasses.asdict(correction).items()})
    checks = FieldChecks()
    legal_name = None
    if correction.legal_name is not None:
        legal_name = checks.check(lambda: required_text(correction.legal_name, field=_field("legalName"),
                                                        max_length=200))
    phones: dict[str, str | None] = {}
    for name, value in (("phone", correction.phone), ("guardianPhone", correction.guardian_phone)):
        if value:
            phones[name] = checks.check(lambda v=value, n=name: normalize_phone(v, field=_field(n)))  # type: ignore[misc]
        else:
            phones[name] = value
    guardian_name = checks.check(lambda: text(correction.guardian_name, field=_field("guardianName"),
                                              max_length=200, required=False)) if correction.guardian_name else \
        correction.guardian_name
    location = checks.check(lambda: text(correction.location, field=_field("location"), max_length=500,
                                         required=False, multiline=True)) if correction.location else \
        correction.location
    checks.done()
    fixed = IdentityCorrection(legal_name=legal_name, phone=phones["phone"], guardian_name=guardian_name,
                               guardian_phone=phones["guardianPhone"], location=location)
    if not fixed.changes():
        raise InvalidInput("Give at least one of legalName, phone, guardianName, guardianPhone, location "
                           "(an empty text clears a field).", field=("input",))
    return fixed


async def correct_identity(*, store: SubjectRecords, principal: Principal | None, survivor_id: uuid.UUID | None,
                           correction: IdentityCorrection, reason: CorrectionReason,
                           expected_version: int | None) -> uuid.UUID:
    """Re-encrypt the corrected fields under the survivor's data key: the old ciphertext is overwritten, the
    history, audit and logs never held the value, and the audit records that a correction happened and why."""
    if principal is not None:
        policy.require(principal, Resource.SURVIVOR_IDENTITY, Action.UPDATE)
    fixed = validate_correction(correction)
    state = await _subject(store, principal, survivor_id, may=_corrector, refusal=CORRECTORS_ONLY)
    _not_erased(state)
    _check_version(state, expected_version)
    await store.correct_identity(state.survivor_id, fixed.changes())
    await store.audit(action="correct", record_type="SurvivorIdentity",
                      record_id=to_global_id("Survivor", state.survivor_id), purpose=reason.value)
    return state.survivor_id


# ----------------------------------------------------------------------------- legal hold


async def place_legal_hold(*, store: SubjectRecords, principal: Principal | None, survivor_id: uuid.UUID | None,
                           reason: LegalHoldReason, expected_version: int | None) -> uuid.UUID:
    if principal is not None:
        policy.require(principal, Resource.SURVIVOR, Action.UPDATE)
    state = await _subject(store, principal, survivor_id)
    _not_erased(state)
    _check_version(state, expected_version)
    if state.legal_hold_at is not None:
        raise InvalidTransition("This survivor's record is already under a legal hold.", field=_field("survivorId"))
    await store.set_legal_hold(state.survivor_id, reason=reason, by=principal.user_id if principal else None)
    await store.audit(action="legal_hold", record_type="Survivor",
                      record_id=to_global_id("Survivor", state.survivor_id),
                      purpose=f"PLACED_{reason.value}")
    return state.survivor_id


async def lift_legal_hold(*, store: SubjectRecords, principal: Principal | None, survivor_id: uuid.UUID | None,
                          reason: LegalHoldRelease, expected_version: int | None) -> uuid.UUID:
    if principal is not None:
        policy.require(principal, Resource.SURVIVOR, Action.UPDATE)
    state = await _subject(store, principal, survivor_id)
    _check_version(state, expected_version)
    if state.legal_hold_at is None:
        raise InvalidTransition("This survivor's record is not under a legal hold.", field=_field("survivorId"))
    await store.set_legal_hold(state.survivor_id, reason=None, by=None)
    await store.audit(action="legal_hold", record_type="Survivor",
                      record_id=to_global_id("Survivor", state.survivor_id),
                      purpose=f"LIFTED_{reason.value}")
    return state.survivor_id


# ----------------------------------------------------------------------------- erasure


async def request_erasure(*, store: SubjectRecords, principal: Principal | None, survivor_id: uuid.UUID | None,
                          reason: ErasureReason, expected_version: int | None) -> ErasureOutcome:
    """Erase now, or, under a legal hold, record the request and say why it waits."""
    if principal is not None:
        policy.require(principal, Resource.SURVIVOR, Action.DELETE)
        if reason is ErasureReason.RETENTION_EXPIRED:
            raise InvalidInput("reason RETENTION_EXPIRED is set by the retention run; choose SUBJECT_REQUEST, "
                               "GUARDIAN_REQUEST or REGISTERED_IN_ERROR.", field=_field("reason"))
    state = await _subject(store, principal, survivor_id)
    _not_erased(state)
    _check_version(state, expected_version)
    gid = to_global_id("Survivor", state.survivor_id)
    if state.legal_hold_at is not None:
        await store.request_erasure(state.survivor_id, reason=reason, by=principal.user_id if principal else None)
        await store.audit(action="erasure_request", record_type="Survivor", record_id=gid, purpose=reason.value,
                          outcome="deferred")
        return ErasureOutcome(state.survivor_id, ErasureStatus.WAITING_FOR_LEGAL_HOLD, state.legal_hold_at,
                              state.legal_hold_reason)
    await erase(store=store, survivor_id=state.survivor_id, organization_id=state.organization_id, reason=reason)
    return ErasureOutcome(state.survivor_id, ErasureStatus.ERASED)


async def erase(*, store: SubjectRecords, survivor_id: uuid.UUID, organization_id: uuid.UUID,
                reason: ErasureReason) -> None:
    """Crypto-shred and clear (db: erase_survivor), then tell both sides of every referral: open referrals
    are cancelled (SURVIVOR_ERASED) and every partner the survivor was referred to hears `survivor.erased`."""
    referrals = await store.erase(survivor_id, reason=reason, open_statuses=OPEN)
    gid = to_global_id("Survivor", survivor_id)
    told = {organization_id: None}
    for referral in referrals:
        shown_to_partner = referral.previous_status != "DRAFT"
        if shown_to_partner:
            told.setdefault(referral.receiving_organization_id, None)
        if not referral.cancelled:
            continue
        referral_gid = to_global_id("Referral", referral.referral_id)
        sides = [referral.referring_organization_id] + ([referral.receiving_organization_id] if shown_to_partner
                                                        else [])
        for side in dict.fromkeys(sides):
            await store.emit(event_type="referral.cancelled", organization_id=side,
                             data={"referralId": referral_gid, "status": "CANCELLED", "reason": SURVIVOR_ERASED})
        await store.audit(action="update", record_type="Referral", record_id=referral_gid, purpose=SURVIVOR_ERASED)
    for side in told:
        await store.emit(event_type="survivor.erased", organization_id=side, data={"survivorId": gid})
    await store.audit(action="erase", record_type="Survivor", record_id=gid, purpose=reason.value)


# ----------------------------------------------------------------------------- access (export)


async def export(*, store: SubjectRecords, principal: Principal | None,
                 survivor_id: uuid.UUID | None) -> dict[str, Any]:
    """Everything kept about one survivor, as one versioned JSON document (README "Data protection").
    The export is audited first, so the document's own audit trail shows it."""
    if principal is not None:
        for resource in (Resource.SURVIVOR_IDENTITY, Resource.SESSION_NOTE, Resource.AUDIT_EVENT):
            policy.require(principal, resource, Action.READ)
    state = await _subject(store, principal, survivor_id, lock=False)
    await store.audit(action="export", record_type="Survivor", record_id=to_global_id("Survivor", state.survivor_id),
                      purpose="SUBJECT_ACCESS")
    document = await store.export(state.survivor_id)
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "generatedAt": store.now().isoformat(), **document}


# ----------------------------------------------------------------------------- retention


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    cutoff: datetime
    erase: tuple[RetentionCandidate, ...]
    held: tuple[RetentionCandidate, ...]


async def plan_retention(*, store: SubjectRecords, period: timedelta) -> RetentionPlan:
    """Survivors whose last referral closed (never referred: who were registered) more than `period` ago,
    and those whose erasure request waited for a hold; a hold wins, and is listed with its reason."""
    cutoff = store.now() - period
    due = await store.retention_due(cutoff=cutoff, open_statuses=OPEN)
    return RetentionPlan(cutoff=cutoff, erase=tuple(c for c in due if c.legal_hold_at is None),
                         held=tuple(c for c in due if c.legal_hold_at is not None))


async def apply_retention(*, store: SubjectRecords, plan: RetentionPlan) -> int:
    for candidate in plan.erase:
        await erase(store=store, survivor_id=candidate.survivor_id, organization_id=candidate.organization_id,
                    reason=candidate.reason)
    return len(plan.erase)
