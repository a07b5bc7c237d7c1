"""`node(id:)` and `nodes(ids:)`: route each global id to its type's batch use case.

Every resolver here goes through the same use cases (and so the same policy) as the typed
queries; an id that is malformed, names nothing, or names something the caller may not see all
answer null, identically.
"""

from __future__ import annotations

import importlib
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from db.directory import SqlDirectory
from db.staff import SqlStaff
from domain.ids import from_global_id
from domain.use_cases import care, consents, oauth_clients, referrals, refused_reads, survivors
from domain.use_cases import staff as staff_cases
from partners import directory

if TYPE_CHECKING:
    from api.graphql.context import Context

NodeFetcher = Callable[["Context", Sequence[uuid.UUID]], Awaitable[Mapping[uuid.UUID, Any]]]
FETCHERS: dict[str, NodeFetcher] = {}


def node_type(name: str) -> Callable[[NodeFetcher], NodeFetcher]:
    def register(fetch: NodeFetcher) -> NodeFetcher:
        FETCHERS[name] = fetch
        return fetch

    return register


@node_type("Organization")
async def _organizations(context: Context, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Any]:
    from api.graphql.types.organization import Organization

    found = await directory.organizations_by_id(store=SqlDirectory(context.db), principal=context.principal,
                                                ids=ids, direct=True)
    return {k: Organization.from_view(v) for k, v in found.items()}


@node_type("StaffUser")
async def _staff(context: Context, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Any]:
    from api.graphql.types.staff import StaffUser

    found = await staff_cases.staff_by_id(store=SqlStaff(context.db), principal=context.principal, ids=ids,
                                          direct=True)
    return {k: StaffUser.from_view(v) for k, v in found.items()}


@node_type("OAuthClient")
async def _clients(context: Context, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Any]:
    from api.graphql.mutations.clients import client_registry
    from api.graphql.types.oauth_client import OAuthClient

    found = await oauth_clients.clients_by_id(store=client_registry(context), principal=context.principal, ids=ids)
    return {k: OAuthClient.from_view(v) for k, v in found.items()}


async def resolve_nodes(context: Context, global_ids: Sequence[str]) -> list[Any]:
    """One batch per type, results in the order asked; ids of survivor data that show nothing are
    audited (domain/use_cases/refused_reads.py), and still answer null like any other."""
    decoded = [from_global_id(g) for g in global_ids]
    by_type: dict[str, list[uuid.UUID]] = defaultdict(list)
    for item in decoded:
        if item is not None and item[0] in FETCHERS:
            by_type[item[0]].append(item[1])
    found: dict[tuple[str, uuid.UUID], Any] = {}
    for type_name, ids in by_type.items():
        shown = await FETCHERS[type_name](context, ids)
        for record_id, obj in shown.items():
            found[(type_name, record_id)] = obj
        await refused_reads.audit_unseen(unit=context.unit, record_type=type_name,
                                         ids=[i for i in ids if i not in shown])
    return [found.get(item) if item is not None else None for item in decoded]


# Records read through a survivor-data use case `by_id(unit=, principal=, ids=)`: one row of this table
# each, the GraphQL type named by module and class (imported on first use: the type modules import
# the loaders, which must not import them back at import time).
UseCase = Callable[..., Awaitable[Mapping[uuid.UUID, Any]]]
CASE_RECORDS: dict[str, tuple[UseCase, str, str]] = {
    "Survivor": (survivors.by_id, "api.graphql.types.survivor", "Survivor"),
    "Consent": (consents.by_id, "api.graphql.types.survivor", "Consent"),
    "Referral": (referrals.by_id, "api.graphql.types.referral", "Referral"),
    "CounselingSession": (care.sessions_by_id, "api.graphql.types.care", "CounselingSession"),
    "CareGoal": (care.goals_by_id, "api.graphql.types.care", "CareGoal"),
    "Milestone": (care.milestones_by_id, "api.graphql.types.care", "Milestone"),
    "Assessment": (care.assessments_by_id, "api.graphql.types.care", "Assessment"),
}


def _case_record_fetcher(use_case: UseCase, module: str, type_name: str) -> NodeFetcher:
    async def fetch(context: Context, ids: Sequence[uuid.UUID]) -> Mapping[uuid.UUID, Any]:
        graphql_type = getattr(importlib.import_module(module), type_name)
        found = await use_case(unit=context.unit, principal=context.principal, ids=ids)
        return {k: graphql_type.from_view(v) for k, v in found.items()}

    return fetch


for _name, (_use_case, _module, _type_name) in CASE_RECORDS.items():
    FETCHERS[_name] = _case_record_fetcher(_use_case, _module, _type_name)
