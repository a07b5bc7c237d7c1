"""Directory mutations: administrators register and update partners and services; a partner's
coordinator updates its own capacity. Every change is audited."""

from __future__ import annotations

import uuid

import strawberry

from api.graphql.context import Context
from api.graphql.errors import UserError
from api.graphql.mutations.base import decode_id, run_mutation
from api.graphql.types.organization import Organization
from db.directory import SqlDirectory
from db.directory_writes import SqlDirectoryWriter
from domain import enums
from domain.directory import OrganizationDetails, ServiceDetails
from partners import directory

ServiceStatus = strawberry.enum(enums.ServiceStatus)


@strawberry.input
class RegisterOrganizationInput:
    idempotency_key: str | None = None
    name: str
    kind: enums.OrganizationKind
    description: str | None = None
    counties: list[str] | None = None
    languages: list[str] | None = None
    sexes_served: list[enums.Sex] | None = None
    min_age: int | None = None
    max_age: int | None = None
    referral_email: str | None = None
    referral_phone: str | None = None


@strawberry.input
class UpdateOrganizationInput:
    idempotency_key: str | None = None
    organization_id: strawberry.ID
    expected_version: int | None = None
    name: str | None = None
    description: str | None = None
    counties: list[str] | None = None
    languages: list[str] | None = None
    sexes_served: list[enums.Sex] | None = None
    min_age: int | None = None
    max_age: int | None = None
    referral_email: str | None = None
    referral_phone: str | None = None
    active: bool | None = None


@strawberry.input(description="Set one service of an organization. A partner coordinator may send only "
                              "organizationId (its own), service, capacityStatus and openSlots.")
class SetServiceInput:
    idempotency_key: str | None = None
    organization_id: strawberry.ID
    service: enums.ServiceType
    expected_version: int | None = None
    status: ServiceStatus | None = None  # type: ignore[valid-type]
    capacity_status: enums.CapacityStatus | None = None
    open_slots: int | None = None
    eligibility_description: str | None = None
    min_age: int | None = None
    max_age: int | None = None


@strawberry.type
class OrganizationPayload:
    organization: Organization | None
    user_errors: list[UserError]


async def load_organization(context: Context, organization_id: uuid.UUID) -> Organization | None:
    found = await directory.organizations_by_id(store=SqlDirectory(context.db), principal=context.principal,
                                                ids=[organization_id], direct=False)
    return Organization.from_view(found[organization_id]) if organization_id in found else None


def _details(input: RegisterOrganizationInput | UpdateOrganizationInput) -> OrganizationDetails:
    return OrganizationDetails(
        name=input.name, kind=getattr(input, "kind", None), description=input.description,
        counties=tuple(input.counties) if input.counties is not None else None,
        languages=tuple(input.languages) if input.languages is not None else None,
        sexes_served=tuple(s.value for s in input.sexes_served) if input.sexes_served is not None else None,
        min_age=input.min_age, max_age=input.max_age, referral_email=input.referral_email,
        referral_phone=input.referral_phone, active=getattr(input, "active", None),
    )


def _writer(context: Context) -> SqlDirectoryWriter:
    """Directory changes are audited as the calling principal."""
    async def audit(action: str, record_id: str) -> None:
        await context.unit.audit(action=action, record_type="Organization", record_id=record_id, outcome="allowed",
                                 purpose=directory.AUDIT_PURPOSE)

    return SqlDirectoryWriter(context.db, audit)


@strawberry.type
class DirectoryMutations:
    @strawberry.mutation(description="Register the NGO or a partner organization (administrators).")
    async def register_organization(self, info: strawberry.Info,
                                    input: RegisterOrganizationInput) -> OrganizationPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await directory.register_organization(
                writer=_writer(context), principal=context.principal,
                details=_details(input))

        organization, errors = await run_mutation(info, operation="registerOrganization",
                                                  record_type="Organization", input=input, execute=execute,
                                                  load=load_organization)
        return OrganizationPayload(organization=organization, user_errors=errors)

    @strawberry.mutation(description="Change an organization's directory entry (administrators).")
    async def update_organization(self, info: strawberry.Info, input: UpdateOrganizationInput) -> OrganizationPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await directory.update_organization(
                writer=_writer(context), principal=context.principal,
                organization_id=decode_id(input.organization_id, "Organization"), details=_details(input),
                expected_version=input.expected_version)

        organization, errors = await run_mutation(info, operation="updateOrganization",
                                                  record_type="Organization", input=input, execute=execute,
                                                  load=load_organization)
        return OrganizationPayload(organization=organization, user_errors=errors)

    @strawberry.mutation(description="Set a service's status, capacity and eligibility (administrators), or "
                                     "your own organization's capacity and open slots (partner coordinators).")
    async def set_service(self, info: strawberry.Info, input: SetServiceInput) -> OrganizationPayload:
        async def execute(context: Context) -> uuid.UUID:
            return await directory.set_service(
                writer=_writer(context), principal=context.principal,
                organization_id=decode_id(input.organization_id, "Organization"),
                details=ServiceDetails(service_type=input.service, status=input.status,
                                       capacity_status=input.capacity_status, open_slots=input.open_slots,
                                       eligibility_description=input.eligibility_description,
                                       min_age=input.min_age, max_age=input.max_age),
                expected_version=input.expected_version)

        organization, errors = await run_mutation(info, operation="setService", record_type="Organization",
                                                  input=input, execute=execute, load=load_organization)
        return OrganizationPayload(organization=organization, user_errors=errors)
