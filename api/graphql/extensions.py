"""Schema extensions: one transaction per operation, readable domain errors, cost limit, timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from api.graphql.errors import ForbiddenError, InvalidArgumentError
from db.engine import transaction
from domain.errors import DomainError, Forbidden


class RequestTransaction(SchemaExtension):
    """One connection and transaction per operation, with the row-security context set inside it.

    Queries run REPEATABLE READ so every field sees one snapshot; mutations READ COMMITTED, each
    in its own savepoint. The transaction commits before the response is sent, so a response never
    reports a change that was then rolled back. The whole operation is bounded by a timeout.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        is_query = self.execution_context.operation_type == OperationType.QUERY
        state = context.state
        async with asyncio.timeout(state.settings.request_timeout_seconds):
            async with transaction(state.engine, context.row_security(),
                                   isolation="REPEATABLE READ" if is_query else "READ COMMITTED") as db:
                context._db = db
                yield


class ReadableDomainErrors(SchemaExtension):
    """Forbidden → top-level FORBIDDEN error; a DomainError in a query → BAD_USER_INPUT, both readable."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not getattr(result, "errors", None):
            return
        shaped: list[GraphQLError] = []
        for error in result.errors or []:
            original = error.original_error
            if isinstance(original, Forbidden):
                shaped.append(_reshape(ForbiddenError(original.message), error))
            elif isinstance(original, DomainError):
                shaped.append(_reshape(InvalidArgumentError(original.message, original.field), error))
            else:
                shaped.append(error)
        result.errors = shaped


def _reshape(new: GraphQLError, old: GraphQLError) -> GraphQLError:
    return GraphQLError(new.message, nodes=old.nodes, source=old.source, positions=old.positions,
                        path=old.path, extensions=new.extensions)


MAX_COST = 2_000
DEFAULT_FIRST = 20


class CostLimit(SchemaExtension):
    """Refuse operations whose cost (the sum of requested page sizes multiplied along nested
    connections) exceeds the limit: `referrals(first: 50) { sessions(first: 5) }` costs
    50 + 50*5 = 300. A connection without `first` counts as the default page size.

    Runs before graphql-core's validation, where the request's variables are known.
    """

    max_cost = MAX_COST

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            variables = context.variables or {}
            fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                cost = _cost(definition.selection_set, 1, variables, fragments, depth=0)
                if cost > self.max_cost:
                    context.pre_execution_errors = [GraphQLError(
                        f"Query cost {cost} exceeds the limit of {self.max_cost}: ask for smaller pages "
                        "(cost is the sum of requested page sizes along nested connections).",
                        nodes=[definition], extensions={"code": "COST_LIMIT"})]
                    break
        yield


def _first_of(field: FieldNode, variables: dict[str, Any]) -> int | None:
    for argument in field.arguments or ():
        if argument.name.value in {"first", "last"}:
            value = argument.value
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                v = variables.get(value.name.value)
                return int(v) if isinstance(v, int) else DEFAULT_FIRST
    return None


def _cost(selection_set: SelectionSetNode | None, multiplier: int, variables: dict[str, Any],
          fragments: dict[str, Any], depth: int) -> int:
    if selection_set is None or depth > 20:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            first = _first_of(selection, variables)
            if first is not None or _looks_like_connection(selection):
                size = max(first if first is not None else DEFAULT_FIRST, 0)
                total += multiplier * size
                total += _cost(selection.selection_set, multiplier * max(size, 1), variables, fragments,
                               depth + 1)
            else:
                total += _cost(selection.selection_set, multiplier, variables, fragments, depth + 1)
        elif isinstance(selection, InlineFragmentNode):
            total += _cost(selection.selection_set, multiplier, variables, fragments, depth + 1)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                total += _cost(fragment.selection_set, multiplier, variables, fragments, depth + 1)
    return total


def _looks_like_connection(field: FieldNode) -> bool:
    if field.selection_set is None:
        return False
    names = {s.name.value for s in field.selection_set.selections if isinstance(s, FieldNode)}
    return "edges" in names or "pageInfo" in names
