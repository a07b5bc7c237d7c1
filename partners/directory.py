"""The partner and service directory (Open Referral HSDS names): who offers what, where, for whom."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Protocol

from domain import policy
from domain.directory import OrganizationDetails, OrganizationFilter, ServiceDetails
from domain.enums import ServiceType, Sex
from domain.errors import Duplicate, Forbidden, InvalidInput, NotFound, VersionConflict
from domain.ids import to_global_id
from domain.kenya import county_code, normalize_language, normalize_phone
from domain.paging import Page, PageRequest
from domain.principal import Principal
from domain.scopes import Action, Resource
from domain.use_cases.common import text
from domain.views import OrganizationView


class DirectoryStore(Protocol):
    async def organizations(self, *, scope: policy.DirectoryScope, filter: OrganizationFilter,
                            page: PageRequest) -> Page[OrganizationView]: ...

    async def organizations_by_id(self, *, scope: policy.DirectoryScope,
                                  ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, OrganizationView]: ...


async def list_organizations(*, store: DirectoryStore, principal: Principal, filter: OrganizationFilter,
                             page: PageRequest) -> Page[OrganizationView]:
    policy.require(principal, Resource.ORGANIZATION, Action.SEARCH)
    return await store.organizations(scope=policy.directory_scope(principal), filter=filter, page=page)


async def organizations_by_id(*, store: DirectoryStore, principal: Principal, ids: Sequence[uuid.UUID],
                              direct: bool) -> Mapping[uuid.UUID, OrganizationView]:
    """Batch read; an organization the caller may not see is absent.

    `direct` is a lookup by id (`node`), which needs the Organization read scope. A reference from
    a record the caller already sees (a referral's receiving organization, the viewer's own
    organization) is part of that record and needs no further scope.
    """
    if not direct:
        return await store.organizations_by_id(scope=policy.DirectoryScope(include_inactive=True), ids=ids)
    if not principal.allows(Resource.ORGANIZATION, Action.READ):
        return {}
    return await store.organizations_by_id(scope=policy.directory_scope(principal), ids=ids)


# ----------------------------------------------------------------------------- registering and updating


AUDIT_PURPOSE = "DIRECTORY"


class DirectoryWriter(Protocol):
    async def name_taken(self, name: str, *, other_than: uuid.UUID | None) -> bool: ...
    async def insert_organization(self, details: OrganizationDetails) -> uuid.UUID: ...
    async def update_organization(self, organization_id: uuid.UUID, details: OrganizationDetails,
                                  *, expected_version: int | None) -> bool | None: ...
    async def upsert_service(self, organization_id: uuid.UUID, details: ServiceDetails,
                             *, expected_version: int | None) -> bool | None: ...
    async def audit(self, *, action: str, record_id: str) -> None: ...


def check_details(details: OrganizationDetails, *, creating: bool) -> OrganizationDetails:
    """Validate and normalise; messages name the field, never echo the value."""
    name = text(details.name, field=("input", "name"), max_length=200, required=creating)
    counties = tuple(dict.fromkeys(county_code(c, field=("input", "counties")) for c in details.counties)) \
        if details.counties is not None else None
    languages = tuple(dict.fromkeys(normalize_language(x, field=("input", "languages")) for x in details.languages)) \
        if details.languages is not None else None
    sexes = tuple(dict.fromkeys(Sex(s).value for s in details.sexes_served)) if details.sexes_served is not None \
        else None
    for field_name, age in (("minAge", details.min_age), ("maxAge", details.max_age)):
        if age is not None and not 0 <= age <= 120:
            raise InvalidInput(f"{field_name} must be between 0 and 120.", field=("input", field_name))
    if details.min_age is not None and details.max_age is not None and details.min_age > details.max_age:
        raise InvalidInput("minAge must not exceed maxAge.", field=("input", "minAge"))
    if creating and details.kind is None:
        raise InvalidInput("kind is required.", field=("input", "kind"))
    return OrganizationDetails(
        name=name, kind=details.kind, description=text(details.description, field=("input", "description"),
                                                         max_length=2000, required=False, multiline=True),
        counties=counties, languages=languages, sexes_served=sexes, min_age=details.min_age,
        max_age=details.max_age,
        referral_email=text(details.referral_email, field=("input", "referralEmail"), max_length=254,
                            required=False),
        referral_phone=normalize_phone(details.referral_phone, field=("input", "referralPhone"))
        if details.referral_phone else None,
        active=details.active,
    )


async def add_organization(*, writer: DirectoryWriter, details: OrganizationDetails,
                           services: Sequence[ServiceType] = ()) -> uuid.UUID:
    """Register an organization (and, for a partner, the services it offers, open for referrals): the
    one path for an administrator's `registerOrganization` and the operator's `pamoja org add`."""
    clean = check_details(details, creating=True)
    if await writer.name_taken(clean.name or "", other_than=None):
        raise Duplicate("An organization with that name already exists.", field=("input", "name"))
    organization_id = await writer.insert_organization(clean)
    for service in dict.fromkeys(services):
        await writer.upsert_service(organization_id, ServiceDetails(
            service_type=service, min_age=clean.min_age, max_age=clean.max_age), expected_version=None)
    await writer.audit(action="create", record_id=to_global_id("Organization", organization_id))
    return organization_id


async def register_organization(*, writer: DirectoryWriter, principal: Principal,
                                details: OrganizationDetails) -> uuid.UUID:
    policy.require(principal, Resource.ORGANIZATION, Action.CREATE)
    if not policy.may_administer_directory(principal):
        raise Forbidden("Only administrators register organizations.")
    return await add_organization(writer=writer, details=details)


async def update_organization(*, writer: DirectoryWriter, principal: Principal, organization_id: uuid.UUID | None,
                              details: OrganizationDetails, expected_version: int | None) -> uuid.UUID:
    policy.require(principal, Resource.ORGANIZATION, Action.UPDATE)
    if not policy.may_administer_directory(principal):
        raise Forbidden("Only administrators update organizations.")
    if organization_id is None:
        raise NotFound(field=("input", "organizationId"))
    clean = check_details(details, creating=False)
    if clean.name and await writer.name_taken(clean.name, other_than=organization_id):
        raise Duplicate("An organization with that name already exists.", field=("input", "name"))
    changed = await writer.update_organization(organization_id, clean, expected_version=expected_version)
    if changed is None:
        raise NotFound(field=("input", "organizationId"))
    if not changed:
        raise VersionConflict("The organization was changed by someone else; reload it and try again.",
                              field=("input", "expectedVersion"))
    await writer.audit(action="update", record_id=to_global_id("Organization", organization_id))
    return organization_id


async def set_service(*, writer: DirectoryWriter, principal: Principal, organization_id: uuid.UUID | None,
                      details: ServiceDetails, expected_version: int | None) -> uuid.UUID:
    """Administrators set any organization's services; a partner coordinator (or its system) only
    its own organization's capacity and open slots."""
    policy.require(principal, Resource.ORGANIZATION, Action.UPDATE)
    capacity_only = details.status is None and details.eligibility_description is None and \
        details.min_age is None and details.max_age is None
    if not policy.may_set_service(principal, organization_id, capacity_only=capacity_only):
        raise Forbidden("Administrators set services; a partner's coordinator updates only its own capacity.")
    if organization_id is None:
        raise NotFound(field=("input", "organizationId"))
    if details.open_slots is not None and not 0 <= details.open_slots <= 10_000:
        raise InvalidInput("openSlots must be between 0 and 10000.", field=("input", "openSlots"))
    if details.min_age is not None and details.max_age is not None and details.min_age > details.max_age:
        raise InvalidInput("minAge must not exceed maxAge.", field=("input", "minAge"))
    description = text(details.eligibility_description, field=("input", "eligibilityDescription"),
                       max_length=2000, required=False, multiline=True)
    clean = ServiceDetails(service_type=details.service_type, status=details.status,
                           capacity_status=details.capacity_status, open_slots=details.open_slots,
                           eligibility_description=description, min_age=details.min_age, max_age=details.max_age)
    changed = await writer.upsert_service(organization_id, clean, expected_version=expected_version)
    if changed is None:
        raise NotFound(field=("input", "organizationId"))
    if not changed:
        raise VersionConflict("The service was changed by someone else; reload it and try again.",
                              field=("input", "expectedVersion"))
    await writer.audit(action="update", record_id=to_global_id("Organization", organization_id))
    return organization_id
