"""The one place that decides who may do what, see which rows, and see which data categories.

Three questions (architecture.md): `require` (may this principal do X at all: the OAuth scope
ceiling, rule 5), row scopes (which rows, returned as plain data and translated to SQL only in
db/scopes.py), and visible categories (which parts of a survivor's record, driven by consent).
A record outside the caller's rows is reported as NotFound by the use cases, never as forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.enums import Role
from domain.errors import Forbidden
from domain.principal import Principal
from domain.scopes import Action, Resource


def require(principal: Principal, resource: Resource, action: Action) -> None:
    """Scope check: a missing scope is a top-level FORBIDDEN error, not a user error."""
    if not principal.allows(resource, action):
        raise Forbidden(f"This token lacks a scope for {resource.value}.{action.value}.")


@dataclass(frozen=True, slots=True)
class DirectoryScope:
    """Which organizations a caller lists: everyone sees active ones; admins also inactive ones."""

    include_inactive: bool


def directory_scope(principal: Principal) -> DirectoryScope:
    return DirectoryScope(include_inactive=principal.has_role(Role.ADMIN))
