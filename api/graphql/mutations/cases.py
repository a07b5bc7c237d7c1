"""Mutations on survivors, consents and referrals: one input, a payload with userErrors."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import strawberry

from api.graphql.context import Context
from api.graphql.errors import UserError
from api.graphql.mutations.base import decode_id, run_mutation
from api.graphql.types.referral import Referral
from api.graphql.types.survivor import Consent, Survivor
from domain import enums
from domain.referrals import ReferralAction, ResponseDeadlines
from domain.use_cases import consents, referrals, survivors

# ----------------------------------------------------------------------------- inputs and payloads


@strawberry.input
class RegisterSurvivorInput:
    idempotency_key: str | None = None
    pseudonym: str
    legal_name: str
    birth_year: int
    sex: enums.Sex
    county: str | None = None
    languages: list[str] | None = None
    risk_level: enums.RiskLevel | None = None
    phone: str | None = None
    guardian_name: str | None = None
    guardian_phone: str | None = None
    location: str | None = None


@strawberry.type
class SurvivorPayload:
    survivor: Survivor | None
    user_errors: list[UserError]

    @strawberry.field(description="Survivors you may see who share a phone (hers or her guardian's) with this one, "
                                  "flagged when she was registered: check before going on. A match you may not see "
                                  "is never shown; your organization's supervisors review it (duplicateReviews).")
    async def possible_duplicates(self, info: strawberry.Info) -> list[Survivor]:
        if self.survivor is None:
            return []
        context: Context = info.context
        found = await survivors.possible_duplicates(unit=context.unit, principal=context.principal,
                                                    survivor_ids=[self.survivor.view.id])
        return [Survivor.from_view(v) for v in found.get(self.survivor.view.id, [])]


@strawberry.input
class RecordConsentInput:
    idempotency_key: str | None = None
    survivor_id: strawberry.ID
    recipient_id: strawberry.ID
    purposes: list[enums.ConsentPurpose]
    data_categories: list[enums.DataCategory]
    given_by: enums.ConsentGiver
    child_assent: bool | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    form_version: str | None = None
    language: str | None = None
    witness: str | None = None


@strawberry.input
class WithdrawConsentInput:
    idempotency_key: str | None = None
    consent_id: strawberry.ID
    expected_version: int | None = None
    reason: str


@strawberry.type
class ConsentPayload:
    consent: Consent | None
    user_errors: list[UserError]


@strawberry.input
class CreateReferralInput:
    idempotency_key: str | None = None
    survivor_id: strawberry.ID
    receiving_organization_id: strawberry.ID
    service: enums.ServiceType
    priority: enums.ReferralPriority
    reason: str
    consent_id: strawberry.ID
    draft: bool | None = strawberry.field(default=None,
                                          description="Create as DRAFT instead of sending (REQUESTED).")


@strawberry.input
class ReferralActionInput:
    idempotency_key: str | None = None
    referral_id: strawberry.ID
    expected_version: int | None = None


@strawberry.input
class ReferralReasonInput:
    idempotency_key: str | None = None
    referral_id: strawberry.ID
    expected_version: int | None = None
    reason: str


@strawberry.input
class AssignCounselorInput:
    idempotency_key: str | None = None
    referral_id: strawberry.ID
    counselor_id: strawberry.ID
    expected_version: int | None = None


@strawberry.input
class CompleteReferralInput:
    idempotency_key: str | None = None
    referral_id: strawberry.ID
    expected_version: int | None = None
    outcome: str


@strawberry.type
class ReferralPayload:
    referral: Referral | None
    user_errors: list[UserError]


# ----------------------------------------------------------------------------- loading results


async def load_survivor(context: Context, survivor_id: uuid.UUID) -> Survivor | None:
    found = await survivors.by_id(unit=context.unit, principal=context.principal, ids=[survivor_id])
    return Survivor.from_view(found[survivor_id]) if survivor_id in found else None


async def load_consent(context: Context, consent_id: uuid.UUID) -> Consent | None:
    found = await consents.by_id(unit=context.unit, principal=context.principal, ids=[consent_id])
    return Consent.from_view(found[consent_id]) if consent_id in found else None


async def load_referral(context: Context, referral_id: uuid.UUID) -> Referral | None:
    found = await referrals.by_id(unit=context.unit, principal=context.principal, ids=[referral_id])
    return Referral.from_view(found[referral_id]) if referral_id in found else None


def deadlines(context: Context) -> ResponseDeadlines:
    s = context.state.settings
    return ResponseDeadlines(routine=timedelta(hours=s.response_routine_hours),
                             urgent=timedelta(hours=s.response_urgent_hours),
                             asap=timedelta(hours=s.response_asap_hours))


async def _referral_action(info: strawberry.Info, name: str, input: ReferralActionInput | ReferralReasonInput
                           | CompleteReferralInput, action: ReferralAction) -> ReferralPayload:
    async def execute(context: Context) -> uuid.UUID:
        return await referrals.act(
            unit=context.unit, principal=context.principal, referral_id=decode_id(input.referral_id, "Referral"),
            action=action, expected_version=input.expected_version, reason=getattr(input, "reason", None),
            outcome=getattr(input, "outcome", None), deadlines=deadlines(context),
        )

    referral, errors = await run_mutation(info, operation=name, record_type="Referral", input=input,
                                          execute=execute, load=load_referral)
    return ReferralPayload(referral=referral, user_errors=errors)


# ----------------------------------------------------------------------------- the mutations


@strawberry.type
class CaseMutations:
    @strawberry.mutation(description="Register a survivor (referring NGO case managers). Identifying fields are "
                                     "encrypted at rest. A phone already on file does not stop it: "
                                     "see possibleDuplicates.")
    async def register_survivor(self, info: strawberry.Info, input: RegisterSurvivorInput) -> SurvivorPayload:
        async def execute(context: Context) -> uuid.UUID:
            new = survivors.validate_new_survivor(
                pseudonym=input.pseudonym, legal_name=input.legal_name, birth_year=input.birth_year, sex=input.sex,
                county=input.county, languages=input.languages, risk_level=input.risk_level, phone=input.phone,
                guardian_name=input.guardian_name, guardian_phone=input.guardian_phone, location=input.location,
                now=context.unit.now(),
            )
            return await survivors.register(unit=context.unit, principal=context.principal, new=new)

        survivor, errors = await run_mutation(info, operation="registerSurvivor", record_type="Survivor",
                                              input=input, execute=execute, load=load_survivor)
        return SurvivorPayload(survivor=survivor, user_errors=errors)

    @strawberry.mutation(description="Record a consent naming one receiving organization, purposes and data "
                                     "categories. For a child: given by a guardian with the child's assent.")
    async def record_consent(self, info: strawberry.Info, input: RecordConsentInput) -> ConsentPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await consents.record(
                unit=context.unit, principal=context.principal,
                survivor_id=decode_id(input.survivor_id, "Survivor"),
                recipient_id=decode_id(input.recipient_id, "Organization"), purposes=input.purposes,
                data_categories=input.data_categories, given_by=input.given_by, child_assent=input.child_assent,
                valid_from=input.valid_from, valid_until=input.valid_until, form_version=input.form_version,
                language=input.language, witness=input.witness,
            )

        consent, errors = await run_mutation(info, operation="recordConsent", record_type="Consent", input=input,
                                             execute=execute, load=load_consent)
        return ConsentPayload(consent=consent, user_errors=errors)

    @strawberry.mutation(description="Withdraw a consent now: open referrals relying on it are cancelled "
                                     "(CONSENT_WITHDRAWN) and the partner is told, in the same transaction.")
    async def withdraw_consent(self, info: strawberry.Info, input: WithdrawConsentInput) -> ConsentPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await consents.withdraw(unit=context.unit, principal=context.principal,
                                           consent_id=decode_id(input.consent_id, "Consent"),
                                           expected_version=input.expected_version, reason=input.reason)

        consent, errors = await run_mutation(info, operation="withdrawConsent", record_type="Consent", input=input,
                                             execute=execute, load=load_consent)
        return ConsentPayload(consent=consent, user_errors=errors)

    @strawberry.mutation(description="Refer a survivor to a partner; needs an in-force consent naming the partner "
                                     "and REFERRAL (else CONSENT_REQUIRED).")
    async def create_referral(self, info: strawberry.Info, input: CreateReferralInput) -> ReferralPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await referrals.create(
                unit=context.unit, principal=context.principal, survivor_id=decode_id(input.survivor_id, "Survivor"),
                receiving_organization_id=decode_id(input.receiving_organization_id, "Organization"),
                service=input.service, priority=input.priority, reason=input.reason,
                consent_id=decode_id(input.consent_id, "Consent"), draft=bool(input.draft),
                deadlines=deadlines(context),
            )

        referral, errors = await run_mutation(info, operation="createReferral", record_type="Referral", input=input,
                                              execute=execute, load=load_referral)
        return ReferralPayload(referral=referral, user_errors=errors)

    @strawberry.mutation(description="DRAFT → REQUESTED (referring NGO).")
    async def send_referral(self, info: strawberry.Info, input: ReferralActionInput) -> ReferralPayload:
        return await _referral_action(info, "sendReferral", input, ReferralAction.SEND)

    @strawberry.mutation(description="REQUESTED → ACCEPTED (partner coordinator or system).")
    async def accept_referral(self, info: strawberry.Info, input: ReferralActionInput) -> ReferralPayload:
        return await _referral_action(info, "acceptReferral", input, ReferralAction.ACCEPT)

    @strawberry.mutation(description="REQUESTED → REJECTED with a reason (partner coordinator or system).")
    async def reject_referral(self, info: strawberry.Info, input: ReferralReasonInput) -> ReferralPayload:
        return await _referral_action(info, "rejectReferral", input, ReferralAction.REJECT)

    @strawberry.mutation(description="Assign one of the partner's counselors (partner coordinator or system).")
    async def assign_counselor(self, info: strawberry.Info, input: AssignCounselorInput) -> ReferralPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await referrals.assign_counselor(
                unit=context.unit, principal=context.principal, referral_id=decode_id(input.referral_id, "Referral"),
                counselor_id=decode_id(input.counselor_id, "StaffUser"), expected_version=input.expected_version,
            )

        referral, errors = await run_mutation(info, operation="assignCounselor", record_type="Referral", input=input,
                                              execute=execute, load=load_referral)
        return ReferralPayload(referral=referral, user_errors=errors)

    @strawberry.mutation(description="ACCEPTED → IN_PROGRESS (the partner).")
    async def start_referral(self, info: strawberry.Info, input: ReferralActionInput) -> ReferralPayload:
        return await _referral_action(info, "startReferral", input, ReferralAction.START)

    @strawberry.mutation(description="ACCEPTED or IN_PROGRESS → ON_HOLD with a reason (the partner).")
    async def hold_referral(self, info: strawberry.Info, input: ReferralReasonInput) -> ReferralPayload:
        return await _referral_action(info, "holdReferral", input, ReferralAction.HOLD)

    @strawberry.mutation(description="ON_HOLD → IN_PROGRESS (the partner).")
    async def resume_referral(self, info: strawberry.Info, input: ReferralActionInput) -> ReferralPayload:
        return await _referral_action(info, "resumeReferral", input, ReferralAction.RESUME)

    @strawberry.mutation(description="→ COMPLETED with an outcome (the partner).")
    async def complete_referral(self, info: strawberry.Info, input: CompleteReferralInput) -> ReferralPayload:
        return await _referral_action(info, "completeReferral", input, ReferralAction.COMPLETE)

    @strawberry.mutation(description="→ FAILED with a reason (the partner).")
    async def fail_referral(self, info: strawberry.Info, input: ReferralReasonInput) -> ReferralPayload:
        return await _referral_action(info, "failReferral", input, ReferralAction.FAIL)

    @strawberry.mutation(description="→ CANCELLED with a reason (the referring NGO, or the partner once accepted).")
    async def cancel_referral(self, info: strawberry.Info, input: ReferralReasonInput) -> ReferralPayload:
        return await _referral_action(info, "cancelReferral", input, ReferralAction.CANCEL)
