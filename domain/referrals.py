"""The referral state machine: the Gravity Project's referral Task graph, with who may take each step.

The graph is data (`TRANSITIONS`) so that the API, the documentation and the tests can all read the
same table, and so that a reviewer can check it against Gravity in one glance.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from domain.enums import ActorKind, ReferralPriority, ReferralStatus
from domain.errors import InvalidInput, InvalidTransition

_S = ReferralStatus

# The status reason Pamoja records when it cancels a referral because its consent was withdrawn.
CONSENT_WITHDRAWN = "CONSENT_WITHDRAWN"


class ReferralAction(StrEnum):
    SEND = "SEND"
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    START = "START"
    HOLD = "HOLD"
    RESUME = "RESUME"
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"
    CANCEL = "CANCEL"
    ENTER_IN_ERROR = "ENTER_IN_ERROR"


@dataclass(frozen=True, slots=True)
class Transition:
    """One action: the statuses each kind of actor may take it from, and where it leads."""

    allowed_from: Mapping[ActorKind, frozenset[ReferralStatus]]
    to: ReferralStatus


OPEN_STATUSES: frozenset[ReferralStatus] = frozenset(
    {_S.DRAFT, _S.REQUESTED, _S.ACCEPTED, _S.IN_PROGRESS, _S.ON_HOLD}
)
TERMINAL_STATUSES: frozenset[ReferralStatus] = frozenset(ReferralStatus) - OPEN_STATUSES

# Gravity: statusReason "should be included" for these; we make it a must so the history explains itself.
REASON_REQUIRED: frozenset[ReferralStatus] = frozenset({_S.REJECTED, _S.CANCELLED, _S.ON_HOLD, _S.FAILED})

_UNDER_WAY = frozenset({_S.ACCEPTED, _S.IN_PROGRESS, _S.ON_HOLD})
# Accepted and not finished: the referrals a counselor carries, and that need one while nobody active does.
UNDER_WAY: frozenset[ReferralStatus] = _UNDER_WAY
_REQ, _OWN, _SYS = ActorKind.REQUESTER, ActorKind.OWNER, ActorKind.SYSTEM


def _rule(to: ReferralStatus, allowed_from: Mapping[ActorKind, frozenset[ReferralStatus]]) -> Transition:
    return Transition(allowed_from=MappingProxyType(dict(allowed_from)), to=to)


TRANSITIONS: Mapping[ReferralAction, Transition] = MappingProxyType(
    {
        ReferralAction.SEND: _rule(_S.REQUESTED, {_REQ: frozenset({_S.DRAFT})}),
        ReferralAction.ACCEPT: _rule(_S.ACCEPTED, {_OWN: frozenset({_S.REQUESTED})}),
        ReferralAction.REJECT: _rule(_S.REJECTED, {_OWN: frozenset({_S.REQUESTED})}),
        ReferralAction.START: _rule(_S.IN_PROGRESS, {_OWN: frozenset({_S.ACCEPTED})}),
        ReferralAction.HOLD: _rule(_S.ON_HOLD, {_OWN: frozenset({_S.ACCEPTED, _S.IN_PROGRESS})}),
        ReferralAction.RESUME: _rule(_S.IN_PROGRESS, {_OWN: frozenset({_S.ON_HOLD})}),
        ReferralAction.COMPLETE: _rule(_S.COMPLETED, {_OWN: _UNDER_WAY}),
        ReferralAction.FAIL: _rule(_S.FAILED, {_OWN: _UNDER_WAY}),
        ReferralAction.CANCEL: _rule(
            _S.CANCELLED,
            {
                # Gravity's graph lets the requester cancel from REQUESTED on; a draft the partner never
                # saw may be discarded too (ENTERED_IN_ERROR would misstate what happened).
                _REQ: frozenset({_S.DRAFT, _S.REQUESTED}) | _UNDER_WAY,
                _OWN: _UNDER_WAY,
                # A withdrawn consent must also stop a draft, or it could be sent later on a dead consent.
                _SYS: OPEN_STATUSES,
            },
        ),
        ReferralAction.ENTER_IN_ERROR: _rule(
            _S.ENTERED_IN_ERROR, {_REQ: frozenset(ReferralStatus) - {_S.ENTERED_IN_ERROR}}
        ),
    }
)

_PARTICIPLES: Mapping[ReferralAction, str] = MappingProxyType(
    {
        ReferralAction.SEND: "sent",
        ReferralAction.ACCEPT: "accepted",
        ReferralAction.REJECT: "rejected",
        ReferralAction.START: "started",
        ReferralAction.HOLD: "put on hold",
        ReferralAction.RESUME: "resumed",
        ReferralAction.COMPLETE: "completed",
        ReferralAction.FAIL: "marked as failed",
        ReferralAction.CANCEL: "cancelled",
        ReferralAction.ENTER_IN_ERROR: "marked as entered in error",
    }
)

_ACTOR_PHRASES: Mapping[ActorKind, str] = MappingProxyType(
    {
        ActorKind.REQUESTER: "the referring organization",
        ActorKind.OWNER: "the receiving organization",
        ActorKind.SYSTEM: "Pamoja",
    }
)


def transition(
    *, status: ReferralStatus, action: ReferralAction, actor: ActorKind, reason: str | None
) -> ReferralStatus:
    """Refuse any move Gravity's graph does not allow that side to make, so history stays truthful."""
    rule = TRANSITIONS[action]
    if status not in rule.allowed_from.get(actor, frozenset()):
        message = f"A referral in status {status} cannot be {_PARTICIPLES[action]}"
        if any(status in statuses for statuses in rule.allowed_from.values()):
            message += f" by {_ACTOR_PHRASES[actor]}"
        raise InvalidTransition(message + ".")
    if rule.to in REASON_REQUIRED and (reason is None or not reason.strip()):
        raise InvalidInput(
            f"A reason is required to move a referral to {rule.to}.", field=("input", "reason")
        )
    return rule.to


