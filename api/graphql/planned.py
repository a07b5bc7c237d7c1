"""Planned execution: read operations run from a plan made once per document, level by level.

Why: graphql-core spends ~15 µs per field (build an info object, look the field up, wrap the result,
check awaitables, complete it), and the counselor dashboard is ~2,000 fields. This executor makes
that decision once per document — which strawberry field, which serializer, which sub-plan — and
then, for each level of the response, calls every resolver of that level for all parent objects
before awaiting once, so DataLoaders batch exactly as under graphql-core.

It calls the very same strawberry resolvers and serializers, so authorization and every rule stay in
the use cases; it only replaces graphql-core's per-field bookkeeping. It steps aside (returns None,
and graphql-core runs the operation as usual) whenever it is not certain to give the same answer:
- at planning time: mutations and subscriptions, any directive, interfaces or unions (`node`),
  introspection, a resolver field not in PURE_READS;
- at run time: any exception or a null where the schema says non-null, so errors, their paths and
  null propagation are always graphql-core's own.
Stepping aside at run time is safe because PURE_READS only holds resolvers without side effects
(reads that are audited — identity, notes, assessments, safeguarding concerns — are not in it), and
the request's REPEATABLE READ snapshot makes the second run see the same data.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

# Resolver fields without side effects, by (GraphQL type, field). Everything else makes the
# operation go through graphql-core. Audited reads must never be listed here: a run-time fallback
# would run them twice. (Query.referrals may audit a survivorId filter naming a survivor the caller
# cannot see: that row waits in db.audit.LaterAudit, which keeps a row once however often it comes.)
PURE_READS: frozenset[tuple[str, str]] = frozenset({
    ("Query", "viewer"), ("Query", "organizations"), ("Query", "survivors"), ("Query", "referrals"),
    ("Referral", "survivor"), ("Referral", "referringOrganization"), ("Referral", "receivingOrganization"),
    ("Referral", "consent"), ("Referral", "assignedCounselor"), ("Referral", "history"),
    ("Referral", "sessions"), ("Referral", "goals"), ("Referral", "milestones"),
    ("Survivor", "countyName"), ("Survivor", "consents"), ("Survivor", "referrals"), ("Survivor", "goals"),
    ("Consent", "survivor"), ("Consent", "recipient"),
    ("CounselingSession", "referral"), ("CounselingSession", "counselor"),
    ("CareGoal", "survivor"), ("CareGoal", "referral"), ("CareGoal", "history"),
    ("Milestone", "referral"), ("Milestone", "goal"),
    ("Organization", "countyNames"), ("StaffUser", "organization"),
    ("Viewer", "organization"), ("Viewer", "user"),
    # Sealed free text, decrypted in memory (db/sealed.py): no statement, no audit.
    ("Referral", "statusReason"), ("Referral", "reason"), ("Referral", "outcome"), ("ReferralStatusChange", "reason"),
    ("Consent", "withdrawalReason"), ("Consent", "witness"), ("CareGoal", "description"), ("GoalProgress", "note"),
    ("Milestone", "title"), ("Milestone", "note"),
})

MAX_PLANS = 256


class StepAside(Exception):
    """graphql-core must run this operation (raised while planning or running)."""


# ----------------------------------------------------------------------------- plans


NextLevels = dict[int, tuple["ObjectPlan", list[Any], list[dict[str, Any]]]]
# A completer turns one resolved value into its response value (made once per field when planning);
# objects are queued in NextLevels and filled when their level is resolved.
Completer = Callable[[Any, NextLevels], Any]


@dataclass(eq=False, slots=True)
class FieldPlan:
    key: str
    complete: Completer | None  # None: __typename
    typename: str = ""
    python_name: str = ""
    strawberry_field: StrawberryField | None = None
    graphql_field: GraphQLField | None = None
    node: FieldNode | None = None
    pass_self: bool = False
    info_name: str | None = None


@dataclass(eq=False, slots=True)
class ObjectPlan:
    type_name: str
    fields: list[FieldPlan] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OperationPlan:
    operation: OperationDefinitionNode
    root: ObjectPlan


class Planner:
    """Builds and caches plans per (document, operation name).

    The parser cache hands out the same document object for the same query text, so the document's
    identity is the key; the cache holds the document itself, so an id cannot be reused while cached.
    """

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.enabled = True  # tests switch it off to compare with graphql-core
        self.completed = 0  # operations answered by a plan
        self.stepped_aside = 0  # planned operations handed back to graphql-core at run time
        self._plans: OrderedDict[tuple[int, str | None], tuple[DocumentNode, OperationPlan | None]] = OrderedDict()

    def plan(self, document: DocumentNode, operation_name: str | None) -> OperationPlan | None:
        if not self.enabled:
            return None
        key = (id(document), operation_name)
        cached = self._plans.get(key)
        if cached is not None and cached[0] is document:
            self._plans.move_to_end(key)
            return cached[1]
        try:
            planned: OperationPlan | None = self._plan(document, operation_name)
        except StepAside:
            planned = None
        self._plans[key] = (document, planned)
        if len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)
        return planned

    def _plan(self, document: DocumentNode, operation_name: str | None) -> OperationPlan:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        if operation_name is None:
            if len(operations) != 1:
                raise StepAside
            operation = operations[0]
        else:
            matching = [o for o in operations if o.name is not None and o.name.value == operation_name]
            if len(matching) != 1:
                raise StepAside
            operation = matching[0]
        if operation.operation is not OperationType.QUERY or operation.directives:
            raise StepAside
        root = self.schema.query_type
        if root is None:
            raise StepAside
        return OperationPlan(operation=operation, root=self._object(root, [operation.selection_set], fragments))

    def _object(self, type_: GraphQLObjectType, selection_sets: Sequence[SelectionSetNode],
                fragments: dict[str, FragmentDefinitionNode]) -> ObjectPlan:
        grouped: OrderedDict[str, list[FieldNode]] = OrderedDict()
        for selection_set in selection_sets:
            self._collect(type_, selection_set, fragments, grouped, set())
        plan = ObjectPlan(type_name=type_.name)
        for key, nodes in grouped.items():
            plan.fields.append(self._field(type_, key, nodes, fragments))
        return plan

    def _collect(self, type_: GraphQLObjectType, selection_set: SelectionSetNode,
                 fragments: dict[str, FragmentDefinitionNode], grouped: OrderedDict[str, list[FieldNode]],
                 seen: set[str]) -> None:
        for selection in selection_set.selections:
            if selection.directives:
                raise StepAside
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if selection.type_condition is not None and selection.type_condition.name.value != type_.name:
                    raise StepAside
                self._collect(type_, selection.selection_set, fragments, grouped, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is None or name in seen or fragment.directives or \
                        fragment.type_condition.name.value != type_.name:
                    raise StepAside
                self._collect(type_, fragment.selection_set, fragments, grouped, seen | {name})
            else:
                raise StepAside

    def _field(self, type_: GraphQLObjectType, key: str, nodes: list[FieldNode],
               fragments: dict[str, FragmentDefinitionNode]) -> FieldPlan:
        name = nodes[0].name.value
        if name == "__typename":
            return FieldPlan(key=key, complete=None, typename=type_.name)
        graphql_field = type_.fields.get(name)
        if graphql_field is None or any(n.name.value != name for n in nodes):
            raise StepAside
        definition = (graphql_field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(definition, StrawberryField) or definition.extensions:
            raise StepAside
        if len(nodes) > 1 and any(n.arguments for n in nodes):
            raise StepAside  # merging argument sets is graphql-core's business
        sub_sets = [n.selection_set for n in nodes if n.selection_set is not None]
        plan = FieldPlan(key=key, complete=self._completer(graphql_field.type, sub_sets, fragments),
                         python_name=definition.python_name, strawberry_field=definition,
                         graphql_field=graphql_field, node=nodes[0])
        resolver = definition.base_resolver
        if resolver is not None:
            if (type_.name, name) not in PURE_READS or resolver.parent_parameter or resolver.root_parameter:
                raise StepAside
            plan.pass_self = resolver.self_parameter is not None
            plan.info_name = resolver.info_parameter.name if resolver.info_parameter else None
        elif nodes[0].arguments:
            raise StepAside
        return plan

    def _completer(self, type_: GraphQLOutputType, sub_sets: list[SelectionSetNode],
                   fragments: dict[str, FragmentDefinitionNode], non_null: bool = False) -> Completer:
        if isinstance(type_, GraphQLNonNull):
            return self._completer(type_.of_type, sub_sets, fragments, non_null=True)
        if isinstance(type_, GraphQLList):
            return _list_completer(self._completer(type_.of_type, sub_sets, fragments), non_null)
        if isinstance(type_, (GraphQLScalarType, GraphQLEnumType)):
            if sub_sets:
                raise StepAside
            return _leaf_completer(_serializer(type_), non_null)
        if isinstance(type_, GraphQLObjectType) and sub_sets:
            return _object_completer(self._object(type_, sub_sets, fragments), non_null)
        raise StepAside  # interfaces and unions: graphql-core resolves the runtime type


def _serializer(type_: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """The type's own serialize, with a shortcut for the values it would return unchanged."""
    serialize = type_.serialize
    wrapped = getattr(type_, "wrapped_cls", None)
    if isinstance(type_, GraphQLEnumType) and isinstance(wrapped, type) and issubclass(wrapped, Enum):
        names = {member: serialize(member) for member in wrapped}  # strawberry scans every value per call

        def enum_name(value: Any) -> Any:
            name = names.get(value) if isinstance(value, wrapped) else None
            return name if name is not None else serialize(value)

        return enum_name
    if type_.name in ("String", "ID"):
        return lambda value: value if type(value) is str else serialize(value)
    if type_.name == "Boolean":
        return lambda value: value if type(value) is bool else serialize(value)
    if type_.name == "Int":
        return lambda value: value if type(value) is int and -(2**31) <= value < 2**31 else serialize(value)
    return serialize


