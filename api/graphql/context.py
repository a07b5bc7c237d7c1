"""Per-request GraphQL context: the principal, the request's database handle, the loaders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strawberry.fastapi import BaseContext

from api.state import AppState
from db.audit import LaterAudit
from db.engine import Db, RowSecurityContext
from db.unit import SqlUnit
from domain.principal import Principal

if TYPE_CHECKING:
    from api.graphql.loaders import Loaders
    from auth.resource import Credentials


@dataclass
class Context(BaseContext):
    principal: Principal
    state: AppState
    request_id: str
    _db: Db | None = None
    _loaders: Loaders | None = None
    _unit: SqlUnit | None = None
    # Set for read operations: their audit rows are written once their transaction has ended.
    later_audit: LaterAudit | None = None
    # The HTTP router writes a compiled read's JSON text into the response as it is (api/graphql/compiler.py).
    raw_json: bool = False
    # A caller remembered from an earlier request (auth.resource.Credentials): re-checked by the transaction.
    still_valid: Any = None
    reload_principal: Callable[[], Awaitable[Principal]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    @classmethod
    def of_caller(cls, caller: Credentials, state: AppState, request_id: str) -> Context:
        """The context of an HTTP request to the GraphQL endpoint (the router's and the compiled-read lane's):
        a compiled read's JSON written into the response as it is, a remembered caller re-checked."""
        return cls(principal=caller.principal, state=state, request_id=request_id, raw_json=True,
                   still_valid=caller.still_valid, reload_principal=caller.reload)

    @property
    def db(self) -> Db:
        if self._db is None:
            raise RuntimeError("the request transaction has not started")
        return self._db

    @property
    def unit(self) -> SqlUnit:
        """The use cases' view of this request's transaction (built once the transaction exists)."""
        if self._unit is None:
            state = self.state
            self._unit = SqlUnit(self.db, principal=self.principal, request_id=self.request_id,
                                 master=state.master_keys, index_key=state.blind_index_key,
                                 later_audit=self.later_audit)
        return self._unit

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            from api.graphql.loaders import Loaders

            self._loaders = Loaders(self)
        return self._loaders

    def row_security(self) -> RowSecurityContext:
        p = self.principal
        return RowSecurityContext(
            organization_id=str(p.organization_id),
            user_id=str(p.user_id) if p.user_id else "",
            client_id=p.client_id,
            roles=",".join(sorted(r.value for r in p.roles)),
        )
