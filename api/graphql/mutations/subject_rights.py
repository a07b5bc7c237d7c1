"""A survivor's data subject rights: rectification, legal hold, erasure and the subject access export."""

from __future__ import annotations

import json
import uuid

import strawberry

from api.graphql.context import Context
from api.graphql.errors import UserError
from api.graphql.inputs import check_input
from api.graphql.mutations.base import decode_id, refused, run_mutation
from api.graphql.mutations.cases import SurvivorPayload, load_survivor
from api.graphql.types.survivor import DuplicateReview, Survivor
from domain import enums
from domain.errors import DomainError, Forbidden
from domain.use_cases import subject_rights, survivors
from domain.use_cases.subject_rights import IdentityCorrection

SURVIVOR_ID = "The global id of a Survivor (its `id` field)."


@strawberry.input(description="Corrected identifying details. Leave a field out to keep it; an empty text clears "
                              "it (not legalName). The old values are overwritten, kept nowhere.")
class CorrectSurvivorIdentityInput:
    idempotency_key: str | None = None
    survivor_id: strawberry.ID = strawberry.field(description=SURVIVOR_ID)
    reason: enums.CorrectionReason = strawberry.field(
        description="Why (recorded in the audit trail): one of SPELLING, SUBJECT_REQUEST, CONTACT_CHANGED, "
                    "WRONG_DETAILS.")
    legal_name: str | None = None
    phone: str | None = None
    guardian_name: str | None = None
    guardian_phone: str | None = None
    location: str | None = None
    expected_version: int | None = None


@strawberry.input
class PlaceLegalHoldInput:
    idempotency_key: str | None = None
    survivor_id: strawberry.ID = strawberry.field(description=SURVIVOR_ID)
    reason: enums.LegalHoldReason = strawberry.field(
        description="Why the record must be kept (audited): one of PROSECUTION, INVESTIGATION, COURT_ORDER, "
                    "CIVIL_PROCEEDINGS, SAFEGUARDING_INQUIRY.")
    expected_version: int | None = None


@strawberry.input
class LiftLegalHoldInput:
    idempotency_key: str | None = None
    survivor_id: strawberry.ID = strawberry.field(description=SURVIVOR_ID)
    reason: enums.LegalHoldRelease = strawberry.field(
        description="Why the hold ends (audited): one of PROCEEDINGS_CONCLUDED, ORDER_DISCHARGED, PLACED_IN_ERROR.")
    expected_version: int | None = None


@strawberry.input
class RequestSurvivorErasureInput:
    idempotency_key: str | None = None
    survivor_id: strawberry.ID = strawberry.field(description=SURVIVOR_ID)
    reason: enums.ErasureReason = strawberry.field(
        description="Who asked (audited): SUBJECT_REQUEST, GUARDIAN_REQUEST or REGISTERED_IN_ERROR "
                    "(RETENTION_EXPIRED is the retention run's own).")
    expected_version: int | None = None


@strawberry.input
class ExportSurvivorRecordInput:
    survivor_id: strawberry.ID = strawberry.field(description=SURVIVOR_ID)


@strawberry.input
class ResolveDuplicateReviewInput:
    idempotency_key: str | None = None
    review_id: strawberry.ID = strawberry.field(description="The global id of a DuplicateReview (its `id` field).")
    resolution: enums.DuplicateResolution = strawberry.field(
        description="DIFFERENT_PEOPLE (siblings sharing a household phone, say) or SAME_PERSON (registered twice: "
                    "erase one with requestSurvivorErasure, reason REGISTERED_IN_ERROR).")
    expected_version: int | None = None


@strawberry.type
class DuplicateReviewPayload:
    review: DuplicateReview | None
    user_errors: list[UserError]


async def load_review(context: Context, review_id: uuid.UUID) -> DuplicateReview | None:
    found = await survivors.duplicate_review(unit=context.unit, principal=context.principal, review_id=review_id)
    return DuplicateReview.from_view(found) if found else None


@strawberry.type(description="What became of an erasure request.")
class SurvivorErasure:
    status: enums.ErasureStatus

    @strawberry.field(description="Why it waits, or what was done, in words.")
    def explanation(self) -> str:
        return subject_rights.explain(self.status)


@strawberry.type
class SurvivorErasurePayload:
    survivor: Survivor | None
    erasure: SurvivorErasure | None = strawberry.field(description="Null when the request was refused.")
    user_errors: list[UserError]


@strawberry.type
class SurvivorExportPayload:
    document: str | None = strawberry.field(
        description="Everything Pamoja keeps about the survivor, as JSON text (format pamoja.subject-export, "
                    "version 1; README \"Data protection\"). Hand it over as a file; it is not kept.")
    user_errors: list[UserError]


def _erasure(survivor: Survivor | None) -> SurvivorErasure | None:
    if survivor is None:
        return None
    if survivor.view.erased_at is not None:
        return SurvivorErasure(status=enums.ErasureStatus.ERASED)
    return SurvivorErasure(status=enums.ErasureStatus.WAITING_FOR_LEGAL_HOLD)


