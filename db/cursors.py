"""Keyset pagination in SQL: `(sort..., id) > (after...)` and one extra row to know hasNextPage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, tuple_

from db.engine import Db
from domain.errors import InvalidInput
from domain.paging import Page, PageRequest, not_a_cursor
from domain.use_cases.common import check_instant

BIGINT = range(-(2**63), 2**63)


def after_values(after_key: Sequence[str], key_parsers: Sequence[Callable[[str], Any]]) -> list[Any]:
    """A cursor's keys as values of the sort columns. A cursor that decodes but does not fit (another
    number of keys, a key that does not parse, an instant without offset or out of range, a number
    PostgreSQL cannot hold) is refused like one that does not decode, never passed to SQL."""
    if len(after_key) != len(key_parsers):
        raise not_a_cursor()
    values = []
    for parse, raw in zip(key_parsers, after_key, strict=True):
        try:
            value = parse(raw)
            if isinstance(value, datetime):
                check_instant(value, field=("after",))
        except (ValueError, TypeError, OverflowError, InvalidInput):
            raise not_a_cursor() from None
        if isinstance(value, int) and value not in BIGINT:
            raise not_a_cursor()
        values.append(value)
    return values


async def fetch_page(
    db: Db, statement: Select[Any], *, order: Sequence[ColumnElement[Any]],
    key_parsers: Sequence[Callable[[str], Any]], page: PageRequest,
    shown: Callable[[Select[Any]], Select[Any]] | None = None,
) -> tuple[Sequence[Any], Page[None]]:
    """Run one page of `statement` ordered by `order` and its total in a single round trip.

    The count comes from a window function over the filtered rows, so `totalCount` costs no
    second statement. `shown` wraps the limited statement, to join what only the page's rows need
    (their survivors' keys) without joining it to every row counted. Returns the rows and a Page
    skeleton with keys and flags.
    """
    counted = statement.add_columns(func.count().over().label("_total"))
    if page.after_key is not None:
        after = after_values(page.after_key, key_parsers)
        # total must count every filtered row, not just those after the cursor: compute it apart
        counted = statement.add_columns(
            select(func.count()).select_from(statement.order_by(None).subquery()).scalar_subquery()
            .label("_total")
        ).where(tuple_(*order) > tuple_(*after))
    limited = counted.order_by(*order).limit(page.first + 1)
    rows = await db.all(shown(limited) if shown is not None else limited)
    has_next = len(rows) > page.first
    rows = rows[: page.first]
    total = rows[0]._total if rows else await _count(db, statement)
    names = [str(getattr(col, "key", "")) for col in order]
    keys = [tuple(str(getattr(row, name)) for name in names) for row in rows]
    return rows, Page(items=[], keys=keys, has_next=has_next, has_previous=page.after_key is not None,
                      total_count=int(total))


async def _count(db: Db, statement: Select[Any]) -> int:
    return int(await db.scalar(select(func.count()).select_from(statement.order_by(None).subquery())))
