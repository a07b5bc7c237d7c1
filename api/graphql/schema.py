"""The strawberry Schema with every abuse limit on (security.md §2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.utils.await_maybe import await_maybe

from api.graphql.compiler import CompiledOperation, ReadCompiler, StepAside
from api.graphql.cost import CostLimit
from api.graphql.errors import should_mask
from api.graphql.extensions import OneOperationNamed, ReadableDomainErrors, ReadAudit, RequestTransaction
from api.graphql.input_hints import describe_inputs
from api.graphql.mutations.base import FirstResponses
from api.graphql.mutations.care import CareMutations
from api.graphql.mutations.cases import CaseMutations
from api.graphql.mutations.clients import ClientMutations
from api.graphql.mutations.directory import DirectoryMutations
from api.graphql.mutations.staff import StaffMutations
from api.graphql.mutations.subject_rights import SubjectRightsMutations
from api.graphql.planned import OperationPlan, PlannedRun, Planner
from api.graphql.queries import Query
from api.graphql.shape import shape_limits
from api.graphql.types import webhooks
from api.graphql.types.care import Assessment, CareGoal, CounselingSession, Milestone
from api.graphql.types.oauth_client import OAuthClient
from api.graphql.types.organization import Organization
from api.graphql.types.referral import Referral
from api.graphql.types.staff import StaffUser
from api.graphql.types.survivor import Consent, Survivor
from api.graphql.types.webhooks import RedeliverWebhookInput, RedeliverWebhookPayload
from config.logging import get_logger

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 5_000
# Not strawberry's depth and alias limiters: they walk a fragment again at each spread (api/graphql/shape.py).
LIMIT_RULES: list[type[ASTValidationRule]] = [shape_limits(max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES)]

logger = get_logger("pamoja.graphql")


class PamojaSchema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        describe_inputs(self._schema)
        self.planner = Planner(self._schema)
        self.compiler = ReadCompiler(self)

    def _get_execute_function(self) -> Callable[..., Any]:
        """graphql-core's execute, preceded by the read compiler and then planned execution for the read
        operations they can run.

        Only the async path is served (the app never executes synchronously); the function returns
        an awaitable whenever a plan exists.
        """
        core_execute = super()._get_execute_function()
        planner = self.planner
        compiler = self.compiler

        def execute(schema: Any, document: Any, *args: Any, **kwargs: Any) -> Any:
            compiled = compiler.compile(document, kwargs.get("operation_name"))
            if compiled is not None:
                return self._run_compiled(compiled, resolve, schema, document, args, kwargs)
            return resolve(schema, document, *args, **kwargs)

        def resolve(schema: Any, document: Any, *args: Any, **kwargs: Any) -> Any:
            planned = planner.plan(document, kwargs.get("operation_name"))
            if planned is None:
                return core_execute(schema, document, *args, **kwargs)
            return self._run_planned(planned, core_execute, schema, document, args, kwargs)

        return execute

    async def _run_compiled(self, compiled: CompiledOperation, resolve: Callable[..., Any], schema: Any,
                            document: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            data = await self.compiler.run(compiled, kwargs.get("context_value"), kwargs.get("variable_values"))
        except StepAside:
            self.compiler.stepped_aside += 1
            return await await_maybe(resolve(schema, document, *args, **kwargs))
        self.compiler.completed += 1
        return GraphQLExecutionResult(data=data, errors=None)

    async def _run_planned(self, planned: OperationPlan, core_execute: Callable[..., Any], schema: Any,
                           document: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        context = kwargs.get("context_value")
        try:
            data = await PlannedRun(self, planned, context, kwargs.get("variable_values")).run()
        except Exception:
            self.planner.stepped_aside += 1
            if context is not None:
                context._loaders = None
            return await await_maybe(core_execute(schema, document, *args, **kwargs))
        self.planner.completed += 1
        return GraphQLExecutionResult(data=data, errors=None)

    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        """Log each error by type, code and request id only: never its message (it may hold PII)."""
        request_id = None
        if execution_context is not None and execution_context.context is not None:
            request_id = getattr(execution_context.context, "request_id", None)
        for error in errors:
            original = error.original_error
            code = (error.extensions or {}).get("code")
            logger.warning("graphql error", error_type=type(original or error).__name__,
                           error_code=code, request_id=request_id)


@strawberry.type
class NetworkMutations:
    @strawberry.mutation(description="Send a webhook event again to your endpoint(s), with the same webhook-id.")
    async def redeliver_webhook(self, info: strawberry.Info, input: RedeliverWebhookInput) -> RedeliverWebhookPayload:
        return await webhooks.redeliver(info, input)


@strawberry.type
class Mutation(CaseMutations, CareMutations, NetworkMutations, DirectoryMutations, StaffMutations, ClientMutations,
               SubjectRightsMutations):
    """Every mutation takes one `input` and returns a payload with the record and `userErrors`."""


def build_schema(*, production: bool, mutation: type | None = Mutation) -> strawberry.Schema:
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        # Parsing and validating the same document again is wasted work (~9 ms per dashboard);
        # the token limit still applies to documents not yet in the cache.
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        OneOperationNamed,
        # The limits' rule class is made once: a new class per request would make every ValidationCache
        # lookup miss.
        lambda: AddValidationRules(LIMIT_RULES),
        CostLimit,
        lambda: MaskErrors(should_mask_error=should_mask),
        ReadableDomainErrors,
        ReadAudit,
        RequestTransaction,
        # Inside the request's transaction: keeps first responses, answers replays (rule 6).
        FirstResponses,
    ]
    if production:
        extensions.insert(0, DisableIntrospection)
    kwargs: dict[str, Any] = {}
    if mutation is not None:
        kwargs["mutation"] = mutation
    return PamojaSchema(
        query=Query,
        types=[Organization, StaffUser, Survivor, Consent, Referral, CounselingSession, CareGoal, Milestone,
               Assessment, OAuthClient],
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=production),
        **kwargs,
    )


def schema_sdl() -> str:
    """The SDL as partner systems see it (production and development schemas have the same types)."""
    return build_schema(production=False).as_str() + "\n"
