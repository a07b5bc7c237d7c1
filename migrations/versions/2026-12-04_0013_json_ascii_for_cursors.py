"""`pamoja_json_ascii(s)`: a string as Python's json encoder writes it inside quotes with ensure_ascii
(json.encoder.encode_basestring_ascii, without the quotes), for cursors that hold names.

api.graphql.relay.encode_cursor writes an organization's cursor as `["<name>","<id>"]` with every
character outside printable ASCII, and `"` and `\\`, escaped (`\\u00e9`, `\\"`, `\\n`, a surrogate pair
past U+FFFF); a compiled `organizations` page must give the same cursor. A name of plain printable
ASCII (nearly all) is returned as it is; any other is escaped character by character.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(r"""
        CREATE FUNCTION pamoja_json_ascii(s text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
          SELECT CASE WHEN s ~ '^[ !#-\[\]-~]*$' THEN s ELSE (
            SELECT string_agg(CASE
                     WHEN ch = '"' THEN '\"'
                     WHEN ch = '\' THEN '\\'
                     WHEN code = 10 THEN '\n'
                     WHEN code = 13 THEN '\r'
                     WHEN code = 9 THEN '\t'
                     WHEN code = 8 THEN '\b'
                     WHEN code = 12 THEN '\f'
                     WHEN code BETWEEN 32 AND 126 THEN ch
                     WHEN code < 65536 THEN '\u' || lpad(to_hex(code), 4, '0')
                     ELSE '\u' || to_hex(55296 + ((code - 65536) >> 10))
                          || '\u' || to_hex(56320 + ((code - 65536) & 1023))
                   END, '' ORDER BY n)
            FROM (SELECT ch, ascii(ch) AS code, n
                  FROM regexp_split_to_table(s, '') WITH ORDINALITY AS x(ch, n)) chars) END
        $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS pamoja_json_ascii(text)")
