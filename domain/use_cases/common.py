"""Small validation helpers shared by use cases; messages never echo the value they refuse."""

from __future__ import annotations

from domain.errors import InvalidInput


def text(value: str | None, *, field: tuple[str, ...], max_length: int, required: bool = True,
         min_length: int = 1) -> str | None:
    if value is None or not value.strip():
        if required:
            raise InvalidInput(f"{field[-1]} is required.", field=field)
        return None
    cleaned = value.strip()
    if len(cleaned) < min_length or len(cleaned) > max_length:
        raise InvalidInput(f"{field[-1]} must be {min_length} to {max_length} characters long.", field=field)
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in cleaned):
        raise InvalidInput(f"{field[-1]} contains control characters.", field=field)
    return cleaned


def required_text(value: str | None, *, field: tuple[str, ...], max_length: int) -> str:
    result = text(value, field=field, max_length=max_length, required=True)
    assert result is not None
    return result