def _leaf_completer(serialize: Callable[[Any], Any], non_null: bool) -> Completer:
    def complete(value: Any, _levels: NextLevels) -> Any:
        if value is None:
            if non_null:
                raise StepAside  # graphql-core propagates the null and reports the error
            return None
        serialized = serialize(value)
        if serialized is None or serialized is Undefined:
            raise StepAside
        return serialized

    return complete


def _list_completer(item: Completer, non_null: bool) -> Completer:
    def complete(value: Any, levels: NextLevels) -> Any:
        if value is None:
            if non_null:
                raise StepAside
            return None
        if isinstance(value, (str, bytes, dict)):
            raise StepAside
        return [item(v, levels) for v in value]

    return complete


def _object_completer(plan: ObjectPlan, non_null: bool) -> Completer:
    plan_id = id(plan)

    def complete(value: Any, levels: NextLevels) -> Any:
        if value is None:
            if non_null:
                raise StepAside
            return None
        output: dict[str, Any] = {}
        level = levels.get(plan_id)
        if level is None:
            level = levels[plan_id] = (plan, [], [])
        level[1].append(value)
        level[2].append(output)
        return output

    return complete


# ----------------------------------------------------------------------------- running a plan


@dataclass(frozen=True, slots=True)
class PlannedInfo:
    """What our resolvers read from `info`: the request context, nothing else."""

    context: Any


