"""The read compiler: a query operation (every read that writes no audit row: README "Compiled reads")
becomes one SQL statement whose result is the response's `data`, built as JSON text inside PostgreSQL
(db/compiled_reads.py renders the SQL; api/graphql/extensions.CompiledReads runs it).

Why: the resolver path spends ~40 ms of Python per counselor dashboard (views, loaders, graphql-core's
per-field work) for what PostgreSQL answers in a few ms. Here the document is walked once per
(document, operation name); per run, the arguments are read as the resolvers read them (the same
parsing functions), and the statement text is made once per (document, operation, shape: the scope's
side and persons, which arguments were given) with every principal value and argument bound.

It steps aside (graphql-core and the resolvers then answer, from the same REPEATABLE
READ snapshot) whenever it is not certain to give the resolver path's answer byte for byte:
- at compile time: a mutation, a directive, a field outside db/compiled_reads.RENDERABLE (every
  audited read is outside), two selections under one key that are not the same leaf;
- at run time: invalid variables, an argument a resolver would refuse (bad cursor, `first` out of
  range, a filter it checks), a scope the caller lacks for any field (graphql-core reports and audits
  the refusal), `referrals(filter: {survivorId})` with an empty page (the survivor may be unseen: the
  resolver audits it), `node`/`nodes` for an id that shows nothing (an unseen id is audited), and sealed
  text that does not open (the resolver path refuses that one field and answers the rest).
Sealed free text comes out of PostgreSQL as a marker and is opened here with the survivor's key.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from api.graphql.relay import page_request
from db.compiled_reads import RENDERABLE, Pick, Renderer, RunValues, Statement, shape_of
from db.crypto import DataKeys, DecryptionFailed
from db.cursors import after_values
from db.engine import CompiledRows
from db.survivors import key_aad, phone_indexes, pseudonym_pattern
from domain import policy
from domain.ids import from_global_id
from domain.principal import Principal
from domain.scopes import Action, Resource
from domain.use_cases import survivors

MAX_OPERATIONS = 256
# The longest document text the compiled-read lane remembers (a dashboard is ~400 characters): the memory
# it holds stays bounded (MAX_OPERATIONS of these) whatever comments a client pads a document with.
MAX_REMEMBERED_TEXT = 16_384
MAX_STATEMENTS = 512

# The scope each compiled field's resolver asks of its use case (policy.require): lacking one, the
# operation goes to graphql-core, which refuses the field and audits the refusal.
REQUIRES: dict[tuple[str, str], tuple[Resource, Action]] = {
    ("Query", "referrals"): (Resource.REFERRAL, Action.SEARCH),
    ("Query", "survivors"): (Resource.SURVIVOR, Action.SEARCH),
    ("Query", "organizations"): (Resource.ORGANIZATION, Action.SEARCH),
    ("Referral", "survivor"): (Resource.SURVIVOR, Action.READ),
    ("Referral", "sessions"): (Resource.COUNSELING_SESSION, Action.SEARCH),
    ("Referral", "goals"): (Resource.CARE_GOAL, Action.SEARCH),
    ("Referral", "milestones"): (Resource.MILESTONE, Action.SEARCH),
    ("Referral", "consent"): (Resource.CONSENT, Action.READ),
    ("Survivor", "consents"): (Resource.CONSENT, Action.SEARCH),
    ("Survivor", "referrals"): (Resource.REFERRAL, Action.SEARCH),
    ("Survivor", "goals"): (Resource.CARE_GOAL, Action.SEARCH),
    ("Consent", "survivor"): (Resource.SURVIVOR, Action.READ),
    ("CareGoal", "survivor"): (Resource.SURVIVOR, Action.READ),
    ("CareGoal", "referral"): (Resource.REFERRAL, Action.READ),
    ("CounselingSession", "referral"): (Resource.REFERRAL, Action.READ),
    ("Milestone", "referral"): (Resource.REFERRAL, Action.READ),
    ("Milestone", "goal"): (Resource.CARE_GOAL, Action.READ),
}
# The records `node(id:)` is compiled for, and the scope its resolver asks of each (policy.require).
NODE_TYPES: dict[str, tuple[Resource, Action]] = {
    "Referral": (Resource.REFERRAL, Action.READ), "Survivor": (Resource.SURVIVOR, Action.READ),
    "Consent": (Resource.CONSENT, Action.READ), "Organization": (Resource.ORGANIZATION, Action.READ),
    "CounselingSession": (Resource.COUNSELING_SESSION, Action.READ), "CareGoal": (Resource.CARE_GOAL, Action.READ),
    "Milestone": (Resource.MILESTONE, Action.READ),
}
# A sealed value as db/compiled_reads._sealed writes it: PostgreSQL's json_build_object spacing.
MARKER = re.compile(r'\{"\\u0001" : (?:null|"([^"]*)")\}')
# db/compiled_reads.MISSING as PostgreSQL writes it.
MISSING_TEXT = '{"\\u0002" : true}'



class StepAside(Exception):
    """The resolver path must answer this operation."""


@dataclass(frozen=True, slots=True)
class CompiledJson:
    """A compiled read's `data` as the JSON text PostgreSQL built (sealed values opened): the HTTP
    router writes it into the response as it is, never parsing it into Python objects."""

    text: str


@dataclass(frozen=True, slots=True)
class Arguments:
    """A field's arguments, read at run time as its resolver reads them."""

    kind: str  # a key of _READERS
    graphql_field: GraphQLField
    strawberry_field: StrawberryField
    node: FieldNode
    # For `node` and `nodes`: the record types whose selection compiled (an id of another steps aside).
    node_types: frozenset[str] = frozenset()


