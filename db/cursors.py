"""Keyset pagination in SQL: `(sort..., id) > (after...)` and one extra row to know hasNextPage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, tuple_

from db.engine import Db
from domain.paging import Page, PageRequest


async def fetch_page(
    db: Db, statement: Select[Any], *, order: Sequence[ColumnElement[Any]],
    key_parsers: Sequence[Callable[[str], Any]], page: PageRequest,
) -> tuple[Sequence[Any], Page[None]]:
    """Run one page of `statement` ordered by `order` and its total in a single round trip.

    The count comes from a window function over the filtered rows, so `totalCount` costs no
    second statement. Returns the rows and a Page skeleton with keys and flags.
    """
    counted = statement.add_columns(func.count().over().label("_total"))
    if page.after_key is not None:
        after = [parse(value) for parse, value in zip(key_parsers, page.after_key, strict=True)]
        # total must count every filtered row, not just those after the cursor: compute it apart
        counted = statement.add_columns(
            select(func.count()).select_from(statement.order_by(None).subquery()).scalar_subquery()
            .label("_total")
        ).where(tuple_(*order) > tuple_(*after))
    rows = await db.all(counted.order_by(*order).limit(page.first + 1))
    has_next = len(rows) > page.first
    rows = rows[: page.first]
    total = rows[0]._total if rows else await _count(db, statement)
    names = [str(getattr(col, "key", "")) for col in order]
    keys = [tuple(str(getattr(row, name)) for name in names) for row in rows]
    return rows, Page(items=[], keys=keys, has_next=has_next, has_previous=page.after_key is not None,
                      total_count=int(total))


async def _count(db: Db, statement: Select[Any]) -> int:
    return int(await db.scalar(select(func.count()).select_from(statement.order_by(None).subquery())))
