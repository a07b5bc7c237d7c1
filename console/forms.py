"""Forms for mutations, read from the schema itself: each field of a mutation's input type becomes a
labelled control (enum → choice, list of enums → checkboxes, DateTime → a local Nairobi time, …)
with the field's own description as its hint, so a form never drifts from the API it calls and
every input says what it accepts. A submitted form is parsed back into the input; the API's
userErrors come back next to the field they name."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
)

from console.i18n import NAIROBI, humanize

LONG_TEXT = {"notes", "reason", "description", "note", "legalName", "location", "witness", "outcome"}
NOT_ASKED = {"expectedVersion"}  # carried from the page the form was opened on


@dataclass
class Control:
    name: str  # the input path, dotted for a nested input ("safeguardingConcern.level")
    kind: str  # text, textarea, number, datetime, date, select, checkboxes, checkbox, hidden, list
    label: str  # msgid: the field's name in words
    hint: str
    required: bool
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, msgid)
    value: Any = None
    error: str | None = None
    scalar: str = ""  # a hidden value's GraphQL scalar (Int is sent as a number)

    @property
    def dom_id(self) -> str:
        return "f-" + self.name.replace(".", "-")


class Unparsable(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def input_type(schema: GraphQLSchema, mutation: str) -> GraphQLInputObjectType:
    mutation_type = schema.mutation_type
    assert mutation_type is not None
    argument = mutation_type.fields[mutation].args["input"].type
    named = argument.of_type if isinstance(argument, GraphQLNonNull) else argument
    assert isinstance(named, GraphQLInputObjectType)
    return named


def _unwrap(kind: GraphQLInputType) -> tuple[GraphQLInputType, bool, bool]:
    required = isinstance(kind, GraphQLNonNull)
    inner = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
    listed = isinstance(inner, GraphQLList)
    if isinstance(inner, GraphQLList):
        inner = inner.of_type.of_type if isinstance(inner.of_type, GraphQLNonNull) else inner.of_type
    return inner, required, listed


def controls(schema: GraphQLSchema, mutation: str, *, fixed: Mapping[str, str],
             choices: Mapping[str, list[tuple[str, str]]], prefix: str = "",
             of: GraphQLInputObjectType | None = None) -> list[Control]:
    """The form's controls: fields given by the page (`fixed`: ids from the URL) are hidden; an id
    with `choices` is a choice; every other id is left to the page that opens the form."""
    shape = of or input_type(schema, mutation)
    out: list[Control] = []
    for name, spec in shape.fields.items():
        path = prefix + name
        inner, required, listed = _unwrap(spec.type)
        hint = spec.description or ""
        if name == "idempotencyKey":
            out.append(Control(path, "hidden", "", "", False, value=secrets.token_urlsafe(16)))
        elif path in fixed or name in NOT_ASKED:
            if path in fixed:
                out.append(Control(path, "hidden", "", "", required, value=fixed[path],
                                   scalar=inner.name if isinstance(inner, GraphQLScalarType) else ""))
        elif path in choices:
            out.append(Control(path, "select", humanize(name), hint, required, options=choices[path]))
        elif isinstance(inner, GraphQLInputObjectType):
            out.extend(controls(schema, mutation, fixed=fixed, choices=choices, prefix=path + ".", of=inner))
        elif isinstance(inner, GraphQLEnumType):
            options = [(value, humanize(value)) for value in inner.values]
            spelled_out = hint.startswith("One of:")  # the choices say it already, in the person's language
            out.append(Control(path, "checkboxes" if listed else "select", humanize(name), "" if spelled_out else hint,
                               required, options=options))
        elif isinstance(inner, GraphQLScalarType):
            scalar = inner.name
            if scalar == "ID":
                continue  # an id the page did not give cannot be typed by a person
            kind = {"Int": "number", "Boolean": "checkbox", "DateTime": "datetime", "Date": "date",
                    "Float": "number"}.get(scalar, "textarea" if name in LONG_TEXT else "text")
            out.append(Control(path, "list" if listed else kind, humanize(name), hint, required and kind != "checkbox"))
    return out


def _scalar(control: Control, raw: str) -> Any:
    if control.kind == "number" or control.scalar == "Int":
        try:
            return int(raw)
        except ValueError:
            raise Unparsable(control.name, "Enter a whole number.") from None
    if control.kind == "datetime":
        try:
            local = datetime.fromisoformat(raw)
        except ValueError:
            raise Unparsable(control.name, "Enter a date and time, e.g. 2026-12-04 14:30.") from None
        return (local if local.tzinfo else local.replace(tzinfo=NAIROBI)).isoformat()
    if control.kind == "date":
        try:
            return date.fromisoformat(raw).isoformat()
        except ValueError:
            raise Unparsable(control.name, "Enter a date, e.g. 2026-12-04.") from None
    return raw


def parse(form: Mapping[str, Any], getlist: Any, fields: list[Control]) -> tuple[dict[str, Any], list[Unparsable]]:
    """The submitted form as the mutation's input, and what could not be read (each named)."""
    data: dict[str, Any] = {}
    problems: list[Unparsable] = []
    for control in fields:
        if control.kind == "checkboxes":
            value: Any = list(getlist(control.name)) or None
            control.value = value or []
        elif control.kind == "checkbox":
            value = control.name in form
            control.value = value
        elif control.kind == "list":
            raw = str(form.get(control.name, "")).strip()
            value = [v.strip() for v in raw.split(",") if v.strip()] or None
            control.value = raw
        else:
            raw = str(form.get(control.name, "")).strip()
            control.value = raw
            if not raw:
                continue
            try:
                value = _scalar(control, raw)
            except Unparsable as problem:
                problems.append(problem)
                control.error = problem.message
                continue
        if value is None:
            continue
        target = data
        *parents, leaf = control.name.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return data, problems


def place_errors(fields: list[Control], user_errors: list[dict[str, Any]]) -> list[str]:
    """Each userError beside its control; those naming no control (or the whole input) are returned."""
    by_name = {c.name: c for c in fields}
    unplaced: list[str] = []
    for error in user_errors:
        path = [p for p in error.get("field") or [] if isinstance(p, str)]
        name = ".".join(path[1:]) if path[:1] == ["input"] else ".".join(path)
        control = by_name.get(name) or next((c for c in fields if c.name.startswith(name + ".")), None)
        if control is not None and control.kind != "hidden":
            control.error = error["message"]
        else:
            unplaced.append(error["message"])
    return unplaced
