"""Formatting functions for compiled reads (api/graphql/compiler.py, db/compiled_reads.py).

A compiled read builds the response's JSON inside PostgreSQL, so two values must come out exactly as
the resolver path writes them:
- `pamoja_instant(t, sep)`: an instant as Python's `datetime.isoformat(sep)` writes a UTC datetime
  (`2026-12-04T08:21:49.123456+00:00`, the fraction only when there is one): what strawberry's
  DateTime sends, and with `sep => ' '` what `str(datetime)` puts in a cursor;
- `pamoja_cursor(keys)`: api.graphql.relay.encode_cursor, base64url of the keys as a compact JSON
  array, without padding (the keys are instants and UUIDs: nothing in them needs JSON escaping).
Both are STABLE SQL functions whose body is one expression, so PostgreSQL inlines them into the
statement: declared IMMUTABLE, a body calling a STABLE function (to_char, convert_to) is not inlined,
and a call then costs an executor start per row (the dashboard's statement took 40 % longer).
`pamoja_global_id` (0010) is made STABLE for the same reason.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION pamoja_instant(t timestamptz, sep text DEFAULT 'T') RETURNS text
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
          SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD') || sep || to_char(t AT TIME ZONE 'UTC', 'HH24:MI:SS')
                 || CASE WHEN date_part('microseconds', t)::bigint % 1000000 <> 0
                         THEN to_char(t AT TIME ZONE 'UTC', '.US') ELSE '' END || '+00:00'
        $$""")
    op.execute("""
        CREATE FUNCTION pamoja_cursor(VARIADIC keys text[]) RETURNS text
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
          SELECT rtrim(translate(replace(encode(convert_to('["' || array_to_string(keys, '","') || '"]', 'UTF8'),
                                                'base64'), E'\\n', ''), '+/', '-_'), '=')
        $$""")


    op.execute("ALTER FUNCTION pamoja_global_id(text, uuid) STABLE")


def downgrade() -> None:
    op.execute("ALTER FUNCTION pamoja_global_id(text, uuid) IMMUTABLE")
    op.execute("DROP FUNCTION IF EXISTS pamoja_cursor(text[])")
    op.execute("DROP FUNCTION IF EXISTS pamoja_instant(timestamptz, text)")
