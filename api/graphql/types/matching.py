"""PartnerMatch: a partner able to take a referral, its score and the reasons for the ranking."""

from __future__ import annotations

import strawberry

from api.graphql.types.organization import Organization
from domain import enums


@strawberry.input
class PartnerMatchInput:
    survivor_id: strawberry.ID
    service: enums.ServiceType


@strawberry.type(description="A partner able to take the referral, best first; reasons a case manager can read.")
class PartnerMatch:
    organization: Organization
    score: float
    reasons: list[str]
