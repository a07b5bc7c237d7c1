"""Care-goal rules from FHIR Goal: which lifecycle moves make sense, and when progress may be recorded.

A goal's achievement status is a dated series kept beside its lifecycle; these rules stop the two
from contradicting each other: an "achieved" goal that was never active, progress on a cancelled one.
"""

from collections.abc import Mapping
from types import MappingProxyType

from domain.enums import GoalAchievementStatus, GoalLifecycleStatus
from domain.errors import InvalidInput, InvalidTransition

_L = GoalLifecycleStatus
_A = GoalAchievementStatus

INITIAL_LIFECYCLE = GoalLifecycleStatus.ACTIVE
INITIAL_ACHIEVEMENT = GoalAchievementStatus.IN_PROGRESS

LIFECYCLE_TRANSITIONS: Mapping[GoalLifecycleStatus, frozenset[GoalLifecycleStatus]] = MappingProxyType(
    {
        _L.PROPOSED: frozenset(
            {_L.PLANNED, _L.ACCEPTED, _L.ACTIVE, _L.REJECTED, _L.CANCELLED, _L.ENTERED_IN_ERROR}
        ),
        _L.PLANNED: frozenset({_L.ACCEPTED, _L.ACTIVE, _L.CANCELLED, _L.ENTERED_IN_ERROR}),
        _L.ACCEPTED: frozenset({_L.ACTIVE, _L.ON_HOLD, _L.CANCELLED, _L.ENTERED_IN_ERROR}),
        _L.ACTIVE: frozenset({_L.ON_HOLD, _L.COMPLETED, _L.CANCELLED, _L.ENTERED_IN_ERROR}),
        _L.ON_HOLD: frozenset({_L.ACTIVE, _L.CANCELLED, _L.COMPLETED, _L.ENTERED_IN_ERROR}),
        _L.COMPLETED: frozenset({_L.ENTERED_IN_ERROR}),
        _L.CANCELLED: frozenset({_L.ENTERED_IN_ERROR}),
        _L.REJECTED: frozenset({_L.ENTERED_IN_ERROR}),
        _L.ENTERED_IN_ERROR: frozenset(),
    }
)

# FHIR's achievement hierarchy: each status and the parent code it refines.
ACHIEVEMENT_FAMILY: Mapping[GoalAchievementStatus, GoalAchievementStatus] = MappingProxyType(
    {
        _A.IN_PROGRESS: _A.IN_PROGRESS,
        _A.IMPROVING: _A.IN_PROGRESS,
        _A.WORSENING: _A.IN_PROGRESS,
        _A.NO_CHANGE: _A.IN_PROGRESS,
        _A.ACHIEVED: _A.ACHIEVED,
        _A.SUSTAINING: _A.ACHIEVED,
        _A.NOT_ACHIEVED: _A.NOT_ACHIEVED,
        _A.NO_PROGRESS: _A.NOT_ACHIEVED,
        _A.NOT_ATTAINABLE: _A.NOT_ACHIEVED,
    }
)

# Goals that were never pursued or were recorded by mistake: nothing more can be said about them.
CLOSED_LIFECYCLES: frozenset[GoalLifecycleStatus] = frozenset(
    {_L.CANCELLED, _L.REJECTED, _L.ENTERED_IN_ERROR}
)
# Only a goal someone is working on, or has finished, can have been reached.
_MAY_BE_ACHIEVED: frozenset[GoalLifecycleStatus] = frozenset({_L.ACTIVE, _L.COMPLETED})

_ACHIEVEMENT_FIELD = ("input", "achievementStatus")


def change_lifecycle(current: GoalLifecycleStatus, new: GoalLifecycleStatus) -> GoalLifecycleStatus:
    """Repeating the current status is a no-op, so a retried update is harmless."""
    if new != current and new not in LIFECYCLE_TRANSITIONS[current]:
        raise InvalidTransition(
            f"A goal in status {current} cannot move to {new}.", field=("input", "lifecycleStatus")
        )
    return new


def check_progress(
    *,
    lifecycle: GoalLifecycleStatus,
    achievement: GoalAchievementStatus,
    resulting_lifecycle: GoalLifecycleStatus | None = None,
) -> None:
    """Refuse progress that contradicts the goal's lifecycle.

    `lifecycle` is the goal's status before the update and `resulting_lifecycle` the one the same
    update moves it to (default: unchanged). Marking a closed goal ENTERED_IN_ERROR stays possible,
    because correcting a mistake must always be.
    """
    resulting = lifecycle if resulting_lifecycle is None else resulting_lifecycle
    correcting = resulting == _L.ENTERED_IN_ERROR and lifecycle != _L.ENTERED_IN_ERROR
    if lifecycle in CLOSED_LIFECYCLES and not correcting:
        raise InvalidInput(
            f"Progress cannot be recorded on a goal in status {lifecycle}.", field=_ACHIEVEMENT_FIELD
        )
    if ACHIEVEMENT_FAMILY[achievement] == _A.ACHIEVED and resulting not in _MAY_BE_ACHIEVED:
        raise InvalidInput(
            f"A goal in status {resulting} cannot be recorded as {achievement}.", field=_ACHIEVEMENT_FIELD
        )


def record_progress(
    *,
    current: GoalLifecycleStatus,
    requested: GoalLifecycleStatus | None,
    achievement: GoalAchievementStatus,
) -> GoalLifecycleStatus:
    """Judge the lifecycle move and the achievement status as one update; returns the new lifecycle."""
    resulting = current if requested is None else change_lifecycle(current, requested)
    check_progress(lifecycle=current, achievement=achievement, resulting_lifecycle=resulting)
    return resulting
