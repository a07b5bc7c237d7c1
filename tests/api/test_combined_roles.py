"""A person holding several roles gets each role's rights on its own terms, never their union per record.

The case in point: a counselor who is also her centre's coordinator. As coordinator she sees every
referral addressed to the centre, its sessions and its safeguarding concerns; as counselor she reads
and writes clinical notes. Notes follow the assignment: on a referral assigned to her she reads and
writes them, on any other she is the coordinator, who has none (domain/policy.py, README "Who sees what").
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.enums import Role
from tests.factories import Factory
from tests.flows import Case, act, network, referred_case

LOG_SESSION = """mutation($input: LogSessionInput!) { logSession(input: $input) {
  session { id notes } userErrors { field code message } } }"""
SESSION_NOTES = """query($id: ID!) { node(id: $id) { ... on CounselingSession { id attendance notes } } }"""
REFERRAL_NOTES = """query($id: ID!) { node(id: $id) { ... on Referral {
  sessions(first: 10) { edges { node { id attendance notes } } } safeguardingConcerns { level } } } }"""
LISTED_NOTES = """{ referrals(first: 50) { edges { node { id
  sessions(first: 10) { edges { node { id notes } } } } } } }"""


def _session(case: Case, **extra: Any) -> dict[str, Any]:
    return {"referralId": case.referral["id"], "startedAt": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "durationMinutes": 50, "modality": "INDIVIDUAL", "sessionType": "THERAPY", "attendance": "ATTENDED",
            **extra}


async def _log(factory: Factory, token: str, case: Case, **extra: Any) -> dict[str, Any]:
    body = await factory.gql(token, LOG_SESSION, {"input": _session(case, **extra)})
    payload: dict[str, Any] = body["data"]["logSession"]
    return payload


async def test_a_counselor_who_coordinates_reads_notes_only_on_referrals_assigned_to_her(
        factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    both = await factory.user(net.partner, Role.PARTNER_COORDINATOR, Role.COUNSELOR)
    token = await factory.token(both)
    mine = await referred_case(factory, net, accept=True)
    theirs = await referred_case(factory, net, accept=True, assign=True)  # assigned to net.counselor
    assigned = await act(factory, token, "assignCounselor", "AssignCounselorInput", referralId=mine.referral["id"],
                         counselorId=both.gid)
    assert assigned["userErrors"] == []
    my_notes = f"Talked about her sister {secrets.token_hex(4)}"
    their_notes = f"Nightmares about the bar {secrets.token_hex(4)}"
    my_session = await _log(factory, token, mine, notes=my_notes)
    assert my_session["userErrors"] == [] and my_session["session"]["notes"] == my_notes
    their_session = await _log(factory, net.token("counselor"), theirs, notes=their_notes,
                               safeguardingConcern={"level": "HIGH"})
    assert their_session["userErrors"] == []
    their_id = their_session["session"]["id"]

    # By id, through the referral and in the listing: the notes of her own referral only.
    assert (await factory.gql(token, SESSION_NOTES, {"id": my_session["session"]["id"]}))["data"]["node"][
        "notes"] == my_notes
    as_coordinator = (await factory.gql(token, SESSION_NOTES, {"id": their_id}))["data"]["node"]
    assert as_coordinator == {"id": their_id, "attendance": "ATTENDED", "notes": None}
    referral = (await factory.gql(token, REFERRAL_NOTES, {"id": theirs.referral["id"]}))["data"]["node"]
    assert referral["sessions"]["edges"] == [{"node": {"id": their_id, "attendance": "ATTENDED", "notes": None}}]
    assert referral["safeguardingConcerns"] == [{"level": "HIGH"}]  # the coordinator's right, kept
    listed = (await factory.gql(token, LISTED_NOTES))["data"]["referrals"]["edges"]
    notes = {s["node"]["id"]: s["node"]["notes"] for e in listed for s in e["node"]["sessions"]["edges"]}
    assert notes == {my_session["session"]["id"]: my_notes, their_id: None}

    # No note of the other referral was decrypted for her, so none was audited as read by her.
    async with owner_engine.connect() as connection:
        reads = (await connection.execute(text(
            "SELECT record_id FROM audit_event WHERE actor = :actor AND action = 'read' AND "
            "record_type = 'SessionNote'"), {"actor": both.gid})).scalars().all()
    assert their_id not in reads and my_session["session"]["id"] in reads


async def test_a_counselor_who_coordinates_writes_notes_only_on_referrals_assigned_to_her(factory: Factory) -> None:
    net = await network(factory)
    both = await factory.user(net.partner, Role.PARTNER_COORDINATOR, Role.COUNSELOR)
    token = await factory.token(both)
    theirs = await referred_case(factory, net, accept=True, assign=True)

    refused = await _log(factory, token, theirs, notes="Seemed withdrawn today.")
    assert refused["session"] is None
    assert refused["userErrors"] == [{"field": ["input", "notes"], "code": "INVALID", "message": (
        "Clinical notes are written only by the counselor assigned to this referral or the partner's system: "
        "assign yourself as its counselor first, or leave them out.")}]
    described = await _log(factory, token, theirs, safeguardingConcern={"level": "HIGH", "description": "Bruises."})
    assert described["userErrors"][0]["field"] == ["input", "safeguardingConcern", "description"]
    # As the coordinator she still logs the session and raises the concern, without clinical text.
    logged = await _log(factory, token, theirs, safeguardingConcern={"level": "HIGH"})
    assert logged["userErrors"] == [] and logged["session"]["notes"] is None
