"""Rules about staff accounts: which roles an organization's people may hold, and what a password is.

Roles follow the organization's place in the network (docs/domain.md, "Who uses it"): the referring
NGO's people manage cases, supervise, report and administer; a partner's people coordinate and
counsel. A counselor at the NGO or a case manager at a partner would hold a role no rule of the
policy was written for (a case manager's rows are the survivors her own organization registered,
which a partner never does), so such a combination is refused wherever roles are set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from domain.enums import OrganizationKind, Role
from domain.errors import InvalidInput

# The roles a staff user may hold, by the kind of their organization. Analysts and administrators
# work for the NGO: reports are the NGO's aggregates, and an administrator registers partners.
ROLES_BY_KIND: Mapping[OrganizationKind, tuple[Role, ...]] = {
    OrganizationKind.REFERRING_NGO: (Role.CASE_MANAGER, Role.SUPERVISOR, Role.ANALYST, Role.ADMIN),
    OrganizationKind.PARTNER: (Role.PARTNER_COORDINATOR, Role.COUNSELOR),
}

KIND_NAMES: Mapping[OrganizationKind, str] = {
    OrganizationKind.REFERRING_NGO: "the referring NGO",
    OrganizationKind.PARTNER: "a partner organization",
}

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024


def allowed_roles(kind: OrganizationKind) -> str:
    return ", ".join(r.value for r in ROLES_BY_KIND[kind])


def check_roles(kind: OrganizationKind, roles: Iterable[Role], *, field: tuple[str, ...]) -> tuple[Role, ...]:
    """The roles, each once, in a stable order; refused unless each fits the organization's kind.

    The message names the field and the roles this organization may hold, never what was sent.
    """
    chosen = tuple(dict.fromkeys(roles))
    name = field[-1]
    if not chosen:
        raise InvalidInput(f"{name} must hold at least one role; at {KIND_NAMES[kind]} choose from "
                           f"{allowed_roles(kind)}.", field=field)
    if any(role not in ROLES_BY_KIND[kind] for role in chosen):
        raise InvalidInput(f"{name} at {KIND_NAMES[kind]} may only be {allowed_roles(kind)}.", field=field)
    return tuple(sorted(chosen, key=list(Role).index))


def password_problem(password: str, *, email: str) -> str | None:
    """Why this password is refused, or None. Length is what protects an argon2id hash (NIST SP
    800-63B): no composition rules, but not the e-mail and not blank."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"The password must have at least {PASSWORD_MIN_LENGTH} characters; a few words make a good one."
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"The password must have at most {PASSWORD_MAX_LENGTH} characters."
    if not password.strip():
        return "The password must not be only spaces."
    if password.strip().lower() == email.strip().lower():
        return "The password must not be your e-mail address."
    return None
