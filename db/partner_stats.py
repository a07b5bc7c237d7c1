"""SQL feeding partner matching: partners' track records from referral history, and the candidates.

Definitions (one referral counts once, per receiving organization):
- received: sent to the partner, i.e. it has a status change to REQUESTED, or its status is past
  DRAFT (not DRAFT or CANCELLED without ever being sent); ENTERED_IN_ERROR referrals never count.
- accepted: it was ever ACCEPTED (a status change to ACCEPTED, or a status that only follows
  acceptance: IN_PROGRESS, ON_HOLD, COMPLETED, FAILED). rejected: it was REJECTED.
- hours to accept: from the first REQUESTED change (else the referral's creation) to the first
  ACCEPTED change. hours to first attended session: from the same start to the earliest session on
  the referral with attendance ATTENDED. Medians use percentile_cont(0.5), which skips NULLs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from db.engine import Db
from domain.directory import PartnerCandidate, ServiceOffer, TrackRecord
from domain.enums import CapacityStatus, OrganizationKind, ServiceStatus, ServiceType, Sex

Connection = AsyncConnection | Db

_TRACK_RECORDS = text("""
    WITH per_referral AS (
      SELECT r.receiving_organization_id AS organization_id,
             coalesce(changes.requested_at, r.created_at) AS sent_at,
             changes.accepted_at,
             (changes.accepted_at IS NOT NULL
              OR r.status IN ('ACCEPTED', 'IN_PROGRESS', 'ON_HOLD', 'COMPLETED', 'FAILED')) AS was_accepted,
             (changes.rejected OR r.status = 'REJECTED') AS was_rejected,
             sessions.first_attended_at
      FROM referral r
      CROSS JOIN LATERAL (
        SELECT min(c.at) FILTER (WHERE c.to_status = 'REQUESTED') AS requested_at,
               min(c.at) FILTER (WHERE c.to_status = 'ACCEPTED') AS accepted_at,
               coalesce(bool_or(c.to_status = 'REJECTED'), false) AS rejected
        FROM referral_status_change c
        WHERE c.referral_id = r.id
      ) changes
      CROSS JOIN LATERAL (
        SELECT min(s.started_at) AS first_attended_at
        FROM counseling_session s
        WHERE s.referral_id = r.id AND s.attendance = 'ATTENDED'
      ) sessions
      WHERE r.receiving_organization_id = ANY(:organization_ids)
        AND r.status <> 'ENTERED_IN_ERROR'
        AND (changes.requested_at IS NOT NULL OR r.status NOT IN ('DRAFT', 'CANCELLED'))
    )
    SELECT organization_id,
           count(*) AS received,
           count(*) FILTER (WHERE was_accepted) AS accepted,
           count(*) FILTER (WHERE was_rejected AND NOT was_accepted) AS rejected,
           percentile_cont(0.5) WITHIN GROUP (
             ORDER BY extract(epoch FROM accepted_at - sent_at) / 3600.0) AS median_hours_to_accept,
           percentile_cont(0.5) WITHIN GROUP (
             ORDER BY extract(epoch FROM first_attended_at - sent_at) / 3600.0) AS median_hours_to_first_session
    FROM per_referral
    GROUP BY organization_id
""").bindparams(bindparam("organization_ids", type_=ARRAY(UUID(as_uuid=True))))


async def _rows(connection: Connection, statement: Any) -> Sequence[Any]:
    result = await connection.execute(statement)
    return result.all()


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


async def track_records(connection: Connection,
                        organization_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, TrackRecord]:
    """One statement for all partners; a partner with no referrals is absent (matching: no history).

    Takes an AsyncConnection or the request's `Db`. A track record is a network-wide statistic and
    returns aggregates only, so run it on an owner connection: under row-level security the
    runtime role would see only the caller's own referrals and status changes, and the medians
    would silently cover a fraction of the history.
    """
    ids = list(dict.fromkeys(organization_ids))
    if not ids:
        return {}
    rows = await _rows(connection, _TRACK_RECORDS.bindparams(organization_ids=ids))
    return {
        row.organization_id: TrackRecord(
            referrals_received=int(row.received), accepted=int(row.accepted), rejected=int(row.rejected),
            median_hours_to_accept=_float(row.median_hours_to_accept),
            median_hours_to_first_attended_session=_float(row.median_hours_to_first_session),
        )
        for row in rows
    }


_CANDIDATES = text("""
    SELECT o.id, o.name, o.active, o.counties, o.languages, o.sexes_served, o.min_age, o.max_age,
           jsonb_agg(jsonb_build_object(
             'service_type', s.service_type, 'status', s.status, 'capacity_status', s.capacity_status,
             'open_slots', s.open_slots, 'min_age', s.min_age, 'max_age', s.max_age)) AS services
    FROM organization o
    JOIN organization_service s ON s.organization_id = o.id
    WHERE o.kind = :partner AND o.active
      AND EXISTS (SELECT 1 FROM organization_service x WHERE x.organization_id = o.id AND x.service_type = :service)
    GROUP BY o.id
""")


def _offer(raw: dict[str, Any]) -> tuple[ServiceType, ServiceOffer] | None:
    try:
        service = ServiceType(raw["service_type"])
        offer = ServiceOffer(
            status=ServiceStatus(raw["status"]), capacity_status=CapacityStatus(raw["capacity_status"]),
            open_slots=raw["open_slots"], min_age=raw["min_age"], max_age=raw["max_age"],
        )
    except ValueError:
        return None  # a value this version does not know: not offered, rather than a crash
    return service, offer


def _sexes(values: Sequence[str]) -> tuple[Sex, ...]:
    return tuple(Sex(v) for v in values if v in Sex.__members__)


async def candidates(connection: Connection, service: ServiceType) -> list[PartnerCandidate]:
    """Active partner organizations that list `service` in any status; rank_partners does the rest.

    The directory is not survivor data, so this works the same for the owner and the runtime role.
    """
    rows = await _rows(connection, _CANDIDATES.bindparams(partner=OrganizationKind.PARTNER.value,
                                                          service=service.value))
    result: list[PartnerCandidate] = []
    for row in rows:
        offers = dict(pair for pair in (_offer(raw) for raw in row.services) if pair is not None)
        result.append(PartnerCandidate(
            organization_id=row.id, name=row.name, active=row.active, counties=tuple(row.counties),
            languages=tuple(row.languages), sexes_served=_sexes(row.sexes_served), services=offers,
            min_age=row.min_age, max_age=row.max_age,
        ))
    return result
