"""Mount GraphQL at /graphql behind token validation (401 before any GraphQL runs)."""

from __future__ import annotations

import json
from typing import Any

from cross_web import HTTPException
from fastapi import Depends, FastAPI, Request
from strawberry.fastapi import GraphQLRouter
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.types import ExecutionResult

from api.graphql.compiler import CompiledJson
from api.graphql.context import Context
from api.graphql.errors import UNAUTHENTICATED
from api.graphql.http import DATA_FIRST
from api.graphql.schema import build_schema
from auth.resource import Credentials, request_credentials, unauthorized
from config.settings import Settings

SEPARATORS = (", ", " : ")  # PostgreSQL's, between items and after keys


async def get_context(request: Request, caller: Credentials = Depends(request_credentials)) -> Context:
    return Context.of_caller(caller, request.app.state.pamoja, getattr(request.state, "request_id", ""))


class PamojaGraphQLRouter(GraphQLRouter[Any, Any]):
    async def execute_single(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """Strawberry answers an unknown operationName by quoting it back; say what is wrong instead
        (rule 4: no message repeats what the client sent)."""
        try:
            result = await super().execute_single(*args, **kwargs)
        except HTTPException as error:
            if isinstance(error.__cause__, CannotGetOperationTypeError) and error.__cause__.operation_name:
                raise HTTPException(400, "No operation in the document has the operationName given.") from None
            raise
        if any((e.extensions or {}).get("code") == UNAUTHENTICATED for e in result.errors or []):
            raise unauthorized()  # the caller, remembered from an earlier request, is gone: as if just checked
        return result

    def decode_json(self, data: str | bytes) -> object:
        """Strawberry answers 400 for a body that is not JSON, but a body that is not UTF-8 or nests arrays
        and objects thousands deep escaped as a crash (HTTP 500): 400 too, saying what to send."""
        try:
            return json.loads(data)
        except (UnicodeDecodeError, RecursionError):
            raise HTTPException(400, 'The request body must be a JSON object in UTF-8 ({"query": …, "variables": '
                                     "{…}}), with arrays and objects nested at most a few hundred deep.") from None

    def encode_json(self, data: object) -> bytes:
        """Every answer in PostgreSQL's JSON style, so that the resolver path writes the very bytes a compiled
        read does: a compiled read's `data` is PostgreSQL's text, written in as it is, never parsed. Bytes,
        which the response sends as they are (a str would be encoded once more)."""
        compiled = data.get("data") if isinstance(data, dict) else None
        if isinstance(compiled, CompiledJson):
            assert isinstance(data, dict)
            rest = {key: value for key, value in data.items() if key != "data"}
            tail = b", " + json_bytes(rest)[1:] if rest else b"}"
            return (DATA_FIRST + compiled.text).encode() + tail
        return json_bytes(data)


def json_bytes(value: object) -> bytes:
    """JSON as PostgreSQL writes it (`json_build_object`, `json_agg`): `{"key" : value, …}`, `[a, b]`, text in
    UTF-8 as it is, escaped by the same rules (quote, backslash, \\b \\f \\n \\r \\t, other control
    characters as \\u00xx). A lone surrogate, which no stored text holds, cannot be UTF-8: escaped then."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=SEPARATORS).encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=SEPARATORS).encode()


def mount_graphql(app: FastAPI, settings: Settings) -> None:
    schema = build_schema(production=settings.is_production)
    schema.compiler.enabled = settings.compiled_reads  # type: ignore[attr-defined]
    router: GraphQLRouter[Any, Any] = PamojaGraphQLRouter(
        schema,
        context_getter=get_context,
        graphql_ide=None,  # api/graphiql.py serves the page, which must open without a token
        allow_queries_via_get=False,
    )
    app.include_router(router, prefix="/graphql")
    app.state.graphql_schema = schema
