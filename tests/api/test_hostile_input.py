"""Hostile input (issue 10, findings 4 and 6).

Finding 4, as a property over the whole schema: every mutation and every query root that takes
arguments is called with its arguments spelled inline, as variables, inside a fragment and as
variables' defaults, in each way a value can be refused before a resolver runs (wrong type, unknown
field, missing or null required field, an out-of-range number, an unknown enum value, a syntax
error) and with well-typed values that reach the use cases; every value carries a marker. The marker
must appear in no error (message or extensions) and no userError, and nothing may end as
"Unexpected error.". The markers also join SEEDED_PII, so the session's log scan looks for them.

Finding 6: input the API cannot store or show faithfully is refused as INVALID naming its field
(userErrors in mutations, BAD_USER_INPUT in queries), never "Unexpected error.": control and
text-direction characters in any text input, cursors that decode but are malformed, instants and
dates outside 1900-2999 or without a UTC offset; and a body over the size limit gets 413 before
anything parses it.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import cycle
from typing import Any

import httpx
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    Undefined,
    get_named_type,
    get_nullable_type,
    is_non_null_type,
)
from graphql import build_schema as parse_sdl
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from api.graphql.schema import schema_sdl
from config.settings import Settings
from domain.enums import Role
from tests.factories import Factory
from tests.flows import (
    REGISTER,
    SEEDED_PII,
    care_network,
    network,
    record_consent,
    register_survivor,
    survivor_input,
)

SCHEMA = parse_sdl(schema_sdl())
QUERY = SCHEMA.query_type
MUTATION = SCHEMA.mutation_type
assert QUERY is not None and MUTATION is not None
ROOTS: list[tuple[str, str, GraphQLField]] = [
    *(("mutation", name, field) for name, field in MUTATION.fields.items()),
    *(("query", name, field) for name, field in QUERY.fields.items() if field.args),
]
NOW = datetime.now(UTC).isoformat()
TODAY = date.today().isoformat()


class EnumLiteral(str):
    """A bare name in a document (how enum values are written); a plain string in variables."""


def literal(value: Any) -> str:
    """A Python value written as a GraphQL literal."""
    if isinstance(value, EnumLiteral):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(literal, value)) + "]"
    return "{" + ", ".join(f"{key}: {literal(item)}" for key, item in value.items()) + "}"


def plain(value: Any) -> Any:
    """The same value as JSON variables carry it."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return str(value) if isinstance(value, EnumLiteral) else value


# ----------------------------------------------------------------------------- finding 4: markers


@dataclass(frozen=True)
class Marker:
    """A value no error may repeat: a unique core inside hostile decoration, and a phone-like number."""

    core: str
    text: str
    number: int

    @classmethod
    def new(cls, decoration: str) -> Marker:
        core = f"Mkr{secrets.token_hex(6)}"
        marker = cls(core=core, text=decoration.format(core), number=254_700_000_000 + secrets.randbelow(10**8))
        SEEDED_PII.append(marker.text)
        return marker

    def found_in(self, text: str) -> bool:
        # A truncated or partial echo still starts with the core's first characters.
        return self.core[:7] in text or str(self.number) in text


DECORATIONS = ["Amina {0} Wanjiru", "{0}\"'\\ é", "\u202e{0}\x00", "{0}" * 60, "+254 7{0}\n"]
# typed: values of the right type, so the resolvers and use cases run; the others are refused before.
MODES = ["typed", "wrong_type", "enum_name", "unknown_field", "missing_required", "null_required", "huge_number"]
SPELLINGS = ["inline", "variables", "fragment", "default"]
TYPED = {"String": "text", "ID": "text", "Int": 1, "Float": 1.0, "Boolean": True, "DateTime": NOW, "Date": TODAY}


