"""Reads of survivor data by id that showed nothing: audited, so probing leaves a trace (rule 3).

A caller who asks for a record it may not see gets what it would get for a record that does not
exist (null, or NOT_FOUND), and must go on being unable to tell the two apart. The audit trail is
where the difference may show: one denied row per id asked for and not shown, whatever the reason.
The API caps how many of these rows one principal can cause (api/graphql/read_audit.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from domain import policy
from domain.ids import to_global_id
from domain.ports import Unit
from domain.principal import Principal

NOT_VISIBLE = "NOT_VISIBLE"

# The record types that hold survivor data (their global ids are what a probe asks for).
SURVIVOR_DATA = frozenset({"Survivor", "Consent", "Referral", "CounselingSession", "CareGoal", "Milestone",
                           "Assessment"})


async def audit_unseen(*, unit: Unit, record_type: str, ids: Sequence[uuid.UUID]) -> None:
    """One denied row per distinct id of a survivor-data record asked for by id and not shown."""
    if record_type not in SURVIVOR_DATA:
        return
    await unit.audit_many(action="read", record_type=record_type, outcome="denied", purpose=NOT_VISIBLE,
                          record_ids=[to_global_id(record_type, i) for i in dict.fromkeys(ids)])


async def audit_unseen_survivors(*, unit: Unit, principal: Principal, ids: Sequence[uuid.UUID]) -> None:
    """For a filter naming survivors (the answer is an empty list either way): audit those the
    caller may not see. Needs no Survivor scope, since it shows nothing."""
    if not ids:
        return
    seen = await unit.survivors.by_id(policy.rows(principal, unit.now()), ids)
    await audit_unseen(unit=unit, record_type="Survivor", ids=[i for i in ids if i not in seen])
