"""Errors that say how to fix the input (issue 11, item 4): an unknown enum value is answered with
the values the enum allows (inline, as a variable, in a variable's default; never repeating what was
sent), and every bad field of one input comes back in the same response: one userError per field in
a mutation, one BAD_USER_INPUT naming them all in a query. (Wrong sub-domain keys listing the valid
ones: tests/unit/test_assessments.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from domain.enums import Role
from tests.factories import Factory
from tests.flows import REGISTER, network, referred_case, register_survivor, survivor_input

SENT = "Kadogo"  # a bare name a client might type where an enum value belongs


@pytest.mark.parametrize(("field", "allowed"), [("sex", "FEMALE, MALE, INTERSEX, UNDISCLOSED"),
                                                ("riskLevel", "LOW, MEDIUM, HIGH")])
async def test_an_unknown_enum_value_as_a_variable_lists_the_allowed_values(
        factory: Factory, field: str, allowed: str) -> None:
    net = await network(factory)
    body = await factory.gql(net.token("manager"), REGISTER, {"input": survivor_input(**{field: SENT})},
                             expect_errors=True)
    [error] = body["errors"]
    assert f"input.{field} must be one of {allowed}." in error["message"]
    assert SENT not in json.dumps(body)


@pytest.mark.parametrize(("field", "allowed"), [("sex", "FEMALE, MALE, INTERSEX, UNDISCLOSED"),
                                                ("riskLevel", "LOW, MEDIUM, HIGH")])
async def test_an_unknown_enum_literal_lists_the_allowed_values(factory: Factory, field: str, allowed: str) -> None:
    net = await network(factory)
    values = {**survivor_input(), field: SENT}
    inline = ", ".join(f"{k}: {v if k in ('sex', 'riskLevel') else json.dumps(v)}" for k, v in values.items())
    body = await factory.gql(net.token("manager"), "mutation { registerSurvivor(input: {" + inline +
                             "}) { survivor { id } } }", expect_errors=True)
    [error] = body["errors"]
    assert f"input.{field} must be one of {allowed}." in error["message"]
    assert SENT not in json.dumps(body)


async def test_a_string_literal_where_an_enum_belongs_lists_the_allowed_values(factory: Factory) -> None:
    net = await network(factory)
    values = {**survivor_input(), "riskLevel": SENT}
    inline = ", ".join(f"{k}: {v if k == 'sex' else json.dumps(v)}" for k, v in values.items())
    body = await factory.gql(net.token("manager"), "mutation { registerSurvivor(input: {" + inline +
                             "}) { survivor { id } } }", expect_errors=True)
    assert [e["message"] for e in body["errors"]] == ["input.riskLevel must be one of LOW, MEDIUM, HIGH."]
    assert SENT not in json.dumps(body)


STAFF = "staffUsers(filter: {role: %s}) { edges { node { id } } }"
ROLES = "CASE_MANAGER, SUPERVISOR, PARTNER_COORDINATOR, COUNSELOR, ANALYST, ADMIN"


@pytest.mark.parametrize(("query", "variables", "expected"), [
    ("query { " + STAFF % SENT + " }", {}, f"filter.role must be one of {ROLES}."),
    ("query($r: Role) { " + STAFF % "$r" + " }", {"r": SENT},
     f"Variable '$r' has an invalid value: r must be one of {ROLES}."),
    ("query($f: StaffUserFilter) { staffUsers(filter: $f) { edges { node { id } } } }", {"f": {"role": SENT}},
     f"Variable '$f' has an invalid value: f.role must be one of {ROLES}."),
    (f"query($r: Role = {SENT}) {{ " + STAFF % "$r" + " }", {},
     f"r must be one of {ROLES}."),
])
async def test_an_unknown_enum_value_in_a_query_argument_lists_the_allowed_values(
        factory: Factory, query: str, variables: dict[str, object], expected: str) -> None:
    net = await network(factory)
    admin = await factory.user(net.ngo, Role.ADMIN)
    body = await factory.gql(await factory.token(admin), query, variables, expect_errors=True)
    assert expected in [e["message"] for e in body["errors"]]
    assert SENT not in json.dumps(body)


async def test_every_bad_field_of_an_input_comes_back_in_one_response(factory: Factory) -> None:
    net = await network(factory)
    sent = survivor_input(birthYear=1800, county="Atlantis", phone="call-me-later", pseudonym=" ")
    body = await factory.gql(net.token("manager"), REGISTER, {"input": sent})
    errors = body["data"]["registerSurvivor"]["userErrors"]
    assert sorted(tuple(e["field"]) for e in errors) == \
        [("input", "birthYear"), ("input", "county"), ("input", "phone"), ("input", "pseudonym")]
    assert {e["code"] for e in errors} == {"INVALID"}
    assert "Atlantis" not in json.dumps(body)


async def test_every_unsafe_text_of_an_input_comes_back_in_one_response(factory: Factory) -> None:
    net = await network(factory)
    sent = survivor_input(legalName="Amina\u202eWanjiru", guardianName="Mama\x1bWanjiru", location="Mtwapa\x00")
    body = await factory.gql(net.token("manager"), REGISTER, {"input": sent})
    errors = body["data"]["registerSurvivor"]["userErrors"]
    assert sorted(tuple(e["field"]) for e in errors) == \
        [("input", "guardianName"), ("input", "legalName"), ("input", "location")]


async def test_every_refused_value_of_a_variable_is_reported_at_once(factory: Factory) -> None:
    """graphql-core coerces the whole variable before it stops, so each bad field has its error."""
    net = await network(factory)
    body = await factory.gql(net.token("manager"), REGISTER,
                             {"input": survivor_input(sex=SENT, riskLevel=SENT, birthYear="1990")},
                             expect_errors=True)
    messages = [e["message"] for e in body["errors"]]
    assert "Variable '$input' has an invalid value: input.sex must be one of FEMALE, MALE, INTERSEX, UNDISCLOSED." \
        in messages
    assert "Variable '$input' has an invalid value: input.riskLevel must be one of LOW, MEDIUM, HIGH." in messages
    assert any("input.birthYear" in m for m in messages)
    assert SENT not in json.dumps(body)


LONG = "x" * 20_001  # longer than any text field allows


async def _refused_fields(factory: Factory, token: str, name: str, input_type: str,
                          data: dict[str, object]) -> list[tuple[str, ...]]:
    body = await factory.gql(token, f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ "
                                    "userErrors { field code message } } }", {"input": data})
    errors = body["data"][name]["userErrors"]
    assert {e["code"] for e in errors} == {"INVALID"}, errors
    return sorted(tuple(e["field"]) for e in errors)


async def test_every_bad_field_of_a_consent_comes_back_in_one_response(factory: Factory) -> None:
    net = await network(factory)
    survivor = await register_survivor(factory, net.token("manager"))
    refused = await _refused_fields(factory, net.token("manager"), "recordConsent", "RecordConsentInput", {
        "survivorId": survivor["id"], "recipientId": net.partner.gid, "purposes": [], "dataCategories": [],
        "givenBy": "SURVIVOR", "childAssent": True, "witness": LONG})
    assert refused == [("input", "dataCategories"), ("input", "givenBy"), ("input", "purposes"),
                       ("input", "witness")]


async def test_every_bad_field_of_care_records_comes_back_in_one_response(factory: Factory) -> None:
    net = await network(factory)
    case = await referred_case(factory, net, accept=True, assign=True)
    token, referral = net.token("counselor"), case.referral["id"]
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    assert await _refused_fields(factory, token, "logSession", "LogSessionInput", {
        "referralId": referral, "startedAt": later, "durationMinutes": 0, "modality": "INDIVIDUAL",
        "sessionType": "THERAPY", "attendance": "ATTENDED", "notes": LONG}) == \
        [("input", "durationMinutes"), ("input", "notes"), ("input", "startedAt")]
    assert await _refused_fields(factory, token, "setCareGoal", "SetCareGoalInput", {
        "referralId": referral, "domain": "SAFETY", "description": " ",
        "targetDate": (datetime.now(UTC) + timedelta(days=3660)).date().isoformat()}) == \
        [("input", "description"), ("input", "targetDate")]
    assert await _refused_fields(factory, token, "recordMilestone", "RecordMilestoneInput", {
        "referralId": referral, "title": " ", "note": LONG, "achievedOn": datetime.now(UTC).date().isoformat()}) == \
        [("input", "note"), ("input", "title")]


async def test_every_bad_field_of_a_staff_account_comes_back_in_one_response(factory: Factory) -> None:
    net = await network(factory)
    admin = await factory.user(net.ngo, Role.ADMIN)
    assert await _refused_fields(factory, await factory.token(admin), "registerStaffUser", "RegisterStaffUserInput", {
        "organizationId": net.ngo.gid, "email": "not an address", "displayName": " ", "roles": []}) == \
        [("input", "displayName"), ("input", "email"), ("input", "roles")]


async def test_every_bad_value_of_a_query_argument_is_named_in_one_error(factory: Factory) -> None:
    net = await network(factory)
    body = await factory.gql(net.token("manager"), "query($f: ReferralFilter) { referrals(filter: $f) { "
                             "edges { node { id } } } }",
                             {"f": {"survivorId": "Amina\u202e", "updatedSince": "1800-01-01T00:00:00+00:00"}},
                             expect_errors=True)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == \
        "survivorId contains control or text-direction characters; remove them. updatedSince must lie between 1900 " \
        "and 2999."
    assert "Amina" not in json.dumps(body)
