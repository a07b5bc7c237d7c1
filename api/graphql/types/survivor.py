"""Survivor, SurvivorIdentity and Consent: pseudonymous by default, identity only when allowed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.graphql.relay import Connection, Node, page_request, to_connection
from domain import enums
from domain.ids import to_global_id
from domain.kenya import county_name
from domain.views import ConsentView, DuplicateReviewView, IdentityView, SurvivorView, revealed

if TYPE_CHECKING:
    from api.graphql.types.care import Assessment, CareGoal
    from api.graphql.types.organization import Organization
    from api.graphql.types.referral import Referral

ReferralRef = Annotated["Referral", strawberry.lazy("api.graphql.types.referral")]
OrganizationRef = Annotated["Organization", strawberry.lazy("api.graphql.types.organization")]
CareGoalRef = Annotated["CareGoal", strawberry.lazy("api.graphql.types.care")]
AssessmentRef = Annotated["Assessment", strawberry.lazy("api.graphql.types.care")]


@strawberry.type(description="Identifying data: decrypted only for callers whose role and consent allow it; "
                             "every read is audited.")
class SurvivorIdentity:
    legal_name: str
    phone: str | None = strawberry.field(description="E.164; needs the CONTACT category.")
    guardian_name: str | None
    guardian_phone: str | None = strawberry.field(description="E.164; needs the CONTACT category.")
    location: str | None = strawberry.field(description="Needs the CONTACT category.")

    @classmethod
    def from_view(cls, view: IdentityView) -> SurvivorIdentity:
        return cls(legal_name=view.legal_name or "", phone=view.phone, guardian_name=view.guardian_name,
                   guardian_phone=view.guardian_phone, location=view.location)


@strawberry.type(description="A legal hold: the record is kept whatever is asked until a supervisor lifts it.")
class LegalHold:
    since: datetime
    reason: enums.LegalHoldReason


@strawberry.type(description="The survivor's data protection state, for her own organization only.")
class SurvivorDataProtection:
    legal_hold: LegalHold | None = strawberry.field(description="Null when no legal hold is in place.")
    erasure_requested_at: datetime | None = strawberry.field(
        description="An erasure request waiting for the legal hold to be lifted.")
    erasure_reason: enums.ErasureReason | None


def _data_protection(view: SurvivorView) -> SurvivorDataProtection | None:
    if not view.own_organization:
        return None
    hold = LegalHold(since=view.legal_hold_at, reason=view.legal_hold_reason) \
        if view.legal_hold_at and view.legal_hold_reason else None
    return SurvivorDataProtection(legal_hold=hold, erasure_requested_at=view.erasure_requested_at,
                                  erasure_reason=view.erasure_reason)


@strawberry.type(description="A child or young adult referred for care, known by a pseudonym and coarse facts.")
class Survivor(Node):
    id: strawberry.ID
    pseudonym: str
    birth_year: int | None = strawberry.field(
        description="Shown to the referring NGO, and to a partner once a referral is accepted.")
    age_band: str | None = strawberry.field(description="Coarse age band such as 10-14, from birthYear.")
    sex: enums.Sex
    county: str | None = strawberry.field(description="Kenyan county code, 001-047.")
    languages: list[str]
    risk_level: enums.RiskLevel
    version: int = strawberry.field(description="Pass as expectedVersion to change the survivor's record.")
    erased_at: datetime | None = strawberry.field(
        description="When the record was erased: identity, notes and every free text are gone for good.")
    data_protection: SurvivorDataProtection | None = strawberry.field(
        description="Legal hold and a waiting erasure request; null for anyone outside the survivor's organization.")
    view: strawberry.Private[SurvivorView]

    @classmethod
    def from_view(cls, view: SurvivorView) -> Survivor:
        return cls(id=strawberry.ID(to_global_id("Survivor", view.id)), pseudonym=view.pseudonym,
                   birth_year=view.birth_year, age_band=view.age_band, sex=view.sex, county=view.county,
                   languages=list(view.languages), risk_level=view.risk_level, version=view.version,
                   erased_at=view.erased_at, data_protection=_data_protection(view), view=view)

    @strawberry.field(description="The county's name, e.g. Kilifi for 003 (store the code, show the name).")
    def county_name(self) -> str | None:
        return county_name(self.county) if self.county else None

    @strawberry.field(description="Null unless the caller's role and an in-force consent (IDENTITY/CONTACT) "
                                  "allow it.")
    async def identity(self, info: strawberry.Info) -> SurvivorIdentity | None:
        found = await info.context.loaders.identity_by_survivor.load(self.view)
        return SurvivorIdentity.from_view(found) if found else None

    @strawberry.field(description="The referring NGO sees all; a partner sees only in-force consents naming it.")
    async def consents(self, info: strawberry.Info) -> list[Consent]:
        return [Consent.from_view(v) for v in await info.context.loaders.consents_by_survivor.load(self.view.id)]

    @strawberry.field
    async def referrals(self, info: strawberry.Info, first: int | None = None,
                        after: str | None = None) -> Connection[ReferralRef]:
        from api.graphql.types.referral import Referral

        request = page_request(first, after)
        page = await info.context.loaders.referrals_by_survivor.load((self.view.id, request))
        return to_connection(page, Referral.from_view)

    @strawberry.field(description="Care goals across the survivor's referrals the caller sees (for the referring "
                                  "NGO: where consent names FEEDBACK_TO_REFERRER and ASSESSMENTS).")
    async def goals(self, info: strawberry.Info) -> list[CareGoalRef]:
        from api.graphql.types.care import CareGoal

        return [CareGoal.from_view(v) for v in await info.context.loaders.goals_by_survivor.load(self.view.id)]

    @strawberry.field(description="Assessments across the survivor's referrals the caller sees, oldest first; "
                                  "feedback rules as for goals. Every read is audited.")
    async def assessments(self, info: strawberry.Info) -> list[AssessmentRef]:
        from api.graphql.types.care import Assessment

        found = await info.context.loaders.assessments_by_survivor.load(self.view.id)
        return [Assessment.from_view(v) for v in found]


def _withdrawal_reason(self: Consent) -> str | None:
    """Sealed at rest, decrypted only when asked for (db/sealed.py), as the witness below."""
    return revealed(self.view.withdrawal_reason)


def _witness(self: Consent) -> str | None:
    return revealed(self.view.witness)


@strawberry.type(description="A survivor's (or guardian's) consent to share named data with one organization.")
class Consent(Node):
    id: strawberry.ID
    purposes: list[enums.ConsentPurpose]
    data_categories: list[enums.DataCategory]
    given_by: enums.ConsentGiver
    child_assent: bool | None = strawberry.field(
        description="For a child: the child's own assent, recorded beside the guardian's consent.")
    valid_from: datetime
    valid_until: datetime | None
    status: enums.ConsentStatus
    withdrawn_at: datetime | None
    withdrawal_reason: str | None = strawberry.field(resolver=_withdrawal_reason, description="Encrypted at rest.")
    form_version: str | None
    language: str | None
    witness: str | None = strawberry.field(resolver=_witness, description="Encrypted at rest.")
    version: int
    survivor_id: strawberry.Private[uuid.UUID]
    recipient_id: strawberry.Private[uuid.UUID]
    view: strawberry.Private[ConsentView]

    @classmethod
    def from_view(cls, v: ConsentView) -> Consent:
        return cls(
            id=strawberry.ID(to_global_id("Consent", v.id)), purposes=list(v.purposes),
            data_categories=list(v.data_categories), given_by=v.given_by, child_assent=v.child_assent,
            valid_from=v.valid_from, valid_until=v.valid_until, status=v.status, withdrawn_at=v.withdrawn_at,
            form_version=v.form_version, language=v.language, version=v.version, survivor_id=v.survivor_id,
            recipient_id=v.recipient_id, view=v,
        )

    @strawberry.field
    async def survivor(self, info: strawberry.Info) -> Survivor:
        view = await info.context.loaders.survivor_ref.load(self.survivor_id)
        return Survivor.from_view(view)

    @strawberry.field
    async def recipient(self, info: strawberry.Info) -> OrganizationRef:
        from api.graphql.types.organization import Organization

        return Organization.from_view(await info.context.loaders.organization_ref.load(self.recipient_id))


@strawberry.type(description="A registration that shared a phone (the survivor's or her guardian's) with another "
                             "survivor of your organization, for its supervisors to review.")
class DuplicateReview:
    id: strawberry.ID
    matched_on: list[enums.PhoneMatch] = strawberry.field(
        description="Which of the other survivor's numbers matched: PHONE, GUARDIAN_PHONE or both.")
    created_at: datetime
    resolution: enums.DuplicateResolution | None = strawberry.field(description="Null until reviewed.")
    resolved_at: datetime | None
    version: int
    view: strawberry.Private[DuplicateReviewView]

    @classmethod
    def from_view(cls, v: DuplicateReviewView) -> DuplicateReview:
        return cls(id=strawberry.ID(to_global_id("DuplicateReview", v.id)), matched_on=list(v.matched_on),
                   created_at=v.created_at, resolution=v.resolution, resolved_at=v.resolved_at, version=v.version,
                   view=v)

    @strawberry.field(description="The survivor just registered.")
    async def survivor(self, info: strawberry.Info) -> Survivor | None:
        view = await info.context.loaders.survivor_ref.load(self.view.survivor_id)
        return Survivor.from_view(view) if view else None

    @strawberry.field(description="The survivor already on file who shares a phone with her.")
    async def possible_duplicate(self, info: strawberry.Info) -> Survivor | None:
        view = await info.context.loaders.survivor_ref.load(self.view.matched_survivor_id)
        return Survivor.from_view(view) if view else None
