"""What every input field accepts, said in the schema itself (issue 11.3: every input explains itself).

A field that has no description of its own gets one here: by its name for the formats people get wrong
(counties, languages, phones, instants, dates, versions, idempotency keys), else from its type (an enum
lists its values, an id names the type whose id it takes). One table for the whole schema, so a new input
field is described the day it is added, and `tests/api/test_input_hints.py` fails on one that is not.
"""

from __future__ import annotations

import re

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    get_named_type,
)

INSTANT = "An ISO 8601 date-time with its UTC offset, e.g. 2026-12-03T09:30:00+03:00 (1900-2999)."
DATE = "A date, YYYY-MM-DD (1900-2999)."
PHONE = "A phone number in E.164, e.g. +254712345678 (a Kenyan 0712345678 is accepted)."
FREE_TEXT = "Free text; it may hold line breaks, never control or text-direction characters."
BY_NAME: dict[str, str] = {
    "idempotencyKey": "Any string of up to 200 characters, new for each intended action: a retry with the same "
                      "key, input and selection gets the first response again (for 24 hours).",
    "expectedVersion": "The record's `version` as you read it: a change by someone else since is refused "
                       "VERSION_CONFLICT. Leave it out to skip the check.",
    "county": "A Kenyan county: its code 001-047 or its name, e.g. 003 or Kilifi.",
    "counties": "Kenyan counties: codes 001-047 or names, e.g. [\"001\", \"Kilifi\"].",
    "language": "A BCP 47 language tag, e.g. sw, en or nyf.",
    "languages": "BCP 47 language tags, e.g. [\"sw\", \"nyf\"].",
    "phone": PHONE, "guardianPhone": PHONE, "referralPhone": PHONE,
    "referralEmail": "An e-mail address, e.g. referrals@tumaini.example.",
    "validFrom": INSTANT, "validUntil": INSTANT, "since": INSTANT, "until": INSTANT, "startedAt": INSTANT,
    "targetDate": DATE, "achievedOn": DATE, "administeredOn": DATE,
    "birthYear": "The year of birth, four digits, e.g. 2011.",
    "minAge": "Youngest age served, in years (0-25).", "maxAge": "Oldest age served, in years (0-25).",
    "openSlots": "How many more people the service can take now (0 or more).",
    "pseudonym": "The name used everywhere but the identity record, e.g. Nyota-12 (at most 100 characters).",
    "legalName": "The survivor's full legal name (sealed; at most 200 characters).",
    "guardianName": "The guardian's name (sealed; at most 200 characters).",
    "location": "Where the survivor can be found (sealed). " + FREE_TEXT,
    "reason": FREE_TEXT + " At most 1,000 characters.",
    "outcome": FREE_TEXT + " At most 2,000 characters.",
    "description": FREE_TEXT, "note": FREE_TEXT, "eligibilityDescription": FREE_TEXT,
    "title": "A short title, at most 200 characters.",
    "name": "A name, at most 200 characters.", "displayName": "The name colleagues see, at most 200 characters.",
    "formVersion": "The version of the paper or digital consent form used, e.g. IJM-CONSENT-2024-1.",
    "witness": "Who witnessed the consent (sealed), at most 200 characters.",
    "childAssent": "true when the child agreed as well as the guardian.",
    "actor": "A staff user's id, a client_id, or operator:cli.",
    "assignedToMe": "true: only referrals assigned to you.",
    "overdue": "true: only REQUESTED referrals past their respond-by deadline.",
    "active": "true: in use; false: kept but not offered.",
    "subdomain": "A sub-domain key of the instrument (assessmentInstruments lists them).",
    "score": "A whole number within the instrument's scale (assessmentInstruments gives scaleMin and scaleMax).",
    "scores": "One score per sub-domain of the instrument.",
    "email": "An e-mail address, e.g. amina@ijm.example.",
    "recordId": "The global id of any record.",
}
_ID_FIELD = re.compile(r"^(?P<type>\w+?)Id$")
_ID_TYPES = {"recipient": "Organization", "receivingOrganization": "Organization", "counselor": "StaffUser",
             "staffUser": "StaffUser", "organization": "Organization", "survivor": "Survivor", "consent": "Consent",
             "referral": "Referral", "goal": "CareGoal", "record": "node"}


def describe_inputs(schema: GraphQLSchema) -> None:
    """Give every input field without a description one (see the module docstring)."""
    for named in schema.type_map.values():
        if not isinstance(named, GraphQLInputObjectType) or named.name.startswith("__"):
            continue
        for field_name, field in named.fields.items():
            if not field.description:
                field.description = hint(field_name, field.type)


def hint(field_name: str, field_type: GraphQLInputType) -> str:
    known = BY_NAME.get(field_name)
    if known is not None:
        return known
    named = get_named_type(field_type)
    many = isinstance(field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type, GraphQLList)
    if isinstance(named, GraphQLEnumType):
        return f"{'Any of' if many else 'One of'}: {', '.join(named.values)}."
    if (match := _ID_FIELD.match(field_name)) is not None:
        target = _ID_TYPES.get(match["type"], match["type"][:1].upper() + match["type"][1:])
        return f"The global id of a {target} (its `id` field)."
    if named is not None and named.name == "Boolean":
        return "true or false."
    if isinstance(named, GraphQLInputObjectType):
        return f"A {named.name}: see its fields."
    return f"A {named.name if named is not None else 'value'}."
