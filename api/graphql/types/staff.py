"""Staff users and the Viewer (who is calling)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.graphql.relay import Node
from domain import enums
from domain.ids import to_global_id
from domain.views import StaffUserView

if TYPE_CHECKING:
    from api.graphql.types.organization import Organization

OrganizationRef = Annotated["Organization", strawberry.lazy("api.graphql.types.organization")]


@strawberry.type(description="A person at the NGO or a partner. Shows a display name; the sign-in e-mail only "
                              "to administrators.")
class StaffUser(Node):
    id: strawberry.ID
    display_name: str
    roles: list[enums.Role]
    active: bool = strawberry.field(description="False once deactivated: the person can no longer sign in, and "
                                                "open referrals assigned to them need another counselor.")
    deactivated_at: datetime | None
    version: int = strawberry.field(description="Send as expectedVersion to setStaffRoles, deactivateStaffUser "
                                                "or reactivateStaffUser.")
    email: str | None = strawberry.field(description="The sign-in e-mail: administrators only, null for "
                                                     "everyone else.")
    deactivation_reason: str | None = strawberry.field(description="Why the account was deactivated: "
                                                                   "administrators only.")
    organization_id: strawberry.Private[object]

    @strawberry.field
    async def organization(self, info: strawberry.Info) -> OrganizationRef:
        from api.graphql.types.organization import Organization

        return Organization.from_view(await info.context.loaders.organization_ref.load(self.organization_id))

    @classmethod
    def from_view(cls, view: StaffUserView) -> StaffUser:
        return cls(id=strawberry.ID(to_global_id("StaffUser", view.id)), display_name=view.display_name,
                   roles=list(view.roles), active=view.active, deactivated_at=view.deactivated_at,
                   version=view.version, email=view.email, deactivation_reason=view.deactivation_reason,
                   organization_id=view.organization_id)


@strawberry.type(description="Who is calling: answered from the validated access token.")
class Viewer:
    client_id: str
    roles: list[enums.Role]
    scopes: list[str]
    organization_id: strawberry.Private[object]
    user_id: strawberry.Private[object]

    @strawberry.field
    async def organization(self, info: strawberry.Info) -> OrganizationRef:
        from api.graphql.types.organization import Organization

        return Organization.from_view(await info.context.loaders.organization_ref.load(self.organization_id))

    @strawberry.field(description="The staff user behind the token; null for a partner system.")
    async def user(self, info: strawberry.Info) -> StaffUser | None:
        if self.user_id is None:
            return None
        view = await info.context.loaders.staff_ref.load(self.user_id)
        return StaffUser.from_view(view) if view else None


@strawberry.input(description="Which staff accounts `staffUsers` lists; every condition given must hold.")
class StaffUserFilter:
    organization_id: strawberry.ID | None = None
    role: enums.Role | None = None
    active: bool | None = strawberry.field(default=None, description="true: active accounts only; false: "
                                                                     "deactivated ones only.")
    search: str | None = strawberry.field(default=None, description="The start of an e-mail address, or part of "
                                                                     "a display name; case does not matter.")
