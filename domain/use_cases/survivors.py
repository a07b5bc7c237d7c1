"""Registering survivors and reading them, pseudonymous facts and (when allowed) identity."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from domain import policy
from domain.enums import DataCategory, DuplicateResolution, RiskLevel, Sex
from domain.errors import FieldChecks, Forbidden, InvalidInput, InvalidTransition, NotFound, VersionConflict
from domain.ids import to_global_id
from domain.kenya import county_code, normalize_language, normalize_phone
from domain.paging import Page, PageRequest
from domain.ports import NewSurvivor, SurvivorFilter, Unit
from domain.principal import Principal
from domain.scopes import Action, Resource
from domain.use_cases.common import required_text, text
from domain.views import DuplicateReviewView, IdentityView, ReferralView, SurvivorView

MAX_AGE_YEARS = 30
IDENTITY_CATEGORIES = frozenset({DataCategory.IDENTITY, DataCategory.CONTACT})


def _field(name: str) -> tuple[str, ...]:
    return ("input", name)


def validate_new_survivor(*, pseudonym: str, legal_name: str, birth_year: int, sex: Sex, county: str | None,
                          languages: Sequence[str] | None, risk_level: RiskLevel | None, phone: str | None,
                          guardian_name: str | None, guardian_phone: str | None, location: str | None,
                          now: datetime) -> NewSurvivor:
    checks = FieldChecks()  # every refused field at once, so the caller fixes them in one round trip
    this_year = now.astimezone(UTC).year
    if not (this_year - MAX_AGE_YEARS <= birth_year <= this_year):
        checks.refuse(InvalidInput(f"birthYear must be between {this_year - MAX_AGE_YEARS} and {this_year}.",
                                   field=_field("birthYear")))
    langs = checks.check(lambda: tuple(dict.fromkeys(normalize_language(lang, field=_field("languages"))
                                                     for lang in languages or ()))) or ()
    if len(langs) > 10:
        checks.refuse(InvalidInput("languages accepts at most 10 tags.", field=_field("languages")))
    new = NewSurvivor(
        pseudonym=checks.check(lambda: required_text(pseudonym, field=_field("pseudonym"), max_length=64)) or "",
        legal_name=checks.check(lambda: required_text(legal_name, field=_field("legalName"), max_length=200)) or "",
        birth_year=birth_year,
        sex=sex.value,
        county=checks.check(lambda: county_code(county, field=_field("county"))) if county else None,
        languages=langs,
        risk_level=(risk_level or RiskLevel.MEDIUM).value,
        phone=checks.check(lambda: normalize_phone(phone, field=_field("phone"))) if phone else None,
        guardian_name=checks.check(lambda: text(guardian_name, field=_field("guardianName"), max_length=200,
                                                required=False)),
        guardian_phone=checks.check(lambda: normalize_phone(guardian_phone, field=_field("guardianPhone")))
        if guardian_phone else None,
        location=checks.check(lambda: text(location, field=_field("location"), max_length=500, required=False,
                                           multiline=True)),
    )
    checks.done()
    return new


async def register(*, unit: Unit, principal: Principal, new: NewSurvivor) -> uuid.UUID:
    policy.require(principal, Resource.SURVIVOR, Action.CREATE)
    policy.require(principal, Resource.SURVIVOR_IDENTITY, Action.CREATE)
    if not policy.may_register_survivors(principal):
        raise Forbidden("Only the referring organization's case managers register survivors.")
    phones = [p for p in dict.fromkeys((new.phone, new.guardian_phone)) if p]
    # A shared phone is no wall (siblings share a household phone): the survivor is registered, and the
    # matches are flagged for review; the payload's possibleDuplicates shows only those the caller may see.
    matches = await unit.survivors.phone_matches(organization_id=principal.organization_id, phones=phones)
    survivor_id = await unit.survivors.insert(new, organization_id=principal.organization_id,
                                              registered_by_id=principal.user_id)
    await unit.survivors.flag_duplicates(organization_id=principal.organization_id, survivor_id=survivor_id,
                                         matches=matches, registered_by_id=principal.user_id)
    await unit.audit(action="create", record_type="Survivor", record_id=to_global_id("Survivor", survivor_id),
                     outcome="allowed", purpose="REFERRAL")
    return survivor_id


async def possible_duplicates(*, unit: Unit, principal: Principal,
                              survivor_ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, list[SurvivorView]]:
    """Survivors flagged at each one's registration as sharing a phone, among those the caller may see: a
    match she may not see stays hidden from her (her organization's supervisors review it)."""
    policy.require(principal, Resource.SURVIVOR, Action.SEARCH)
    return await unit.survivors.possible_duplicates(policy.rows(principal, unit.now()), survivor_ids)


async def by_id(*, unit: Unit, principal: Principal, ids: Sequence[uuid.UUID],
                direct: bool = True) -> Mapping[uuid.UUID, SurvivorView]:
    """Batch read; survivors outside the caller's rows are simply absent."""
    policy.require(principal, Resource.SURVIVOR, Action.READ)
    return await unit.survivors.by_id(policy.rows(principal, unit.now()), ids)


async def of_referrals(*, unit: Unit, principal: Principal,
                       referrals: Sequence[ReferralView]) -> Mapping[uuid.UUID, SurvivorView]:
    """The survivors of referrals the caller was shown in this request (views read under its row scope
    at this instant). A shown referral makes its survivor visible: the referrer's survivors are its own
    (a case manager's referrals are those of survivors it manages), the partner sees the survivors of
    referrals it sees. So the read skips the per-row visibility test; what shows is decided as in by_id."""
    policy.require(principal, Resource.SURVIVOR, Action.READ)
    scope = policy.rows(principal, unit.now())
    return await unit.survivors.through_referrals(scope, [r.survivor_id for r in referrals])


async def page(*, unit: Unit, principal: Principal, filter: SurvivorFilter,
               request: PageRequest) -> Page[SurvivorView]:
    policy.require(principal, Resource.SURVIVOR, Action.SEARCH)
    if filter.under_legal_hold is not None and not policy.sees_data_protection(principal):
        raise Forbidden("Only the organization that registered a survivor sees whether her record is under a "
                        "legal hold.")
    if filter.search is not None:
        filter = searched(principal, filter)
    return await unit.survivors.page(policy.rows(principal, unit.now()), filter, request)


SEARCH_FIELD = ("filter", "search")
MIN_SEARCH = 2


def searched(principal: Principal, filter: SurvivorFilter) -> SurvivorFilter:
    """`search` is a phone number (it starts with + or a digit: matched exactly, through the blind index,
    among the caller's own organization's survivors only, since a phone is contact data) or the start of
    a pseudonym (among every survivor the caller may see)."""
    typed = text(filter.search, field=SEARCH_FIELD, max_length=64)
    if typed is None or len(typed) < MIN_SEARCH:
        raise InvalidInput(f"filter.search must be at least {MIN_SEARCH} characters: the start of a pseudonym, "
                           "or a phone number such as +254712345678.", field=SEARCH_FIELD)
    if typed[0] == "+" or typed[0].isdigit():
        phone = normalize_phone(typed, field=SEARCH_FIELD)
        if principal.organization_id is None:
            raise Forbidden("Only the organization that registered a survivor finds her by phone.")
        return dataclasses.replace(filter, search=None, phone=phone, phone_organization_id=principal.organization_id)
    return dataclasses.replace(filter, search=None, pseudonym_prefix=typed)


async def identities(*, unit: Unit, principal: Principal,
                     survivors: Sequence[SurvivorView]) -> Mapping[SurvivorView, IdentityView]:
    """Identifying fields, decrypted only when role, consent and scope all allow; every read audited.

    Batched for loaders: one statement decrypts them all and one statement writes one audit row each.
    """
    shown = {s: s.categories & IDENTITY_CATEGORIES for s in survivors}
    # legalName is the heart of the identity: without IDENTITY there is no identity object at all
    allowed = [s for s in survivors if DataCategory.IDENTITY in shown[s]]
    if not allowed:
        return {}
    policy.require(principal, Resource.SURVIVOR_IDENTITY, Action.READ)
    plain = await unit.survivors.identities([s.id for s in allowed])
    own = [s for s in allowed if s.organization_id == principal.organization_id]
    referred = [s for s in allowed if s.organization_id != principal.organization_id]
    for purpose, group in (("CASE_MANAGEMENT", own), ("SERVICE_DELIVERY", referred)):
        await unit.audit_many(action="read", record_type="SurvivorIdentity",
                              record_ids=[to_global_id("Survivor", s.id) for s in group], outcome="allowed",
                              purpose=purpose)
    found: dict[SurvivorView, IdentityView] = {}
    for survivor in allowed:
        identity = plain.get(survivor.id)
        if identity is None:
            continue
        contact_ok = DataCategory.CONTACT in shown[survivor]
        found[survivor] = IdentityView(
            legal_name=identity.legal_name, guardian_name=identity.guardian_name,
            phone=identity.phone if contact_ok else None,
            guardian_phone=identity.guardian_phone if contact_ok else None,
            location=identity.location if contact_ok else None,
        )
    return found


# ----------------------------------------------------------------------------- possible duplicates


def _reviewer(principal: Principal) -> None:
    if not policy.may_review_duplicates(principal):
        raise Forbidden("Only the organization's supervisors review possible duplicate registrations.")


async def duplicate_reviews(*, unit: Unit, principal: Principal, resolved: bool | None,
                            request: PageRequest) -> Page[DuplicateReviewView]:
    """Every registration of the organization that shared a phone with another survivor, oldest first,
    including matches the registering case manager could not see."""
    _reviewer(principal)
    return await unit.survivors.duplicate_reviews(organization_id=principal.organization_id, resolved=resolved,
                                                  page=request)


async def duplicate_review(*, unit: Unit, principal: Principal,
                           review_id: uuid.UUID) -> DuplicateReviewView | None:
    """One review of the caller's organization (a mutation's payload, re-read), for its supervisors only."""
    _reviewer(principal)
    return await unit.survivors.duplicate_review(review_id=review_id, organization_id=principal.organization_id)


async def resolve_duplicate_review(*, unit: Unit, principal: Principal, review_id: uuid.UUID | None,
                                   resolution: DuplicateResolution, expected_version: int | None) -> uuid.UUID:
    _reviewer(principal)
    found = await unit.survivors.duplicate_review(review_id=review_id, organization_id=principal.organization_id) \
        if review_id else None
    if found is None:
        raise NotFound(field=_field("reviewId"))
    if found.resolved_at is not None:
        raise InvalidTransition("This possible duplicate was already reviewed.", field=_field("reviewId"))
    resolved = await unit.survivors.resolve_duplicate_review(
        review_id=found.id, organization_id=principal.organization_id, resolution=resolution, by=principal.user_id,
        expected_version=expected_version)
    if resolved is None:
        raise VersionConflict("The review was changed by someone else; reload it and try again.",
                              field=_field("expectedVersion"))
    await unit.audit(action="update", record_type="DuplicateReview",
                     record_id=to_global_id("DuplicateReview", found.id), outcome="allowed", purpose=resolution.value)
    return found.id