@dataclass(eq=False, slots=True)
class CompiledOperation:
    operation: OperationDefinitionNode
    roots: tuple[Pick, ...]
    arguments: dict[str, Arguments]
    requires: frozenset[tuple[Resource, Action]]


class ReadCompiler:
    """Compiles operations (cached per document and operation name) and runs them."""

    def __init__(self, schema: Any) -> None:
        self.strawberry_schema = schema
        self.schema: GraphQLSchema = schema._schema
        self.enabled = True  # tests switch it off to compare with the resolver path
        self.completed = 0  # operations answered by a compiled statement
        self.stepped_aside = 0  # compiled operations handed to the resolver path at run time
        self.in_lane = 0  # of `completed`, those answered by api/graphql/lane.py
        self._operations: OrderedDict[tuple[int, str | None], tuple[DocumentNode, CompiledOperation | None]] = \
            OrderedDict()
        # Keyed by the compiled operation itself (hashed by identity, kept alive by the key): an id() could be
        # reused by another operation once the first is dropped from _operations.
        self._statements: OrderedDict[tuple[CompiledOperation, tuple[Any, ...]], Statement] = OrderedDict()
        # Documents the whole pipeline answered with a compiled statement, by their text and the operationName
        # sent (api/graphql/lane.py answers them again).
        self._answered: OrderedDict[tuple[str, str | None], tuple[DocumentNode, CompiledOperation]] = OrderedDict()

    # ------------------------------------------------------------------ compile

    def compile(self, document: DocumentNode, operation_name: str | None) -> CompiledOperation | None:
        if not self.enabled:
            return None
        key = (id(document), operation_name)
        cached = self._operations.get(key)
        if cached is not None and cached[0] is document:
            self._operations.move_to_end(key)
            return cached[1]
        try:
            compiled: CompiledOperation | None = _Walk(self.schema).operation(document, operation_name)
        except StepAside:
            compiled = None
        self._operations[key] = (document, compiled)
        if len(self._operations) > MAX_OPERATIONS:
            self._operations.popitem(last=False)
        return compiled

    def remember_answered(self, query: str, operation_name: str | None, document: DocumentNode,
                          compiled: CompiledOperation) -> None:
        """The whole pipeline (parse, validation, every limit) took this text with this operationName, and a
        compiled statement answered it."""
        if len(query) > MAX_REMEMBERED_TEXT:
            return  # answered by the whole pipeline every time
        key = (query, operation_name)
        self._answered[key] = (document, compiled)
        self._answered.move_to_end(key)
        if len(self._answered) > MAX_OPERATIONS:
            self._answered.popitem(last=False)

    def answered(self, query: str, operation_name: str | None) -> tuple[DocumentNode, CompiledOperation] | None:
        """A document remember_answered was told of, while compiled reads are on."""
        found = self._answered.get((query, operation_name)) if self.enabled else None
        if found is not None:
            self._answered.move_to_end((query, operation_name))
        return found

    # ------------------------------------------------------------------ run

    async def run(self, compiled: CompiledOperation, context: Any, variables: dict[str, Any] | None,
                  rows: CompiledRows | None = None) -> Any:
        """The operation's `data`: as JSON text (CompiledJson) for a context that sends it on as it is
        (`raw_json`, the HTTP router's and the lane's), parsed otherwise, counted in `completed`; or StepAside.
        The statement runs in the request's transaction (`context.db`), or through `rows` (the lane's read
        in one call, db/one_call.py)."""
        principal: Principal = context.principal
        if not all(principal.allows(resource, action) for resource, action in compiled.requires):
            raise StepAside
        coerced = get_variable_values(self.schema, compiled.operation.variable_definitions or (), variables or {})
        if isinstance(coerced, list):
            raise StepAside
        args = {path: self._arguments(spec, coerced, Reading(principal, context.state.blind_index_key,
                                                             spec.node_types))
                for path, spec in compiled.arguments.items()}
        grants = frozenset({"staff_details"}) if policy.may_administer_staff(principal, Action.READ) else frozenset()
        values = RunValues(scope=policy.rows(principal, datetime.now(UTC)), args=args, grants=grants)
        statement = self._statement(compiled, values)
        source = rows if rows is not None else context.db
        text, keys, every_node_found = await source.compiled_row(statement.sql, statement.parameters(values))
        if not every_node_found:
            raise StepAside  # a `node` that shows nothing: graphql-core answers, and audits the id
        if MISSING_TEXT in text:
            raise StepAside  # a non-null object not shown: the resolver path reports it
        try:
            text = _opened(text, json.loads(keys) if keys else {}, context.state.data_keys)
        except DecryptionFailed:
            raise StepAside from None  # the resolver path refuses the one field that does not open
        self.completed += 1
        return CompiledJson(text) if getattr(context, "raw_json", False) else json.loads(text)

    def _statement(self, compiled: CompiledOperation, values: RunValues) -> Statement:
        key = (compiled, shape_of(values))
        found = self._statements.get(key)
        if found is None:
            found = self._statements[key] = Renderer(values).statement(compiled.roots)
            if len(self._statements) > MAX_STATEMENTS:
                self._statements.popitem(last=False)
        else:
            self._statements.move_to_end(key)
        return found

    def _arguments(self, spec: Arguments, variables: Any, reading: Reading) -> dict[str, Any]:
        raw = get_argument_values(spec.graphql_field, spec.node, variables)
        given = convert_arguments(raw, spec.strawberry_field.arguments,
                                  scalar_registry=self.strawberry_schema.schema_converter.scalar_registry,
                                  config=self.strawberry_schema.config)
        try:
            return _READERS[spec.kind](given, reading)
        except StepAside:
            raise
        except Exception:
            raise StepAside from None  # the resolver refuses it, with its own error


