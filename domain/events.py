"""What partner systems are told: the event types, what a webhook body may carry, delivery statuses.

Bodies carry the event type, the event id, the time and ids only (rule 4); the receiver fetches details
through the API with its own token, so a leaked or replayed webhook discloses nothing about a survivor.
db/outbox.py refuses to enqueue anything else; partners/webhooks.py signs and delivers.

Event types (README table):

| type | sent to | meaning |
|---|---|---|
| `referral.requested` | receiving partner | a referral was sent to the partner and awaits an answer |
| `referral.updated` | both sides | a referral's status or assignment changed; fetch it for the new state |
| `referral.cancelled` | receiving partner | the referring organization (or a consent withdrawal) cancelled a referral |
| `referral.overdue` | both sides | a referral is still REQUESTED after its respond-by deadline (sent once) |
| `consent.withdrawn` | the consent's recipient | a consent was withdrawn; access through it has ended |
| `safeguarding.raised` | the referring NGO only | a safeguarding concern was recorded on a session |
| `survivor.erased` | the NGO and every partner she was referred to | her record was erased: delete your copy |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from domain.ids import from_global_id

REFERRAL_REQUESTED = "referral.requested"
REFERRAL_UPDATED = "referral.updated"
REFERRAL_CANCELLED = "referral.cancelled"
REFERRAL_OVERDUE = "referral.overdue"
CONSENT_WITHDRAWN = "consent.withdrawn"
SAFEGUARDING_RAISED = "safeguarding.raised"
SURVIVOR_ERASED = "survivor.erased"

EVENT_TYPES: Mapping[str, str] = MappingProxyType({
    REFERRAL_REQUESTED: "A referral was sent to the partner and awaits an answer.",
    REFERRAL_UPDATED: "A referral's status or assignment changed; fetch it for the new state.",
    REFERRAL_CANCELLED: "A referral was cancelled by the referring organization or a consent withdrawal.",
    REFERRAL_OVERDUE: "A referral is still REQUESTED after its respond-by deadline (sent once).",
    CONSENT_WITHDRAWN: "A consent was withdrawn; access through it has ended.",
    SAFEGUARDING_RAISED: "A safeguarding concern was recorded; sent to the referring NGO only.",
    SURVIVOR_ERASED: "The survivor's record was erased (data subject request or retention): delete your copy.",
})

# Events only the referring NGO may receive: db.outbox.enqueue refuses them for a partner.
NGO_ONLY_EVENTS = frozenset({SAFEGUARDING_RAISED})

# What `data` may carry. Id keys must hold a global id of the named type; the rest are instants or
# enum-like codes. Anything else is refused so that no free text (a name, a note) can slip in.
ID_KEYS: Mapping[str, str] = MappingProxyType({
    "referralId": "Referral",
    "consentId": "Consent",
    "survivorId": "Survivor",
    "sessionId": "CounselingSession",
    "goalId": "CareGoal",
    "milestoneId": "Milestone",
    "assessmentId": "Assessment",
    "organizationId": "Organization",
    "receivingOrganizationId": "Organization",
    "referringOrganizationId": "Organization",
})
TIME_KEYS = frozenset({"occurredAt", "respondBy"})
CODE_KEYS = frozenset({"status", "previousStatus", "reason", "priority", "service", "concernLevel"})
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
MAX_DATA_KEYS = 12


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"


def validate_event(event_type: str, data: Mapping[str, Any]) -> dict[str, str]:
    """Refuse unknown event types and any data that is not an id, an instant or a short code."""
    if event_type not in EVENT_TYPES:
        raise ValueError("Unknown webhook event type.")
    if len(data) > MAX_DATA_KEYS:
        raise ValueError("Too many webhook data fields.")
    clean: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str):
            raise ValueError(f"Webhook data field {key!r} must be a string.")
        if key in ID_KEYS:
            if from_global_id(value, ID_KEYS[key]) is None:
                raise ValueError(f"Webhook data field {key!r} must be a global {ID_KEYS[key]} id.")
        elif key in TIME_KEYS:
            try:
                instant = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"Webhook data field {key!r} must be an ISO 8601 instant.") from None
            if instant.tzinfo is None:
                raise ValueError(f"Webhook data field {key!r} must include a UTC offset.")
        elif key in CODE_KEYS:
            if not _CODE.fullmatch(value):
                raise ValueError(f"Webhook data field {key!r} must be an upper-case code.")
        else:
            raise ValueError(f"Webhook data field {key!r} is not allowed: bodies carry ids only.")
        clean[key] = value
    return clean


def iso_utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
