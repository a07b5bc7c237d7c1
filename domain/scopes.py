"""OAuth scopes in SMART v2 shape, and the ceiling each role (or partner system) may ever hold.

A scope is `(user|system)/<Resource>.<cruds>`. What a caller may do is the intersection of the
ceiling of its role(s) and the scopes in its token: a scope only narrows what a role allows, never
widens it (rule 5). This module is the one place that mapping lives; the README prints it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from domain.enums import OrganizationKind, Role


class Resource(StrEnum):
    ORGANIZATION = "Organization"
    STAFF_USER = "StaffUser"
    SURVIVOR = "Survivor"
    SURVIVOR_IDENTITY = "SurvivorIdentity"
    CONSENT = "Consent"
    REFERRAL = "Referral"
    COUNSELING_SESSION = "CounselingSession"
    SESSION_NOTE = "SessionNote"
    CARE_GOAL = "CareGoal"
    MILESTONE = "Milestone"
    ASSESSMENT = "Assessment"
    AUDIT_EVENT = "AuditEvent"
    REPORT = "Report"
    OAUTH_CLIENT = "OAuthClient"


class Action(StrEnum):
    CREATE = "c"
    READ = "r"
    UPDATE = "u"
    DELETE = "d"
    SEARCH = "s"


ACTION_ORDER = "cruds"
WILDCARD = "*"
_SCOPE = re.compile(r"^(user|system)/([A-Za-z]+|\*)\.([cruds]+)$")


@dataclass(frozen=True, slots=True)
class Scope:
    context: str
    resource: str
    actions: frozenset[str]

    def __str__(self) -> str:
        letters = "".join(a for a in ACTION_ORDER if a in self.actions)
        return f"{self.context}/{self.resource}.{letters}"

    def grants(self, context: str, resource: str, action: str) -> bool:
        return (
            self.context == context
            and (self.resource == WILDCARD or self.resource == resource)
            and action in self.actions
        )


_RESOURCES = frozenset(r.value for r in Resource)


def parse_scope(value: str) -> Scope:
    """Parse one scope; letters must be a subset of `cruds` in that order (SMART v2)."""
    match = _SCOPE.match(value)
    if not match:
        raise ValueError("scope must look like user/Referral.rs or system/*.rs")
    context, resource, letters = match.groups()
    if resource != WILDCARD and resource not in _RESOURCES:
        raise ValueError("unknown resource in scope")
    if letters != "".join(a for a in ACTION_ORDER if a in letters) or len(set(letters)) != len(letters):
        raise ValueError("scope letters must be a subset of cruds, in that order")
    return Scope(context=context, resource=resource, actions=frozenset(letters))


def parse_scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    return tuple(parse_scope(v) for v in values)


def _s(context: str, *pairs: tuple[Resource, str]) -> tuple[str, ...]:
    return tuple(f"{context}/{resource.value}.{letters}" for resource, letters in pairs)


R = Resource
_CASE_WORK = (
    (R.ORGANIZATION, "rs"),
    (R.SURVIVOR, "crus"),
    (R.SURVIVOR_IDENTITY, "cru"),
    (R.CONSENT, "crus"),
    (R.REFERRAL, "crus"),
    (R.COUNSELING_SESSION, "rs"),
    (R.SESSION_NOTE, "r"),
    (R.CARE_GOAL, "rs"),
    (R.MILESTONE, "rs"),
    (R.ASSESSMENT, "rs"),
)
_PARTNER_CARE = (
    (R.ORGANIZATION, "rs"),
    (R.SURVIVOR, "rs"),
    (R.SURVIVOR_IDENTITY, "r"),
    (R.CONSENT, "rs"),
    (R.REFERRAL, "rus"),
    (R.COUNSELING_SESSION, "crus"),
    (R.SESSION_NOTE, "cru"),
    (R.CARE_GOAL, "crus"),
    (R.MILESTONE, "crus"),
    (R.ASSESSMENT, "crus"),
)

# The most each role may ever do. A staff token's scopes are intersected with the union over its roles.
ROLE_CEILING: Mapping[Role, tuple[str, ...]] = {
    Role.CASE_MANAGER: _s("user", *_CASE_WORK),
    # Survivor.d: erasure (with legal hold and the subject access export, supervisors only: domain.policy)
    Role.SUPERVISOR: _s("user", *_CASE_WORK, (R.SURVIVOR, "d"), (R.AUDIT_EVENT, "rs"), (R.REPORT, "rs")),
    Role.PARTNER_COORDINATOR: _s(
        "user",
        (R.ORGANIZATION, "rus"),
        (R.SURVIVOR, "rs"),
        (R.SURVIVOR_IDENTITY, "r"),
        (R.CONSENT, "rs"),
        (R.REFERRAL, "rus"),
        (R.COUNSELING_SESSION, "rs"),
        (R.CARE_GOAL, "rs"),
        (R.MILESTONE, "rs"),
        (R.ASSESSMENT, "rs"),
    ),
    Role.COUNSELOR: _s("user", *_PARTNER_CARE),
    Role.ANALYST: _s("user", (R.ORGANIZATION, "rs"), (R.REPORT, "rs")),
    Role.ADMIN: _s("user", (R.ORGANIZATION, "cruds"), (R.STAFF_USER, "cruds"), (R.AUDIT_EVENT, "rs"),
                   (R.OAUTH_CLIENT, "rus")),
}

# The most a partner organization's system (client credentials) may ever be allowed.
SYSTEM_CEILING: Mapping[OrganizationKind, tuple[str, ...]] = {
    OrganizationKind.PARTNER: _s("system", *_PARTNER_CARE),
    OrganizationKind.REFERRING_NGO: _s(
        "system",
        (R.ORGANIZATION, "rs"),
        (R.SURVIVOR, "rs"),
        (R.CONSENT, "rs"),
        (R.REFERRAL, "rs"),
        (R.COUNSELING_SESSION, "rs"),
        (R.CARE_GOAL, "rs"),
        (R.MILESTONE, "rs"),
        (R.ASSESSMENT, "rs"),
    ),
}


def role_ceiling(roles: Iterable[Role]) -> tuple[Scope, ...]:
    return tuple(parse_scope(s) for role in roles for s in ROLE_CEILING[role])


def system_ceiling(kind: OrganizationKind) -> tuple[Scope, ...]:
    return tuple(parse_scope(s) for s in SYSTEM_CEILING[kind])


def default_scopes(roles: Iterable[Role]) -> tuple[str, ...]:
    """What a staff token gets when it asks for no scope: everything its roles allow."""
    seen: dict[str, None] = {}
    for role in sorted(roles):
        for s in ROLE_CEILING[role]:
            seen.setdefault(s, None)
    return tuple(seen)


def narrow(requested: Iterable[Scope], ceiling: Iterable[Scope]) -> tuple[Scope, ...]:
    """The part of each requested scope that the ceiling allows (a scope never widens a role)."""
    ceiling = tuple(ceiling)
    result: list[Scope] = []
    for scope in requested:
        for resource in [r.value for r in Resource] if scope.resource == WILDCARD else [scope.resource]:
            allowed = frozenset(
                a for a in scope.actions if any(c.grants(scope.context, resource, a) for c in ceiling)
            )
            if allowed:
                result.append(Scope(context=scope.context, resource=resource, actions=allowed))
    return tuple(result)


def is_within(requested: Iterable[Scope], ceiling: Iterable[Scope]) -> bool:
    """True when every letter of every requested scope is allowed by the ceiling."""
    ceiling = tuple(ceiling)
    for scope in requested:
        resources = [r.value for r in Resource] if scope.resource == WILDCARD else [scope.resource]
        for resource in resources:
            for action in scope.actions:
                if not any(c.grants(scope.context, resource, action) for c in ceiling):
                    return False
    return True



_COLUMN_NAMES: Mapping[str, str] = {
    Role.CASE_MANAGER: "case manager", Role.SUPERVISOR: "supervisor", Role.PARTNER_COORDINATOR: "coordinator",
    Role.COUNSELOR: "counselor", Role.ANALYST: "analyst", Role.ADMIN: "admin",
    OrganizationKind.PARTNER: "partner system", OrganizationKind.REFERRING_NGO: "NGO system",
}


def ceiling_table() -> str:
    """The role and system ceilings as the README's Markdown table (a test keeps the README current)."""
    columns: list[tuple[str, tuple[str, ...]]] = [(_COLUMN_NAMES[role], ROLE_CEILING[role]) for role in Role]
    columns += [(_COLUMN_NAMES[kind], SYSTEM_CEILING[kind])
                for kind in (OrganizationKind.PARTNER, OrganizationKind.REFERRING_NGO)]
    letters: dict[tuple[str, str], str] = {}
    for name, ceiling in columns:
        for scope in parse_scopes(ceiling):
            held = set(letters.get((name, scope.resource), "")) | scope.actions
            letters[(name, scope.resource)] = "".join(a for a in ACTION_ORDER if a in held)
    lines = ["| resource | " + " | ".join(name for name, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for resource in Resource:
        cells = [letters.get((name, resource.value), "—") for name, _ in columns]
        lines.append(f"| `{resource.value}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
