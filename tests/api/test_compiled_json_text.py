"""The compiled statement writes objects and lists as text by concatenation (db/compiled_reads.JsonText):
the bytes must be exactly those PostgreSQL's json_build_object and json_agg write, for every kind of value
an answer holds — text that needs escaping (quotes, backslashes, control characters, non-ASCII, a
character past U+FFFF), numbers, booleans, dates, JSON, arrays, nulls, nested objects and lists, empty
ones — since the answer is sent to the client without being parsed again.
"""
# S608: the SQL here is built from this file's fixed values, as db/compiled_reads.py builds its text.
# ruff: noqa: S608

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.compiled_reads import MISSING, JsonText, _constant, _json_array, _list, _members, _quoted

VALUES = [
    "'plain'::text",
    "'quote \" and backslash \\ and slash /'::text",
    "E'newline\\n tab\\t carriage\\r bell\\x07 unit\\x1f'::text",
    "'é 中文 ☃'::text",
    "U&'\\+01F600 past U+FFFF'::text",
    "''::text",
    "NULL::text",
    "42", "-7::bigint", "1.50::numeric", "NULL::int",
    "true", "false", "NULL::boolean",
    "DATE '2026-12-04'", "NULL::date",
    "'{\"a\": [1, 2], \"b\": null}'::json",
    "chr(1)",
    "chr(1) || chr(2)",
]


async def one(engine: AsyncEngine, sql: str) -> object:
    async with engine.connect() as connection:
        return (await connection.execute(text(sql))).scalar_one()


@pytest.mark.parametrize("value", VALUES)
async def test_an_object_is_written_as_json_build_object_writes_it(owner_engine: AsyncEngine, value: str) -> None:
    expected = await one(owner_engine, f"SELECT json_build_object('key', {value}, 'second_key', 1)::text")
    written = await one(owner_engine, f"SELECT {_members([('key', value), ('second_key', '1')])}")
    assert written == expected


@pytest.mark.parametrize("value", VALUES)
async def test_a_list_is_written_as_json_agg_writes_it(owner_engine: AsyncEngine, value: str) -> None:
    rows = f"FROM (SELECT {value} AS v, n FROM generate_series(1, 3) n) x"
    expected = await one(owner_engine, f"SELECT (SELECT json_agg(x.v ORDER BY x.n DESC) {rows})::text")
    written = await one(owner_engine, f"SELECT {_list('x.v', 'x.n DESC', rows)}")
    assert written == expected


async def test_nested_objects_lists_empties_and_markers_are_written_as_postgresql_writes_them(
        owner_engine: AsyncEngine) -> None:
    inner = _members([("title", "'a \"title\"'::text"), ("at", _quoted("'2026-12-04T10:00:00+00:00'"))])
    pairs = [
        ("object", inner),
        ("none", _members([])),
        ("list", _list(inner, "n", "FROM generate_series(1, 2) n")),
        ("empty", _list(inner, "n", "FROM generate_series(1, 0) n")),
        ("array", _json_array("ARRAY['x', NULL, 'y \"z\"']")),
        ("emptyArray", _json_array("ARRAY[]::text[]")),
        ("nullArray", _json_array("NULL::text[]")),
        ("nullObject", JsonText("NULL::text")),
        ("missing", MISSING),
        ("typename", _constant("ReferralEdge")),
    ]
    json_inner = "json_build_object('title', 'a \"title\"'::text, 'at', '2026-12-04T10:00:00+00:00'::text)"
    expected = await one(owner_engine, "SELECT json_build_object("
                         f"'object', {json_inner}, 'none', json_build_object(), "
                         f"'list', (SELECT json_agg({json_inner} ORDER BY n) FROM generate_series(1, 2) n), "
                         "'empty', coalesce((SELECT json_agg(n) FROM generate_series(1, 0) n), '[]'::json), "
                         "'array', (SELECT json_agg(v ORDER BY i) FROM unnest(ARRAY['x', NULL, 'y \"z\"']) "
                         "WITH ORDINALITY AS a(v, i)), "
                         "'emptyArray', '[]'::json, 'nullArray', NULL::json, 'nullObject', NULL::json, "
                         "'missing', json_build_object(chr(2), true), 'typename', 'ReferralEdge'::text)::text")
    assert await one(owner_engine, f"SELECT {_members(pairs)}") == expected