class PlannedRun:
    """One execution of a plan: arguments coerced once per field, resolvers called level by level."""

    def __init__(self, schema: Any, plan: OperationPlan, context: Any, variables: dict[str, Any] | None) -> None:
        self.strawberry_schema = schema
        self.plan = plan
        self.info = PlannedInfo(context=context)
        coerced = get_variable_values(schema._schema, plan.operation.variable_definitions or (), variables or {})
        if isinstance(coerced, list):
            raise StepAside  # graphql-core reports invalid variables
        self.variables = coerced
        self._arguments: dict[int, dict[str, Any]] = {}

    async def run(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        await self._level(self.plan.root, [None], [data])
        return data

    def _resolver_arguments(self, plan: FieldPlan) -> dict[str, Any]:
        found = self._arguments.get(id(plan))
        if found is None:
            assert plan.graphql_field is not None and plan.node is not None and plan.strawberry_field is not None
            raw = get_argument_values(plan.graphql_field, plan.node, self.variables) \
                if plan.graphql_field.args or plan.node.arguments else {}
            found = convert_arguments(raw, plan.strawberry_field.arguments,
                                      scalar_registry=self.strawberry_schema.schema_converter.scalar_registry,
                                      config=self.strawberry_schema.config)
            if plan.info_name is not None:
                found[plan.info_name] = self.info
            self._arguments[id(plan)] = found
        return found

    def _call_resolvers(self, plan: ObjectPlan, sources: list[Any], resolved: list[list[Any]],
                        waiting: list[tuple[list[Any], int, Any]]) -> None:
        """Every field of the level for every parent: plain attributes read, resolvers called, their
        awaitables collected (not awaited) so that DataLoaders see all keys of the level at once."""
        for field_plan in plan.fields:
            if field_plan.complete is None:
                resolved.append([])
                continue
            resolver = field_plan.strawberry_field.base_resolver if field_plan.strawberry_field else None
            if resolver is None:
                name = field_plan.python_name
                resolved.append([getattr(source, name) for source in sources])
                continue
            kwargs = self._resolver_arguments(field_plan)
            values: list[Any] = []
            for source in sources:
                value = resolver(source, **kwargs) if field_plan.pass_self else resolver(**kwargs)
                if inspect.isawaitable(value):
                    waiting.append((values, len(values), value))
                values.append(value)
            resolved.append(values)

    async def _level(self, plan: ObjectPlan, sources: list[Any], outputs: list[dict[str, Any]]) -> None:
        """Resolve one object plan for every parent at once, then the next level for all children."""
        resolved: list[list[Any]] = []
        waiting: list[tuple[list[Any], int, Any]] = []
        try:
            self._call_resolvers(plan, sources, resolved, waiting)
        except BaseException:
            for _, _, pending in waiting:  # created but never started: close them rather than leak them
                if inspect.iscoroutine(pending):
                    pending.close()
            raise
        if waiting:
            # return_exceptions: every resolver finishes before graphql-core may take over, so no
            # stray task is still using the request's connection when it does.
            results = await asyncio.gather(*(w[2] for w in waiting), return_exceptions=True)
            for (values, index, _), result in zip(waiting, results, strict=True):
                if isinstance(result, BaseException):
                    raise result
                values[index] = result
        next_levels: NextLevels = {}
        for field_plan, values in zip(plan.fields, resolved, strict=True):
            key = field_plan.key
            complete = field_plan.complete
            if complete is None:
                for output in outputs:
                    output[key] = field_plan.typename
                continue
            for output, value in zip(outputs, values, strict=True):
                output[key] = complete(value, next_levels)
        for child_plan, child_sources, child_outputs in next_levels.values():
            await self._level(child_plan, child_sources, child_outputs)
