"""What use cases hand to the api layer: plain frozen records, already filtered by policy.

A view carries only what the caller may see; fields the caller may not see are None or absent,
so a resolver cannot leak them by accident.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain.enums import CapacityStatus, OrganizationKind, Role, ServiceType


@dataclass(frozen=True, slots=True)
class OrganizationView:
    id: uuid.UUID
    name: str
    kind: OrganizationKind
    counties: tuple[str, ...]
    languages: tuple[str, ...]
    services: tuple[ServiceType, ...]
    min_age: int | None
    max_age: int | None
    capacity_status: CapacityStatus
    open_slots: int | None
    active: bool


@dataclass(frozen=True, slots=True)
class StaffUserView:
    id: uuid.UUID
    display_name: str
    organization_id: uuid.UUID
    roles: tuple[Role, ...]
