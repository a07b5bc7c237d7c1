"""The query cost limit: the rows an operation asks for, counted on its selection as the schema resolves it.

Why on the schema and not on the document's shape: a connection is recognised by its type (it has
`edges`), so a connection whose `edges` sit in a named or inline fragment, or that asks only for
`totalCount`, costs the same as the query written out. Fragments are expanded (each spread counts, as
each one is executed); a fragment's cost is worked out once per request, so a document that spreads
fragments exponentially often is costed in linear time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    get_named_type,
    is_composite_type,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension

from domain.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

MAX_COST = 2_000
MAX_PAGE = MAX_PAGE_SIZE
DEFAULT_FIRST = DEFAULT_PAGE_SIZE
# A list without paging (a referral's goals, milestones and status changes, a survivor's consents and
# assessments) returns every row its parent has: a handful for a case. It counts as this many rows.
UNPAGED_ROWS = 3


class CostLimit(SchemaExtension):
    """Refuse operations whose cost exceeds the limit. Cost is the number of rows asked for: a page
    size for each connection (`first`, or the default page size without it), one row per id for
    `nodes(ids:)`, UNPAGED_ROWS for a list without paging, multiplied along nesting:
    `referrals(first: 50) { edges { node { sessions(first: 5) { totalCount } } } }` costs
    50 + 50*5 = 300. A page size above the maximum counts as the maximum (the resolver refuses it with
    its own clearer message). `@skip`/`@include` are not evaluated: over-counting is safe.

    Checked when execution starts, after the depth, alias and token limits and validation, with the
    request's variables; not as a validation rule, because validation results are cached per
    document and the cost of `first: $n` depends on the variables.
    """

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        over = over_the_limit(context.schema._schema, document, context.variables or {}) \
            if document is not None else None
        if over is not None:
            operation, cost = over
            raise GraphQLError(
                f"Query cost {cost} exceeds the limit of {MAX_COST}: ask for smaller pages or fewer "
                "nested lists (cost is the number of rows asked for: page sizes, multiplied along "
                "nested connections and lists).",
                nodes=[operation], extensions={"code": "COST_LIMIT"})
        yield


def over_the_limit(schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any],
                   ) -> tuple[OperationDefinitionNode, int] | None:
    """The first operation of the document whose cost with these variables exceeds MAX_COST, and its cost
    (the compiled-read lane asks this of every request too: api/graphql/lane.py)."""
    for operation in document.definitions:
        if isinstance(operation, OperationDefinitionNode):
            cost = OperationCost(schema, document, operation, variables).total()
            if cost > MAX_COST:
                return operation, cost
    return None


class OperationCost:
    """The cost of one operation. Costs are linear in the number of parent rows, so each selection is
    costed for one parent row and multiplied where it is used; a fragment's cost is kept once known."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
                 variables: Mapping[str, Any]) -> None:
        self.schema = schema
        self.operation = operation
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        # A variable the request leaves out takes its default from the operation.
        defaults = {d.variable.name.value: value_from_ast_untyped(d.default_value)
                    for d in operation.variable_definitions or () if d.default_value is not None}
        self.variables = {**defaults, **variables}
        self._fragment_costs: dict[str, int] = {}

    def total(self) -> int:
        root = self.schema.get_root_type(self.operation.operation)
        return 0 if root is None else self._selection(root, self.operation.selection_set)

    def _selection(self, parent: GraphQLNamedType, selection_set: SelectionSetNode) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self._field(parent, selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition is not None else parent
                if on is not None:
                    total += self._selection(on, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value)
        return total

    def _fragment(self, name: str) -> int:
        known = self._fragment_costs.get(name)
        if known is not None:
            return known
        self._fragment_costs[name] = 0  # a cycle (refused by validation) cannot recurse for ever
        fragment = self.fragments.get(name)
        on = self.schema.get_type(fragment.type_condition.name.value) if fragment is not None else None
        if fragment is not None and on is not None:
            self._fragment_costs[name] = self._selection(on, fragment.selection_set)
        return self._fragment_costs[name]

    def _field(self, parent: GraphQLNamedType, node: FieldNode) -> int:
        if not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)) or node.selection_set is None:
            return 0
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return 0  # __typename, or a field validation refuses
        returned = get_named_type(definition.type)
        if not is_composite_type(returned):
            return 0
        each = self._selection(returned, node.selection_set)
        rows = self._rows(parent, definition, node)
        return each if rows is None else rows + max(rows, 1) * each

    def _rows(self, parent: GraphQLNamedType, definition: GraphQLField, node: FieldNode) -> int | None:
        """How many rows the field returns per parent row; None for one object, which costs nothing
        of its own."""
        if _is_connection(get_named_type(definition.type)):
            return self._page_size(definition, node)
        output = definition.type.of_type if isinstance(definition.type, GraphQLNonNull) else definition.type
        if not isinstance(output, GraphQLList) or _is_connection(parent):
            return None  # a connection's edges are its page, counted on the connection
        if "first" in definition.args:
            return self._page_size(definition, node)
        if "ids" in definition.args:
            ids = self._argument(definition, node, "ids")
            count = len(ids) if isinstance(ids, list) else int(ids is not None)
            return min(count, MAX_PAGE)
        return UNPAGED_ROWS

    def _page_size(self, definition: GraphQLField, node: FieldNode) -> int:
        first = self._argument(definition, node, "first")
        size = first if isinstance(first, int) and not isinstance(first, bool) else DEFAULT_FIRST
        return min(max(size, 0), MAX_PAGE)

    def _argument(self, definition: GraphQLField, node: FieldNode, name: str) -> Any:
        """The argument's value as sent (literal or variable), else the schema's default; None when
        neither is there."""
        for argument in node.arguments or ():
            if argument.name.value == name:
                value = value_from_ast_untyped(argument.value, self.variables)
                return None if value is Undefined else value
        declared = definition.args.get(name)
        return None if declared is None or declared.default_value is Undefined else declared.default_value


def _is_connection(type_: GraphQLNamedType) -> bool:
    return isinstance(type_, GraphQLObjectType) and "edges" in type_.fields