def allowed_actions(*, status: ReferralStatus, actor: ActorKind) -> frozenset[ReferralAction]:
    """What this side may do next, so clients can offer only buttons that will work."""
    return frozenset(
        action for action, rule in TRANSITIONS.items() if status in rule.allowed_from.get(actor, frozenset())
    )


@dataclass(frozen=True, slots=True)
class ResponseDeadlines:
    """How long a partner has to accept or reject, by urgency; configurable per deployment."""

    routine: timedelta = timedelta(days=5)
    urgent: timedelta = timedelta(hours=48)
    asap: timedelta = timedelta(hours=4)

    def __post_init__(self) -> None:
        if min(self.routine, self.urgent, self.asap) <= timedelta(0):
            raise ValueError("Response deadlines must be positive.")

    def for_priority(self, priority: ReferralPriority) -> timedelta:
        match priority:
            case ReferralPriority.ROUTINE:
                return self.routine
            case ReferralPriority.URGENT:
                return self.urgent
            case ReferralPriority.ASAP:
                return self.asap


DEFAULT_DEADLINES = ResponseDeadlines()


def respond_by(
    *, priority: ReferralPriority, requested_at: datetime, deadlines: ResponseDeadlines = DEFAULT_DEADLINES
) -> datetime:
    """The deadline is an instant; a naive time would silently shift by three hours in Kenya."""
    if requested_at.tzinfo is None or requested_at.utcoffset() is None:
        raise ValueError("requested_at must be timezone-aware.")
    return requested_at + deadlines.for_priority(priority)


def is_overdue(*, status: ReferralStatus, respond_by: datetime | None, now: datetime) -> bool:
    """Overdue is a flag on a waiting referral, not a status (Gravity): once answered it cannot be late."""
    return status == ReferralStatus.REQUESTED and respond_by is not None and now > respond_by
