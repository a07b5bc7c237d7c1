"""Staff lifecycle: when and why an account was deactivated, and one-time links to set a password.

`staff_user.active` already existed; deactivation now also records `deactivated_at` and the
administrator's reason, and `signed_out_at`: access tokens issued until then are refused even after a
reactivation (setting a password moves it too). `staff_password_link` holds only the SHA-256 of each link's random token,
so a read of the table gives nobody a usable link. The runtime role reads, issues and spends links
(marks them used); it never deletes one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def app_role() -> str:
    config = op.get_context().config
    role = config.get_main_option("app_role") if config is not None else None
    return role or "pamoja_app"


def upgrade() -> None:
    op.add_column("staff_user", sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("staff_user", sa.Column("deactivation_reason", sa.Text(), nullable=True))
    op.add_column("staff_user", sa.Column("signed_out_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "staff_password_link",
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("staff_user_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["staff_user_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_staff_password_link_staff_user_id"), "staff_password_link", ["staff_user_id"],
                    unique=False)
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON staff_password_link TO {app_role()}")


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_password_link_staff_user_id"), table_name="staff_password_link")
    op.drop_table("staff_password_link")
    op.drop_column("staff_user", "signed_out_at")
    op.drop_column("staff_user", "deactivation_reason")
    op.drop_column("staff_user", "deactivated_at")
