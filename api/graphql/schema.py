"""The strawberry Schema with every abuse limit on (security.md §2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError
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

from api.graphql.compiler import ReadCompiler
from api.graphql.cost import CostLimit
from api.graphql.errors import should_mask
from api.graphql.extensions import (
    CompiledReads,
    OneOperationNamed,
    ReadableDomainErrors,
    ReadAudit,
    RequestTransaction,
)
from api.graphql.input_hints import describe_inputs
from api.graphql.mutations.base import FirstResponses
from api.graphql.mutations.care import CareMutations
from api.graphql.mutations.cases import CaseMutations
from api.graphql.mutations.clients import ClientMutations
from api.graphql.mutations.directory import DirectoryMutations
from api.graphql.mutations.staff import StaffMutations
from api.graphql.mutations.subject_rights import SubjectRightsMutations
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
        self.compiler = ReadCompiler(self)

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
        # Inside it too: a query the read compiler takes is answered by one statement, and graphql-core
        # does not run (api/graphql/compiler.py).
        CompiledReads,
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
