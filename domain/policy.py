"""The one place that decides who may do what, see which rows, and see which data categories.

Three questions (architecture.md):
- `require` / `may_*`: may this principal do this action at all (OAuth scope ceiling, rule 5, and
  the role's business rights);
- `survivor_rows`, `referral_rows`, `care_rows`: which rows it may see, returned as plain data and
  translated to SQL only in db/scopes.py;
- `visible_categories`: which parts of a survivor's record it may see, driven by consent.

A record outside the caller's rows is reported by use cases as NotFound, never as forbidden, so the
existence of a record does not leak (rule 1).

Who sees what (the README prints this table):
- referring NGO: case managers see survivors they registered or manage; supervisors (and the NGO's
  own system) see the whole organization; both see every consent and referral of those survivors
  and their safeguarding concerns, identity and contact included; feedback (session attendance,
  notes, goals, milestones, assessments) only where the referral's consent, in force, names
  FEEDBACK_TO_REFERRER and the matching category.
- partner coordinator and partner system: referrals addressed to their organization (never drafts)
  and the survivors behind them, only while the referral's consent is in force and names the
  partner and REFERRAL or SERVICE_DELIVERY; identity/contact only once the referral is accepted and
  only if the consent names IDENTITY/CONTACT; the needs summary only with CASE_SUMMARY.
- counselor: the same, limited to referrals assigned to them.
- session notes: at the partner, the counselor assigned to the referral reads and writes them, and
  its system reads them when the consent names SESSION_NOTES; the referrer reads them as feedback.
- analyst and admin: no row about a person.

Roles held together are not merged per record. Rows are the widest of the roles' (a coordinator who
also counsels sees every referral of her centre), but a right that comes with the assignment stays
with it: a counselor who is also the coordinator reads and writes notes only on the referrals
assigned to her, and on every other referral has only the coordinator's rights, which hold no notes.
Every other combination is a superset already (a supervisor sees all a case manager sees).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.enums import ActorKind, ConsentPurpose, DataCategory, OrganizationKind, ReferralStatus, Role
from domain.errors import Forbidden
from domain.principal import Principal
from domain.scopes import Action, Resource

# ----------------------------------------------------------------------------- scope (rule 5)


def require(principal: Principal, resource: Resource, action: Action) -> None:
    """Scope check: a missing scope is a top-level FORBIDDEN error, not a user error."""
    if not principal.allows(resource, action):
        raise Forbidden(f"This token lacks a scope for {resource.value}.{action.value}.")


# ----------------------------------------------------------------------------- directory


@dataclass(frozen=True, slots=True)
class DirectoryScope:
    """Which organizations a caller lists: everyone sees active ones; admins also inactive ones."""

    include_inactive: bool


def directory_scope(principal: Principal) -> DirectoryScope:
    return DirectoryScope(include_inactive=principal.has_role(Role.ADMIN))


# ----------------------------------------------------------------------------- row scopes


class Side(StrEnum):
    NONE = "NONE"
    REFERRER = "REFERRER"
    RECEIVER = "RECEIVER"


@dataclass(frozen=True, slots=True)
class RowScope:
    """Which survivor-related rows a caller may see, as data; db/scopes.py turns it into SQL.

    - REFERRER: rows of survivors registered by `organization_id`; when `case_manager_id` is set,
      only survivors that person registered or manages.
    - RECEIVER: rows reached through non-draft referrals addressed to `organization_id` whose consent
      is in force at `at` and names the organization and one of `purposes`; when `counselor_id` is
      set, only referrals assigned to that counselor.
    - NONE: nothing.
    """

    side: Side
    organization_id: uuid.UUID | None = None
    case_manager_id: uuid.UUID | None = None
    counselor_id: uuid.UUID | None = None
    at: datetime | None = None
    purposes: tuple[ConsentPurpose, ...] = (ConsentPurpose.REFERRAL, ConsentPurpose.SERVICE_DELIVERY)

    @property
    def is_empty(self) -> bool:
        return self.side is Side.NONE


NO_ROWS = RowScope(side=Side.NONE)
CASE_ROLES = frozenset({Role.CASE_MANAGER, Role.SUPERVISOR})
PARTNER_ROLES = frozenset({Role.PARTNER_COORDINATOR, Role.COUNSELOR})


def rows(principal: Principal, at: datetime) -> RowScope:
    """The rows of survivor data this principal may see at instant `at` (consent is time-bound)."""
    org = principal.organization_id
    if principal.organization_kind is OrganizationKind.REFERRING_NGO:
        if principal.is_system or principal.has_role(Role.SUPERVISOR):
            return RowScope(side=Side.REFERRER, organization_id=org, at=at)
        if principal.has_role(Role.CASE_MANAGER):
            return RowScope(side=Side.REFERRER, organization_id=org, case_manager_id=principal.user_id, at=at)
        return NO_ROWS
    if principal.is_system or principal.has_role(Role.PARTNER_COORDINATOR):
        return RowScope(side=Side.RECEIVER, organization_id=org, at=at)
    if principal.has_role(Role.COUNSELOR):
        return RowScope(side=Side.RECEIVER, organization_id=org, counselor_id=principal.user_id, at=at)
    return NO_ROWS


# ----------------------------------------------------------------------------- data categories


ACCEPTED_OR_LATER = frozenset({
    ReferralStatus.ACCEPTED, ReferralStatus.IN_PROGRESS, ReferralStatus.ON_HOLD, ReferralStatus.COMPLETED,
    ReferralStatus.FAILED,
})
ALL_CATEGORIES = frozenset(DataCategory)


@dataclass(frozen=True, slots=True)
class ReferralAccess:
    """What the policy needs to know about one referral to answer category questions."""

    referring_organization_id: uuid.UUID
    receiving_organization_id: uuid.UUID
    status: ReferralStatus
    assigned_counselor_id: uuid.UUID | None
    consent_categories: frozenset[DataCategory]
    consent_purposes: frozenset[ConsentPurpose]
    consent_in_force: bool


class Condition(StrEnum):
    """What must hold of a referral and its consent for a grant to apply."""

    IN_FORCE = "IN_FORCE"  # the consent is active, not withdrawn, within its validity at the instant
    FEEDBACK = "FEEDBACK"  # the consent names FEEDBACK_TO_REFERRER
    ACCEPTED = "ACCEPTED"  # the referral is ACCEPTED or later (ACCEPTED_OR_LATER)


@dataclass(frozen=True, slots=True)
class Grant:
    """One way a side of a referral sees some categories of the survivor's data: `categories` (only those
    the consent names, when `consented`) once every condition holds."""

    side: Side
    categories: frozenset[DataCategory]
    consented: bool
    when: frozenset[Condition] = frozenset()


_C = DataCategory
_IDENTIFYING = frozenset({_C.IDENTITY, _C.CONTACT})
# Which categories each side of a referral sees, as data: evaluated here (visible_categories) and rendered
# to SQL by db/scopes.py (category_visible); tests/safety/test_policy_renderings.py runs every case through
# both and fails on any difference.
CATEGORY_GRANTS: tuple[Grant, ...] = (
    # The referring NGO collected identity, contact and case summary: its own, always.
    Grant(Side.REFERRER, frozenset({_C.IDENTITY, _C.CONTACT, _C.CASE_SUMMARY}), consented=False),
    # Feedback from the partner's care, as far as an in-force consent names feedback and the category.
    Grant(Side.REFERRER, frozenset({_C.SESSION_ATTENDANCE, _C.SESSION_NOTES, _C.ASSESSMENTS}), consented=True,
          when=frozenset({Condition.IN_FORCE, Condition.FEEDBACK})),
    # The partner: what the consent in force names; identity and contact once it accepted the referral.
    Grant(Side.RECEIVER, frozenset(DataCategory) - _IDENTIFYING, consented=True,
          when=frozenset({Condition.IN_FORCE})),
    Grant(Side.RECEIVER, _IDENTIFYING, consented=True, when=frozenset({Condition.IN_FORCE, Condition.ACCEPTED})),
    # Its own care records are its own: attendance and assessments it keeps.
    Grant(Side.RECEIVER, frozenset({_C.SESSION_ATTENDANCE, _C.ASSESSMENTS}), consented=False,
          when=frozenset({Condition.IN_FORCE})),
)


# A partner sees a survivor's birth year (not only her age band) once one of her referrals it sees is
# accepted, under a consent in force: evaluated by shows_birth_year, rendered by db.scopes.birth_year_shown.
BIRTH_YEAR_WHEN = frozenset({Condition.IN_FORCE, Condition.ACCEPTED})


def shows_birth_year(side: Side, accesses: Iterable[ReferralAccess]) -> bool:
    """The referring NGO always; the partner as BIRTH_YEAR_WHEN says, through any referral it sees."""
    if side is Side.REFERRER:
        return True
    return side is Side.RECEIVER and any(all(_holds(c, a) for c in BIRTH_YEAR_WHEN) for a in accesses)


def side_of(organization_id: uuid.UUID, access: ReferralAccess) -> Side:
    if organization_id == access.referring_organization_id:
        return Side.REFERRER
    if organization_id == access.receiving_organization_id:
        return Side.RECEIVER
    return Side.NONE


def _holds(condition: Condition, access: ReferralAccess) -> bool:
    if condition is Condition.IN_FORCE:
        return access.consent_in_force
    if condition is Condition.FEEDBACK:
        return ConsentPurpose.FEEDBACK_TO_REFERRER in access.consent_purposes
    return access.status in ACCEPTED_OR_LATER


def visible_categories(organization_id: uuid.UUID, access: ReferralAccess) -> frozenset[DataCategory]:
    """Which categories of the survivor's data this caller may see through this referral: the union of the
    CATEGORY_GRANTS of its side whose conditions hold (the Python rendering of the rule)."""
    side = side_of(organization_id, access)
    seen: set[DataCategory] = set()
    for grant in CATEGORY_GRANTS:
        if grant.side is side and all(_holds(c, access) for c in grant.when):
            seen |= grant.categories & access.consent_categories if grant.consented else grant.categories
    return frozenset(seen)


@dataclass(frozen=True, slots=True)
class CareRows:
    """Which care records a caller sees under referrals it was already shown: under `own` referrals
    the records its organization keeps (the partner's), under `feedback` ones all of them (the
    referrer's consented feedback)."""

    organization_id: uuid.UUID
    own: tuple[uuid.UUID, ...]
    feedback: tuple[uuid.UUID, ...]

    @property
    def is_empty(self) -> bool:
        return not self.own and not self.feedback


def care_rows(organization_id: uuid.UUID, shown: Iterable[tuple[uuid.UUID, ReferralAccess]],
              category: DataCategory) -> CareRows:
    """The care-record rule (db.scopes.care_visible) for referrals already shown to the caller in this
    request: the row scope has spoken for the referral, so only the category remains to decide."""
    own: list[uuid.UUID] = []
    feedback: list[uuid.UUID] = []
    for referral_id, access in shown:
        if category not in visible_categories(organization_id, access):
            continue
        (own if organization_id == access.receiving_organization_id else feedback).append(referral_id)
    return CareRows(organization_id=organization_id, own=tuple(own), feedback=tuple(feedback))


def _assigned_counselor(principal: Principal, assigned_counselor_id: uuid.UUID | None) -> bool:
    """The caller is the referral's assigned counselor: the counselor role alone is not enough."""
    return principal.has_role(Role.COUNSELOR) and principal.user_id is not None and \
        principal.user_id == assigned_counselor_id


class Reader(StrEnum):
    """Who a note grant is for (at the authoring partner, or elsewhere)."""

    SYSTEM = "SYSTEM"  # the organization's partner system
    ASSIGNED_COUNSELOR = "ASSIGNED_COUNSELOR"  # the counselor the referral is assigned to (the role alone: no)
    ANYONE = "ANYONE"  # anyone the category grants show SESSION_NOTES to


@dataclass(frozen=True, slots=True)
class NoteGrant:
    """One way clinical notes are read: by `reader`, at the authoring partner or not, when the conditions hold,
    the consent names SESSION_NOTES (`names_notes`) or the side's category grants show SESSION_NOTES."""

    at_author: bool
    reader: Reader
    when: frozenset[Condition] = frozenset()
    names_notes: bool = False
    by_category: bool = False


# Clinical notes, as data (evaluated by may_read_session_notes, rendered to SQL by db.scopes.notes_visible):
# at the authoring partner the referral's assigned counselor, and its system when the consent in force names
# SESSION_NOTES; elsewhere (the referrer) only as the category grants allow. Another role held beside the
# counselor's (coordinator) never widens this.
NOTE_GRANTS: tuple[NoteGrant, ...] = (
    NoteGrant(at_author=True, reader=Reader.SYSTEM, when=frozenset({Condition.IN_FORCE}), names_notes=True),
    NoteGrant(at_author=True, reader=Reader.ASSIGNED_COUNSELOR),
    NoteGrant(at_author=False, reader=Reader.ANYONE, by_category=True),
)
# Rule 7, as data: the sides of a referral that see its safeguarding concerns, whatever the consent.
CONCERN_SIDES = frozenset({Side.REFERRER, Side.RECEIVER})


def is_reader(reader: Reader, principal: Principal, assigned_counselor_id: uuid.UUID | None) -> bool:
    if reader is Reader.SYSTEM:
        return principal.is_system
    if reader is Reader.ASSIGNED_COUNSELOR:
        return _assigned_counselor(principal, assigned_counselor_id)
    return True


def may_read_session_notes(principal: Principal, access: ReferralAccess, *, authoring_org: uuid.UUID) -> bool:
    """NOTE_GRANTS evaluated for one session (needs the SessionNote read scope besides)."""
    if not principal.allows(Resource.SESSION_NOTE, Action.READ):
        return False
    at_author = principal.organization_id == authoring_org
    for grant in NOTE_GRANTS:
        if (grant.at_author is at_author and is_reader(grant.reader, principal, access.assigned_counselor_id)
                and all(_holds(c, access) for c in grant.when)
                and (not grant.names_notes or DataCategory.SESSION_NOTES in access.consent_categories)
                and (not grant.by_category
                     or DataCategory.SESSION_NOTES in visible_categories(principal.organization_id, access))):
            return True
    return False


def may_write_session_notes(principal: Principal, *, assigned_counselor_id: uuid.UUID | None) -> bool:
    """Clinical text (notes, a concern's description) is written by whoever may read it at the
    partner: the referral's assigned counselor, or the partner's system."""
    if not principal.allows(Resource.SESSION_NOTE, Action.CREATE):
        return False
    return principal.is_system or _assigned_counselor(principal, assigned_counselor_id)


def sees_safeguarding(principal: Principal, access: ReferralAccess) -> bool:
    """Rule 7: the referring NGO always sees concerns, whatever the consent; the partner sees its own."""
    return side_of(principal.organization_id, access) in CONCERN_SIDES


# ----------------------------------------------------------------------------- actions


def actor_kind(principal: Principal, *, referring_organization_id: uuid.UUID,
               receiving_organization_id: uuid.UUID) -> ActorKind | None:
    """Which side of the referral state machine this caller acts for, or None."""
    if principal.organization_id == referring_organization_id and (
        principal.is_system or principal.roles & CASE_ROLES
    ):
        return ActorKind.REQUESTER
    if principal.organization_id == receiving_organization_id and (
        principal.is_system or principal.roles & PARTNER_ROLES
    ):
        return ActorKind.OWNER
    return None


def may_register_survivors(principal: Principal) -> bool:
    return (principal.organization_kind is OrganizationKind.REFERRING_NGO and not principal.is_system
            and bool(principal.roles & CASE_ROLES))


def may_manage_consent(principal: Principal, *, survivor_organization_id: uuid.UUID) -> bool:
    return may_register_survivors(principal) and principal.organization_id == survivor_organization_id


def counselors_shown(principal: Principal) -> uuid.UUID | None:
    """The one organization whose counselors and caseloads this principal sees: its own, if a partner (its
    staff and systems, whom `assignCounselor` needs); nobody outside it: who counsels whom, and how many,
    is the partner's business. (Data, so the read compiler binds it; may_see_counselors tests it.)"""
    return principal.organization_id if principal.organization_kind is OrganizationKind.PARTNER else None


def may_see_counselors(principal: Principal, organization_id: uuid.UUID) -> bool:
    return counselors_shown(principal) == organization_id


def may_triage_referrals(principal: Principal) -> bool:
    """Accept, reject and assign counselors: the partner's coordinator or its system, not a counselor."""
    return principal.is_system or principal.has_role(Role.PARTNER_COORDINATOR)


def may_record_care(principal: Principal) -> bool:
    """Sessions, goals, milestones, assessments: the partner's counselors, coordinators and system."""
    return principal.organization_kind is OrganizationKind.PARTNER and (
        principal.is_system or bool(principal.roles & PARTNER_ROLES)
    )


def may_read_audit(principal: Principal) -> bool:
    return principal.has_role(Role.SUPERVISOR, Role.ADMIN) and principal.allows(Resource.AUDIT_EVENT, Action.READ)


def may_administer_staff(principal: Principal, action: Action) -> bool:
    """Staff accounts (list, register, roles, deactivation, password links): the NGO's administrator
    with the StaffUser scope for the action; a partner system never."""
    return not principal.is_system and principal.has_role(Role.ADMIN) and \
        principal.allows(Resource.STAFF_USER, action)


def may_administer_clients(principal: Principal, action: Action) -> bool:
    """OAuth clients (list, change scopes, webhook URL, redirect URIs, name): the NGO's administrator with
    the OAuthClient scope for the action; a partner system never, not even for its own client."""
    return not principal.is_system and principal.has_role(Role.ADMIN) and \
        principal.allows(Resource.OAUTH_CLIENT, action)


def may_manage_webhooks(principal: Principal) -> bool:
    """The delivery log and redelivery of an organization's webhooks: its systems, coordinators,
    supervisors and administrators (a counselor or case manager has no use for them)."""
    return principal.is_system or principal.has_role(Role.PARTNER_COORDINATOR, Role.SUPERVISOR, Role.ADMIN)


def may_administer_directory(principal: Principal) -> bool:
    """Registering and updating organizations: the NGO's administrators."""
    return principal.has_role(Role.ADMIN)


def may_set_service(principal: Principal, organization_id: uuid.UUID | None, *, capacity_only: bool) -> bool:
    """Administrators set any organization's services; a partner's coordinator, or its system, only its
    own organization's capacity and open slots."""
    if principal.has_role(Role.ADMIN):
        return True
    coordinator = (principal.is_system or principal.has_role(Role.PARTNER_COORDINATOR)) and \
        principal.organization_kind is OrganizationKind.PARTNER
    return coordinator and capacity_only and organization_id == principal.organization_id


def may_assign_counselor(principal: Principal, *, receiving_organization_id: uuid.UUID) -> bool:
    """Who works a referral at the partner: its coordinator or system, for its own referrals only."""
    return principal.organization_id == receiving_organization_id and may_triage_referrals(principal)


# ----------------------------------------------------------------------------- data subject rights


def may_correct_identity(principal: Principal, *, survivor_organization_id: uuid.UUID) -> bool:
    """Rectification: the registering organization's case managers and supervisors (the row scope keeps a
    case manager to the survivors she manages), with the SurvivorIdentity update scope."""
    return may_manage_consent(principal, survivor_organization_id=survivor_organization_id) and \
        principal.allows(Resource.SURVIVOR_IDENTITY, Action.UPDATE)


def may_exercise_subject_rights(principal: Principal, *, survivor_organization_id: uuid.UUID) -> bool:
    """Legal hold, erasure and the subject access export: a supervisor of the survivor's organization
    (a person, never a system; never a partner). Erasure also needs the Survivor delete scope."""
    return (not principal.is_system and principal.has_role(Role.SUPERVISOR)
            and principal.organization_kind is OrganizationKind.REFERRING_NGO
            and principal.organization_id == survivor_organization_id)


def sees_data_protection(principal: Principal) -> bool:
    """A legal hold or a waiting erasure request is the registering organization's business: those who see
    its survivors as their own (the referrer side of the row scope), never a partner."""
    return principal.organization_kind is OrganizationKind.REFERRING_NGO and (
        principal.is_system or bool(principal.roles & CASE_ROLES))


def may_review_duplicates(principal: Principal) -> bool:
    """Possible duplicate registrations of an organization, including survivors its case managers may not
    see: that organization's supervisors."""
    return (not principal.is_system and principal.has_role(Role.SUPERVISOR)
            and principal.organization_kind is OrganizationKind.REFERRING_NGO
            and principal.allows(Resource.SURVIVOR, Action.SEARCH))


# ----------------------------------------------------------------------------- ownership (use cases ask here)


def may_record_care_on(principal: Principal, *, receiving_organization_id: uuid.UUID) -> bool:
    """Care (sessions, goals, milestones, assessments) is recorded by the partner a referral is addressed to,
    on its own referrals only, by its counselors, coordinators and system."""
    return may_record_care(principal) and principal.organization_id == receiving_organization_id


def care_read_purpose(principal: Principal, *, authoring_organization_id: uuid.UUID) -> str:
    """Why a care record is read: its author serves the survivor; anyone else (the referrer) gets feedback."""
    return "SERVICE_DELIVERY" if principal.organization_id == authoring_organization_id else "FEEDBACK_TO_REFERRER"


def is_referrer(principal: Principal, *, referring_organization_id: uuid.UUID) -> bool:
    """The caller speaks for the organization that made the referral (a concern shown to it is disclosed)."""
    return principal.organization_id == referring_organization_id


def may_look_up_colleague(principal: Principal, *, staff_organization_id: uuid.UUID) -> bool:
    """Staff looked up by id: one's own organization's people (the administrator: everyone, with e-mail)."""
    return principal.organization_id == staff_organization_id or may_administer_staff(principal, Action.READ)


def keeps_own_admin_role(principal: Principal, *, staff_user_id: uuid.UUID | None, roles: Iterable[Role]) -> bool:
    """An administrator cannot take away her own ADMIN role (another one, or the operator, can): the NGO
    never ends up with nobody to run accounts by a slip."""
    return staff_user_id != principal.user_id or Role.ADMIN in set(roles)


def may_deactivate_account(principal: Principal, *, staff_user_id: uuid.UUID | None) -> bool:
    """An administrator cannot deactivate herself (another one, or the operator, can)."""
    return staff_user_id != principal.user_id
