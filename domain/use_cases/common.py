"""Small validation helpers shared by use cases; messages never echo the value they refuse."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from domain.errors import InvalidInput

# Characters no text may hold, whatever the field: C0 controls other than tab and line breaks, DEL and
# the C1 controls (terminal escapes, invisible separators), the bidirectional embedding, override and
# isolate controls that make text display other than it reads ("Trojan Source"), and lone surrogates,
# which are not text at all (PostgreSQL cannot store them, nor NUL).
_NEVER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# Only free text (notes, reasons, descriptions, a location) may span lines.
_LINE_BREAKS = re.compile("[\t\n\r\u2028\u2029]")

# Instants and dates a caller may send. Anything earlier or later is a typing mistake or a probe, and
# the extremes do not survive storage (year 1 becomes PostgreSQL's -infinity, read back without offset).
EARLIEST = date(1900, 1, 1)
LATEST = date(2999, 12, 31)
_EARLIEST_INSTANT = datetime(EARLIEST.year, EARLIEST.month, EARLIEST.day, tzinfo=UTC)
_END_INSTANT = datetime(LATEST.year + 1, 1, 1, tzinfo=UTC)


def field_name(field: tuple[str, ...]) -> str:
    """The input field a path names, for messages: the last part that is not a list index."""
    return next((part for part in reversed(field) if not part.isdigit()), "value")


def refuse_unsafe_characters(value: str, *, field: tuple[str, ...]) -> None:
    if _NEVER.search(value):
        raise InvalidInput(f"{field_name(field)} contains control or text-direction characters; remove them.",
                           field=field)


def check_instant(value: datetime, *, field: tuple[str, ...]) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{field_name(field)} must include a UTC offset, e.g. 2025-03-01T09:30:00+03:00.",
                           field=field)
    if not _EARLIEST_INSTANT <= value < _END_INSTANT:
        raise InvalidInput(f"{field_name(field)} must lie between {EARLIEST.year} and {LATEST.year}.", field=field)


def check_date(value: date, *, field: tuple[str, ...]) -> None:
    if not EARLIEST <= value <= LATEST:
        raise InvalidInput(f"{field_name(field)} must lie between {EARLIEST.year} and {LATEST.year}.", field=field)


def text(value: str | None, *, field: tuple[str, ...], max_length: int, required: bool = True,
         min_length: int = 1, multiline: bool = False) -> str | None:
    """Trimmed text, or None when optional and blank. Only `multiline` text may hold tabs and line
    breaks (Windows line endings become \\n); no text may hold control or text-direction characters."""
    if value is None or not value.strip():
        if required:
            raise InvalidInput(f"{field[-1]} is required.", field=field)
        return None
    cleaned = value.strip()
    if multiline:
        cleaned = cleaned.replace("\r\n", "\n").replace("\r", "\n")
    if len(cleaned) < min_length or len(cleaned) > max_length:
        raise InvalidInput(f"{field[-1]} must be {min_length} to {max_length} characters long.", field=field)
    refuse_unsafe_characters(cleaned, field=field)
    if not multiline and _LINE_BREAKS.search(cleaned):
        raise InvalidInput(f"{field[-1]} must be a single line, without tabs or line breaks.", field=field)
    return cleaned


def required_text(value: str | None, *, field: tuple[str, ...], max_length: int, multiline: bool = False) -> str:
    result = text(value, field=field, max_length=max_length, required=True, multiline=multiline)
    assert result is not None
    return result
