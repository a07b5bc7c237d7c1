"""Recording and withdrawing consent; withdrawal cuts access in the same transaction (rule 2)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from domain import policy
from domain.consent import check_new_consent, is_child
from domain.enums import (
    ActorKind,
    ConsentGiver,
    ConsentPurpose,
    ConsentStatus,
    DataCategory,
    OrganizationKind,
    ReferralStatus,
)
from domain.errors import FieldChecks, Forbidden, InvalidTransition, NotFound, VersionConflict
from domain.ids import to_global_id
from domain.kenya import normalize_language
from domain.ports import NewConsent, ReferralChange, Unit
from domain.principal import Principal
from domain.referrals import CONSENT_WITHDRAWN, ReferralAction, transition
from domain.scopes import Action, Resource
from domain.use_cases.common import required_text, text
from domain.views import ConsentView


async def record(*, unit: Unit, principal: Principal, survivor_id: uuid.UUID | None, recipient_id: uuid.UUID | None,
                 purposes: Sequence[ConsentPurpose], data_categories: Sequence[DataCategory],
                 given_by: ConsentGiver, child_assent: bool | None, valid_from: datetime | None,
                 valid_until: datetime | None, form_version: str | None, language: str | None,
                 witness: str | None) -> uuid.UUID:
    policy.require(principal, Resource.CONSENT, Action.CREATE)
    if not policy.may_register_survivors(principal):
        raise Forbidden("Only the referring organization's case managers record consent.")
    now = unit.now()
    survivors = await unit.survivors.by_id(policy.rows(principal, now), [survivor_id] if survivor_id else [])
    survivor = survivors.get(survivor_id) if survivor_id else None
    if survivor is None or not policy.may_manage_consent(principal, survivor_organization_id=survivor.organization_id):
        raise NotFound(field=("input", "survivorId"))
    recipient = await unit.directory.organization(recipient_id) if recipient_id else None
    if recipient is None or not recipient.active or recipient.kind is not OrganizationKind.PARTNER:
        raise NotFound("No such partner organization.", field=("input", "recipientId"))
    start = valid_from or now
    checks = FieldChecks()  # every refused field at once, so the caller fixes them in one round trip
    checks.check(lambda: check_new_consent(
        purposes=purposes, data_categories=data_categories, valid_from=start, valid_until=valid_until,
        given_by=given_by, child_assent=child_assent,
        survivor_is_child=survivor.birth_year is not None and is_child(birth_year=survivor.birth_year,
                                                                        at=now.date()),
        now=now,
    ))
    version = checks.check(lambda: text(form_version, field=("input", "formVersion"), max_length=64, required=False))
    tag = checks.check(lambda: normalize_language(language, field=("input", "language"))) if language else None
    witnessed_by = checks.check(lambda: text(witness, field=("input", "witness"), max_length=200, required=False))
    checks.done()
    consent_id = await unit.consents.insert(NewConsent(
        survivor_id=survivor.id, organization_id=principal.organization_id, recipient_id=recipient.id,
        purposes=tuple(dict.fromkeys(purposes)), data_categories=tuple(dict.fromkeys(data_categories)),
        given_by=given_by.value, child_assent=child_assent, valid_from=start, valid_until=valid_until,
        form_version=version, language=tag, witness=witnessed_by, recorded_by_id=principal.user_id,
    ))
    await unit.audit(action="consent_change", record_type="Consent", record_id=to_global_id("Consent", consent_id),
                     outcome="allowed", purpose="CONSENT_RECORDED")
    return consent_id


async def withdraw(*, unit: Unit, principal: Principal, consent_id: uuid.UUID | None,
                   expected_version: int | None, reason: str) -> uuid.UUID:
    """Withdraw now: cancel open referrals relying on it and tell the partner, all in one transaction."""
    policy.require(principal, Resource.CONSENT, Action.UPDATE)
    why = required_text(reason, field=("input", "reason"), max_length=500, multiline=True)
    now = unit.now()
    consent = await unit.consents.lock(policy.rows(principal, now), consent_id) if consent_id else None
    if consent is None or not policy.may_manage_consent(principal, survivor_organization_id=consent.organization_id):
        raise NotFound(field=("input", "consentId"))
    if consent.status is ConsentStatus.WITHDRAWN:
        raise InvalidTransition("This consent has already been withdrawn.")
    if expected_version is not None and expected_version != consent.version:
        raise VersionConflict("The consent was changed by someone else; reload it and try again.",
                              field=("input", "expectedVersion"))
    if not await unit.consents.withdraw(consent.id, expected_version=consent.version, at=now, reason=why):
        raise VersionConflict("The consent was changed by someone else; reload it and try again.",
                              field=("input", "expectedVersion"))
    consent_gid = to_global_id("Consent", consent.id)
    for referral in await unit.referrals.open_relying_on(consent.id):
        new_status = transition(status=referral.status, action=ReferralAction.CANCEL, actor=ActorKind.SYSTEM,
                                reason=CONSENT_WITHDRAWN)
        await unit.referrals.change(ReferralChange(
            referral_id=referral.id, expected_version=None,
            values={"status": new_status.value, "status_reason": CONSENT_WITHDRAWN},
        ))
        await unit.referrals.record_status(
            referral_id=referral.id, organization_id=referral.referring_organization_id,
            from_status=referral.status, to_status=new_status, reason=CONSENT_WITHDRAWN, actor="system",
            actor_user_id=None, actor_client_id=None,
        )
        referral_gid = to_global_id("Referral", referral.id)
        # Both sides' systems hear of it (a draft was never shown to the partner).
        sides = [referral.referring_organization_id]
        if referral.status is not ReferralStatus.DRAFT:
            sides.append(referral.receiving_organization_id)
        for organization_id in sides:
            await unit.emit(event_type="referral.cancelled", organization_id=organization_id,
                            data={"referralId": referral_gid, "status": new_status.value,
                                  "reason": CONSENT_WITHDRAWN})
        await unit.audit(action="update", record_type="Referral", record_id=referral_gid, outcome="allowed",
                         purpose=CONSENT_WITHDRAWN)
    for organization_id in dict.fromkeys((consent.recipient_id, consent.organization_id)):
        await unit.emit(event_type="consent.withdrawn", organization_id=organization_id,
                        data={"consentId": consent_gid})
    await unit.audit(action="consent_change", record_type="Consent", record_id=consent_gid, outcome="allowed",
                     purpose="CONSENT_WITHDRAWN")
    return consent.id


async def by_id(*, unit: Unit, principal: Principal, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, ConsentView]:
    policy.require(principal, Resource.CONSENT, Action.READ)
    return await unit.consents.by_id(policy.rows(principal, unit.now()), ids)


async def by_survivor(*, unit: Unit, principal: Principal,
                      survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Sequence[ConsentView]]:
    policy.require(principal, Resource.CONSENT, Action.SEARCH)
    return await unit.consents.by_survivor(policy.rows(principal, unit.now()), survivor_ids)
