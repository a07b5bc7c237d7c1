"""FHIR Goal rules: lifecycle moves, the achievement hierarchy, and when progress may be recorded."""

import itertools

import pytest

from domain.enums import GoalAchievementStatus, GoalLifecycleStatus, UserErrorCode
from domain.errors import InvalidInput, InvalidTransition
from domain.goals import (
    ACHIEVEMENT_FAMILY,
    INITIAL_ACHIEVEMENT,
    INITIAL_LIFECYCLE,
    change_lifecycle,
    check_progress,
    record_progress,
)

L = GoalLifecycleStatus
A = GoalAchievementStatus

# Written from the brief as "from: to to to", independently of domain.goals.
MOVES = """
PROPOSED: PLANNED ACCEPTED ACTIVE REJECTED CANCELLED ENTERED_IN_ERROR
PLANNED: ACCEPTED ACTIVE CANCELLED ENTERED_IN_ERROR
ACCEPTED: ACTIVE ON_HOLD CANCELLED ENTERED_IN_ERROR
ACTIVE: ON_HOLD COMPLETED CANCELLED ENTERED_IN_ERROR
ON_HOLD: ACTIVE CANCELLED COMPLETED ENTERED_IN_ERROR
COMPLETED: ENTERED_IN_ERROR
CANCELLED: ENTERED_IN_ERROR
REJECTED: ENTERED_IN_ERROR
ENTERED_IN_ERROR:
"""
ALLOWED = {
    (GoalLifecycleStatus[src.strip()], GoalLifecycleStatus[dst])
    for src, targets in (line.split(":") for line in MOVES.strip().splitlines())
    for dst in targets.split()
}
SAME = {(status, status) for status in L}
ALL_PAIRS = list(itertools.product(L, L))


def test_expectation_size():
    assert len(ALLOWED) == 25
    assert len(ALL_PAIRS) == 81


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED | SAME))
def test_allowed_lifecycle_moves(current, new):
    assert change_lifecycle(current, new) == new


@pytest.mark.parametrize(("current", "new"), [pair for pair in ALL_PAIRS if pair not in ALLOWED | SAME])
def test_refused_lifecycle_moves(current, new):
    with pytest.raises(InvalidTransition) as caught:
        change_lifecycle(current, new)
    assert caught.value.code == UserErrorCode.INVALID_TRANSITION
    assert caught.value.field == ("input", "lifecycleStatus")
    assert caught.value.message == f"A goal in status {current} cannot move to {new}."


@pytest.mark.parametrize(
    ("status", "parent"),
    [
        (A.IN_PROGRESS, A.IN_PROGRESS),
        (A.IMPROVING, A.IN_PROGRESS),
        (A.WORSENING, A.IN_PROGRESS),
        (A.NO_CHANGE, A.IN_PROGRESS),
        (A.ACHIEVED, A.ACHIEVED),
        (A.SUSTAINING, A.ACHIEVED),
        (A.NOT_ACHIEVED, A.NOT_ACHIEVED),
        (A.NO_PROGRESS, A.NOT_ACHIEVED),
        (A.NOT_ATTAINABLE, A.NOT_ACHIEVED),
    ],
)
def test_achievement_family(status, parent):
    assert ACHIEVEMENT_FAMILY[status] == parent


def test_achievement_family_is_total():
    assert set(ACHIEVEMENT_FAMILY) == set(A)


def test_new_goals_start_active_and_in_progress():
    assert INITIAL_LIFECYCLE == L.ACTIVE
    assert INITIAL_ACHIEVEMENT == A.IN_PROGRESS


CLOSED = [L.CANCELLED, L.REJECTED, L.ENTERED_IN_ERROR]
REACHED = [A.ACHIEVED, A.SUSTAINING]
NOT_REACHED = [a for a in A if a not in REACHED]


@pytest.mark.parametrize(
    ("lifecycle", "achievement"), list(itertools.product([L.ACTIVE, L.COMPLETED], list(A)))
)
def test_progress_on_active_or_completed_goals(lifecycle, achievement):
    check_progress(lifecycle=lifecycle, achievement=achievement)  # does not raise