@dataclass(frozen=True, slots=True)
class Reading:
    """What a field's arguments are read with: the caller, the blind-index key (a phone search), and for
    `node`/`nodes` the record types whose selection compiled."""

    principal: Principal
    index_key: bytes = field(repr=False)
    node_types: frozenset[str]


def _referrals_arguments(given: dict[str, Any], reading: Reading) -> dict[str, Any]:
    from api.graphql.queries import referral_query  # the Query module imports every type module

    query = referral_query(given.get("filter"), reading.principal)
    return {**_page(given), "statuses": [s.value for s in query.statuses] or None, "survivor_id": query.survivor_id,
            "receiving_organization_id": query.receiving_organization_id, "assigned_to": query.assigned_to,
            "overdue": query.overdue, "updated_since": query.updated_since, "needs_assignment": query.needs_assignment}


def _survivors_arguments(given: dict[str, Any], reading: Reading) -> dict[str, Any]:
    from api.graphql.queries import survivor_query

    query = survivor_query(given.get("filter"))
    if query.under_legal_hold is not None and not policy.sees_data_protection(reading.principal):
        raise StepAside  # a refusal: the use case's own words
    found = {**_page(given), "county": query.county, "risk_level": query.risk_level,
             "statuses": [s.value for s in query.referral_statuses] or None, "under_legal_hold": query.under_legal_hold}
    if query.search is not None:  # read as the use case reads it (a refusal raises, and steps aside)
        search = survivors.searched(reading.principal, query)
        if search.pseudonym_prefix:
            found["pseudonym"] = pseudonym_pattern(search.pseudonym_prefix)
        if search.phone:  # matched through its blind indexes only
            found["phone_organization_id"] = search.phone_organization_id
            found["phone_index"], found["guardian_phone_index"] = phone_indexes(reading.index_key, search.phone)
    return found


