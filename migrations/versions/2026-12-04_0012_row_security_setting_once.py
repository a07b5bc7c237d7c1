"""Row-level security reads the caller's organization once per statement, not once per row.

Every policy compares a column with `NULLIF(current_setting('app.organization_id', true), '')::uuid`
(and the worker's with `current_setting('app.system', true)`).
`current_setting` is STABLE, so PostgreSQL evaluates it again for every row a policy filters: a
compiled read (one statement returning a dashboard's ~450 rows across referrals, consents, survivors,
keys, sessions, goals and milestones) spent ~1.4 ms of its ~7 ms there. Wrapped in a scalar sub-select
the expression becomes an InitPlan, computed once per statement and still usable as an index condition;
what each policy allows is unchanged (tests/safety/test_rls.py). Policies are rewritten from their own
text in pg_policies, so every policy of every earlier revision is covered; a later policy should be
written with the wrapped form (`ORG` below).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How PostgreSQL prints the settings the earlier revisions' policies read, the wrapped forms, and how it
# prints those back: (per row, once per statement, printed).
SETTINGS = (
    ("(NULLIF(current_setting('app.organization_id'::text, true), ''::text))::uuid",
     "(SELECT (NULLIF(current_setting('app.organization_id'::text, true), ''::text))::uuid)",
     "( SELECT (NULLIF(current_setting('app.organization_id'::text, true), ''::text))::uuid AS \"nullif\")"),
    ("current_setting('app.system'::text, true)",
     "(SELECT current_setting('app.system'::text, true))",
     "( SELECT current_setting('app.system'::text, true) AS current_setting)"),
)
ORG = SETTINGS[0][1]


def _rewrite(replacements: list[tuple[str, str]]) -> None:
    connection = op.get_bind()
    policies = connection.execute(sa.text(
        "SELECT tablename, policyname, qual, with_check FROM pg_policies WHERE schemaname = current_schema()"))
    for table, name, qual, with_check in policies.all():
        clauses = []
        for clause, text in (("USING", qual), ("WITH CHECK", with_check)):
            if not text:
                continue
            new = text
            for old, wrapped in replacements:
                new = new.replace(old, wrapped)
            if new != text:
                clauses.append(f"{clause} ({new})")
        if clauses:
            op.execute(f'ALTER POLICY "{name}" ON "{table}" ' + " ".join(clauses))


def upgrade() -> None:
    _rewrite([(per_row, once) for per_row, once, _ in SETTINGS])


def downgrade() -> None:
    _rewrite([(printed, per_row) for per_row, _, printed in SETTINGS])