@strawberry.type
class SubjectRightsMutations:
    @strawberry.mutation(description="Correct a survivor's identifying details (the registering organization's "
                                     "case managers and supervisors). The audit trail records that a correction "
                                     "happened and why; the old values are kept nowhere.")
    async def correct_survivor_identity(self, info: strawberry.Info,
                                        input: CorrectSurvivorIdentityInput) -> SurvivorPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await subject_rights.correct_identity(
                store=context.unit.subjects, principal=context.principal,
                survivor_id=decode_id(input.survivor_id, "Survivor"), reason=input.reason,
                correction=IdentityCorrection(legal_name=input.legal_name, phone=input.phone,
                                              guardian_name=input.guardian_name, guardian_phone=input.guardian_phone,
                                              location=input.location),
                expected_version=input.expected_version)

        survivor, errors = await run_mutation(info, operation="correctSurvivorIdentity", record_type="Survivor",
                                              input=input, execute=execute, load=load_survivor)
        return SurvivorPayload(survivor=survivor, user_errors=errors)

    @strawberry.mutation(description="Place a legal hold (supervisors of the survivor's organization): the record "
                                     "is kept, whatever erasure request or retention period, until it is lifted.")
    async def place_legal_hold(self, info: strawberry.Info, input: PlaceLegalHoldInput) -> SurvivorPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await subject_rights.place_legal_hold(
                store=context.unit.subjects, principal=context.principal,
                survivor_id=decode_id(input.survivor_id, "Survivor"), reason=input.reason,
                expected_version=input.expected_version)

        survivor, errors = await run_mutation(info, operation="placeLegalHold", record_type="Survivor", input=input,
                                              execute=execute, load=load_survivor)
        return SurvivorPayload(survivor=survivor, user_errors=errors)

    @strawberry.mutation(description="Lift a legal hold (supervisors of the survivor's organization). A waiting "
                                     "erasure request is then carried out by the next retention run.")
    async def lift_legal_hold(self, info: strawberry.Info, input: LiftLegalHoldInput) -> SurvivorPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await subject_rights.lift_legal_hold(
                store=context.unit.subjects, principal=context.principal,
                survivor_id=decode_id(input.survivor_id, "Survivor"), reason=input.reason,
                expected_version=input.expected_version)

        survivor, errors = await run_mutation(info, operation="liftLegalHold", record_type="Survivor", input=input,
                                              execute=execute, load=load_survivor)
        return SurvivorPayload(survivor=survivor, user_errors=errors)

    @strawberry.mutation(description="Erase a survivor's record (supervisors of her organization): her data key is "
                                     "destroyed, every free text cleared, open referrals cancelled "
                                     "(SURVIVOR_ERASED) and partners told (survivor.erased). Under a legal hold "
                                     "the request is recorded and waits; `erasure` says so.")
    async def request_survivor_erasure(self, info: strawberry.Info,
                                       input: RequestSurvivorErasureInput) -> SurvivorErasurePayload:
        async def execute(context: Context) -> uuid.UUID:
            outcome = await subject_rights.request_erasure(
                store=context.unit.subjects, principal=context.principal,
                survivor_id=decode_id(input.survivor_id, "Survivor"), reason=input.reason,
                expected_version=input.expected_version)
            return outcome.survivor_id

        survivor, errors = await run_mutation(info, operation="requestSurvivorErasure", record_type="Survivor",
                                              input=input, execute=execute, load=load_survivor)
        return SurvivorErasurePayload(survivor=survivor, erasure=_erasure(survivor), user_errors=errors)

    @strawberry.mutation(description="Record a supervisor's decision on a possible duplicate registration.")
    async def resolve_duplicate_review(self, info: strawberry.Info,
                                       input: ResolveDuplicateReviewInput) -> DuplicateReviewPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await survivors.resolve_duplicate_review(
                unit=context.unit, principal=context.principal, review_id=decode_id(input.review_id, "DuplicateReview"),
                resolution=input.resolution, expected_version=input.expected_version)

        review, errors = await run_mutation(info, operation="resolveDuplicateReview", record_type="DuplicateReview",
                                            input=input, execute=execute, load=load_review)
        return DuplicateReviewPayload(review=review, user_errors=errors)

    @strawberry.mutation(description="The subject access export (supervisors of the survivor's organization): "
                                     "everything kept about one survivor, decrypted, with the audit trail of who "
                                     "read or changed her record. The export itself is audited.")
    async def export_survivor_record(self, info: strawberry.Info,
                                     input: ExportSurvivorRecordInput) -> SurvivorExportPayload:
        context: Context = info.context
        try:
            check_input(input, ("input",))
            async with context.db.savepoint():
                document = await subject_rights.export(store=context.unit.subjects, principal=context.principal,
                                                       survivor_id=decode_id(input.survivor_id, "Survivor"))
        except DomainError as error:
            return SurvivorExportPayload(document=None, user_errors=await refused(
                context, "exportSurvivorRecord", "Survivor", error))
        except Forbidden:
            await context.unit.audit(action="exportSurvivorRecord", record_type="Survivor", record_id=None,
                                     outcome="denied", purpose="FORBIDDEN")
            raise
        return SurvivorExportPayload(document=json.dumps(document, ensure_ascii=False), user_errors=[])
