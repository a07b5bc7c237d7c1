"""Row-level security on every table holding survivor data: the database's own backstop.

The application filters every read through domain.policy (db/scopes.py). These policies repeat the
coarse organization boundary in PostgreSQL so that a bug, a raw query or a new resolver that skips
the application filter still cannot read or write another organization's rows. Policies read the
caller's organization from `current_setting('app.organization_id', true)`, which the app sets with
`set_config(..., true)` inside each transaction (security.md §3); no setting means no rows.

Tables are ENABLEd and FORCEd, so even their owner is subject to the policies (superusers are not:
migrations and the operator CLI run as the owner). audit_event is enabled but not forced: its
SECURITY DEFINER trigger must read the previous row's hash whatever organization wrote it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORG = "NULLIF(current_setting('app.organization_id', true), '')::uuid"

# A partner reaches a survivor only through a non-draft referral addressed to it.
VIA_REFERRAL = (
    "EXISTS (SELECT 1 FROM referral r WHERE r.survivor_id = {table}.{column} "
    f"AND r.receiving_organization_id = {ORG} AND r.status <> 'DRAFT')"
)

POLICIES: dict[str, str] = {
    "survivor": f"organization_id = {ORG} OR " + VIA_REFERRAL.format(table="survivor", column="id"),
    "survivor_identity": f"organization_id = {ORG} OR "
    + VIA_REFERRAL.format(table="survivor_identity", column="survivor_id"),
    "survivor_key": f"organization_id = {ORG} OR " + VIA_REFERRAL.format(table="survivor_key", column="survivor_id"),
    "consent": f"organization_id = {ORG} OR recipient_id = {ORG}",
    "referral": f"referring_organization_id = {ORG} OR (receiving_organization_id = {ORG} AND status <> 'DRAFT')",
    "referral_status_change": f"organization_id = {ORG} OR EXISTS (SELECT 1 FROM referral r "
    f"WHERE r.id = referral_status_change.referral_id AND r.receiving_organization_id = {ORG})",
    "counseling_session": f"organization_id = {ORG} OR referring_organization_id = {ORG}",
    "care_goal": f"organization_id = {ORG} OR referring_organization_id = {ORG}",
    "goal_progress": f"organization_id = {ORG} OR referring_organization_id = {ORG}",
    "milestone": f"organization_id = {ORG} OR referring_organization_id = {ORG}",
    "assessment": f"organization_id = {ORG} OR referring_organization_id = {ORG}",
    "idempotency_record": f"organization_id = {ORG}",
}

# Writes: each row must belong to the caller's side.
WRITE_CHECKS: dict[str, str] = {
    "survivor": f"organization_id = {ORG}",
    "survivor_identity": f"organization_id = {ORG}",
    "survivor_key": f"organization_id = {ORG}",
    "consent": f"organization_id = {ORG}",
    "referral": f"referring_organization_id = {ORG} OR receiving_organization_id = {ORG}",
    "referral_status_change": POLICIES["referral_status_change"],
    "counseling_session": f"organization_id = {ORG}",
    "care_goal": f"organization_id = {ORG}",
    "goal_progress": f"organization_id = {ORG}",
    "milestone": f"organization_id = {ORG}",
    "assessment": f"organization_id = {ORG}",
    "idempotency_record": f"organization_id = {ORG}",
}


def app_role() -> str:
    config = op.get_context().config
    role = config.get_main_option("app_role") if config is not None else None
    return role or "pamoja_app"


def upgrade() -> None:
    op.add_column("idempotency_record", sa.Column("organization_id", sa.UUID(), nullable=True))
    role = app_role()
    for table, visible in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY organization_read ON {table} FOR SELECT TO {role} USING ({visible})")
        op.execute(f"CREATE POLICY organization_insert ON {table} FOR INSERT TO {role} "
                   f"WITH CHECK ({WRITE_CHECKS[table]})")
        op.execute(f"CREATE POLICY organization_update ON {table} FOR UPDATE TO {role} USING ({visible}) "
                   f"WITH CHECK ({WRITE_CHECKS[table]})")
    op.execute(f"CREATE POLICY organization_delete ON idempotency_record FOR DELETE TO {role} "
               f"USING ({POLICIES['idempotency_record']})")
    # The outbox: anyone may address an event to another organization; each reads only its own.
    op.execute("ALTER TABLE outbox_event ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE outbox_event FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY outbox_insert ON outbox_event FOR INSERT TO {role} WITH CHECK (true)")
    op.execute(f"CREATE POLICY outbox_read ON outbox_event FOR SELECT TO {role} USING (organization_id = {ORG})")
    op.execute(f"CREATE POLICY outbox_update ON outbox_event FOR UPDATE TO {role} "
               f"USING (organization_id = {ORG})")
    # The audit trail: everyone appends; an organization reads its own rows (supervisors, admins).
    op.execute("ALTER TABLE audit_event ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY audit_insert ON audit_event FOR INSERT TO {role} WITH CHECK (true)")
    op.execute(f"CREATE POLICY audit_read ON audit_event FOR SELECT TO {role} USING (organization_id = {ORG})")
    # Indexes the policies' organization conditions use.
    op.create_index("ix_referral_survivor", "referral", ["survivor_id", "receiving_organization_id"])
    op.create_index("ix_audit_event_organization", "audit_event", ["organization_id", "seq"])
    op.create_index("ix_idempotency_organization", "idempotency_record", ["organization_id"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_organization", table_name="idempotency_record")
    op.drop_index("ix_audit_event_organization", table_name="audit_event")
    op.drop_index("ix_referral_survivor", table_name="referral")
    for name in ("audit_insert", "audit_read"):
        op.execute(f"DROP POLICY IF EXISTS {name} ON audit_event")
    op.execute("ALTER TABLE audit_event DISABLE ROW LEVEL SECURITY")
    for name in ("outbox_insert", "outbox_read", "outbox_update"):
        op.execute(f"DROP POLICY IF EXISTS {name} ON outbox_event")
    op.execute("ALTER TABLE outbox_event NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE outbox_event DISABLE ROW LEVEL SECURITY")
    op.execute("DROP POLICY IF EXISTS organization_delete ON idempotency_record")
    for table in POLICIES:
        for name in ("organization_read", "organization_insert", "organization_update"):
            op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.drop_column("idempotency_record", "organization_id")
