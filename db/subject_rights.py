"""SQL for a survivor's data subject rights: hold, erasure, retention, correction and the access export.

Erasure and retention run the SECURITY DEFINER functions of migration 0010 (`erase_survivor`,
`retention_due`, `subject_audit_trail`): erasure must clear append-only history and a partner's own
care rows, which the runtime role may not update; the functions keep to the caller's organization.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from db.crypto import MasterKeys, blind_index, decrypt_field, encrypt_field
from db.engine import Db
from db.scopes import survivor_visible
from db.survivors import IDENTITY_COLUMNS, SqlSurvivors
from db.tables import Survivor, SurvivorIdentity
from domain.enums import ErasureReason, LegalHoldReason
from domain.ids import to_global_id
from domain.policy import RowScope
from domain.use_cases.subject_rights import ErasedReferral, RetentionCandidate, SubjectState

survivor_t = Survivor.__table__  # type: ignore[attr-defined]
identity_t = SurvivorIdentity.__table__  # type: ignore[attr-defined]

Audit = Callable[..., Awaitable[None]]
Emit = Callable[..., Awaitable[None]]

_ERASE = text("SELECT * FROM erase_survivor(:survivor_id, :reason, :open)").bindparams(
    bindparam("open", type_=ARRAY(Text())))
_DUE = text("SELECT * FROM retention_due(:cutoff, :open)").bindparams(bindparam("open", type_=ARRAY(Text())))


def _gid(kind: str, value: Any) -> str | None:
    return to_global_id(kind, value) if value is not None else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class SqlSubjectRecords:
    def __init__(self, db: Db, *, survivors: SqlSurvivors, master: MasterKeys, index_key: bytes, now: datetime,
                 audit: Audit, emit: Emit) -> None:
        self.db = db
        self.survivors = survivors
        self.master = master
        self.index_key = index_key
        self._now = now
        self._audit = audit
        self._emit = emit

    def now(self) -> datetime:
        return self._now

    async def audit(self, *, action: str, record_type: str, record_id: str, purpose: str,
                    outcome: str = "allowed") -> None:
        await self._audit(action=action, record_type=record_type, record_id=record_id, purpose=purpose,
                          outcome=outcome)

    async def emit(self, *, event_type: str, organization_id: uuid.UUID, data: Mapping[str, str]) -> None:
        await self._emit(event_type=event_type, organization_id=organization_id, data=data)

    # ------------------------------------------------------------------ state

    async def state(self, survivor_id: uuid.UUID, *, lock: bool = False) -> SubjectState | None:
        t = survivor_t
        statement = select(t.c.id, t.c.organization_id, t.c.version, t.c.legal_hold_at, t.c.legal_hold_reason,
                           t.c.erasure_requested_at, t.c.erasure_reason, t.c.erased_at).where(t.c.id == survivor_id)
        row = await self.db.first(statement.with_for_update() if lock else statement)
        if row is None:
            return None
        return SubjectState(
            survivor_id=row.id, organization_id=row.organization_id, version=row.version,
            legal_hold_at=row.legal_hold_at,
            legal_hold_reason=LegalHoldReason(row.legal_hold_reason) if row.legal_hold_reason else None,
            erasure_requested_at=row.erasure_requested_at,
            erasure_reason=ErasureReason(row.erasure_reason) if row.erasure_reason else None, erased_at=row.erased_at)

    async def visible(self, scope: RowScope, survivor_id: uuid.UUID) -> bool:
        found = await self.db.scalar(select(survivor_t.c.id).where(
            survivor_t.c.id == survivor_id, survivor_visible(scope)))
        return found is not None

    # ------------------------------------------------------------------ hold and erasure

    async def set_legal_hold(self, survivor_id: uuid.UUID, *, reason: LegalHoldReason | None,
                             by: uuid.UUID | None) -> None:
        await self.db.execute(update(survivor_t).where(survivor_t.c.id == survivor_id).values(
            legal_hold_at=self._now if reason else None, legal_hold_reason=reason.value if reason else None,
            legal_hold_by_id=by, version=survivor_t.c.version + 1, updated_at=self._now))

    async def request_erasure(self, survivor_id: uuid.UUID, *, reason: ErasureReason, by: uuid.UUID | None) -> None:
        await self.db.execute(update(survivor_t).where(survivor_t.c.id == survivor_id).values(
            erasure_requested_at=self._now, erasure_reason=reason.value, erasure_requested_by_id=by,
            version=survivor_t.c.version + 1, updated_at=self._now))

    async def erase(self, survivor_id: uuid.UUID, *, reason: ErasureReason,
                    open_statuses: Sequence[str]) -> Sequence[ErasedReferral]:
        rows = await self.db.all(_ERASE, {"survivor_id": survivor_id, "reason": reason.value,
                                          "open": list(open_statuses)})
        return [ErasedReferral(referral_id=r.o_referral_id, referring_organization_id=r.o_referring_organization_id,
                               receiving_organization_id=r.o_receiving_organization_id,
                               previous_status=r.o_previous_status, cancelled=r.o_cancelled) for r in rows]

    async def retention_due(self, *, cutoff: datetime, open_statuses: Sequence[str]) -> Sequence[RetentionCandidate]:
        rows = await self.db.all(_DUE, {"cutoff": cutoff, "open": list(open_statuses)})
        return [RetentionCandidate(survivor_id=r.o_survivor_id, organization_id=r.o_organization_id,
                                   reason=ErasureReason(r.o_reason), last_closed_at=r.o_last_closed_at,
                                   legal_hold_at=r.o_legal_hold_at) for r in rows]

    # ------------------------------------------------------------------ rectification

    async def correct_identity(self, survivor_id: uuid.UUID, changes: Mapping[str, str | None]) -> None:
        """Overwrite the corrected ciphertexts (same data key, same binding) and their blind indexes."""
        data_key = await self.survivors.data_key(survivor_id)
        if data_key is None:
            raise LookupError("survivor has no live data key")
        values: dict[str, Any] = {}
        for column, value in changes.items():
            assert column in IDENTITY_COLUMNS
            values[f"{column}_enc"] = encrypt_field(data_key, value, table="survivor_identity", column=column,
                                                    row_id=survivor_id)
            if column in ("phone", "guardian_phone"):
                values[f"{column}_index"] = blind_index(self.index_key, column, value) if value else None
        await self.db.execute(update(identity_t).where(identity_t.c.survivor_id == survivor_id).values(
            **values, version=identity_t.c.version + 1, updated_at=self._now))
        await self.db.execute(update(survivor_t).where(survivor_t.c.id == survivor_id).values(
            version=survivor_t.c.version + 1, updated_at=self._now))

    # ------------------------------------------------------------------ access

    async def export(self, survivor_id: uuid.UUID) -> dict[str, Any]:
        """Everything about one survivor, decrypted: each statement names the survivor, so nothing of
        anyone else can enter the document."""
        key = await self.survivors.data_key(survivor_id)

        def opened(row: Any, table: str, column: str, row_id: Any) -> str | None:
            blob = getattr(row, f"{column}_enc")
            if key is None or not blob:
                return None
            return decrypt_field(key, bytes(blob), table=table, column=column, row_id=row_id)

        params = {"s": survivor_id}
        s = await self.db.first(text(
            "SELECT s.*, o.name AS organization_name FROM survivor s JOIN organization o ON o.id = s.organization_id "
            "WHERE s.id = :s"), params)
        assert s is not None
        identity = (await self.survivors.identities([survivor_id])).get(survivor_id)
        survivor = {
            "id": _gid("Survivor", s.id), "organization": {"id": _gid("Organization", s.organization_id),
                                                          "name": s.organization_name},
            "pseudonym": s.pseudonym, "birthYear": s.birth_year, "sex": s.sex, "county": s.county,
            "languages": list(s.languages), "riskLevel": s.risk_level, "registeredAt": _iso(s.created_at),
            "registeredBy": _gid("StaffUser", s.registered_by_id), "caseManager": _gid("StaffUser", s.case_manager_id),
            "identity": None if identity is None else {
                "legalName": identity.legal_name, "phone": identity.phone, "guardianName": identity.guardian_name,
                "guardianPhone": identity.guardian_phone, "location": identity.location},
            "legalHold": None if s.legal_hold_at is None else {"since": _iso(s.legal_hold_at),
                                                              "reason": s.legal_hold_reason},
            "erasureRequestedAt": _iso(s.erasure_requested_at), "erasedAt": _iso(s.erased_at),
        }
        consents = [{
            "id": _gid("Consent", c.id), "recipient": {"id": _gid("Organization", c.recipient_id), "name": c.name},
            "purposes": list(c.purposes), "dataCategories": list(c.data_categories), "givenBy": c.given_by,
            "childAssent": c.child_assent, "validFrom": _iso(c.valid_from), "validUntil": _iso(c.valid_until),
            "status": c.status, "withdrawnAt": _iso(c.withdrawn_at),
            "withdrawalReason": opened(c, "consent", "withdrawal_reason", c.id), "formVersion": c.form_version,
            "language": c.language, "witness": opened(c, "consent", "witness", c.id), "recordedAt": _iso(c.created_at),
        } for c in await self.db.all(text(
            "SELECT c.*, o.name FROM consent c JOIN organization o ON o.id = c.recipient_id WHERE c.survivor_id = :s "
            "ORDER BY c.created_at, c.id"), params)]
        history: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for h in await self.db.all(text(
                "SELECT h.* FROM referral_status_change h JOIN referral r ON r.id = h.referral_id "
                "WHERE r.survivor_id = :s ORDER BY h.at, h.id"), params):
            history.setdefault(h.referral_id, []).append({
                "at": _iso(h.at), "from": h.from_status, "to": h.to_status, "by": h.actor,
                "reason": opened(h, "referral_status_change", "reason", h.id)})
        referrals = [{
            "id": _gid("Referral", r.id),
            "receivingOrganization": {"id": _gid("Organization", r.receiving_organization_id), "name": r.name},
            "consent": _gid("Consent", r.consent_id), "service": r.service, "priority": r.priority,
            "status": r.status, "statusReason": opened(r, "referral", "status_reason", r.id),
            "reason": opened(r, "referral", "reason", r.id), "outcome": opened(r, "referral", "outcome", r.id),
            "assignedCounselor": _gid("StaffUser", r.assigned_counselor_id), "createdAt": _iso(r.created_at),
            "respondBy": _iso(r.respond_by), "history": history.get(r.id, []),
        } for r in await self.db.all(text(
            "SELECT r.*, o.name FROM referral r JOIN organization o ON o.id = r.receiving_organization_id "
            "WHERE r.survivor_id = :s ORDER BY r.created_at, r.id"), params)]
        sessions = [{
            "id": _gid("CounselingSession", c.id), "referral": _gid("Referral", c.referral_id),
            "counselor": _gid("StaffUser", c.counselor_id), "startedAt": _iso(c.started_at),
            "durationMinutes": c.duration_minutes, "modality": c.modality, "sessionType": c.session_type,
            "attendance": c.attendance, "notes": opened(c, "counseling_session", "notes", c.id),
            "safeguardingConcern": None if c.concern_level is None else {
                "level": c.concern_level, "raisedAt": _iso(c.concern_raised_at),
                "description": opened(c, "counseling_session", "concern_description", c.id)},
        } for c in await self.db.all(text(
            "SELECT * FROM counseling_session WHERE survivor_id = :s ORDER BY started_at, id"), params)]
        progress: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for p in await self.db.all(text(
                "SELECT p.* FROM goal_progress p JOIN care_goal g ON g.id = p.goal_id WHERE g.survivor_id = :s "
                "ORDER BY p.at, p.id"), params):
            progress.setdefault(p.goal_id, []).append({
                "at": _iso(p.at), "achievementStatus": p.achievement_status, "lifecycleStatus": p.lifecycle_status,
                "by": p.actor, "note": opened(p, "goal_progress", "note", p.id)})
        goals = [{
            "id": _gid("CareGoal", g.id), "referral": _gid("Referral", g.referral_id), "domain": g.domain,
            "description": opened(g, "care_goal", "description", g.id), "targetDate": _iso(g.target_date),
            "lifecycleStatus": g.lifecycle_status, "achievementStatus": g.achievement_status,
            "createdAt": _iso(g.created_at), "progress": progress.get(g.id, []),
        } for g in await self.db.all(text(
            "SELECT * FROM care_goal WHERE survivor_id = :s ORDER BY created_at, id"), params)]
        milestones = [{
            "id": _gid("Milestone", m.id), "referral": _gid("Referral", m.referral_id),
            "goal": _gid("CareGoal", m.goal_id),
            "title": opened(m, "milestone", "title", m.id), "achievedOn": _iso(m.achieved_on),
            "note": opened(m, "milestone", "note", m.id),
        } for m in await self.db.all(text(
            "SELECT * FROM milestone WHERE survivor_id = :s ORDER BY achieved_on, id"), params)]
        assessments = [{
            "id": _gid("Assessment", a.id), "referral": _gid("Referral", a.referral_id),
            "instrument": {"key": a.key, "version": a.instrument_version}, "administeredOn": _iso(a.administered_on),
            "subdomainScores": a.subdomain_scores, "domainScores": a.domain_scores, "overallScore": a.overall_score,
            "meetsThreshold": a.meets_threshold,
        } for a in await self.db.all(text(
            "SELECT a.*, i.key, i.version AS instrument_version FROM assessment a "
            "JOIN assessment_instrument i ON i.id = a.instrument_id WHERE a.survivor_id = :s "
            "ORDER BY a.administered_on, a.id"), params)]
        audit = [{
            "seq": e.seq, "at": _iso(e.at), "actor": e.actor, "clientId": e.client_id,
            "organization": _gid("Organization", e.organization_id), "action": e.action, "recordType": e.record_type,
            "recordId": e.record_id, "purpose": e.purpose, "outcome": e.outcome,
        } for e in await self.db.all(text("SELECT * FROM subject_audit_trail(:s)"), params)]
        return {"survivor": survivor, "consents": consents, "referrals": referrals, "sessions": sessions,
                "goals": goals, "milestones": milestones, "assessments": assessments,
                "safeguardingConcerns": [{"session": x["id"], **x["safeguardingConcern"]} for x in sessions
                                         if x["safeguardingConcern"]],
                "auditTrail": audit}