def _organizations_arguments(given: dict[str, Any], reading: Reading) -> dict[str, Any]:
    from api.graphql.queries import organization_query

    query = organization_query(given.get("filter"))
    return {**_page(given, sort=str), "kind": query.kind.value if query.kind else None,
            "service": query.service.value if query.service else None, "county": query.county,
            "language": query.language, "inactive": policy.directory_scope(reading.principal).include_inactive}


def _page(given: dict[str, Any], _reading: Reading | None = None, *,
          sort: Callable[[str], Any] = datetime.fromisoformat) -> dict[str, Any]:
    """`first` and `after` as every connection compiled here reads them: a cursor of (sort key, id) — an
    instant, or for organizations a name — its values checked as db/cursors.after_values checks them for
    the resolvers."""
    request = page_request(given.get("first"), given.get("after"))
    found: dict[str, Any] = {"first": request.first}
    if request.after_key is not None:
        found["after_sort"], found["after_id"] = after_values(request.after_key, [sort, uuid.UUID])
    return found


def _node_arguments(given: dict[str, Any], reading: Reading) -> dict[str, Any]:
    decoded = from_global_id(str(given["id"]))
    if decoded is None:
        raise StepAside  # the resolver answers null
    kind, record_id = _node_of(decoded, reading)
    found: dict[str, Any] = {"id": record_id, "type": kind}
    if kind == "Organization":
        found["inactive"] = policy.directory_scope(reading.principal).include_inactive
    return found


def _nodes_arguments(given: dict[str, Any], reading: Reading) -> dict[str, Any]:
    """`nodes(ids:)`: each id's type and uuid in the order asked (null for an id that names nothing, as the
    resolver answers it), and per type the distinct ids to read."""
    from api.graphql.queries import MAX_NODES

    ids = [str(i) for i in given["ids"]]
    if len(ids) > MAX_NODES:
        raise StepAside  # the resolver refuses it, with its own error
    types: list[str | None] = []
    uuids: list[uuid.UUID | None] = []
    by_type: dict[str, dict[uuid.UUID, None]] = {}
    for global_id in ids:
        decoded = from_global_id(global_id)
        if decoded is None:
            types.append(None)
            uuids.append(None)
            continue
        kind, record_id = _node_of(decoded, reading)
        types.append(kind)
        uuids.append(record_id)
        by_type.setdefault(kind, {})[record_id] = None
    found: dict[str, Any] = {"types": types, "ids": uuids, **{f"ids_{k}": list(v) for k, v in by_type.items()}}
    if "Organization" in by_type:
        found["inactive"] = policy.directory_scope(reading.principal).include_inactive
    return found


