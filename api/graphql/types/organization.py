"""Organization: the NGO or a partner, as a service-directory entry."""

from __future__ import annotations

import strawberry

from api.graphql.relay import Node
from domain import enums
from domain.ids import to_global_id
from domain.kenya import county_name
from domain.views import OrganizationView


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
