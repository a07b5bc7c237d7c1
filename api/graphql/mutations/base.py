"""How every mutation runs: savepoint, idempotency, one use case, audit of refusals, the payload.

A mutation that fails with a user error changes nothing (its savepoint rolls back) and leaves an
audit row saying it was refused; a retry with the same idempotency key and input replays the first
result without running the use case again (rule 6).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any, TypeVar

import strawberry

from api.graphql.context import Context
from api.graphql.errors import UserError, to_user_errors
from db import idempotency
from domain.errors import DomainError, Forbidden, NotFound
from domain.ids import from_global_id, to_global_id
from domain.use_cases.common import text

T = TypeVar("T")
MAX_KEY_LENGTH = 200


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is strawberry.UNSET:
        return None
    return value


def request_hash(operation: str, input: Any) -> bytes:
    body = _plain(input)
    if isinstance(body, dict):
        body.pop("idempotency_key", None)
    return hashlib.sha256(json.dumps([operation, body], sort_keys=True, default=str).encode()).digest()


def decode_id(value: str | None, type_name: str) -> uuid.UUID | None:
    """An id of the wrong type, malformed or absent decodes to None: the use case says NotFound."""
    if not value:
        return None
    decoded = from_global_id(str(value), type_name)
    return decoded[1] if decoded else None


async def run_mutation(
    info: strawberry.Info,
    *,
    operation: str,
    record_type: str,
    input: Any,
    execute: Callable[[Context], Awaitable[uuid.UUID]],
    load: Callable[[Context, uuid.UUID], Awaitable[T | None]],
) -> tuple[T | None, list[UserError]]:
    context: Context = info.context
    principal = context.principal
    principal_key = f"{principal.organization_id}:{principal.user_id or principal.client_id}"
    record_id: uuid.UUID | None = None
    try:
        key = text(getattr(input, "idempotency_key", None), field=("input", "idempotencyKey"),
                   max_length=MAX_KEY_LENGTH, required=False)
        async with context.db.savepoint():
            replay = None
            if key is not None:
                replay = await idempotency.claim(
                    context.db, organization_id=principal.organization_id, principal_key=principal_key, key=key,
                    operation=operation, request_hash=request_hash(operation, input), now=context.unit.now())
            if replay is not None:
                decoded = from_global_id(str(replay.get("id", "")), record_type)
                record_id = decoded[1] if decoded else None
            else:
                record_id = await execute(context)
                if key is not None:
                    await idempotency.remember(context.db, principal_key=principal_key, key=key,
                                               response={"id": to_global_id(record_type, record_id)})
    except DomainError as error:
        outcome = "denied" if isinstance(error, NotFound) else "rejected"
        await context.unit.audit(action=operation, record_type=record_type, record_id=None, outcome=outcome,
                                 purpose=error.code.value)
        return None, to_user_errors(error)
    except Forbidden:
        await context.unit.audit(action=operation, record_type=record_type, record_id=None, outcome="denied",
                                 purpose="FORBIDDEN")
        raise
    if record_id is None:
        return None, to_user_errors(NotFound())
    return await load(context, record_id), []
