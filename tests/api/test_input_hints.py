"""Every input field says what it accepts (issue 11.3), formats spelled out where people get them wrong."""

from __future__ import annotations

from graphql import GraphQLInputObjectType

from api.graphql.schema import build_schema

FORMATS = {"county": "001-047", "counties": "001-047", "language": "BCP 47", "languages": "BCP 47",
           "phone": "E.164", "guardianPhone": "E.164", "referralPhone": "E.164", "validFrom": "UTC offset",
           "validUntil": "UTC offset", "since": "UTC offset", "startedAt": "UTC offset", "targetDate": "YYYY-MM-DD",
           "achievedOn": "YYYY-MM-DD", "administeredOn": "YYYY-MM-DD"}


def _input_fields() -> list[tuple[str, str, str]]:
    schema = build_schema(production=True)._schema
    return [(named.name, name, field.description or "") for named in schema.type_map.values()
            if isinstance(named, GraphQLInputObjectType) and not named.name.startswith("__")
            for name, field in named.fields.items()]


def test_every_input_field_has_a_description() -> None:
    fields = _input_fields()
    assert len(fields) > 100
    assert [f"{t}.{n}" for t, n, d in fields if not d.strip()] == []


def test_format_fields_name_their_format_and_enums_their_values() -> None:
    for type_name, name, description in _input_fields():
        if name in FORMATS:
            assert FORMATS[name] in description, (type_name, name, description)
    described = {(t, n): d for t, n, d in _input_fields()}
    assert described[("RegisterSurvivorInput", "sex")] == "One of: FEMALE, MALE, INTERSEX, UNDISCLOSED."
    assert described[("AssignCounselorInput", "counselorId")].startswith("The global id of a StaffUser")
