"""Data subject rights: legal hold, erasure, retention, duplicate reviews, audit lookups by record.

- `survivor` gains the legal hold (when, by whom, a reason code: no free text to clear later),
  a pending erasure request (when, by whom, a reason code) and `erased_at`.
- `duplicate_review`: a registration whose phone matched a survivor the registering person may not
  see, for the organization's supervisors (ids and the matched column only; row-level security
  keeps each organization to its own).
- `erase_survivor(survivor, reason, open statuses)`: one SECURITY DEFINER function does the whole
  erasure, because part of it touches append-only history (reason ciphertexts in
  referral_status_change and goal_progress) and a partner's own care rows that the referring NGO
  may read but not write. It destroys the survivor's data key (crypto-shredding), clears every
  free-text column (ciphertexts, the pseudonym, phone blind indexes), withdraws active consents,
  cancels open referrals (history row by `system`) and returns each referral so the caller can
  tell both sides. It refuses a survivor under legal hold, and a runtime-role caller outside the
  survivor's organization unless it is the worker (the same boundary as row-level security).
- `retention_due(cutoff, open statuses)`: survivors whose last referral closed (or, never referred,
  who were registered) before the cutoff, and those whose erasure request waits; with any hold.
- `subject_record_ids(survivor)`: the global ids of a survivor's records, for the audit report and
  the subject access export; `subject_audit_trail(survivor)` reads the audit rows of those ids for
  the survivor's own organization (other organizations' reads included, which RLS hides).
- Indexes on audit_event(record_id), (actor) and (client_id): a breach question is answered from an
  index, not a scan of the whole trail.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORG = "NULLIF(current_setting('app.organization_id', true), '')::uuid"


def app_role() -> str:
    config = op.get_context().config
    role = config.get_main_option("app_role") if config is not None else None
    return role or "pamoja_app"


def _guard(role: str, organization: str) -> str:
    """plpgsql: the runtime role acts only inside its own organization (or as the worker)."""
    return f"""
      IF session_user::text = '{role}' AND {organization} IS DISTINCT FROM {ORG}
         AND coalesce(current_setting('app.system', true), '') <> 'worker' THEN
        RAISE EXCEPTION 'outside the caller''s organization' USING ERRCODE = '42501';
      END IF;"""


def upgrade() -> None:
    role = app_role()
    for column in (sa.Column("legal_hold_at", sa.DateTime(timezone=True), nullable=True),
                   sa.Column("legal_hold_by_id", sa.UUID(), sa.ForeignKey("staff_user.id"), nullable=True),
                   sa.Column("legal_hold_reason", sa.Text(), nullable=True),
                   sa.Column("erasure_requested_at", sa.DateTime(timezone=True), nullable=True),
                   sa.Column("erasure_requested_by_id", sa.UUID(), sa.ForeignKey("staff_user.id"), nullable=True),
                   sa.Column("erasure_reason", sa.Text(), nullable=True),
                   sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True)):
        op.add_column("survivor", column)

    op.create_table(
        "duplicate_review",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), sa.ForeignKey("organization.id"), nullable=False),
        sa.Column("survivor_id", sa.UUID(), sa.ForeignKey("survivor.id"), nullable=False),
        sa.Column("matched_survivor_id", sa.UUID(), sa.ForeignKey("survivor.id"), nullable=False),
        sa.Column("matched_on", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("registered_by_id", sa.UUID(), sa.ForeignKey("staff_user.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", sa.UUID(), sa.ForeignKey("staff_user.id"), nullable=True),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("survivor_id", "matched_survivor_id"),
    )
    op.create_index("ix_duplicate_review_open", "duplicate_review", ["organization_id", "created_at", "id"])
    op.execute("ALTER TABLE duplicate_review ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE duplicate_review FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY organization_read ON duplicate_review FOR SELECT TO {role} "
               f"USING (organization_id = {ORG})")
    op.execute(f"CREATE POLICY organization_insert ON duplicate_review FOR INSERT TO {role} "
               f"WITH CHECK (organization_id = {ORG})")
    op.execute(f"CREATE POLICY organization_update ON duplicate_review FOR UPDATE TO {role} "
               f"USING (organization_id = {ORG}) WITH CHECK (organization_id = {ORG})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON duplicate_review TO {role}")

    op.create_index("ix_audit_event_record", "audit_event", ["record_id", "seq"])
    op.create_index("ix_audit_event_actor", "audit_event", ["actor", "seq"])
    op.create_index("ix_audit_event_client", "audit_event", ["client_id", "seq"])

    op.execute("""
        CREATE FUNCTION pamoja_global_id(kind text, id uuid) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
          SELECT rtrim(translate(replace(encode(convert_to(kind || ':' || id::text, 'UTF8'), 'base64'),
                                         E'\\n', ''), '+/', '-_'), '=')
        $$""")
    op.execute(f"""
        CREATE FUNCTION subject_record_ids(p_survivor uuid) RETURNS SETOF text
        LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
        DECLARE owner_org uuid;
        BEGIN
          SELECT organization_id INTO owner_org FROM survivor WHERE id = p_survivor;
          IF owner_org IS NULL THEN RETURN; END IF;
          {_guard(role, "owner_org")}
          RETURN QUERY
            SELECT pamoja_global_id('Survivor', p_survivor)
            UNION ALL SELECT pamoja_global_id('Consent', id) FROM consent WHERE survivor_id = p_survivor
            UNION ALL SELECT pamoja_global_id('Referral', id) FROM referral WHERE survivor_id = p_survivor
            UNION ALL SELECT pamoja_global_id('CounselingSession', id) FROM counseling_session
                      WHERE survivor_id = p_survivor
            UNION ALL SELECT pamoja_global_id('CareGoal', id) FROM care_goal WHERE survivor_id = p_survivor
            UNION ALL SELECT pamoja_global_id('Milestone', id) FROM milestone WHERE survivor_id = p_survivor
            UNION ALL SELECT pamoja_global_id('Assessment', id) FROM assessment WHERE survivor_id = p_survivor;
        END $$""")
    op.execute("""
        CREATE FUNCTION subject_audit_trail(p_survivor uuid) RETURNS SETOF audit_event
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
          SELECT a.* FROM audit_event a
          WHERE a.record_id IN (SELECT subject_record_ids(p_survivor)) ORDER BY a.seq
        $$""")
    op.execute(f"""
        CREATE FUNCTION erase_survivor(p_survivor uuid, p_reason text, p_open text[])
        RETURNS TABLE(o_referral_id uuid, o_referring_organization_id uuid, o_receiving_organization_id uuid,
                      o_previous_status text, o_cancelled boolean)
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
        DECLARE owner_org uuid; held timestamptz; rec record;
        BEGIN
          SELECT organization_id, legal_hold_at INTO owner_org, held FROM survivor
          WHERE id = p_survivor AND erased_at IS NULL FOR UPDATE;
          IF owner_org IS NULL THEN RETURN; END IF;
          {_guard(role, "owner_org")}
          IF held IS NOT NULL THEN
            RAISE EXCEPTION 'survivor under legal hold' USING ERRCODE = 'P0001';
          END IF;
          FOR rec IN SELECT r.id, r.status, r.referring_organization_id, r.receiving_organization_id
                     FROM referral r WHERE r.survivor_id = p_survivor ORDER BY r.created_at, r.id FOR UPDATE LOOP
            o_referral_id := rec.id;
            o_referring_organization_id := rec.referring_organization_id;
            o_receiving_organization_id := rec.receiving_organization_id;
            o_previous_status := rec.status;
            o_cancelled := rec.status = ANY(p_open);
            IF o_cancelled THEN
              UPDATE referral SET status = 'CANCELLED', version = version + 1, updated_at = now(),
                                  last_activity_at = now() WHERE id = rec.id;
              INSERT INTO referral_status_change (referral_id, organization_id, from_status, to_status, actor)
              VALUES (rec.id, rec.referring_organization_id, rec.status, 'CANCELLED', 'system');
            END IF;
            RETURN NEXT;
          END LOOP;
          UPDATE survivor_key SET destroyed_at = now(), wrapped_key = '\\x'::bytea WHERE survivor_id = p_survivor;
          UPDATE survivor_identity SET legal_name_enc = '\\x'::bytea, phone_enc = NULL, guardian_name_enc = NULL,
                 guardian_phone_enc = NULL, location_enc = NULL, phone_index = NULL, guardian_phone_index = NULL,
                 updated_at = now(), version = version + 1
          WHERE survivor_id = p_survivor;
          UPDATE consent SET status = CASE WHEN status = 'ACTIVE' THEN 'WITHDRAWN' ELSE status END,
                 withdrawn_at = CASE WHEN status = 'ACTIVE' THEN now() ELSE withdrawn_at END,
                 withdrawal_reason_enc = NULL, witness_enc = NULL, updated_at = now(), version = version + 1
          WHERE survivor_id = p_survivor;
          UPDATE referral SET reason_enc = NULL, status_reason_enc = NULL, outcome_enc = NULL
          WHERE survivor_id = p_survivor;
          UPDATE referral_status_change SET reason_enc = NULL
          WHERE referral_id IN (SELECT id FROM referral WHERE survivor_id = p_survivor) AND reason_enc IS NOT NULL;
          UPDATE counseling_session SET notes_enc = NULL, concern_description_enc = NULL
          WHERE survivor_id = p_survivor;
          UPDATE goal_progress SET note_enc = NULL
          WHERE goal_id IN (SELECT id FROM care_goal WHERE survivor_id = p_survivor) AND note_enc IS NOT NULL;
          UPDATE care_goal SET description_enc = '\\x'::bytea WHERE survivor_id = p_survivor;
          UPDATE milestone SET title_enc = '\\x'::bytea, note_enc = NULL WHERE survivor_id = p_survivor;
          DELETE FROM duplicate_review WHERE survivor_id = p_survivor OR matched_survivor_id = p_survivor;
          UPDATE survivor SET pseudonym = 'Erased', erased_at = now(),
                 erasure_reason = p_reason, erasure_requested_at = coalesce(erasure_requested_at, now()),
                 updated_at = now(), version = version + 1
          WHERE id = p_survivor;
        END $$""")
    op.execute(f"""
        CREATE FUNCTION retention_due(p_cutoff timestamptz, p_open text[])
        RETURNS TABLE(o_survivor_id uuid, o_organization_id uuid, o_reason text, o_last_closed_at timestamptz,
                      o_legal_hold_at timestamptz)
        LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
        BEGIN
          IF session_user::text = '{role}' AND coalesce(current_setting('app.system', true), '') <> 'worker' THEN
            RAISE EXCEPTION 'retention is run by the worker or the operator' USING ERRCODE = '42501';
          END IF;
          RETURN QUERY
            WITH closed AS (
              SELECT s.id, s.organization_id, s.erasure_requested_at, s.erasure_reason, s.legal_hold_at,
                     coalesce((SELECT max(coalesce((SELECT max(c.at) FROM referral_status_change c
                                                    WHERE c.referral_id = r.id), r.updated_at))
                               FROM referral r WHERE r.survivor_id = s.id), s.created_at) AS last_closed,
                     EXISTS (SELECT 1 FROM referral r WHERE r.survivor_id = s.id AND r.status = ANY(p_open)) AS has_open
              FROM survivor s WHERE s.erased_at IS NULL
            )
            SELECT id, organization_id,
                   CASE WHEN erasure_requested_at IS NOT NULL THEN coalesce(erasure_reason, 'SUBJECT_REQUEST')
                        ELSE 'RETENTION_EXPIRED' END,
                   last_closed, legal_hold_at
            FROM closed
            WHERE erasure_requested_at IS NOT NULL OR (NOT has_open AND last_closed < p_cutoff)
            ORDER BY organization_id, id;
        END $$""")
    for function in ("subject_record_ids(uuid)", "subject_audit_trail(uuid)", "erase_survivor(uuid, text, text[])",
                     "retention_due(timestamptz, text[])"):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {role}")


def downgrade() -> None:
    for function in ("retention_due(timestamptz, text[])", "erase_survivor(uuid, text, text[])",
                     "subject_audit_trail(uuid)", "subject_record_ids(uuid)", "pamoja_global_id(text, uuid)"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    for index in ("ix_audit_event_client", "ix_audit_event_actor", "ix_audit_event_record"):
        op.drop_index(index, table_name="audit_event")
    op.drop_index("ix_duplicate_review_open", table_name="duplicate_review")
    op.drop_table("duplicate_review")
    for column in ("erased_at", "erasure_reason", "erasure_requested_by_id", "erasure_requested_at",
                   "legal_hold_reason", "legal_hold_by_id", "legal_hold_at"):
        op.drop_column("survivor", column)
