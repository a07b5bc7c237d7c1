"""The Query root: parse, call one use case, map the result."""

from __future__ import annotations

import strawberry

from api.graphql.nodes import resolve_nodes
from api.graphql.relay import Connection, Node, page_request, to_connection
from api.graphql.types.organization import Organization, OrganizationFilter
from api.graphql.types.staff import Viewer
from db.directory import SqlDirectory
from domain.errors import InvalidInput
from domain.kenya import county_code
from partners import directory

MAX_NODES = 100


@strawberry.type
class Query:
    @strawberry.field(description="Refetch any record by its global id; null when absent or not visible.")
    async def node(self, info: strawberry.Info, id: strawberry.ID) -> Node | None:
        found: Node | None = (await resolve_nodes(info.context, [str(id)]))[0]
        return found

    @strawberry.field(description="Refetch up to 100 records by global id, in order; null where not visible.")
    async def nodes(self, info: strawberry.Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise InvalidInput(f"ids accepts at most {MAX_NODES} ids.", field=("ids",))
        return await resolve_nodes(info.context, [str(i) for i in ids])

    @strawberry.field
    def viewer(self, info: strawberry.Info) -> Viewer:
        p = info.context.principal
        return Viewer(client_id=p.client_id, roles=sorted(p.roles), scopes=[str(s) for s in p.scopes],
                      organization_id=p.organization_id, user_id=p.user_id)

    @strawberry.field(description="The partner and service directory.")
    async def organizations(self, info: strawberry.Info, first: int | None = None, after: str | None = None,
                            filter: OrganizationFilter | None = None) -> Connection[Organization]:
        f = filter or OrganizationFilter()
        page = await directory.list_organizations(
            store=SqlDirectory(info.context.db), principal=info.context.principal,
            filter=directory.OrganizationFilter(
                kind=f.kind, service=f.service,
                county=county_code(f.county, field=("filter", "county")) if f.county else None,
                language=f.language,
            ),
            page=page_request(first, after),
        )
        return to_connection(page, Organization.from_view)
