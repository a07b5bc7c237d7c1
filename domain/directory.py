"""The partner directory's records as values (Open Referral HSDS names): what is asked of it, what it
holds about an organization and its services, and a partner's track record. partners/ decides with them
(the directory's rules, matching); db/ reads and writes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from domain.enums import CapacityStatus, OrganizationKind, ServiceStatus, ServiceType, Sex


@dataclass(frozen=True, slots=True)
class OrganizationFilter:
    kind: OrganizationKind | None = None
    service: ServiceType | None = None
    county: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class OrganizationDetails:
    """What an administrator registers or changes about an organization (HSDS: organization)."""

    name: str | None = None
    kind: OrganizationKind | None = None
    description: str | None = None
    counties: tuple[str, ...] | None = None
    languages: tuple[str, ...] | None = None
    sexes_served: tuple[str, ...] | None = None
    min_age: int | None = None
    max_age: int | None = None
    referral_email: str | None = None
    referral_phone: str | None = None
    active: bool | None = None


@dataclass(frozen=True, slots=True)
class ServiceDetails:
    """One service offer (HSDS: service; Gravity capacity codes; eligibility by age)."""

    service_type: ServiceType
    status: ServiceStatus | None = None
    capacity_status: CapacityStatus | None = None
    open_slots: int | None = None
    eligibility_description: str | None = None
    min_age: int | None = None
    max_age: int | None = None


@dataclass(frozen=True, slots=True)
class ServiceOffer:
    status: ServiceStatus
    capacity_status: CapacityStatus
    open_slots: int | None
    min_age: int | None
    max_age: int | None


@dataclass(frozen=True, slots=True)
class PartnerCandidate:
    organization_id: uuid.UUID
    name: str
    active: bool
    counties: tuple[str, ...]
    languages: tuple[str, ...]
    sexes_served: tuple[Sex, ...]  # empty: all sexes
    services: Mapping[ServiceType, ServiceOffer]
    min_age: int | None
    max_age: int | None


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """A partner's history as a receiving organization (see db.partner_stats for the definitions)."""

    referrals_received: int
    accepted: int
    rejected: int
    median_hours_to_accept: float | None
    median_hours_to_first_attended_session: float | None

    @property
    def answered(self) -> int:
        return self.accepted + self.rejected
