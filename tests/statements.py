"""The statements a request sends, for the tests that count them (no N+1; a compiled read is two)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import TRANSACTION_CONTROL, statements_observed


@contextmanager
def sent_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The texts of the statements the engine's connections finish while open, in order, without those
    that begin or end a transaction or savepoint."""
    seen: list[str] = []

    def record(text: str, _seconds: float) -> None:
        if not text.lstrip().upper().startswith(TRANSACTION_CONTROL):
            seen.append(text)

    with statements_observed(engine, record):
        yield seen
