"""The single mapping point from domain errors to GraphQL: userErrors for mutations, and masking.

A DomainError in a mutation becomes `userErrors {field code message}`; Forbidden becomes a top-level
error with extensions.code FORBIDDEN; anything unexpected is masked as "Unexpected error." and
logged by type and request id only (strawberry would otherwise log the message, which may hold
identifying data).
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLError

from domain import enums
from domain.errors import DomainError, Forbidden, InvalidInputs


@strawberry.type(description="A problem with the input, safe to show; never contains identifying data.")
class UserError:
    field: list[str] | None = strawberry.field(
        description='Path to the input field at fault, e.g. ["input", "birthYear"]; null when not one field.'
    )
    code: enums.UserErrorCode
    message: str


def to_user_errors(error: DomainError) -> list[UserError]:
    if isinstance(error, InvalidInputs):
        return [e for refused in error.refused for e in to_user_errors(refused)]
    return [UserError(field=list(error.field) if error.field else None, code=error.code, message=error.message)]


# The caller remembered from an earlier request is gone (api/graphql/extensions.py): the router answers 401.
UNAUTHENTICATED = "UNAUTHENTICATED"


class ForbiddenError(GraphQLError):
    """A missing OAuth scope: a top-level error, readable, with extensions.code FORBIDDEN."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "FORBIDDEN"})


class InvalidArgumentError(GraphQLError):
    """Bad query arguments outside mutation inputs (e.g. first: 1000): readable, code BAD_USER_INPUT."""

    def __init__(self, message: str, field: tuple[str, ...] | None) -> None:
        extensions: dict[str, object] = {"code": "BAD_USER_INPUT"}
        if field:
            extensions["field"] = list(field)
        super().__init__(message, extensions=extensions)


def should_mask(error: GraphQLError) -> bool:
    """Mask only unexpected errors: validation, FORBIDDEN and bad-argument errors stay readable."""
    original = error.original_error
    if original is None:
        return False
    return not isinstance(original, (GraphQLError, Forbidden, DomainError))