def value_for(type_: GraphQLInputType, mode: Callable[[], str], marker: Marker, *, inline: bool) -> Any:
    """A value for `type_` carrying the marker, corrupted the way `mode()` says at each node."""
    if isinstance(type_, GraphQLNonNull):
        return value_for(type_.of_type, mode, marker, inline=inline)
    how = mode()
    if isinstance(type_, GraphQLList):
        if how == "wrong_type":
            return {"zz": marker.text}
        return [value_for(type_.of_type, mode, marker, inline=inline)]
    if isinstance(type_, GraphQLInputObjectType):
        fields: dict[str, Any] = {}
        for name, field in type_.fields.items():
            required = is_non_null_type(field.type) and field.default_value is Undefined
            if required and how == "missing_required":
                continue
            fields[name] = None if required and how == "null_required" else \
                value_for(field.type, mode, marker, inline=inline)
        if how == "unknown_field":
            # Inline, a field is a Name and may be named back; a JSON key may be anything and must not.
            fields["zzUnknown" if inline else f"+254 {marker.core}"] = marker.text
        return fields
    if isinstance(type_, GraphQLEnumType):
        if how == "enum_name":
            return EnumLiteral(marker.core)
        return marker.text if how == "wrong_type" else EnumLiteral(next(iter(type_.values)))
    assert isinstance(type_, GraphQLScalarType)
    name = type_.name
    if how == "wrong_type":
        return {"zz": marker.text} if name in ("String", "ID") else marker.text
    if how == "enum_name":
        return EnumLiteral(marker.core)
    if how == "huge_number":
        return marker.number + 0.5 if name == "ID" else marker.number
    return marker.text if TYPED[name] == "text" else TYPED[name]


def always(mode: str) -> Callable[[], str]:
    return lambda: mode


def drawn(modes: list[str]) -> Callable[[], str]:
    """Each node takes the next mode in turn."""
    turns = cycle(modes)
    return lambda: next(turns)


def selection(type_: GraphQLOutputType) -> str:
    named = get_named_type(type_)
    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
        return "{ __typename userErrors { field code message } }" if "userErrors" in named.fields else \
            "{ __typename }"
    return ""


def request(operation: str, name: str, field: GraphQLField, spelling: str, mode: Callable[[], str],
            marker: Marker) -> tuple[str, dict[str, Any]]:
    """One document (and its variables) calling root field `name` with marked arguments."""
    values = {arg: value_for(a.type, mode, marker, inline=spelling != "variables") for arg, a in field.args.items()}
    picked = selection(field.type)
    root = "Mutation" if operation == "mutation" else "Query"
    if spelling == "variables":
        definitions = ", ".join(f"$v_{arg}: {a.type}" for arg, a in field.args.items())
        call = ", ".join(f"{arg}: $v_{arg}" for arg in field.args)
        return f"{operation}({definitions}) {{ {name}({call}) {picked} }}", \
            {f"v_{arg}": plain(v) for arg, v in values.items()}
    if spelling == "default":
        definitions = ", ".join(f"$v_{arg}: {get_nullable_type(a.type)} = {literal(values[arg])}"
                                for arg, a in field.args.items())
        call = ", ".join(f"{arg}: $v_{arg}" for arg in field.args)
        return f"{operation}({definitions}) {{ {name}({call}) {picked} }}", {}
    call = ", ".join(f"{arg}: {literal(v)}" for arg, v in values.items())
    if spelling == "fragment":
        return f"{operation} {{ ...F }} fragment F on {root} {{ {name}({call}) {picked} }}", {}
    if spelling == "syntax":  # a string where an argument name belongs
        return f"{operation} {{ {name}({call} {json.dumps(marker.text)}) {picked} }}", {}
    return f"{operation} {{ {name}({call}) {picked} }}", {}


