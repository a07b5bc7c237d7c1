"""A counselor's referrals by (assigned counselor, receiving organization, status), replacing the index on
(assigned counselor, status).

Every read of a counselor's referrals also names her organization (the row scope's receiving side), and
PostgreSQL, not knowing that a counselor belongs to one organization, combined the counselor's index with
the receiving organization's in a BitmapAnd, reading the organization's ~3,000 index entries to narrow ~130
rows it did not narrow (0.35-0.4 ms of each dashboard; README, benchmark, seventh round). With the
organization in the counselor's index one index scan answers both conditions. A read by counselor and
status without the organization still uses the index's first column.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_referral_counselor", "referral",
                    ["assigned_counselor_id", "receiving_organization_id", "status"], unique=False)
    op.drop_index("ix_referral_counselor_status", table_name="referral")


def downgrade() -> None:
    op.create_index("ix_referral_counselor_status", "referral", ["assigned_counselor_id", "status"], unique=False)
    op.drop_index("ix_referral_counselor", table_name="referral")