@pytest.mark.parametrize(
    ("lifecycle", "achievement"),
    list(itertools.product([L.PROPOSED, L.PLANNED, L.ACCEPTED, L.ON_HOLD], NOT_REACHED)),
)
def test_not_yet_reached_progress_on_open_goals(lifecycle, achievement):
    check_progress(lifecycle=lifecycle, achievement=achievement)  # does not raise


@pytest.mark.parametrize(
    ("lifecycle", "achievement"),
    list(itertools.product([L.PROPOSED, L.PLANNED, L.ACCEPTED, L.ON_HOLD], REACHED)),
)
def test_achieved_needs_an_active_or_completed_goal(lifecycle, achievement):
    with pytest.raises(InvalidInput) as caught:
        check_progress(lifecycle=lifecycle, achievement=achievement)
    assert caught.value.field == ("input", "achievementStatus")
    assert caught.value.message == f"A goal in status {lifecycle} cannot be recorded as {achievement}."


@pytest.mark.parametrize(("lifecycle", "achievement"), list(itertools.product(CLOSED, list(A))))
def test_no_progress_on_closed_goals(lifecycle, achievement):
    with pytest.raises(InvalidInput) as caught:
        check_progress(lifecycle=lifecycle, achievement=achievement)
    assert caught.value.field == ("input", "achievementStatus")
    assert caught.value.code == UserErrorCode.INVALID


@pytest.mark.parametrize(
    ("current", "requested", "achievement", "expected"),
    [
        (L.ACTIVE, None, A.IMPROVING, L.ACTIVE),
        (L.ACTIVE, L.ACTIVE, A.ACHIEVED, L.ACTIVE),
        (L.ACTIVE, L.COMPLETED, A.ACHIEVED, L.COMPLETED),
        (L.ON_HOLD, L.COMPLETED, A.SUSTAINING, L.COMPLETED),
        (L.ON_HOLD, L.ACTIVE, A.ACHIEVED, L.ACTIVE),
        (L.ACTIVE, L.CANCELLED, A.NOT_ATTAINABLE, L.CANCELLED),
        (L.ACTIVE, L.ON_HOLD, A.NO_CHANGE, L.ON_HOLD),
        (L.PROPOSED, L.REJECTED, A.NOT_ACHIEVED, L.REJECTED),
        (L.COMPLETED, None, A.SUSTAINING, L.COMPLETED),
        # Correcting a mistake stays possible on a closed goal.
        (L.CANCELLED, L.ENTERED_IN_ERROR, A.IN_PROGRESS, L.ENTERED_IN_ERROR),
        (L.REJECTED, L.ENTERED_IN_ERROR, A.NOT_ACHIEVED, L.ENTERED_IN_ERROR),
    ],
)
def test_record_progress(current, requested, achievement, expected):
    assert record_progress(current=current, requested=requested, achievement=achievement) == expected


@pytest.mark.parametrize(
    ("current", "requested", "achievement", "error", "field"),
    [
        (L.ACTIVE, L.PROPOSED, A.IN_PROGRESS, InvalidTransition, ("input", "lifecycleStatus")),
        (L.COMPLETED, L.ACTIVE, A.WORSENING, InvalidTransition, ("input", "lifecycleStatus")),
        (L.ACTIVE, L.ON_HOLD, A.ACHIEVED, InvalidInput, ("input", "achievementStatus")),
        (L.ACTIVE, L.CANCELLED, A.ACHIEVED, InvalidInput, ("input", "achievementStatus")),
        (L.CANCELLED, None, A.IMPROVING, InvalidInput, ("input", "achievementStatus")),
        (L.CANCELLED, L.CANCELLED, A.IMPROVING, InvalidInput, ("input", "achievementStatus")),
        (L.ENTERED_IN_ERROR, L.ENTERED_IN_ERROR, A.NO_CHANGE, InvalidInput, ("input", "achievementStatus")),
        (L.REJECTED, L.ACTIVE, A.IN_PROGRESS, InvalidTransition, ("input", "lifecycleStatus")),
    ],
)
def test_record_progress_refusals(current, requested, achievement, error, field):
    with pytest.raises(error) as caught:
        record_progress(current=current, requested=requested, achievement=achievement)
    assert caught.value.field == field
