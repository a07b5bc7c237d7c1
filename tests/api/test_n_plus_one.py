"""No N+1: the counselor dashboard of issue 5 runs the same small number of SQL statements for 5 and
for 50 referrals (every nested field goes through a per-request DataLoader)."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.crypto import MasterKeys, encrypt_field, new_data_key
from db.survivors import key_aad
from domain.enums import Role
from tests.factories import Factory, User
from tests.statements import sent_statements

DASHBOARD = """query Dashboard { referrals(first: 50, filter: {assignedToMe: true, status: [ACCEPTED, IN_PROGRESS]}) {
  edges { node { id status priority respondBy survivor { pseudonym ageBand }
    sessions(first: 5) { edges { node { startedAt durationMinutes modality attendance } } }
    goals { domain achievementStatus } milestones { title achievedOn } } } } }"""

SEED = text("""
WITH s AS (
  INSERT INTO survivor (organization_id, pseudonym, birth_year, sex, county, languages, risk_level)
  SELECT :ngo, 'Bench-' || g, 2010, 'FEMALE', '003', '{sw}', 'HIGH' FROM generate_series(1, :n) g RETURNING id
), c AS (
  INSERT INTO consent (survivor_id, organization_id, recipient_id, purposes, data_categories, given_by, child_assent,
                       valid_from)
  SELECT id, :ngo, :partner, '{REFERRAL,SERVICE_DELIVERY,FEEDBACK_TO_REFERRER}',
         '{CASE_SUMMARY,SESSION_ATTENDANCE,ASSESSMENTS}', 'GUARDIAN', true, now() - interval '1 day' FROM s
  RETURNING id, survivor_id
), r AS (
  INSERT INTO referral (survivor_id, referring_organization_id, receiving_organization_id, consent_id, service,
                        priority, status, assigned_counselor_id)
  SELECT survivor_id, :ngo, :partner, id, 'PSYCHOSOCIAL_COUNSELING', 'ROUTINE', 'IN_PROGRESS', :counselor
  FROM c RETURNING id, survivor_id
), sessions AS (
  INSERT INTO counseling_session (referral_id, survivor_id, organization_id, referring_organization_id, counselor_id,
                                  started_at, duration_minutes, modality, session_type, attendance)
  SELECT r.id, r.survivor_id, :partner, :ngo, :counselor, now() - (k || ' days')::interval, 50, 'INDIVIDUAL',
         'THERAPY', 'ATTENDED' FROM r, generate_series(1, 7) k RETURNING referral_id
), goals AS (
  INSERT INTO care_goal (survivor_id, referral_id, organization_id, referring_organization_id, domain,
                         description_enc, lifecycle_status, achievement_status)
  SELECT r.survivor_id, r.id, :partner, :ngo, 'SAFETY', '', 'ACTIVE', 'IN_PROGRESS' FROM r
  RETURNING referral_id
)
INSERT INTO milestone (referral_id, survivor_id, organization_id, referring_organization_id, title_enc, achieved_on)
SELECT r.id, r.survivor_id, :partner, :ngo, '', current_date - k FROM r, generate_series(1, 2) k
""")
# (table, column, text): the free text the seed seals per row, as the API would have written it.
SEALED = (("care_goal", "description", "Safety plan"), ("milestone", "title", "First session attended"))


async def _seal(connection: AsyncConnection, master: MasterKeys, ngo: uuid.UUID) -> None:
    """Give the seeded survivors their data keys and seal the goals' and milestones' text under them."""
    keys: dict[uuid.UUID, bytes] = {}
    for survivor_id in (await connection.execute(text("SELECT id FROM survivor WHERE organization_id = :ngo"),
                                                 {"ngo": ngo})).scalars():
        keys[survivor_id] = new_data_key()
        key_id, wrapped = master.wrap(keys[survivor_id], aad=key_aad(survivor_id))
        await connection.execute(text("INSERT INTO survivor_key (survivor_id, organization_id, master_key_id, "
                                      "wrapped_key) VALUES (:id, :ngo, :key_id, :wrapped)"),
                                 {"id": survivor_id, "ngo": ngo, "key_id": key_id, "wrapped": wrapped})
    for table, column, value in SEALED:
        rows = (await connection.execute(text(
            f"SELECT id, survivor_id FROM {table} WHERE referring_organization_id = :ngo"), {"ngo": ngo})).all()  # noqa: S608
        await connection.execute(text(f"UPDATE {table} SET {column}_enc = :sealed WHERE id = :id"), [  # noqa: S608
            {"id": r.id, "sealed": encrypt_field(keys[r.survivor_id], value, table=table, column=column, row_id=r.id)}
            for r in rows])


async def _seed(engine: AsyncEngine, factory: Factory, n: int) -> User:
    ngo = await factory.ngo()
    partner = await factory.org()
    counselor = await factory.user(partner, Role.COUNSELOR)
    async with engine.begin() as connection:
        await connection.execute(SEED, {"ngo": ngo.id, "partner": partner.id, "counselor": counselor.id, "n": n})
        await _seal(connection, MasterKeys.parse(factory.settings.master_keys.get_secret_value()), ngo.id)
    return counselor


async def test_the_dashboard_runs_the_same_statements_for_5_and_50_referrals(
    factory: Factory, app: FastAPI, owner_engine: AsyncEngine
) -> None:
    counts = {}
    for n in (5, 50):
        counselor = await _seed(owner_engine, factory, n)
        token = await factory.token(counselor)
        await factory.gql(token, "{ viewer { clientId } }")  # warm the per-process signing-key cache
        with sent_statements(app.state.pamoja.engine) as statements:
            body = await factory.gql(token, DASHBOARD)
        edges = body["data"]["referrals"]["edges"]
        assert len(edges) == n
        assert all(len(e["node"]["sessions"]["edges"]) == 5 for e in edges)
        assert all(len(e["node"]["milestones"]) == 2 and len(e["node"]["goals"]) == 1 for e in edges)
        # Milestone titles are sealed: decrypting them adds no statement (the referrals brought the keys).
        assert {m["title"] for e in edges for m in e["node"]["milestones"]} == {"First session attended"}
        counts[n] = len(statements)
    assert counts[5] == counts[50], counts
    # token subject, row-security context, referrals, survivors, their access, sessions, goals, milestones
    assert counts[50] <= 8, counts


IDENTITIES = "{ survivors(first: 20) { edges { node { id identity { legalName phone } } } } }"


async def test_reading_many_identities_is_one_batch_and_one_audit_row_each(
    factory: Factory, app: FastAPI, owner_engine: AsyncEngine
) -> None:
    from tests.flows import register_survivor

    counts = {}
    for n in (2, 6):
        ngo = await factory.ngo()
        manager = await factory.user(ngo, Role.CASE_MANAGER)
        token = await factory.token(manager)
        ids = [(await register_survivor(factory, token))["id"] for _ in range(n)]
        with sent_statements(app.state.pamoja.engine) as statements:
            body = await factory.gql(token, IDENTITIES)
        nodes = body["data"]["survivors"]["edges"]
        assert sorted(e["node"]["id"] for e in nodes) == sorted(ids)
        assert all(e["node"]["identity"]["legalName"].startswith("Amina Wanjiru") for e in nodes)
        counts[n] = len(statements)
        async with owner_engine.connect() as connection:
            audited = (await connection.execute(text(
                "SELECT count(*) FROM audit_event WHERE actor = :actor AND record_type = 'SurvivorIdentity'"),
                {"actor": manager.gid})).scalar_one()
        assert audited == n
    assert counts[2] == counts[6], counts
