"""Organization: the NGO or a partner, as a service-directory entry."""

from __future__ import annotations

import strawberry

from api.graphql.relay import Node
from domain import enums
from domain.ids import from_global_id, to_global_id
from domain.kenya import county_name
from domain.use_cases import referrals
from domain.views import OrganizationView


@strawberry.type(description="A counselor of your organization, as `assignCounselor` names her.")
class Counselor:
    id: strawberry.ID = strawberry.field(description="Her StaffUser id: `assignCounselor(input: {counselorId})`.")
    display_name: str
    open_caseload: int = strawberry.field(description="Open referrals (accepted, in progress, on hold) assigned "
                                                      "to her.")


@strawberry.type(description="The referring NGO or a partner organization, with the services it offers.")
class Organization(Node):
    id: strawberry.ID
    name: str
    kind: enums.OrganizationKind
    counties: list[str] = strawberry.field(description="Kenyan county codes served, 001-047.")
    languages: list[str] = strawberry.field(description="BCP 47 tags, e.g. sw, en, nyf.")
    services: list[enums.ServiceType]
    min_age: int | None
    max_age: int | None
    capacity_status: enums.CapacityStatus = strawberry.field(
        description="Best capacity over the organization's active services (Gravity capacity codes)."
    )
    open_slots: int | None = strawberry.field(description="Open slots summed over active services.")
    active: bool
    version: int = strawberry.field(description="Increases on every change; send it as expectedVersion.")

    @strawberry.field(description="Your own partner organization's active counselors, by name, with the open "
                                  "referrals each carries: the ids `assignCounselor` takes. Empty for any other "
                                  "organization.")
    async def counselors(self, info: strawberry.Info) -> list[Counselor]:
        decoded = from_global_id(str(self.id), "Organization")
        if decoded is None:
            return []
        found = await referrals.counselors(unit=info.context.unit, principal=info.context.principal,
                                           organization_id=decoded[1])
        return [Counselor(id=strawberry.ID(to_global_id("StaffUser", c.id)), display_name=c.display_name,
                          open_caseload=c.open_referrals) for c in found]

    @strawberry.field(description="The names of the counties served, in the same order as `counties`.")
    def county_names(self) -> list[str]:
        return [county_name(code) for code in self.counties]

    @classmethod
    def from_view(cls, view: OrganizationView) -> Organization:
        return cls(
            id=strawberry.ID(to_global_id("Organization", view.id)), name=view.name, kind=view.kind,
            counties=list(view.counties), languages=list(view.languages), services=list(view.services),
            min_age=view.min_age, max_age=view.max_age, capacity_status=view.capacity_status,
            open_slots=view.open_slots, active=view.active, version=view.version,
        )


@strawberry.input
class OrganizationFilter:
    kind: enums.OrganizationKind | None = None
    service: enums.ServiceType | None = None
    county: str | None = strawberry.field(default=None, description="County code (001-047) or name.")
    language: str | None = None
