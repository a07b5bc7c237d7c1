"""Schema extensions: one transaction per operation, readable domain errors, cost limit, timeout."""

from __future__ import annotations

import asyncio
import re
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
from db.audit import write_audit
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
        limit = state.settings.request_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                async with transaction(state.engine, context.row_security(),
                                       isolation="REPEATABLE READ" if is_query else "READ COMMITTED") as db:
                    context._db = db
                    yield
        except TimeoutError:
            # The transaction was rolled back: nothing the operation did was kept.
            raise GraphQLError(f"The operation took longer than {limit:g} s and was stopped; nothing was "
                               "changed. Ask for less, or retry later.", extensions={"code": "TIMEOUT"}) from None


_INVALID_VARIABLE = re.compile(r"^Variable '\$(\w+)' got invalid value .*? at '([\w.\[\]]+)'", re.S)
_HAS_INVALID_VALUE = re.compile(r"^Variable '\$(\w+)' has invalid value(?: at ([^:]*))?:", re.S)
_CANNOT_REPRESENT = re.compile(r"^(.*?cannot represent)[^:]*:.*$", re.S)


def without_echoed_values(message: str) -> str:
    """graphql-core quotes the offending value back ("got invalid value '+2547…'"): a phone number or a
    name typed into the wrong field would reach the client and its logs. Keep the where, drop the what."""
    match = _HAS_INVALID_VALUE.match(message)
    if match:
        name, path = match.group(1), match.group(2).strip()
        where = f"{name}{path}" if path.startswith(".") or path.startswith("[") else (path or name)
        return f"Variable '${name}' has an invalid value at '{where}'."
    match = _INVALID_VARIABLE.match(message)
    if match:
        return f"Variable '${match.group(1)}' has an invalid value at '{match.group(2)}'."
    if " got invalid value " in message:
        return message.split(" got invalid value ")[0] + " has an invalid value."
    match = _CANNOT_REPRESENT.match(message)
    if match:
        return f"{match.group(1)} this value."
    if message.startswith("Expected value of type") and ", found " in message:
        return message.split(", found ")[0] + "."
    return message


class AuditDenials(SchemaExtension):
    """Rule 3 for reads: a query refused for a missing scope or role leaves an audit row too.

    (Mutations audit their own refusals in run_mutation, inside the request's transaction.) The
    request's transaction has ended by now, so the rows go in a short transaction of their own,
    under the same row-security context.
    """

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        result = self.execution_context.result
        if result is None or not getattr(result, "errors", None) or context is None:
            return
        try:
            if self.execution_context.operation_type != OperationType.QUERY:
                return
        except RuntimeError:
            return
        denied = [e for e in result.errors or [] if isinstance(e.original_error, Forbidden)]
        if not denied:
            return
        principal = context.principal
        async with transaction(context.state.engine, context.row_security()) as db:
            for error in denied:
                await write_audit(
                    db.connection, actor=principal.actor_id, client_id=principal.client_id,
                    organization_id=principal.organization_id, action=f"query.{error.path[0] if error.path else '?'}",
                    record_type="Query", record_id=None, purpose="FORBIDDEN", request_id=context.request_id,
                    outcome="denied")


class ReadableDomainErrors(SchemaExtension):
    """Forbidden → top-level FORBIDDEN error; a DomainError in a query → BAD_USER_INPUT, both readable;
    validation messages stripped of any value they would echo."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not getattr(result, "errors", None):
            return
        shaped: list[GraphQLError] = []
        for error in result.errors or []:
            original = error.original_error
            if not isinstance(original, (Forbidden, DomainError)) and \
                    without_echoed_values(error.message) != error.message:
                shaped.append(GraphQLError(without_echoed_values(error.message), nodes=error.nodes,
                                           source=error.source, positions=error.positions, path=error.path,
                                           extensions=error.extensions))
            elif isinstance(original, Forbidden):
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
MAX_PAGE = 100
DEFAULT_FIRST = 20


class CostLimit(SchemaExtension):
    """Refuse operations whose cost (the sum of requested page sizes multiplied along nested
    connections) exceeds the limit: `referrals(first: 50) { sessions(first: 5) }` costs
    50 + 50*5 = 300. A connection without `first` counts as the default page size; a size above the
    maximum counts as the maximum (the resolver refuses it with its own clearer message).

    Checked when execution starts, after the depth, alias and token limits and validation, with the
    request's variables; not as a validation rule, because validation results are cached per
    document and the cost of `first: $n` depends on the variables.
    """

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            variables = dict(context.variables or {})
            fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                cost = _cost(definition.selection_set, 1, variables, fragments, depth=0)
                if cost > MAX_COST:
                    raise GraphQLError(
                        f"Query cost {cost} exceeds the limit of {MAX_COST}: ask for smaller pages "
                        "(cost is the sum of requested page sizes along nested connections).",
                        nodes=[definition], extensions={"code": "COST_LIMIT"})
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
                size = min(max(first if first is not None else DEFAULT_FIRST, 0), MAX_PAGE)
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