def _node_of(decoded: tuple[str, uuid.UUID], reading: Reading) -> tuple[str, uuid.UUID]:
    """A decoded id the compiled statement can read: its type compiled for this operation, the scope its
    resolver asks for held; else the resolver path answers (and refuses, or audits)."""
    kind = decoded[0]
    if kind not in reading.node_types or not reading.principal.allows(*NODE_TYPES[kind]):
        raise StepAside
    return decoded


def _counselors_values(_given: dict[str, Any], reading: Reading) -> dict[str, Any]:
    """Organization.counselors: the one organization whose counselors the caller sees (or none)."""
    return {"organization_id": policy.counselors_shown(reading.principal)}


def _viewer_values(_given: dict[str, Any], reading: Reading) -> dict[str, Any]:
    """What Query.viewer answers from the token (the same values, as JSON where a list)."""
    principal = reading.principal
    return {"client_id": principal.client_id, "roles": json.dumps(sorted(r.value for r in principal.roles)),
            "scopes": json.dumps([str(s) for s in principal.scopes]), "user_id": principal.user_id,
            "organization_id": principal.organization_id}


# How each kind of field's arguments are read (or, for viewer, the token's values).
_READERS: dict[str, Callable[[dict[str, Any], Reading], dict[str, Any]]] = {
    "referrals": _referrals_arguments, "survivors": _survivors_arguments, "sessions": _page, "referrals_of": _page,
    "node": _node_arguments, "nodes": _nodes_arguments, "viewer": _viewer_values,
    "organizations": _organizations_arguments, "counselors": _counselors_values,
}


def _opened(text: str, wrapped: dict[str, str], keys: DataKeys) -> str:
    """The statement's JSON with every sealed marker replaced by its opened value (JSON text)."""
    if "\\u0001" not in text:
        return text

    def open_marker(match: re.Match[str]) -> str:
        sealed = match.group(1)
        if sealed is None:
            return "null"  # the survivor's key is destroyed: as SealedField.reveal, nothing to show
        survivor, aad, blob = sealed.split(" ")
        key = wrapped.get(survivor)
        if key is None:
            raise StepAside  # a survivor the statement brought no key for: the resolver path answers
        opened = keys.open(survivor, key, blob, aad=aad, key_aad=_survivor_key_aad)
        return encode_basestring(opened.decode())  # as json.dumps(…, ensure_ascii=False) writes a string

    return MARKER.sub(open_marker, text)


def _survivor_key_aad(survivor_id: str) -> str:
    return key_aad(uuid.UUID(survivor_id))


# ----------------------------------------------------------------------------- walking the document


def _named(type_: GraphQLOutputType) -> GraphQLOutputType:
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        type_ = type_.of_type
    return type_


