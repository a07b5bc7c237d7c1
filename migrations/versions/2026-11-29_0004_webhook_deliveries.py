"""Webhook delivery log and outbox delivery state. Owned by the partner-network issue.

`webhook_delivery` holds one row per (outbox event, OAuth client) with its state (PENDING,
DELIVERED, DEAD) and retry schedule; `webhook_delivery_attempt` is the append-only log a partner
can query (attempt, status code, latency, error kind; never a response body). The runtime role may
read both, queue redeliveries and append to the log, never delete; row-level security limits it to
the organization in `app.organization_id`, like every other organization-scoped record.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OWN_ORGANIZATION = "organization_id = nullif(current_setting('app.organization_id', true), '')::uuid"


def app_role() -> str:
    config = op.get_context().config
    role = config.get_main_option("app_role") if config is not None else None
    return role or "pamoja_app"


def upgrade() -> None:
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("outbox_event_id", sa.UUID(), nullable=False),
        sa.Column("oauth_client_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempts_base", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("claim_token", sa.UUID(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error_kind", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["oauth_client_id"], ["oauth_client.id"]),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.ForeignKeyConstraint(["outbox_event_id"], ["outbox_event.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("outbox_event_id", "oauth_client_id", name="uq_webhook_delivery_event_client"),
    )
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["status", "next_attempt_at"], unique=False)
    op.create_index(op.f("ix_webhook_delivery_oauth_client_id"), "webhook_delivery", ["oauth_client_id"], unique=False)
    op.create_index(op.f("ix_webhook_delivery_organization_id"), "webhook_delivery", ["organization_id"], unique=False)

    op.create_table(
        "webhook_delivery_attempt",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("outbox_event_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("oauth_client_id", sa.UUID(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error_kind", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_delivery.id"]),
        sa.ForeignKeyConstraint(["oauth_client_id"], ["oauth_client.id"]),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.ForeignKeyConstraint(["outbox_event_id"], ["outbox_event.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_webhook_delivery_attempt_delivery_id"), "webhook_delivery_attempt", ["delivery_id"], unique=False
    )
    op.create_index(
        op.f("ix_webhook_delivery_attempt_outbox_event_id"), "webhook_delivery_attempt", ["outbox_event_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_webhook_delivery_attempt_organization_id"), "webhook_delivery_attempt", ["organization_id"],
        unique=False,
    )

    role = app_role()
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON webhook_delivery TO {role}")
    op.execute(f"GRANT SELECT, INSERT ON webhook_delivery_attempt TO {role}")
    for table in ("webhook_delivery", "webhook_delivery_attempt"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_own_organization ON {table} TO {role} "
            f"USING ({_OWN_ORGANIZATION}) WITH CHECK ({_OWN_ORGANIZATION})"
        )


def downgrade() -> None:
    for table in ("webhook_delivery_attempt", "webhook_delivery"):
        op.execute(f"DROP POLICY IF EXISTS {table}_own_organization ON {table}")
    op.drop_index(op.f("ix_webhook_delivery_attempt_organization_id"), table_name="webhook_delivery_attempt")
    op.drop_index(op.f("ix_webhook_delivery_attempt_outbox_event_id"), table_name="webhook_delivery_attempt")
    op.drop_index(op.f("ix_webhook_delivery_attempt_delivery_id"), table_name="webhook_delivery_attempt")
    op.drop_table("webhook_delivery_attempt")
    op.drop_index(op.f("ix_webhook_delivery_organization_id"), table_name="webhook_delivery")
    op.drop_index(op.f("ix_webhook_delivery_oauth_client_id"), table_name="webhook_delivery")
    op.drop_index("ix_webhook_delivery_due", table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
