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

from api.graphql.echoes import SentValues
from api.graphql.errors import ForbiddenError, InvalidArgumentError, should_mask
from api.logging import get_logger
from db.audit import AuditRow, LaterAudit, write_audit_rows
from db.engine import transaction
from domain.errors import DomainError, Forbidden
from domain.use_cases.refused_reads import NOT_VISIBLE

logger = get_logger("pamoja.graphql")


class RequestTransaction(SchemaExtension):
    """One connection and transaction per operation, with the row-security context set inside it.

    Queries run REPEATABLE READ so every field sees one snapshot; mutations READ COMMITTED, each
    in its own savepoint. The transaction commits before the response is sent, so a response never
    reports a change that was then rolled back. The whole operation is bounded by a timeout. A
    query's audit rows wait for its transaction to end (db.audit.LaterAudit, written by ReadAudit).
    """

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        is_query = self.execution_context.operation_type == OperationType.QUERY
        state = context.state
        limit = state.settings.request_timeout_seconds
        if is_query:
            context.later_audit = LaterAudit()
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
        except GraphQLError:
            raise
        except Exception as exc:
            # A commit that failed: strawberry would show the driver's message, which can quote values.
            logger.warning("transaction failed", error_type=type(exc).__name__, request_id=context.request_id)
            raise GraphQLError("The operation could not be completed and nothing was changed; retry it.",
                               extensions={"code": "UNAVAILABLE"}) from None


class ReadAudit(SchemaExtension):
    """Rule 3 for reads: a query's audit rows, and refusals, written once the transaction has ended.

    A query's reads of identity, notes, assessments and concerns, and its ids asked for that showed
    nothing (capped per principal, api/graphql/read_audit.py); and one row per field refused for a
    missing scope or role, wherever it sits (`query.referrals.edges.node.milestones`), once however
    many list items it was refused for — in a mutation's payload too (the mutation's own refusal is
    audited by run_mutation, in its transaction). The rows go in one short READ COMMITTED transaction
    before the response leaves; if they cannot be written, the response carries no data.
    """

    async def on_operation(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self._write()

    async def _write(self) -> None:
        context = self.execution_context.context
        try:
            kind = self.execution_context.operation_type.value
        except RuntimeError:  # the document never became an operation: nothing ran
            return
        later: LaterAudit = getattr(context, "later_audit", None) or LaterAudit()
        principal = context.principal
        for error in getattr(self.execution_context.result, "errors", None) or []:
            if isinstance(error.original_error, Forbidden) and (kind == "query" or len(error.path or ()) > 1):
                later.add(AuditRow(
                    actor=principal.actor_id, client_id=principal.client_id,
                    organization_id=principal.organization_id, action=f"{kind}.{_field_path(error.path)}",
                    record_type="Query", record_id=None, purpose="FORBIDDEN", request_id=context.request_id,
                    outcome="denied"))
        rows = later.rows()
        refused = [r for r in rows if r.purpose == NOT_VISIBLE]
        kept = [r for r in rows if r.purpose != NOT_VISIBLE]
        kept += context.state.refused_reads.admit(refused, context.row_security())
        if not kept:
            return
        try:
            async with transaction(context.state.engine, context.row_security()) as db:
                await write_audit_rows(db.connection, kept)
        except Exception as exc:
            logger.warning("read audit not written", error_type=type(exc).__name__, request_id=context.request_id)
            raise GraphQLError("The answer could not be audited, so it is withheld; retry it.",
                               extensions={"code": "UNAVAILABLE"}) from None


def _field_path(path: list[str | int] | None) -> str:
    """The refused field's path by field names: list positions left out, so one row stands for all."""
    return ".".join(p for p in path or [] if isinstance(p, str)) or "?"


class ReadableDomainErrors(SchemaExtension):
    """Forbidden → top-level FORBIDDEN error; a DomainError in a query → BAD_USER_INPUT, both readable;
    every other message stripped of any value the client sent (api/graphql/echoes.py)."""

    def on_operation(self) -> Iterator[None]:
        self._sent: SentValues | None = None
        try:
            yield
        except GraphQLError as error:
            # A document that does not parse is raised through the extensions (ParserCache parses in
            # a hook of its own) rather than returned as a result: reshape it on its way out.
            raise self._shaped(error) from None
        result = self.execution_context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = [self._shaped(error) for error in result.errors or []]

    def _shaped(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, Forbidden):
            return _reshape(ForbiddenError(original.message), error)
        if isinstance(original, DomainError):
            return _reshape(InvalidArgumentError(original.message, original.field), error)
        if (should_mask(error) and not _about_the_request(error)) or (error.extensions or {}).get("code"):
            return error  # a crash MaskErrors hides, or one of our own readable errors
        context = self.execution_context
        self._sent = self._sent or SentValues.of(context.query, context.graphql_document, context.variables)
        message, extensions = self._sent.scrubbed(error)
        # A refused value in the request is not a crash: MaskErrors must leave it readable.
        return GraphQLError(message, nodes=error.nodes, source=error.source, positions=error.positions,
                            path=error.path, extensions=extensions,
                            original_error=None if should_mask(error) else original)


def _about_the_request(error: GraphQLError) -> bool:
    """Parse, validation and variable errors point into the document and at no result field; a
    resolver's crash has a path, and a crash around execution points nowhere."""
    return error.path is None and bool(error.nodes)


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
