"""Keyset pagination as plain data: the api layer turns `after` cursors into `after_key` tuples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from domain.errors import InvalidInput

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int = DEFAULT_PAGE_SIZE
    after_key: tuple[str, ...] | None = None

    @classmethod
    def of(cls, first: int | None, after_key: tuple[str, ...] | None,
           *, maximum: int = MAX_PAGE_SIZE, default: int = DEFAULT_PAGE_SIZE) -> PageRequest:
        size = default if first is None else first
        if size < 0 or size > maximum:
            raise InvalidInput(f"first must be between 0 and {maximum}.", field=("first",))
        return cls(first=size, after_key=after_key)


def not_a_cursor() -> InvalidInput:
    """What a cursor that does not decode, or decodes to keys that do not fit the connection, gets."""
    return InvalidInput("after is not a cursor this API issued; pass an endCursor you were given.",
                        field=("after",))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    keys: Sequence[tuple[str, ...]]
    has_next: bool
    has_previous: bool
    total_count: int
