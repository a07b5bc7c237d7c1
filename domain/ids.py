"""Opaque global ids: `<Type>:<uuid4>` base64url-encoded.

Records have random UUIDv4 keys, so an id cannot be guessed or enumerated; the type prefix lets
`node(id:)` route an id to the right use case. A malformed id decodes to None, which callers treat
exactly like an id that names nothing.
"""

from __future__ import annotations

import base64
import binascii
import uuid

NODE_TYPES = frozenset(
    {
        "Organization",
        "StaffUser",
        "Survivor",
        "Consent",
        "Referral",
        "CounselingSession",
        "CareGoal",
        "Milestone",
        "Assessment",
        "AuditEvent",
        "OAuthClient",
        "OutboxEvent",
        "DuplicateReview",
    }
)


def to_global_id(type_name: str, record_id: uuid.UUID | str) -> str:
    raw = f"{type_name}:{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def from_global_id(value: str, expected_type: str | None = None) -> tuple[str, uuid.UUID] | None:
    if not value or len(value) > 120:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    type_name, sep, rest = raw.partition(":")
    if not sep or type_name not in NODE_TYPES or (expected_type and type_name != expected_type):
        return None
    try:
        record_id = uuid.UUID(rest)
    except ValueError:
        return None
    return type_name, record_id
