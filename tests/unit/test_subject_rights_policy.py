"""The policy's data subject rules as tables, without a database: who corrects identity, who holds, erases
and exports a survivor's record, who reviews possible duplicates (domain/policy.py); and the use cases'
pure checks (domain/use_cases/subject_rights.py)."""

from __future__ import annotations

import pytest

from domain import policy
from domain.enums import Role
from domain.errors import InvalidInputs
from domain.use_cases.subject_rights import IdentityCorrection, validate_correction
from tests.unit.test_administration_policy import ACTORS, NGO, OTHER, OWN, person

ACTORS = {**ACTORS, "supervisor without delete": person(NGO, Role.SUPERVISOR, scopes=("user/Survivor.rus",
                                                                                     "user/SurvivorIdentity.ru")),
          "case manager read-only": person(NGO, Role.CASE_MANAGER, scopes=("user/SurvivorIdentity.r",))}


@pytest.mark.parametrize(("actor", "correct_own", "rights_own", "duplicates"), [
    ("admin", False, False, False),
    ("case manager", True, False, False),
    ("case manager read-only", False, False, False),
    ("supervisor", True, True, True),
    ("supervisor without delete", True, True, True),
    ("analyst", False, False, False),
    ("coordinator", False, False, False),
    ("counselor", False, False, False),
    ("partner system", False, False, False),
    ("NGO system", False, False, False),
])
def test_who_exercises_a_survivors_rights(actor: str, correct_own: bool, rights_own: bool, duplicates: bool) -> None:
    principal = ACTORS[actor]
    assert policy.may_correct_identity(principal, survivor_organization_id=OWN) is correct_own
    assert policy.may_exercise_subject_rights(principal, survivor_organization_id=OWN) is rights_own
    assert policy.may_review_duplicates(principal) is duplicates
    # never for another organization's survivor
    assert policy.may_correct_identity(principal, survivor_organization_id=OTHER) is False
    assert policy.may_exercise_subject_rights(principal, survivor_organization_id=OTHER) is False


@pytest.mark.parametrize(("given", "fields"), [
    (IdentityCorrection(legal_name=" "), [("input", "legalName")]),
    (IdentityCorrection(phone="call me"), [("input", "phone")]),
    (IdentityCorrection(guardian_phone="+1"), [("input", "guardianPhone")]),
    (IdentityCorrection(legal_name="", phone="x", location="a\u202eb"),
     [("input", "legalName"), ("input", "phone"), ("input", "location")]),
])
def test_a_correction_refuses_every_bad_field_at_once(given: IdentityCorrection,
                                                      fields: list[tuple[str, ...]]) -> None:
    with pytest.raises(Exception) as refused:  # one field: InvalidInput; several: InvalidInputs
        validate_correction(given)
    error = refused.value
    found = [e.field for e in error.refused] if isinstance(error, InvalidInputs) else [error.field]  # type: ignore[attr-defined]
    assert sorted(found) == sorted(fields)
    assert "call me" not in str(error)


@pytest.mark.parametrize(("given", "changes"), [
    (IdentityCorrection(phone="0712345678"), {"phone": "+254712345678"}),
    (IdentityCorrection(location="", guardian_name=""), {"location": None, "guardian_name": None}),
    (IdentityCorrection(location="   ", guardian_name=" \u3000", phone=" "),
     {"location": None, "guardian_name": None, "phone": None}),  # blank, however spelled, clears
    (IdentityCorrection(legal_name="  Amina  Wanjiru "), {"legal_name": "Amina  Wanjiru"}),
])
def test_a_correction_normalises_and_an_empty_text_clears(given: IdentityCorrection,
                                                           changes: dict[str, str | None]) -> None:
    assert validate_correction(given).changes() == changes


def test_a_correction_with_nothing_to_change_says_what_it_takes() -> None:
    with pytest.raises(Exception, match="legalName, phone, guardianName, guardianPhone, location"):
        validate_correction(IdentityCorrection())
