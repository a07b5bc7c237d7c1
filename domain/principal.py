"""Who is calling: built by auth/ from a validated token, read by the policy module."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from domain.enums import OrganizationKind, Role
from domain.scopes import Action, Resource, Scope, narrow, parse_scopes, role_ceiling, system_ceiling


@dataclass(frozen=True, slots=True)
class Principal:
    """A staff user (user_id set) or a partner system (user_id None), always within one organization.

    `scopes` are the token's scopes already narrowed to the role's (or the organization's system)
    ceiling, so `allows` is the whole scope answer (rule 5).
    """

    organization_id: uuid.UUID
    organization_kind: OrganizationKind
    client_id: str
    user_id: uuid.UUID | None = None
    roles: frozenset[Role] = frozenset()
    scopes: tuple[Scope, ...] = ()
    display_name: str = ""
    token_id: str | None = None
    request_id: str | None = field(default=None, compare=False)

    @property
    def is_system(self) -> bool:
        return self.user_id is None

    @property
    def context(self) -> str:
        return "system" if self.is_system else "user"

    @property
    def actor(self) -> str:
        """How history and audit name the caller: never a survivor's data."""
        return self.display_name or self.client_id

    @property
    def actor_id(self) -> str:
        """How the audit trail names the caller: a staff user's global id, or client:<client id>."""
        from domain.ids import to_global_id

        return to_global_id("StaffUser", self.user_id) if self.user_id else f"client:{self.client_id}"

    def allows(self, resource: Resource, action: Action) -> bool:
        return any(s.grants(self.context, resource.value, action.value) for s in self.scopes)

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


def build_principal(
    *,
    organization_id: uuid.UUID,
    organization_kind: OrganizationKind,
    client_id: str,
    token_scopes: list[str],
    user_id: uuid.UUID | None = None,
    roles: frozenset[Role] = frozenset(),
    display_name: str = "",
    token_id: str | None = None,
) -> Principal:
    """Intersect the token's scopes with what the role (or partner system) may ever hold."""
    requested = parse_scopes(s for s in token_scopes if s)
    ceiling = system_ceiling(organization_kind) if user_id is None else role_ceiling(roles)
    return Principal(
        organization_id=organization_id,
        organization_kind=organization_kind,
        client_id=client_id,
        user_id=user_id,
        roles=roles,
        scopes=narrow(requested, ceiling),
        display_name=display_name,
        token_id=token_id,
    )
