"""Stored strings to domain enums by dictionary lookup.

`SomeEnum(value)` costs about a microsecond (the enum metaclass's __call__); a dashboard turns
thousands of stored strings into enums, and consent arrays into the same few frozensets again and
again. These lookups give the same members, faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from functools import lru_cache
from typing import TypeVar

from domain.enums import ConsentPurpose, DataCategory

E = TypeVar("E", bound=Enum)


def members(enum_type: type[E]) -> dict[object, E]:
    """value → member; a KeyError for a value the enum does not know (as the constructor would refuse)."""
    return {member.value: member for member in enum_type}


@lru_cache(maxsize=1024)
def _categories(values: tuple[str, ...]) -> frozenset[DataCategory]:
    return frozenset(DataCategory(v) for v in values)


@lru_cache(maxsize=1024)
def _purposes(values: tuple[str, ...]) -> frozenset[ConsentPurpose]:
    return frozenset(ConsentPurpose(v) for v in values)


def categories(values: Sequence[str]) -> frozenset[DataCategory]:
    return _categories(tuple(values))


def purposes(values: Sequence[str]) -> frozenset[ConsentPurpose]:
    return _purposes(tuple(values))