async def post(client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """POST with JSON written by json.dumps (ASCII escapes), so lone surrogates reach the server too."""
    response = await client.post("/graphql", content=json.dumps({"query": query, "variables": variables}),
                                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert response.status_code in (200, 400, 422), response.text
    body: dict[str, Any] = response.json()
    return body


def echoes(body: dict[str, Any], marker: Marker) -> list[str]:
    """Errors and userErrors that repeat the marker, and errors that hide a crash."""
    found = []
    for error in body.get("errors") or []:
        text = json.dumps(error, ensure_ascii=False)
        if marker.found_in(text) or error.get("message") == "Unexpected error.":
            found.append(text)
    for payload in (body.get("data") or {}).values():
        if isinstance(payload, dict) and payload.get("userErrors"):
            text = json.dumps(payload["userErrors"], ensure_ascii=False)
            if marker.found_in(text):
                found.append(text)
    return found


async def actors(factory: Factory) -> dict[str, str]:
    net = await network(factory)
    admin = await factory.user(net.ngo, Role.ADMIN)
    return {**{who: net.token(who) for who in ("manager", "supervisor", "coordinator", "counselor")},
            "admin": await factory.token(admin)}


def _mixed_cases() -> list[tuple[int, str, list[str], str]]:
    """Requests whose every node is corrupted its own way (drawn deterministically, so a failure
    reproduces): several refusals in one request, each of which must stay silent about the values."""
    found: list[tuple[int, str, list[str], str]] = []

    @settings(max_examples=150, database=None, derandomize=True, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(ROOTS) - 1), st.sampled_from(SPELLINGS),
           st.lists(st.sampled_from(MODES), min_size=1, max_size=12), st.sampled_from(DECORATIONS))
    def collect(root: int, spelling: str, modes: list[str], decoration: str) -> None:
        found.append((root, spelling, modes, decoration))

    collect()
    return found


async def test_an_unknown_input_field_is_named_and_its_object_never_quoted(factory: Factory) -> None:
    net = await network(factory)
    values = {**survivor_input(legalName="Sentinel Achieng Otieno", phone="+254700987654"), "nickname": "Sentinel"}
    inline = {k: EnumLiteral(v) if k in ("sex", "riskLevel") else v for k, v in values.items()}
    body = await factory.gql(net.token("manager"), "mutation { registerSurvivor(input: " + literal(inline) +
                             ") { survivor { id } } }", expect_errors=True)
    assert [e["message"] for e in body["errors"]] == \
        ["Expected value of type 'RegisterSurvivorInput' not to include unknown field 'nickname'."]
    # The same input as a variable used to crash the scrubber ('NoneType' object has no attribute 'strip').
    body = await factory.gql(net.token("manager"), REGISTER, {"input": values}, expect_errors=True)
    assert [e["message"] for e in body["errors"]] == \
        ["Variable '$input' has an invalid value: Expected value of type 'RegisterSurvivorInput' not to include "
         "unknown field 'nickname'."]
    for sent in ("Sentinel", "Achieng", "700987654"):
        assert sent not in json.dumps(body)


async def test_an_unknown_operation_name_is_not_quoted_back(factory: Factory) -> None:
    token = (await actors(factory))["manager"]
    marker = Marker.new(DECORATIONS[0])
    response = await factory.client.post("/graphql", json={"query": "query A { viewer { clientId } }",
                                                           "operationName": marker.text},
                                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert "operationName" in response.text
    assert not marker.found_in(response.text), response.text


async def test_no_error_repeats_a_value_the_client_sent(factory: Factory) -> None:
    tokens = await actors(factory)
    leaks: list[tuple[str, str, str, list[str]]] = []

    async def check(token: str, operation: str, name: str, field: GraphQLField, spelling: str,
                    mode: Callable[[], str], marker: Marker, label: str) -> None:
        query, variables = request(operation, name, field, spelling, mode, marker)
        found = echoes(await post(factory.client, token, query, variables), marker)
        if found:
            leaks.append((name, spelling, label, found))

    for (operation, name, field), decoration in zip(ROOTS, cycle(DECORATIONS), strict=False):
        for mode in MODES:
            for spelling in SPELLINGS:
                await check(tokens["manager"], operation, name, field, spelling, always(mode),
                            Marker.new(decoration), mode)
        await check(tokens["manager"], operation, name, field, "syntax", always("typed"), Marker.new(decoration),
                    "syntax")
        for actor in ("supervisor", "coordinator", "counselor", "admin"):  # typed values reach each role's rules
            for spelling in ("inline", "variables"):
                await check(tokens[actor], operation, name, field, spelling, always("typed"), Marker.new(decoration),
                            actor)
    for root, spelling, modes, decoration in _mixed_cases():
        operation, name, field = ROOTS[root]
        await check(tokens["manager"], operation, name, field, spelling, drawn(modes), Marker.new(decoration),
                    "+".join(modes))
    assert not leaks, leaks[:5]


# ----------------------------------------------------------------------------- finding 6: text


NEVER_ACCEPTED = ["\x00", "\x07", "\x1b[2J", "\x7f", "\x85", "\x9b", "\u202a", "\u202e", "\u2066", "\u2069",
                  "\ud800"]


def text_leaves(type_: GraphQLInputType, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """Path and type (String or ID) of every text in an input type, list items as index 0."""
    named = get_nullable_type(type_)
    if isinstance(named, GraphQLList):
        yield from text_leaves(named.of_type, (*path, "0"))
    elif isinstance(named, GraphQLInputObjectType):
        for name, field in named.fields.items():
            yield from text_leaves(field.type, (*path, name))
    elif isinstance(named, GraphQLScalarType) and named.name in ("String", "ID"):
        yield path, named.name


def with_text_at(value: Any, path: tuple[str, ...], text: str) -> Any:
    if not path:
        return text
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [with_text_at(value[0], rest, text)]
    return {**value, head: with_text_at(value[head], rest, text)}


async def test_control_and_direction_characters_are_invalid_in_every_mutation_text(factory: Factory) -> None:
    token = (await actors(factory))["manager"]
    benign = Marker(core="ok", text="ok", number=1)
    wrong: list[tuple[str, tuple[str, ...], str, Any]] = []
    leaves = 0
    for name, field in MUTATION.fields.items():
        base = value_for(field.args["input"].type, always("typed"), benign, inline=False)
        for index, (path, _) in enumerate(text_leaves(field.args["input"].type, ("input",))):
            leaves += 1
            # every character in one field, and three of them in every field
            characters = NEVER_ACCEPTED if (name, path[-1]) == ("registerSurvivor", "legalName") else \
                [NEVER_ACCEPTED[(index + k) % len(NEVER_ACCEPTED)] for k in (0, 4, 8)]
            for character in characters:
                variables = {"input": plain(with_text_at(base, path[1:], f"Amina{character}Wanjiru"))}
                body = await post(factory.client, token, f"mutation($input: {field.args['input'].type}) "
                                  f"{{ {name}(input: $input) {{ userErrors {{ field code message }} }} }}", variables)
                errors = (body.get("data") or {}).get(name, {}).get("userErrors")
                if body.get("errors") or [(e["field"], e["code"]) for e in errors or []] != [(list(path), "INVALID")]:
                    wrong.append((name, path, repr(character), body))
    assert leaves > 40
    assert not wrong, wrong[:5]


async def test_free_text_may_span_lines_but_names_may_not(factory: Factory) -> None:
    net = await network(factory)
    for field in ("legalName", "pseudonym", "guardianName"):
        body = await factory.gql(net.token("manager"), REGISTER, {"input": survivor_input(**{field: "Amina\nWanjiru"})})
        errors = body["data"]["registerSurvivor"]["userErrors"]
        assert [(e["field"], e["code"]) for e in errors] == [(["input", field], "INVALID")]
        assert "single line" in errors[0]["message"]
    body = await factory.gql(net.token("manager"), REGISTER,
                             {"input": survivor_input(location="Plot 12\r\nNear the old mosque, Mtwapa")})
    assert body["data"]["registerSurvivor"]["userErrors"] == []


async def test_control_and_direction_characters_are_bad_user_input_in_every_query_argument(
        factory: Factory) -> None:
    token = (await actors(factory))["supervisor"]
    benign = Marker(core="ok", text="ok", number=1)
    unexpected: list[tuple[str, tuple[str, ...], Any]] = []
    for name, field in QUERY.fields.items():
        for argument, definition in field.args.items():
            base = value_for(definition.type, always("typed"), benign, inline=False)
            for path, scalar in text_leaves(definition.type, (argument,)):
                for character in ("\x00", "\u202e", "\ud800"):
                    query = f"query($a: {definition.type}) {{ {name}({argument}: $a) {selection(field.type)} }}"
                    body = await post(factory.client, token, query,
                                      {"a": plain(with_text_at(base, path[1:], f"ok{character}ok"))})
                    errors = body.get("errors") or []
                    refused = [((e.get("extensions") or {}).get("code"), (e.get("extensions") or {}).get("field"))
                               for e in errors] == [("BAD_USER_INPUT", list(path))]
                    if not (refused or (scalar == "ID" and not errors)):  # an id naming nothing is simply absent
                        unexpected.append((name, path, body))
    assert not unexpected, unexpected[:5]


# ----------------------------------------------------------------------------- finding 6: cursors


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode("utf-8", "surrogatepass")).decode().rstrip("=")


SOME_ID = str(uuid.uuid4())
# Malformed for every connection: keyed by (instant, id), (name, id) or (sequence).
BAD_CURSORS = [
    cursor('["x"]'), cursor("[]"), cursor('["x","y"]'), cursor(json.dumps(["9" * 30])),
    cursor(json.dumps(["9" * 5000])),
    cursor(json.dumps(["\u0000", SOME_ID])), cursor(json.dumps(["\ud800", SOME_ID])), cursor(json.dumps(["-x", "y"])),
    cursor("not json"), cursor('{"a": 1}'), cursor('"x"'), cursor("[1, 2]"), cursor(json.dumps(["a"] * 5)),
    cursor("[" * 5000 + "]" * 5000), "!!!", "", "=" * 8, "\u202e",
]
# Malformed where the first key is an instant.
BAD_INSTANT_CURSORS = [
    cursor(json.dumps(["2024-01-01T00:00:00", SOME_ID])),  # no offset
    cursor(json.dumps(["0001-01-01T00:00:00+14:00", SOME_ID])),
    cursor(json.dumps(["9999-12-31T23:59:59-14:00", SOME_ID])),
    cursor(json.dumps(["2024-01-01T00:00:00+00:00", "not-a-uuid"])),
]
CONNECTIONS = {
    "organizations": ("manager", "query($a: String) { organizations(after: $a) { totalCount } }", False),
    "survivors": ("manager", "query($a: String) { survivors(after: $a) { totalCount } }", True),
    "referrals": ("manager", "query($a: String) { referrals(after: $a) { totalCount } }", True),
    "polled referrals": ("manager", """query($a: String) { referrals(after: $a,
        filter: {updatedSince: "2020-01-01T00:00:00+00:00"}) { totalCount } }""", True),
    "auditEvents": ("supervisor", "query($a: String) { auditEvents(after: $a) { totalCount } }", False),
    "Referral.sessions": ("counselor", """query($a: String) { referrals(first: 5) { edges { node {
        sessions(after: $a) { totalCount } } } } }""", True),
    "Survivor.referrals": ("manager", """query($a: String) { survivors(first: 5) { edges { node {
        referrals(after: $a) { totalCount } } } } }""", True),
}


async def test_a_cursor_that_decodes_but_is_malformed_is_bad_user_input(factory: Factory) -> None:
    net, _ = await care_network(factory)
    wrong: list[tuple[str, str, Any]] = []
    for label, (actor, query, by_instant) in CONNECTIONS.items():
        for after in BAD_CURSORS + (BAD_INSTANT_CURSORS if by_instant else []):
            body = await post(factory.client, net.token(actor), query, {"a": after})
            errors = body.get("errors") or []
            if [(e.get("extensions") or {}).get("field") for e in errors] != [["after"]] or \
                    errors[0]["extensions"]["code"] != "BAD_USER_INPUT":
                wrong.append((label, after[:40], body))
    assert not wrong, wrong[:5]


# ----------------------------------------------------------------------------- finding 6: dates


async def test_instants_and_dates_outside_1900_to_2999_or_without_an_offset_are_invalid(factory: Factory) -> None:
    net, referral_ids = await care_network(factory)
    survivor = await register_survivor(factory, net.token("manager"))
    refused = [
        ("validFrom", "0001-01-01T00:00:00+00:00"), ("validFrom", "1899-12-31T23:59:59+00:00"),
        ("validFrom", "2024-01-01T00:00:00"), ("validUntil", "3000-01-01T00:00:00+00:00"),
        ("validUntil", "9999-12-31T23:59:59+00:00"), ("validUntil", "9999-12-31T23:00:00-05:00"),
    ]
    for field, value in refused:
        body = await factory.gql(net.token("manager"), """mutation($input: RecordConsentInput!) {
            recordConsent(input: $input) { consent { id } userErrors { field code } } }""", {"input": {
            "survivorId": survivor["id"], "recipientId": net.partner.gid, "purposes": ["REFERRAL"],
            "dataCategories": ["IDENTITY"], "givenBy": "GUARDIAN", "childAssent": True, field: value}})
        assert body["data"]["recordConsent"] == {"consent": None, "userErrors": [
            {"field": ["input", field], "code": "INVALID"}]}, (field, value)
    await record_consent(factory, net.token("manager"), survivor["id"], net.partner.gid,
                         validFrom="2024-01-01T00:00:00+03:00")
    care = [
        ("logSession", "LogSessionInput", {"durationMinutes": 50, "modality": "INDIVIDUAL", "sessionType": "THERAPY",
                                           "attendance": "ATTENDED"}, "startedAt", "0001-01-01T00:00:00+00:00"),
        ("recordMilestone", "RecordMilestoneInput", {"title": "Back at school"}, "achievedOn", "0001-01-01"),
        ("setCareGoal", "SetCareGoalInput", {"domain": "SAFETY", "description": "A safety plan."}, "targetDate",
         "9999-12-31"),
    ]
    for name, input_type, rest, field, value in care:
        body = await factory.gql(net.token("counselor"), f"mutation($input: {input_type}!) {{ {name}(input: $input) "
                                 "{ userErrors { field code } } }",
                                 {"input": {"referralId": referral_ids[0], **rest, field: value}})
        assert body["data"][name]["userErrors"] == [{"field": ["input", field], "code": "INVALID"}], (name, body)
    filters = [("referrals", "ReferralFilter", "updatedSince", "manager"), ("auditEvents", "AuditEventFilter", "since",
                                                                             "supervisor"),
               ("auditEvents", "AuditEventFilter", "until", "supervisor")]
    for name, filter_type, field, actor in filters:
        for value in ("0001-01-01T00:00:00+01:00", "2024-01-01T00:00:00", "9999-12-31T23:59:59-14:00"):
            body = await factory.gql(net.token(actor), f"query($f: {filter_type}) {{ {name}(filter: $f) "
                                     "{ totalCount } }", {"f": {field: value}}, expect_errors=True)
            assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == \
                [("BAD_USER_INPUT", ["filter", field])], (name, field, value, body)


# ----------------------------------------------------------------------------- finding 6: body size


async def _chunks(total: int) -> AsyncIterator[bytes]:
    sent = 0
    yield b'{"query": "{ viewer { clientId } }'
    while sent < total:
        yield b" " * 65_536
        sent += 65_536
    yield b'"}'


async def test_a_body_over_the_limit_is_refused_with_413_before_parsing(factory: Factory, settings: Settings) -> None:
    limit = settings.max_body_bytes
    token = (await actors(factory))["manager"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    over = json.dumps({"query": "{ viewer { clientId } }" + " " * limit})
    for content in (over.encode(), _chunks(limit)):  # declared by Content-Length, and chunked with none
        response = await factory.client.post("/graphql", content=content, headers=headers)
        assert response.status_code == 413, response.status_code
        assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
        assert len(response.content) < 300
    form = await factory.client.post("/oauth/token", content=b"grant_type=client_credentials&x=" + b"a" * limit,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 413
    assert form.json()["error"] == "invalid_request"
    under = json.dumps({"query": "{ viewer { clientId } }" + " " * (limit - 1000)})
    response = await factory.client.post("/graphql", content=under.encode(), headers=headers)
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["clientId"] == "pamoja-tests"


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_json_nested_thousands_deep_or_not_utf8_is_refused_never_a_crash(factory: Factory) -> None:
    """Python's JSON parser raises RecursionError past ~1,000 levels, and UnicodeDecodeError for bytes that
    are not UTF-8, neither of which is its "not JSON" error: each ended as HTTP 500. In a GraphQL body
    (a query compiled before, so the compiled-read lane sees it first, too), in a bearer token's claims
    and in an OAuth client assertion, each is now refused as the input it is."""
    token = (await actors(factory))["manager"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for _ in range(2):  # answered, then known to the compiled-read lane
        known = await factory.client.post("/graphql", json={"query": "{ viewer { clientId } }"}, headers=headers)
        assert known.status_code == 200 and known.json()["data"]["viewer"]
    deep = b"[" * 50_000 + b"]" * 50_000
    bodies = [b'{"query": "{ viewer { clientId } }", "variables": {"x": ' + deep + b"}}",
              b'{"query": "{ viewer { clientId } }", "variables": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
              b'{"query": "{ viewer { clientId } }", "operationName": "\xff\xfe"}',
              b'{"query": "{ viewer { clientId } }"}' + b"\xff"]
    for body in bodies:
        response = await factory.client.post("/graphql", content=body, headers=headers)
        assert response.status_code == 400, (response.status_code, response.text[:200])
        assert len(response.content) < 300 and "viewer" not in response.text
    header = _segment(json.dumps({"alg": "ES256", "kid": "k", "typ": "at+jwt"}).encode())
    nested_claims = f"{header}.{_segment(b'[' * 2_900 + b']' * 2_900)}.AAAA"
    refused = await factory.client.post("/graphql", json={"query": "{ viewer { clientId } }"},
                                        headers={"Authorization": f"Bearer {nested_claims}"})
    assert refused.status_code == 401
    assertion = await factory.client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "pmj_x", "client_assertion": nested_claims,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert assertion.status_code in (400, 401) and assertion.json()["error"] in ("invalid_client", "invalid_request")


async def test_two_operations_without_an_operation_name_are_refused(factory: Factory) -> None:
    """Running the first of several operations would answer a question the client may not have meant."""
    token = (await actors(factory))["manager"]
    document = "query A { viewer { clientId } } query B { referrals { totalCount } }"
    body = await factory.gql(token, document, expect_errors=True)
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": ["operationName"]}
    named = await factory.client.post("/graphql", json={"query": document, "operationName": "B"},
                                      headers={"Authorization": f"Bearer {token}"})
    assert named.json() == {"data": {"referrals": {"totalCount": 0}}}
