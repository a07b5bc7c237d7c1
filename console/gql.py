"""The console's one way to records: the GraphQL schema, executed in this process as the signed-in
person. Policy, consent, audit and idempotency apply exactly as for any API client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from api.graphql.context import Context
from api.state import AppState
from domain.principal import Principal


@dataclass(frozen=True)
class Answer:
    data: dict[str, Any]
    errors: list[dict[str, Any]]

    @property
    def forbidden(self) -> bool:
        return any((e.get("extensions") or {}).get("code") == "FORBIDDEN" for e in self.errors)


async def run(request: Request, principal: Principal, query: str, variables: dict[str, Any] | None = None) -> Answer:
    state: AppState = request.app.state.pamoja
    context = Context(principal=principal, state=state, request_id=getattr(request.state, "request_id", ""))
    result = await request.app.state.graphql_schema.execute(query, variable_values=variables or {},
                                                            context_value=context)
    errors = [e.formatted for e in result.errors or []]
    return Answer(data=result.data or {}, errors=errors)
