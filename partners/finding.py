"""Finding partners for a survivor: the case manager's use case around the pure ranking.

Only the NGO's own case staff may ask, only about a survivor they may see; the survivor's coarse
facts (birth year, sex, county, languages) stay inside this call: the result names organizations,
scores and reasons, never the survivor.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import date

from domain import policy
from domain.directory import PartnerCandidate, TrackRecord
from domain.enums import ServiceType
from domain.errors import Forbidden, NotFound
from domain.ports import Unit
from domain.principal import Principal
from domain.scopes import Action, Resource
from domain.use_cases import refused_reads
from partners.matching import PartnerMatch, SurvivorFacts, rank_partners

Candidates = Callable[[ServiceType], Awaitable[list[PartnerCandidate]]]
TrackRecords = Callable[[Iterable[uuid.UUID]], Awaitable[Mapping[uuid.UUID, TrackRecord]]]


async def match_partners(*, unit: Unit, principal: Principal, survivor_id: uuid.UUID | None, service: ServiceType,
                         candidates: Candidates, track_records: TrackRecords) -> list[PartnerMatch]:
    policy.require(principal, Resource.SURVIVOR, Action.READ)
    policy.require(principal, Resource.ORGANIZATION, Action.SEARCH)
    if not policy.may_register_survivors(principal):
        raise Forbidden("Partner matching is for the referring organization's case staff.")
    scope = policy.rows(principal, unit.now())
    survivor = (await unit.survivors.by_id(scope, [survivor_id])).get(survivor_id) if survivor_id else None
    if survivor is None:
        if survivor_id:
            await refused_reads.audit_unseen(unit=unit, record_type="Survivor", ids=[survivor_id])
        raise NotFound(field=("input", "survivorId"))
    offered = await candidates(service)
    records = await track_records([c.organization_id for c in offered])
    facts = SurvivorFacts(birth_year=survivor.birth_year, sex=survivor.sex, county=survivor.county,
                          languages=survivor.languages)
    today: date = unit.now().date()
    return rank_partners(survivor=facts, service=service, candidates=offered, track_records=records, today=today)
