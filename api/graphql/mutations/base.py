"""How every mutation runs: savepoint, idempotency, one use case, audit of refusals, the payload.

A mutation that fails with a user error changes nothing (its savepoint rolls back) and leaves an
audit row saying it was refused. Under an idempotency key the first response, success or userErrors,
is kept (db/idempotency.py), and a retry with the same key, input and selection of fields is answered
with it without running the use case again (rule 6), as far as the caller may still see what it shows.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.nodes import SelectedField, Selection

from api.graphql.context import Context
from api.graphql.errors import UserError, to_user_errors
from api.graphql.inputs import check_input
from db import idempotency
from db.idempotency import FirstResponse
from domain.enums import UserErrorCode
from domain.errors import DomainError, Forbidden, NotFound
from domain.ids import from_global_id, to_global_id
from domain.use_cases.common import text

T = TypeVar("T")
MAX_KEY_LENGTH = 200
KEYED_MUTATIONS = "keyed_mutations"


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
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


def _included(directives: dict[str, dict[str, Any]]) -> bool:
    """@skip and @include, whose arguments strawberry has already resolved against the variables."""
    return not directives.get("skip", {}).get("if", False) and bool(directives.get("include", {}).get("if", True))


def _shape(selections: Sequence[Selection], into: dict[str, Any]) -> dict[str, Any]:
    """The response a selection asks for: response name → field, arguments and sub-shape. Fragments,
    named or inline, merge into their parent as graphql-core merges them: payloads hold only object
    types, so every fragment in them applies."""
    for selection in selections:
        if not _included(selection.directives):
            continue
        if isinstance(selection, SelectedField):
            entry = into.setdefault(selection.alias or selection.name, {
                "field": selection.name, "arguments": _plain(selection.arguments), "fields": {}})
            _shape(selection.selections, entry["fields"])
        else:
            _shape(selection.selections, into)
    return into


def selection_fingerprint(info: strawberry.Info) -> str:
    """What the client asked the payload for, however spelled (whitespace, fragments, variables, the
    mutation's own alias): a first response answers exactly this selection and no other."""
    shape: dict[str, Any] = {}
    for field in info.selected_fields:
        _shape(field.selections, shape)
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class KeyedMutation:
    """A mutation of this request run under an idempotency key, waiting for its payload to complete:
    a first attempt (`replay` None) whose response is to be kept, or a replay to answer from `replay`."""

    principal_key: str
    key: str
    selection: str
    record_id: str | None
    user_errors: list[dict[str, Any]]
    replay: FirstResponse | None


def _keyed(context: Context) -> dict[str, KeyedMutation]:
    keyed: dict[str, KeyedMutation] = context.extra.setdefault(KEYED_MUTATIONS, {})
    return keyed


def _stored(errors: list[UserError]) -> list[dict[str, Any]]:
    return [{"field": e.field, "code": e.code.value, "message": e.message} for e in errors]


def _user_errors(stored: list[dict[str, Any]]) -> list[UserError]:
    return [UserError(field=e["field"], code=UserErrorCode(e["code"]), message=e["message"]) for e in stored]


async def refused(context: Context, operation: str, record_type: str, error: DomainError) -> list[UserError]:
    outcome = "denied" if isinstance(error, NotFound) else "rejected"
    await context.unit.audit(action=operation, record_type=record_type, record_id=None, outcome=outcome,
                             purpose=error.code.value)
    return to_user_errors(error)


async def _attempt(context: Context, operation: str, record_type: str,
                   execute: Callable[[Context], Awaitable[uuid.UUID]]) -> tuple[uuid.UUID | None, list[UserError]]:
    """The use case in its own savepoint: refused, it changes nothing and leaves an audit row."""
    try:
        async with context.db.savepoint():
            return await execute(context), []
    except DomainError as error:
        return None, await refused(context, operation, record_type, error)


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
    name = str(info.path.key)
    try:
        check_input(input, ("input",))
        key = text(getattr(input, "idempotency_key", None), field=idempotency.FIELD,
                   max_length=MAX_KEY_LENGTH, required=False)
        # The claim and the attempt together: an unexpected error undoes both, so a retry runs afresh.
        async with context.db.savepoint():
            if key is None:
                record_id, errors = await _attempt(context, operation, record_type, execute)
            else:
                selection = selection_fingerprint(info)
                first = await idempotency.claim(
                    context.db, organization_id=principal.organization_id, principal_key=principal_key, key=key,
                    operation=operation, request_hash=request_hash(operation, input), selection=selection,
                    now=context.unit.now(), master=context.state.master_keys)
                keyed = KeyedMutation(principal_key=principal_key, key=key, selection=selection,
                                      record_id=None, user_errors=[], replay=first)
                if first is not None:
                    return await _replay(context, name, keyed, first, record_type, load)
                record_id, errors = await _attempt(context, operation, record_type, execute)
                _keyed(context)[name] = dataclasses.replace(
                    keyed, record_id=to_global_id(record_type, record_id) if record_id else None,
                    user_errors=_stored(errors))
    except DomainError as error:  # the input or its key was refused: nothing was claimed or run
        return None, await refused(context, operation, record_type, error)
    except Forbidden:
        await context.unit.audit(action=operation, record_type=record_type, record_id=None, outcome="denied",
                                 purpose="FORBIDDEN")
        raise
    if record_id is None:
        return None, errors
    return await load(context, record_id), []


async def _replay(context: Context, name: str, keyed: KeyedMutation, first: FirstResponse, record_type: str,
                  load: Callable[[Context, uuid.UUID], Awaitable[T | None]]) -> tuple[T | None, list[UserError]]:
    """Complete the payload afresh, under today's rules, for FirstResponses to compare and replace.

    A record the caller can no longer see (its consent withdrawn since) answers NOT_FOUND, as a
    record that does not exist: the first response is not shown then."""
    if first.record_id is None:
        _keyed(context)[name] = keyed
        return None, _user_errors(first.user_errors)
    decoded = from_global_id(first.record_id, record_type)
    record = await load(context, decoded[1]) if decoded else None
    if record is None:
        return None, to_user_errors(NotFound())
    _keyed(context)[name] = keyed
    return record, []


def _error_paths(errors: Sequence[GraphQLError] | None, name: str) -> list[list[str | int]]:
    paths = [list(e.path[1:]) for e in errors or () if e.path and e.path[0] == name]
    return sorted(paths, key=json.dumps)


def _shows_no_more(first: Any, now: Any) -> bool:
    """Whether the first response shows nothing the fresh one withholds: wherever the first had a
    value (an object, a list item, a scalar), the fresh one has one too."""
    if first is None:
        return True
    if now is None:
        return False
    if isinstance(first, dict):
        return isinstance(now, dict) and all(_shows_no_more(v, now.get(k)) for k, v in first.items())
    if isinstance(first, list):
        return isinstance(now, list) and len(now) >= len(first) and all(map(_shows_no_more, first, now))
    return True


class FirstResponses(SchemaExtension):
    """Keeps each keyed mutation's first response, and answers each replay with it.

    Runs once the operation's fields are complete (a payload exists only then) and before its
    transaction commits, so a change and its first response commit together. A replay's payload
    was completed afresh under today's rules (visibility, scopes, audited reads); the first response
    replaces it only if it shows no more than that: the same errors, and a value today wherever the
    first response had one. Otherwise the caller gets today's answer, never more than it may see.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        result = self.execution_context.result
        keyed: dict[str, KeyedMutation] = context.extra.pop(KEYED_MUTATIONS, {}) if context is not None else {}
        if not keyed or result is None:
            return
        data = result.data
        for name, mutation in keyed.items():
            now = data.get(name) if data is not None else None
            paths = _error_paths(result.errors, name)
            if mutation.replay is None:
                await idempotency.remember(
                    context.db, principal_key=mutation.principal_key, key=mutation.key,
                    selection=mutation.selection, master=context.state.master_keys,
                    first=FirstResponse(record_id=mutation.record_id, user_errors=mutation.user_errors, data=now,
                                        error_paths=paths))
            elif data is not None and paths == mutation.replay.error_paths and \
                    _shows_no_more(mutation.replay.data, now):
                data[name] = mutation.replay.data
