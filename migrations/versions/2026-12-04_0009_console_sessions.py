"""Console sessions: the staff console keeps each signed-in person's tokens on the server.

The browser holds only a random session id in an HttpOnly cookie; the table holds its SHA-256, the
CSRF token of its forms, the chosen language, and the access and refresh tokens sealed under the
master key (aad: the row's id hash), so a read of the table gives nobody a usable token. A row
while signing in holds the OAuth `state` and the PKCE verifier (sealed) instead. The runtime role
creates, reads, refreshes and deletes rows (sign-out and the sweep of expired ones).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def app_role() -> str:
    config = op.get_context().config
    role = config.get_main_option("app_role") if config is not None else None
    return role or "pamoja_app"


def upgrade() -> None:
    op.create_table(
        "console_session",
        sa.Column("id_hash", sa.LargeBinary(), nullable=False),
        sa.Column("staff_user_id", sa.UUID(), nullable=True),
        sa.Column("csrf_token", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("login_state", sa.Text(), nullable=True),
        sa.Column("login_verifier_enc", sa.LargeBinary(), nullable=True),
        sa.Column("access_token_enc", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token_enc", sa.LargeBinary(), nullable=True),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["staff_user_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index(op.f("ix_console_session_staff_user_id"), "console_session", ["staff_user_id"], unique=False)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON console_session TO {app_role()}")


def downgrade() -> None:
    op.drop_index(op.f("ix_console_session_staff_user_id"), table_name="console_session")
    op.drop_table("console_session")