class _Walk:
    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.fragments: dict[str, FragmentDefinitionNode] = {}
        self.arguments: dict[str, Arguments] = {}
        self.requires: set[tuple[Resource, Action]] = set()

    def operation(self, document: DocumentNode, operation_name: str | None) -> CompiledOperation:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        matching = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
        if len(matching) != 1 or matching[0].operation is not OperationType.QUERY or matching[0].directives:
            raise StepAside
        operation = matching[0]
        query = self.schema.query_type
        assert query is not None
        roots = self._picks(query, [operation.selection_set], "")
        if not roots or any(p.name == "__typename" for p in roots):
            raise StepAside
        return CompiledOperation(operation=operation, roots=roots, arguments=self.arguments,
                                 requires=frozenset(self.requires))

    def _picks(self, type_: GraphQLObjectType, sets: list[SelectionSetNode], path: str) -> tuple[Pick, ...]:
        grouped: OrderedDict[str, list[FieldNode]] = OrderedDict()
        for selection_set in sets:
            self._collect(type_, selection_set, grouped, set())
        picks: list[Pick] = []
        for key, nodes in grouped.items():
            name = nodes[0].name.value
            if any(n.name.value != name for n in nodes) or (len(nodes) > 1 and (
                    any(n.selection_set is not None or n.arguments for n in nodes))):
                raise StepAside  # merging selections or arguments is graphql-core's business
            picks.append(self._pick(type_, key, nodes[0], f"{path}.{key}" if path else key))
        return tuple(picks)

    def _collect(self, type_: GraphQLObjectType, selection_set: SelectionSetNode,
                 grouped: OrderedDict[str, list[FieldNode]], seen: set[str]) -> None:
        for selection in selection_set.selections:
            if selection.directives:
                raise StepAside
            if isinstance(selection, FieldNode):
                grouped.setdefault(selection.alias.value if selection.alias else selection.name.value,
                                   []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self._applies(selection.type_condition.name.value if selection.type_condition else None, type_):
                    self._collect(type_, selection.selection_set, grouped, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen or fragment.directives:
                    raise StepAside
                if self._applies(fragment.type_condition.name.value, type_):
                    self._collect(type_, fragment.selection_set, grouped, seen | {name})

    def _applies(self, condition: str | None, type_: GraphQLObjectType) -> bool:
        """Whether a fragment's selections apply to an object of `type_` (its own type or an interface)."""
        if condition is None or condition == type_.name:
            return True
        named = self.schema.get_type(condition)
        if isinstance(named, GraphQLInterfaceType):
            return named in type_.interfaces
        return False  # another object type: never this one

    def _pick(self, parent: GraphQLObjectType, key: str, node: FieldNode, path: str) -> Pick:
        name = node.name.value
        if name == "__typename":
            return Pick(key=key, name=name)
        if name not in RENDERABLE.get(parent.name, frozenset()):
            raise StepAside
        field = parent.fields[name]
        required = REQUIRES.get((parent.name, name))
        if required is not None:
            self.requires.add(required)
        target: Any = _named(field.type)
        kind = {("Query", "referrals"): "referrals", ("Query", "node"): "node", ("Query", "nodes"): "nodes",
                ("Query", "viewer"): "viewer", ("Query", "survivors"): "survivors",
                ("Query", "organizations"): "organizations", ("Organization", "counselors"): "counselors",
                ("Referral", "sessions"): "sessions",
                ("Survivor", "referrals"): "referrals_of"}.get((parent.name, name))
        if kind is not None:
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryField):
                raise StepAside
            self.arguments[path] = Arguments(kind=kind, graphql_field=field, strawberry_field=definition, node=node)
        elif node.arguments:
            raise StepAside
        if kind in ("node", "nodes"):
            if node.selection_set is None:
                raise StepAside
            # One selection per type a node id can name here; a type whose selection does not compile (a
            # session's notes) is left out, and an id of it steps aside at run time.
            by_type = []
            for type_name in NODE_TYPES:
                arguments, requires = dict(self.arguments), set(self.requires)
                try:
                    by_type.append(Pick(key=type_name, name=type_name, path=path, picks=self._picks(
                        self.schema.get_type(type_name), [node.selection_set], path)))  # type: ignore[arg-type]
                except StepAside:
                    self.arguments, self.requires = arguments, requires
            self.arguments[path] = replace(self.arguments[path], node_types=frozenset(p.name for p in by_type))
            return Pick(key=key, name=name, path=path, picks=tuple(by_type))
        if isinstance(target, GraphQLObjectType):
            if node.selection_set is None:
                raise StepAside
            return Pick(key=key, name=name, path=path, picks=self._picks(target, [node.selection_set], path))
        if node.selection_set is not None:
            raise StepAside
        return Pick(key=key, name=name, path=path)
