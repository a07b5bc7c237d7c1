"""Who reads and writes session notes (policy.may_read_session_notes, may_write_session_notes).

The rule: clinical notes are read and written at the partner by the counselor assigned to the
referral, and by the partner's system when the consent names SESSION_NOTES (reads) — never because of
another role the same person holds. A counselor who is also the coordinator reads notes only on the
referrals assigned to her; on every other referral she has the coordinator's rights, which hold none.
The referring NGO reads them only as consented feedback, whichever of its roles a user combines.
"""

from __future__ import annotations

import uuid

import pytest

from domain.enums import ConsentPurpose, DataCategory, OrganizationKind, ReferralStatus, Role
from domain.policy import ReferralAccess, may_read_session_notes, may_write_session_notes
from domain.principal import Principal, build_principal
from domain.scopes import default_scopes, system_ceiling

NGO = uuid.uuid4()
PARTNER = uuid.uuid4()
OTHER_PARTNER = uuid.uuid4()
ME = uuid.uuid4()
COLLEAGUE = uuid.uuid4()

COUNSELOR = (Role.COUNSELOR,)
COUNSELOR_COORDINATOR = (Role.COUNSELOR, Role.PARTNER_COORDINATOR)
COORDINATOR = (Role.PARTNER_COORDINATOR,)
CASE_MANAGER = (Role.CASE_MANAGER,)
CASE_MANAGER_SUPERVISOR = (Role.CASE_MANAGER, Role.SUPERVISOR)
ALL_PURPOSES = frozenset(ConsentPurpose)
NO_FEEDBACK = frozenset({ConsentPurpose.REFERRAL, ConsentPurpose.SERVICE_DELIVERY})
ALL_CATEGORIES = frozenset(DataCategory)
NO_NOTES = ALL_CATEGORIES - {DataCategory.SESSION_NOTES}


def _staff(roles: tuple[Role, ...], *, organization: uuid.UUID = PARTNER, scopes: list[str] | None = None) -> Principal:
    kind = OrganizationKind.REFERRING_NGO if organization == NGO else OrganizationKind.PARTNER
    return build_principal(organization_id=organization, organization_kind=kind, client_id="app", user_id=ME,
                           roles=frozenset(roles), token_scopes=scopes if scopes is not None else
                           list(default_scopes(roles)))


def _system(organization: uuid.UUID = PARTNER) -> Principal:
    return build_principal(organization_id=organization, organization_kind=OrganizationKind.PARTNER,
                           client_id="partner-system", token_scopes=[str(s) for s in
                                                                     system_ceiling(OrganizationKind.PARTNER)])


def _access(*, assigned: uuid.UUID | None, categories: frozenset[DataCategory] = ALL_CATEGORIES,
            purposes: frozenset[ConsentPurpose] = ALL_PURPOSES, in_force: bool = True) -> ReferralAccess:
    return ReferralAccess(referring_organization_id=NGO, receiving_organization_id=PARTNER,
                          status=ReferralStatus.IN_PROGRESS, assigned_counselor_id=assigned,
                          consent_categories=categories, consent_purposes=purposes, consent_in_force=in_force)


READS = [
    # (who, the referral's consent and assignment, may read the partner's notes)
    ("counselor, assigned", _staff(COUNSELOR), _access(assigned=ME), True),
    ("counselor, assigned to a colleague", _staff(COUNSELOR), _access(assigned=COLLEAGUE), False),
    ("counselor, nobody assigned", _staff(COUNSELOR), _access(assigned=None), False),
    ("counselor and coordinator, assigned", _staff(COUNSELOR_COORDINATOR), _access(assigned=ME), True),
    ("counselor and coordinator, assigned to a colleague", _staff(COUNSELOR_COORDINATOR),
     _access(assigned=COLLEAGUE), False),
    ("counselor and coordinator, nobody assigned", _staff(COUNSELOR_COORDINATOR), _access(assigned=None), False),
    ("coordinator", _staff(COORDINATOR), _access(assigned=ME), False),
    ("counselor, assigned, token without SessionNote",
     _staff(COUNSELOR, scopes=["user/CounselingSession.rs"]), _access(assigned=ME), False),
    ("counselor at another partner", _staff(COUNSELOR, organization=OTHER_PARTNER), _access(assigned=ME), False),
    ("partner system, consent names SESSION_NOTES", _system(), _access(assigned=COLLEAGUE), True),
    ("partner system, consent without SESSION_NOTES", _system(), _access(assigned=COLLEAGUE, categories=NO_NOTES),
     False),
    ("partner system, consent no longer in force", _system(), _access(assigned=COLLEAGUE, in_force=False), False),
    ("case manager, feedback with SESSION_NOTES", _staff(CASE_MANAGER, organization=NGO), _access(assigned=None),
     True),
    ("case manager, no feedback purpose", _staff(CASE_MANAGER, organization=NGO),
     _access(assigned=None, purposes=NO_FEEDBACK), False),
    ("case manager and supervisor, feedback without SESSION_NOTES", _staff(CASE_MANAGER_SUPERVISOR, organization=NGO),
     _access(assigned=None, categories=NO_NOTES), False),
    ("case manager and supervisor, no feedback purpose", _staff(CASE_MANAGER_SUPERVISOR, organization=NGO),
     _access(assigned=None, purposes=NO_FEEDBACK), False),
]


@pytest.mark.parametrize(("who", "principal", "access", "expected"), READS, ids=[r[0] for r in READS])
def test_who_reads_the_partners_session_notes(who: str, principal: Principal, access: ReferralAccess,
                                              expected: bool) -> None:
    assert may_read_session_notes(principal, access, authoring_org=PARTNER) is expected, who


WRITES = [
    ("counselor, assigned", _staff(COUNSELOR), ME, True),
    ("counselor, assigned to a colleague", _staff(COUNSELOR), COLLEAGUE, False),
    ("counselor and coordinator, assigned", _staff(COUNSELOR_COORDINATOR), ME, True),
    ("counselor and coordinator, assigned to a colleague", _staff(COUNSELOR_COORDINATOR), COLLEAGUE, False),
    ("counselor and coordinator, nobody assigned", _staff(COUNSELOR_COORDINATOR), None, False),
    ("coordinator", _staff(COORDINATOR), ME, False),
    ("counselor, assigned, token without SessionNote.c",
     _staff(COUNSELOR, scopes=["user/CounselingSession.crus", "user/SessionNote.r"]), ME, False),
    ("partner system", _system(), COLLEAGUE, True),
]


@pytest.mark.parametrize(("who", "principal", "assigned", "expected"), WRITES, ids=[w[0] for w in WRITES])
def test_who_writes_session_notes(who: str, principal: Principal, assigned: uuid.UUID | None,
                                  expected: bool) -> None:
    assert may_write_session_notes(principal, assigned_counselor_id=assigned) is expected, who
