"""The referral state machine against an edge list written from interop.md section 2.3, not from the code."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from domain.enums import ActorKind, ReferralPriority, ReferralStatus, UserErrorCode
from domain.errors import InvalidInput, InvalidTransition
from domain.kenya import EAT
from domain.referrals import (
    OPEN_STATUSES,
    REASON_REQUIRED,
    TERMINAL_STATUSES,
    ReferralAction,
    ResponseDeadlines,
    allowed_actions,
    is_overdue,
    respond_by,
    transition,
)

# "from  action  actor  to", one allowed edge per line, read off the prose:
#   requester: draft->requested, draft|requested|accepted|in-progress|on-hold->cancelled, *->entered-in-error
#   (draft->cancelled is our one addition to Gravity's graph: a draft the partner never saw can be discarded)
#   owner: requested->accepted|rejected, accepted->in-progress|on-hold|completed|failed|cancelled,
#          in-progress<->on-hold, in-progress|on-hold->completed|failed|cancelled
#   system: open->cancelled (consent withdrawal), drafts included
EDGES = """
DRAFT            SEND            REQUESTER  REQUESTED
DRAFT            CANCEL          REQUESTER  CANCELLED
REQUESTED        CANCEL          REQUESTER  CANCELLED
ACCEPTED         CANCEL          REQUESTER  CANCELLED
IN_PROGRESS      CANCEL          REQUESTER  CANCELLED
ON_HOLD          CANCEL          REQUESTER  CANCELLED
DRAFT            ENTER_IN_ERROR  REQUESTER  ENTERED_IN_ERROR
REQUESTED        ENTER_IN_ERROR  REQUESTER  ENTERED_IN_ERROR
ACCEPTED         ENTER_IN_ERROR  REQUESTER  ENTERED_IN_ERROR
REJECTED         ENTER_IN_ERROR  REQUESTER  ENTERED_IN_ERROR
IN_PROGRESS      ENTER_IN_ERROR  REQUESTER  ENTERED_IN_ERROR
ON_HOLD          ENTER_IN_ERROR  REQUESTER  ENTERED_IN_ERROR
COMPLETED        ENTER_IN_ERROR  REQUESTER  ENTERED_IN_ERROR
FAILED           ENTER_IN_ERROR  REQUESTER  ENTERED_IN_ERROR
CANCELLED        ENTER_IN_ERROR  REQUESTER  ENTERED_IN_ERROR
REQUESTED        ACCEPT          OWNER      ACCEPTED
REQUESTED        REJECT          OWNER      REJECTED
ACCEPTED         START           OWNER      IN_PROGRESS
ACCEPTED         HOLD            OWNER      ON_HOLD
ACCEPTED         COMPLETE        OWNER      COMPLETED
ACCEPTED         FAIL            OWNER      FAILED
ACCEPTED         CANCEL          OWNER      CANCELLED
IN_PROGRESS      HOLD            OWNER      ON_HOLD
IN_PROGRESS      COMPLETE        OWNER      COMPLETED
IN_PROGRESS      FAIL            OWNER      FAILED
IN_PROGRESS      CANCEL          OWNER      CANCELLED
ON_HOLD          RESUME          OWNER      IN_PROGRESS
ON_HOLD          COMPLETE        OWNER      COMPLETED
ON_HOLD          FAIL            OWNER      FAILED
ON_HOLD          CANCEL          OWNER      CANCELLED
DRAFT            CANCEL          SYSTEM     CANCELLED
REQUESTED        CANCEL          SYSTEM     CANCELLED
ACCEPTED         CANCEL          SYSTEM     CANCELLED
IN_PROGRESS      CANCEL          SYSTEM     CANCELLED
ON_HOLD          CANCEL          SYSTEM     CANCELLED
"""

EXPECTED: dict[tuple[ReferralStatus, ReferralAction, ActorKind], ReferralStatus] = {
    (ReferralStatus[src], ReferralAction[action], ActorKind[actor]): ReferralStatus[dst]
    for src, action, actor, dst in (line.split() for line in EDGES.strip().splitlines())
}

ALL_CASES = list(itertools.product(ReferralStatus, ReferralAction, ActorKind))
ALLOWED_CASES = [(*case, dst) for case, dst in EXPECTED.items()]
REFUSED_CASES = [case for case in ALL_CASES if case not in EXPECTED]


def test_the_expectation_is_complete_and_well_formed():
    assert len(ALL_CASES) == 300
    assert len(EXPECTED) == 35
    assert len(REFUSED_CASES) == 265


@pytest.mark.parametrize(("status", "action", "actor", "expected"), ALLOWED_CASES)
def test_allowed_transition(status, action, actor, expected):
    assert transition(status=status, action=action, actor=actor, reason="Partner has no space") == expected


@pytest.mark.parametrize(("status", "action", "actor"), REFUSED_CASES)
def test_refused_transition(status, action, actor):
    with pytest.raises(InvalidTransition) as caught:
        transition(status=status, action=action, actor=actor, reason="Partner has no space")
    assert caught.value.code == UserErrorCode.INVALID_TRANSITION
    assert caught.value.field is None
    assert caught.value.message.startswith(f"A referral in status {status} cannot be ")


@pytest.mark.parametrize(("status", "actor"), list(itertools.product(ReferralStatus, ActorKind)))
def test_allowed_actions(status, actor):
    expected = {action for (src, action, who) in EXPECTED if src == status and who == actor}
    assert allowed_actions(status=status, actor=actor) == expected


@pytest.mark.parametrize(
    ("status", "action", "actor", "message"),
    [
        (
            ReferralStatus.ACCEPTED,
            ReferralAction.REJECT,
            ActorKind.OWNER,
            "A referral in status ACCEPTED cannot be rejected.",
        ),
        (
            ReferralStatus.COMPLETED,
            ReferralAction.CANCEL,
            ActorKind.REQUESTER,
            "A referral in status COMPLETED cannot be cancelled.",
        ),
        (
            ReferralStatus.DRAFT,
            ReferralAction.CANCEL,
            ActorKind.OWNER,
            "A referral in status DRAFT cannot be cancelled by the receiving organization.",
        ),
        (
            ReferralStatus.REQUESTED,
            ReferralAction.ACCEPT,
            ActorKind.REQUESTER,
            "A referral in status REQUESTED cannot be accepted by the referring organization.",
        ),
        (
            ReferralStatus.ON_HOLD,
            ReferralAction.ENTER_IN_ERROR,
            ActorKind.OWNER,
            "A referral in status ON_HOLD cannot be marked as entered in error"
            " by the receiving organization.",
        ),
    ],
)
def test_refusal_messages(status, action, actor, message):
    with pytest.raises(InvalidTransition) as caught:
        transition(status=status, action=action, actor=actor, reason="r")
    assert caught.value.message == message
    assert str(caught.value) == message


def test_status_sets():
    assert OPEN_STATUSES == {
        ReferralStatus.DRAFT,
        ReferralStatus.REQUESTED,
        ReferralStatus.ACCEPTED,
        ReferralStatus.IN_PROGRESS,
        ReferralStatus.ON_HOLD,
    }
    assert TERMINAL_STATUSES == {
        ReferralStatus.REJECTED,
        ReferralStatus.COMPLETED,
        ReferralStatus.FAILED,
        ReferralStatus.CANCELLED,
        ReferralStatus.ENTERED_IN_ERROR,
    }
    assert REASON_REQUIRED == {
        ReferralStatus.REJECTED,
        ReferralStatus.CANCELLED,
        ReferralStatus.ON_HOLD,
        ReferralStatus.FAILED,
    }


NEEDS_REASON = {
    ReferralStatus.REJECTED,
    ReferralStatus.CANCELLED,
    ReferralStatus.ON_HOLD,
    ReferralStatus.FAILED,
}
REASON_CASES = [(src, action, actor) for (src, action, actor), dst in EXPECTED.items() if dst in NEEDS_REASON]
NO_REASON_CASES = [
    (src, action, actor, dst) for (src, action, actor), dst in EXPECTED.items() if dst not in NEEDS_REASON
]


@pytest.mark.parametrize("reason", [None, "", "   ", "\t\n"])
@pytest.mark.parametrize(("status", "action", "actor"), REASON_CASES)
def test_reason_required(status, action, actor, reason):
    with pytest.raises(InvalidInput) as caught:
        transition(status=status, action=action, actor=actor, reason=reason)
    assert caught.value.field == ("input", "reason")
    assert caught.value.code == UserErrorCode.INVALID


@pytest.mark.parametrize(("status", "action", "actor", "expected"), NO_REASON_CASES)
def test_reason_optional(status, action, actor, expected):
    assert transition(status=status, action=action, actor=actor, reason=None) == expected


def test_a_refused_move_is_reported_as_such_even_without_a_reason():
    with pytest.raises(InvalidTransition):
        transition(
            status=ReferralStatus.ACCEPTED, action=ReferralAction.REJECT, actor=ActorKind.OWNER, reason=None
        )


REQUESTED_AT = datetime(2025, 3, 14, 9, 30, tzinfo=EAT)


@pytest.mark.parametrize(
    ("priority", "deadlines", "expected"),
    [
        (ReferralPriority.ROUTINE, ResponseDeadlines(), datetime(2025, 3, 19, 9, 30, tzinfo=EAT)),
        (ReferralPriority.URGENT, ResponseDeadlines(), datetime(2025, 3, 16, 9, 30, tzinfo=EAT)),
        (ReferralPriority.ASAP, ResponseDeadlines(), datetime(2025, 3, 14, 13, 30, tzinfo=EAT)),
        (
            ReferralPriority.ROUTINE,
            ResponseDeadlines(routine=timedelta(days=3), urgent=timedelta(hours=12), asap=timedelta(hours=1)),
            datetime(2025, 3, 17, 9, 30, tzinfo=EAT),
        ),
        (
            ReferralPriority.URGENT,
            ResponseDeadlines(routine=timedelta(days=3), urgent=timedelta(hours=12), asap=timedelta(hours=1)),
            datetime(2025, 3, 14, 21, 30, tzinfo=EAT),
        ),
        (
            ReferralPriority.ASAP,
            ResponseDeadlines(asap=timedelta(minutes=90)),
            datetime(2025, 3, 14, 11, 0, tzinfo=EAT),
        ),
    ],
)
def test_respond_by(priority, deadlines, expected):
    assert respond_by(priority=priority, requested_at=REQUESTED_AT, deadlines=deadlines) == expected


def test_respond_by_defaults_and_keeps_the_instant():
    deadline = respond_by(priority=ReferralPriority.URGENT, requested_at=REQUESTED_AT)
    assert deadline == datetime(2025, 3, 16, 6, 30, tzinfo=UTC)
    assert deadline.utcoffset() == timedelta(hours=3)


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (ReferralPriority.ROUTINE, timedelta(days=5)),
        (ReferralPriority.URGENT, timedelta(hours=48)),
        (ReferralPriority.ASAP, timedelta(hours=4)),
    ],
)
def test_default_deadlines(priority, expected):
    assert ResponseDeadlines().for_priority(priority) == expected


def test_naive_request_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        respond_by(priority=ReferralPriority.ROUTINE, requested_at=datetime(2025, 3, 14, 9, 30))


@pytest.mark.parametrize("bad", [timedelta(0), timedelta(hours=-1)])
def test_deadlines_must_be_positive(bad):
    with pytest.raises(ValueError, match="positive"):
        ResponseDeadlines(urgent=bad)


DEADLINE = datetime(2025, 3, 16, 9, 30, tzinfo=EAT)
MICRO = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("status", "deadline", "now", "expected"),
    [
        (ReferralStatus.REQUESTED, DEADLINE, DEADLINE - MICRO, False),
        (ReferralStatus.REQUESTED, DEADLINE, DEADLINE, False),
        (ReferralStatus.REQUESTED, DEADLINE, DEADLINE + MICRO, True),
        (ReferralStatus.REQUESTED, DEADLINE, DEADLINE + timedelta(days=30), True),
        (ReferralStatus.REQUESTED, None, DEADLINE + timedelta(days=30), False),
        # Same instant written in UTC: still exactly at the deadline.
        (ReferralStatus.REQUESTED, DEADLINE, datetime(2025, 3, 16, 6, 30, tzinfo=UTC), False),
    ]
    + [
        (status, DEADLINE, DEADLINE + timedelta(days=30), False)
        for status in ReferralStatus
        if status != ReferralStatus.REQUESTED
    ],
)
def test_is_overdue(status, deadline, now, expected):
    assert is_overdue(status=status, respond_by=deadline, now=now) is expected
