"""Schema extensions: one transaction per operation, readable domain errors, timeout (cost limit: cost.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from api.graphql.compiler import ReadCompiler, StepAside
from api.graphql.echoes import SentValues, allowed_values, without_suggestions
from api.graphql.errors import UNAUTHENTICATED, ForbiddenError, InvalidArgumentError, should_mask
from auth.tokens import InvalidToken
from config.logging import get_logger
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
                                       isolation="REPEATABLE READ" if is_query else "READ COMMITTED",
                                       check=context.still_valid) as db:
                    context._db = db
                    if not db.still_valid:
                        await self._read_caller_again(context, db)
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


    @staticmethod
    async def _read_caller_again(context: Any, db: Any) -> None:
        """The remembered caller changed (roles, name) or is gone (revoked, deactivated, signed out): read it
        again, and set the row-security context for who it is now; gone, the request ends in HTTP 401."""
        try:
            context.principal = await context.reload_principal()
        except InvalidToken:
            raise GraphQLError("The access token is missing, expired or invalid.",
                               extensions={"code": UNAUTHENTICATED}) from None
        context._unit = context._loaders = None
        await db.set_row_security(context.row_security())


class CompiledReads(SchemaExtension):
    """A query the read compiler takes is answered by its one statement, in the request's transaction:
    the result is set before graphql-core would run, so it does not (strawberry runs the operation only
    when no extension has given a result). When the compiler steps aside, graphql-core answers from the
    same REPEATABLE READ snapshot."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        compiler: ReadCompiler = context.schema.compiler  # type: ignore[attr-defined]
        compiled = compiler.compile(context.graphql_document, context.operation_name) \
            if context.graphql_document is not None else None
        read = "resolvers"
        if compiled is not None:
            try:
                data = await compiler.run(compiled, context.context, context.variables)
            except StepAside:
                compiler.stepped_aside += 1
                read = "stepped_aside"
            else:
                context.result = GraphQLExecutionResult(data=data, errors=None)
                read = "compiled"
                if context.query is not None and context.graphql_document is not None:
                    compiler.remember_answered(context.query, getattr(context, "_provided_operation_name", None),
                                               context.graphql_document, compiled)
        request = getattr(context.context, "request", None)
        if request is not None and context.operation_type == OperationType.QUERY:
            request.state.read = read  # the access line says which engine answered (api/main.py)
        yield


class OneOperationNamed(SchemaExtension):
    """A document with several operations runs only the one `operationName` names.

    Strawberry would otherwise run the first one silently: an answer to a question the client may
    not have asked (graphql-core and the GraphQL-over-HTTP spec refuse it)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        # Strawberry keeps the operationName sent apart from the one it falls back to (the first).
        named = getattr(context, "_provided_operation_name", None) is not None
        document = context.graphql_document
        if not named and document is not None and \
                sum(isinstance(d, OperationDefinitionNode) for d in document.definitions) > 1:
            raise GraphQLError("The document holds several operations: name the one to run in "
                               "operationName.", extensions={"code": "BAD_USER_INPUT", "field": ["operationName"]})
        yield


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
        if refused:
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
            raise self._hinted(self._shaped(error)) from None
        result = self.execution_context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = [self._hinted(self._shaped(error)) for error in result.errors or []]

    def _hinted(self, error: GraphQLError) -> GraphQLError:
        """In production, no "Did you mean" hint in any message (introspection is off there too)."""
        if not self.execution_context.context.state.settings.is_production or "Did you mean" not in error.message:
            return error
        return GraphQLError(without_suggestions(error.message), nodes=error.nodes, source=error.source,
                            positions=error.positions, path=error.path, extensions=error.extensions,
                            original_error=error.original_error)

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
        message = allowed_values(error, message, context.schema._schema, context.graphql_document)
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

