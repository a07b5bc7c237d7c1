"""Every SECURITY DEFINER function searches the session's temporary schema last, not first.

Their `SET search_path = pg_catalog, public` left `pg_temp` out, and PostgreSQL then searches it first for
tables: a session of the API's role (which may make temporary objects, and since the read in one call does,
db/one_call.py) could shadow `survivor` or `referral` with a temporary table of its own inside functions
that run as the owner (`retention_due`, `erase_survivor`, the subject-access reads). PostgreSQL's
"Writing SECURITY DEFINER Functions Safely" asks for `pg_temp` listed last.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVERY_DEFINER_FUNCTION = """
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE p.prosecdef AND n.nspname = 'public'
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = {path}', f);
  END LOOP;
END $$"""


def upgrade() -> None:
    op.execute(EVERY_DEFINER_FUNCTION.format(path="pg_catalog, public, pg_temp"))


def downgrade() -> None:
    op.execute(EVERY_DEFINER_FUNCTION.format(path="pg_catalog, public"))
