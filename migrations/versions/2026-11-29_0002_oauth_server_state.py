"""OAuth server state (authorization codes, refresh tokens, client-assertion jti replay cache, login throttling). Owned by the OAuth issue.

Codes and refresh tokens are stored as SHA-256 hashes only, so a read of these tables gives nobody a
usable credential. The runtime role gets exactly what the token endpoint and the login form need:
no DELETE on codes or refresh tokens (they are marked used or revoked, which is how reuse is
detected), DELETE on the two caches that are pruned.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def app_role() -> str:
    config = op.get_context().config
    role = config.get_main_option("app_role") if config is not None else None
    return role or "pamoja_app"


def _ts(name: str, *, nullable: bool, default_now: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.text("now()") if default_now else None)


def upgrade() -> None:
    op.add_column(
        "oauth_client",
        sa.Column("redirect_uris", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
    )
    op.create_table(
        "oauth_authorization_code",
        sa.Column("code_hash", sa.LargeBinary(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.Text(), nullable=False),
        sa.Column("code_challenge_method", sa.Text(), nullable=False),
        _ts("created_at", nullable=False, default_now=True),
        _ts("expires_at", nullable=False),
        _ts("used_at", nullable=True),
        sa.Column("family_id", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_client.client_id"]),
        sa.ForeignKeyConstraint(["user_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_table(
        "oauth_refresh_token",
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("family_id", sa.UUID(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("access_jti", sa.Text(), nullable=False),
        _ts("access_expires_at", nullable=False),
        _ts("created_at", nullable=False, default_now=True),
        _ts("expires_at", nullable=False),
        _ts("used_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_client.client_id"]),
        sa.ForeignKeyConstraint(["user_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_oauth_refresh_token_family_id"), "oauth_refresh_token", ["family_id"], unique=False)
    op.create_table(
        "oauth_assertion_jti",
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("jti", sa.Text(), nullable=False),
        _ts("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti"),
    )
    op.create_table(
        "login_throttle",
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _ts("last_failure_at", nullable=True),
        _ts("locked_until", nullable=True),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    role = app_role()
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON oauth_authorization_code, oauth_refresh_token TO {role}")
    op.execute(f"GRANT SELECT, INSERT, DELETE ON oauth_assertion_jti TO {role}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON login_throttle TO {role}")


def downgrade() -> None:
    op.drop_table("login_throttle")
    op.drop_table("oauth_assertion_jti")
    op.drop_index(op.f("ix_oauth_refresh_token_family_id"), table_name="oauth_refresh_token")
    op.drop_table("oauth_refresh_token")
    op.drop_table("oauth_authorization_code")
    op.drop_column("oauth_client", "redirect_uris")
