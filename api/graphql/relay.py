"""Relay plumbing: the Node interface, PageInfo, generic connections and opaque cursors."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Generic, TypeVar

import strawberry

from domain.errors import InvalidInput
from domain.paging import Page, PageRequest, not_a_cursor
from domain.use_cases.common import refuse_unsafe_characters

T = TypeVar("T")
V = TypeVar("V")


@strawberry.interface(description="A record with a global id: `node(id:)` refetches it, subject to policy.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int


def encode_cursor(key: tuple[str, ...]) -> str:
    """base64url of the key as a compact JSON array (what json.dumps(list(key), separators=(",", ":"))
    writes, built from the C string encoder: a page of 250 sessions makes 250 cursors)."""
    packed = "[" + ",".join(map(encode_basestring_ascii, key)) + "]"
    return base64.urlsafe_b64encode(packed.encode()).decode().rstrip("=")


MAX_CURSOR_LENGTH = 4096  # ours are a few hundred characters at most (an organization's name and id)


def decode_cursor(cursor: str | None) -> tuple[str, ...] | None:
    """The keys of a cursor this API issued. Whether they fit the connection (how many, which types)
    is checked where they become SQL values (db.cursors.after_values)."""
    if cursor is None:
        return None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise not_a_cursor()
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise not_a_cursor() from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not 1 <= len(value) <= 4:
        raise not_a_cursor()
    try:
        for key in value:
            refuse_unsafe_characters(key, field=("after",))
    except InvalidInput:
        raise not_a_cursor() from None
    return tuple(value)


def page_request(first: int | None, after: str | None, *, maximum: int = 100, default: int = 20) -> PageRequest:
    return PageRequest.of(first, decode_cursor(after), maximum=maximum, default=default)


def to_connection(page: Page[V], convert: Callable[[V], T]) -> Connection[T]:
    edges = [Edge(cursor=encode_cursor(key), node=convert(item))
             for item, key in zip(page.items, page.keys, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=page.total_count,
    )
