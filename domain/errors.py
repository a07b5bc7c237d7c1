"""Errors a caller can act on, each with a stable code from the contract.

A `DomainError` becomes a `UserError` in a mutation payload and is shown to people and stored in
client logs. Its message must therefore never contain survivor data (names, phone numbers, places,
free text the user typed): say what kind of value was wrong, never echo the value itself.
"""

from collections.abc import Callable
from typing import ClassVar, TypeVar

from domain.enums import UserErrorCode

T = TypeVar("T")


class DomainError(Exception):
    """A rule refused the request; nothing was changed."""

    code: ClassVar[UserErrorCode]

    def __init__(self, message: str, *, field: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Path of the input field at fault, e.g. ("input", "birthYear"); None when no single field is.
        self.field = field


class InvalidInput(DomainError):
    code = UserErrorCode.INVALID


class InvalidInputs(InvalidInput):
    """Several fields of one input refused at once, so the caller fixes them all in one round trip: a
    mutation answers one userError per field; elsewhere (a query, the CLI) the message holds them all."""

    def __init__(self, refused: list[InvalidInput]) -> None:
        super().__init__(" ".join(error.message for error in refused), field=None)
        self.refused = tuple(refused)


class FieldChecks:
    """Runs every field check of an input and raises all refusals together when the input is done."""

    def __init__(self) -> None:
        self._refused: list[InvalidInput] = []

    def refuse(self, error: InvalidInput) -> None:
        self._refused.extend(error.refused if isinstance(error, InvalidInputs) else (error,))

    def check(self, check: Callable[[], T]) -> T | None:
        """The check's result, or None once its refusal is noted."""
        try:
            return check()
        except InvalidInput as error:
            self.refuse(error)
            return None

    def passes(self, check: Callable[[], None]) -> bool:
        """Whether the check passed; its refusal, if any, is noted."""
        refused = len(self._refused)
        self.check(check)
        return len(self._refused) == refused

    def done(self) -> None:
        if len(self._refused) == 1:
            raise self._refused[0]
        if self._refused:
            raise InvalidInputs(self._refused)


class NotFound(DomainError):
    """Also what a caller gets for a record they may not see, so existence does not leak."""

    code = UserErrorCode.NOT_FOUND

    def __init__(self, message: str = "Not found.", *, field: tuple[str, ...] | None = None) -> None:
        super().__init__(message, field=field)


class ConsentRequired(DomainError):
    code = UserErrorCode.CONSENT_REQUIRED


class InvalidTransition(DomainError):
    code = UserErrorCode.INVALID_TRANSITION


class VersionConflict(DomainError):
    """Someone else changed the record first; silently overwriting their edit would lose it."""

    code = UserErrorCode.VERSION_CONFLICT


class IdempotencyKeyReused(DomainError):
    """The key was already used for a different request, so replaying the stored result would lie."""

    code = UserErrorCode.IDEMPOTENCY_KEY_REUSED


class Duplicate(DomainError):
    code = UserErrorCode.DUPLICATE


class Forbidden(Exception):
    """The token lacks a scope for the operation as a whole.

    Not a `DomainError`: it says nothing about any record, so it becomes a top-level FORBIDDEN
    GraphQL error instead of a user error. Record-level refusals are `NotFound`.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
