"""Creating referrals and moving them through Gravity's closed-loop states."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from domain import policy
from domain.consent import ConsentTerms, covers
from domain.enums import ActorKind, ConsentPurpose, OrganizationKind, ReferralPriority, ReferralStatus, ServiceType
from domain.errors import ConsentRequired, Forbidden, InvalidInput, InvalidTransition, NotFound, VersionConflict
from domain.ids import to_global_id
from domain.paging import Page, PageRequest
from domain.ports import CounselorCaseload, NewReferral, ReferralChange, ReferralFilter, Unit
from domain.principal import Principal
from domain.referrals import ReferralAction, ResponseDeadlines, respond_by, transition
from domain.scopes import Action, Resource
from domain.use_cases.common import required_text
from domain.views import ConsentView, ReferralView, StatusChangeView

TRIAGE_ACTIONS = frozenset({ReferralAction.ACCEPT, ReferralAction.REJECT})
VERSION_CONFLICT_MESSAGE = "The referral was changed by someone else; reload it and try again."


def _terms(consent: ConsentView) -> ConsentTerms:
    return ConsentTerms(
        recipient_organization_id=consent.recipient_id, purposes=frozenset(consent.purposes),
        data_categories=frozenset(consent.data_categories), valid_from=consent.valid_from,
        valid_until=consent.valid_until, withdrawn_at=consent.withdrawn_at,
    )


async def create(*, unit: Unit, principal: Principal, survivor_id: uuid.UUID | None,
                 receiving_organization_id: uuid.UUID | None, service: ServiceType, priority: ReferralPriority,
                 reason: str, consent_id: uuid.UUID | None, draft: bool,
                 deadlines: ResponseDeadlines) -> uuid.UUID:
    policy.require(principal, Resource.REFERRAL, Action.CREATE)
    if not policy.may_register_survivors(principal):
        raise Forbidden("Only the referring organization's case managers create referrals.")
    now = unit.now()
    scope = policy.rows(principal, now)
    survivor = (await unit.survivors.by_id(scope, [survivor_id])).get(survivor_id) if survivor_id else None
    if survivor is None:
        raise NotFound(field=("input", "survivorId"))
    receiver = await unit.directory.organization(receiving_organization_id) if receiving_organization_id else None
    if receiver is None or not receiver.active or receiver.kind is not OrganizationKind.PARTNER:
        raise NotFound("No such partner organization.", field=("input", "receivingOrganizationId"))
    if service not in receiver.services:
        raise InvalidInput("The receiving organization does not offer this service.", field=("input", "service"))
    summary = required_text(reason, field=("input", "reason"), max_length=2000, multiline=True)
    consent = (await unit.consents.by_id(scope, [consent_id])).get(consent_id) if consent_id else None
    if consent is None or consent.survivor_id != survivor.id:
        raise NotFound("No such consent for this survivor.", field=("input", "consentId"))
    if not covers(_terms(consent), receiver.id, ConsentPurpose.REFERRAL, None, now):
        raise ConsentRequired("The consent is not in force for a referral to this organization.",
                              field=("input", "consentId"))
    status = ReferralStatus.DRAFT if draft else ReferralStatus.REQUESTED
    referral_id = await unit.referrals.insert(NewReferral(
        survivor_id=survivor.id, referring_organization_id=principal.organization_id,
        receiving_organization_id=receiver.id, consent_id=consent.id, service=service.value,
        priority=priority.value, status=status, reason=summary,
        respond_by=None if draft else respond_by(priority=priority, requested_at=now, deadlines=deadlines),
        created_by_id=principal.user_id,
    ))
    await unit.referrals.record_status(
        referral_id=referral_id, organization_id=principal.organization_id, from_status=None, to_status=status,
        reason=None, actor=principal.actor, actor_user_id=principal.user_id, actor_client_id=principal.client_id,
    )
    gid = to_global_id("Referral", referral_id)
    await unit.audit(action="create", record_type="Referral", record_id=gid, outcome="allowed", purpose="REFERRAL")
    if not draft:
        await unit.emit(event_type="referral.requested", organization_id=receiver.id,
                        data={"referralId": gid, "status": status.value})
    return referral_id


async def _locked(unit: Unit, principal: Principal, referral_id: uuid.UUID | None) -> ReferralView:
    referral = await unit.referrals.lock(policy.rows(principal, unit.now()), referral_id) if referral_id else None
    if referral is None:
        raise NotFound(field=("input", "referralId"))
    return referral


def _check_version(referral: ReferralView, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != referral.version:
        raise VersionConflict(VERSION_CONFLICT_MESSAGE, field=("input", "expectedVersion"))


async def _notify(unit: Unit, referral: ReferralView, *, event_type: str,
                  status: ReferralStatus, reason: str | None = None) -> None:
    """Tell both sides' systems (ids only), the acting organization's included: a coordinator's own
    assignment or acceptance, made in a staff app, is news to her organization's case system too. A
    system that made the change itself gets it back as well; it fetches the state and finds it current."""
    gid = to_global_id("Referral", referral.id)
    data = {"referralId": gid, "status": status.value}
    recipients = {referral.receiving_organization_id, referral.referring_organization_id}
    for organization_id in sorted(recipients):
        await unit.emit(event_type=event_type, organization_id=organization_id, data=data)


async def act(*, unit: Unit, principal: Principal, referral_id: uuid.UUID | None, action: ReferralAction,
              expected_version: int | None, reason: str | None = None, outcome: str | None = None,
              deadlines: ResponseDeadlines) -> uuid.UUID:
    """One state-machine step: who may, from which status, with which reason (domain.referrals)."""
    policy.require(principal, Resource.REFERRAL, Action.UPDATE)
    referral = await _locked(unit, principal, referral_id)
    actor = policy.actor_kind(principal, referring_organization_id=referral.referring_organization_id,
                              receiving_organization_id=referral.receiving_organization_id)
    if actor is None:
        raise Forbidden("Your role cannot change this referral.")
    if actor is ActorKind.OWNER and (action in TRIAGE_ACTIONS or action is ReferralAction.CANCEL) \
            and not policy.may_triage_referrals(principal):
        raise Forbidden("Only the partner's coordinator or system can accept, reject or cancel a referral.")
    _check_version(referral, expected_version)
    cleaned_reason = required_text(reason, field=("input", "reason"), max_length=1000, multiline=True) \
        if reason is not None else None
    new_status = transition(status=referral.status, action=action, actor=actor, reason=cleaned_reason)
    now = unit.now()
    values: dict[str, object] = {"status": new_status.value, "status_reason": cleaned_reason}
    if action is ReferralAction.SEND:
        values["respond_by"] = respond_by(priority=referral.priority, requested_at=now, deadlines=deadlines)
    if action is ReferralAction.COMPLETE:
        values["outcome"] = required_text(outcome, field=("input", "outcome"), max_length=2000, multiline=True)
    if not await unit.referrals.change(ReferralChange(referral.id, referral.version, values)):
        raise VersionConflict(VERSION_CONFLICT_MESSAGE, field=("input", "expectedVersion"))
    await unit.referrals.record_status(
        referral_id=referral.id, organization_id=referral.referring_organization_id, from_status=referral.status,
        to_status=new_status, reason=cleaned_reason, actor=principal.actor, actor_user_id=principal.user_id,
        actor_client_id=principal.client_id,
    )
    await unit.audit(action="update", record_type="Referral", record_id=to_global_id("Referral", referral.id),
                     outcome="allowed", purpose=action.value)
    if action is ReferralAction.SEND:
        await unit.emit(event_type="referral.requested", organization_id=referral.receiving_organization_id,
                        data={"referralId": to_global_id("Referral", referral.id), "status": new_status.value})
    else:
        event = "referral.cancelled" if new_status is ReferralStatus.CANCELLED else "referral.updated"
        await _notify(unit, referral, event_type=event, status=new_status)
    return referral.id


async def assign_counselor(*, unit: Unit, principal: Principal, referral_id: uuid.UUID | None,
                           counselor_id: uuid.UUID | None, expected_version: int | None) -> uuid.UUID:
    policy.require(principal, Resource.REFERRAL, Action.UPDATE)
    referral = await _locked(unit, principal, referral_id)
    if not policy.may_assign_counselor(principal, receiving_organization_id=referral.receiving_organization_id):
        raise Forbidden("Only the partner's coordinator or system assigns a counselor.")
    _check_version(referral, expected_version)
    if referral.status not in (ReferralStatus.ACCEPTED, ReferralStatus.IN_PROGRESS, ReferralStatus.ON_HOLD):
        raise InvalidTransition(f"A referral in status {referral.status.value} cannot get a counselor; "
                                "accept it first.")
    if counselor_id is None or not await unit.directory.counselor_in(user_id=counselor_id,
                                                                     organization_id=principal.organization_id):
        raise NotFound("No such counselor in your organization.", field=("input", "counselorId"))
    if not await unit.referrals.change(ReferralChange(referral.id, referral.version,
                                                      {"assigned_counselor_id": counselor_id})):
        raise VersionConflict(VERSION_CONFLICT_MESSAGE, field=("input", "expectedVersion"))
    await unit.audit(action="update", record_type="Referral", record_id=to_global_id("Referral", referral.id),
                     outcome="allowed", purpose="ASSIGN_COUNSELOR")
    await _notify(unit, referral, event_type="referral.updated", status=referral.status)
    return referral.id


async def counselors(*, unit: Unit, principal: Principal, organization_id: uuid.UUID) -> Sequence[CounselorCaseload]:
    """Whom `assignCounselor` can name, with the open referrals each carries; empty outside the caller's
    own partner organization (domain.policy.may_see_counselors)."""
    if not policy.may_see_counselors(principal, organization_id):
        return []
    return await unit.directory.counselors(organization_id)


async def by_id(*, unit: Unit, principal: Principal, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, ReferralView]:
    policy.require(principal, Resource.REFERRAL, Action.READ)
    return await unit.referrals.by_id(policy.rows(principal, unit.now()), ids)


async def page(*, unit: Unit, principal: Principal, filter: ReferralFilter,
               request: PageRequest) -> Page[ReferralView]:
    policy.require(principal, Resource.REFERRAL, Action.SEARCH)
    return await unit.referrals.page(policy.rows(principal, unit.now()), filter, request)


async def by_survivor(*, unit: Unit, principal: Principal, survivor_ids: Sequence[uuid.UUID],
                      request: PageRequest) -> Mapping[uuid.UUID, Page[ReferralView]]:
    policy.require(principal, Resource.REFERRAL, Action.SEARCH)
    return await unit.referrals.by_survivor(policy.rows(principal, unit.now()), survivor_ids, request)


async def history(*, unit: Unit, principal: Principal,
                  referral_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[StatusChangeView]]:
    """Callers pass ids of referrals they were already shown; the history is part of the referral."""
    return await unit.referrals.history(referral_ids)


