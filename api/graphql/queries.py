"""The Query root: parse, call one use case, map the result."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime

import strawberry

from api.graphql.inputs import check_input
from api.graphql.mutations.base import decode_id
from api.graphql.mutations.clients import client_registry
from api.graphql.mutations.staff import staff_audit
from api.graphql.nodes import resolve_nodes
from api.graphql.relay import Connection, Node, page_request, to_connection
from api.graphql.types import webhooks
from api.graphql.types.audit import AuditEvent, AuditEventFilter
from api.graphql.types.care import AssessmentInstrument
from api.graphql.types.matching import PartnerMatch, PartnerMatchInput
from api.graphql.types.oauth_client import OAuthClient, OAuthClientFilter
from api.graphql.types.organization import Organization, OrganizationFilter
from api.graphql.types.referral import Referral
from api.graphql.types.staff import StaffUser, StaffUserFilter, Viewer
from api.graphql.types.survivor import DuplicateReview, Survivor
from api.graphql.types.webhooks import WebhookDeliveryAttempt
from db import partner_stats
from db.audit_read import SqlAuditTrail
from db.directory import SqlDirectory
from db.staff_admin import SqlStaffAccounts
from domain import directory as directory_records
from domain import enums
from domain.directory import PartnerCandidate, TrackRecord
from domain.errors import InvalidInput
from domain.kenya import county_code
from domain.ports import ReferralFilter as ReferralQuery
from domain.ports import SurvivorFilter as SurvivorQuery
from domain.principal import Principal
from domain.use_cases import audit, care, oauth_clients, referrals, refused_reads, staff_admin, survivors
from partners import directory, finding


@strawberry.input
class DuplicateReviewFilter:
    resolved: bool | None = strawberry.field(
        default=None, description="true: reviewed ones only; false: those still to review; leave out for all.")


@strawberry.input
class SurvivorFilter:
    county: str | None = None
    risk_level: enums.RiskLevel | None = None
    referral_status: list[enums.ReferralStatus] | None = strawberry.field(
        default=None, description="Survivors with a referral in one of these statuses.")
    search: str | None = strawberry.field(
        default=None, description="The start of a pseudonym (at least 2 characters, case does not matter), or a "
                                  "phone number such as +254712345678 or 0712345678 (exact; the survivor's or "
                                  "guardian's; your own organization's survivors only).")
    under_legal_hold: bool | None = strawberry.field(
        default=None, description="true: only records under a legal hold; false: only those without (your own "
                                  "organization's survivors; a partner is refused).")


@strawberry.input
class ReferralFilter:
    status: list[enums.ReferralStatus] | None = None
    receiving_organization_id: strawberry.ID | None = None
    survivor_id: strawberry.ID | None = None
    assigned_to_me: bool | None = None
    overdue: bool | None = None
    updated_since: datetime | None = strawberry.field(
        default=None, description="For partner systems that poll: referrals changed at or after this instant "
                                  "(sessions, goals and milestones count as changes). Results come in change "
                                  "order, so paging with `after` never misses a change.")
    needs_assignment: bool | None = strawberry.field(
        default=None, description="true: referrals under way (ACCEPTED, IN_PROGRESS, ON_HOLD) without an active "
                                  "counselor of the partner, never assigned or assigned to someone since "
                                  "deactivated; what a coordinator reassigns with assignCounselor.")


NOTHING = uuid.UUID(int=0)


def organization_query(filter: OrganizationFilter | None) -> directory_records.OrganizationFilter:
    """The directory filter as `organizations` reads it (the read compiler reads it so too)."""
    f = filter or OrganizationFilter()
    check_input(f, ("filter",))
    return directory_records.OrganizationFilter(
        kind=f.kind, service=f.service,
        county=county_code(f.county, field=("filter", "county")) if f.county else None, language=f.language)


def survivor_query(filter: SurvivorFilter | None) -> SurvivorQuery:
    """`survivors(filter:)` as the use case takes it (the resolver's and the compiled read's)."""
    f = filter or SurvivorFilter()
    check_input(f, ("filter",))
    return SurvivorQuery(
        county=county_code(f.county, field=("filter", "county")) if f.county else None,
        risk_level=f.risk_level.value if f.risk_level else None,
        referral_statuses=tuple(f.referral_status or ()), search=f.search,
        under_legal_hold=f.under_legal_hold,
    )


def referral_query(filter: ReferralFilter | None, principal: Principal) -> ReferralQuery:
    """`referrals(filter:)` as the use case takes it (the resolver's and the compiled read's)."""
    f = filter or ReferralFilter()
    check_input(f, ("filter",))
    return ReferralQuery(
        statuses=tuple(f.status or ()),
        receiving_organization_id=(decode_id(f.receiving_organization_id, "Organization") or NOTHING)
        if f.receiving_organization_id is not None else None,
        survivor_id=(decode_id(f.survivor_id, "Survivor") or NOTHING) if f.survivor_id is not None else None,
        assigned_to=(principal.user_id or NOTHING) if f.assigned_to_me else None,
        overdue=f.overdue,
        updated_since=f.updated_since,
        needs_assignment=f.needs_assignment,
    )

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
        page = await directory.list_organizations(
            store=SqlDirectory(info.context.db), principal=info.context.principal,
            filter=organization_query(filter), page=page_request(first, after))
        return to_connection(page, Organization.from_view)

    @strawberry.field(description="Survivors the caller may see: the NGO its own; a partner those referred to it.")
    async def survivors(self, info: strawberry.Info, first: int | None = None, after: str | None = None,
                        filter: SurvivorFilter | None = None) -> Connection[Survivor]:
        page = await survivors.page(unit=info.context.unit, principal=info.context.principal,
                                    filter=survivor_query(filter), request=page_request(first, after))
        return to_connection(page, Survivor.from_view)

    @strawberry.field(description="Referrals the caller may see, oldest first; with updatedSince, in change order.")
    async def referrals(self, info: strawberry.Info, first: int | None = None, after: str | None = None,
                        filter: ReferralFilter | None = None) -> Connection[Referral]:
        principal = info.context.principal
        query = referral_query(filter, principal)
        page = await referrals.page(unit=info.context.unit, principal=principal, filter=query,
                                    request=page_request(first, after))
        named = query.survivor_id
        if not page.items and named is not None and named != NOTHING:
            await refused_reads.audit_unseen_survivors(unit=info.context.unit, principal=principal, ids=[named])
        return to_connection(page, Referral.from_view)

    @strawberry.field(description="Every staff account of the network, by e-mail (administrators with the "
                                  "StaffUser scope).")
    async def staff_users(self, info: strawberry.Info, first: int | None = None, after: str | None = None,
                          filter: StaffUserFilter | None = None) -> Connection[StaffUser]:
        f = filter or StaffUserFilter()
        check_input(f, ("filter",))
        context = info.context
        page = await staff_admin.list_staff(
            store=SqlStaffAccounts(context.db, audit=staff_audit(context)), principal=context.principal,
            filter=staff_admin.StaffFilter(
                organization_id=(decode_id(f.organization_id, "Organization") or NOTHING)
                if f.organization_id is not None else None,
                role=f.role, active=f.active, search=f.search),
            page=page_request(first, after),
        )
        return to_connection(page, StaffUser.from_view)

    @strawberry.field(description="Registrations that shared a phone with another survivor of your organization, "
                                  "oldest first (its supervisors): including matches the registering case manager "
                                  "could not see.")
    async def duplicate_reviews(self, info: strawberry.Info, first: int | None = None, after: str | None = None,
                                filter: DuplicateReviewFilter | None = None) -> Connection[DuplicateReview]:
        f = filter or DuplicateReviewFilter()
        page = await survivors.duplicate_reviews(unit=info.context.unit, principal=info.context.principal,
                                                 resolved=f.resolved, request=page_request(first, after))
        return to_connection(page, DuplicateReview.from_view)

    @strawberry.field(description="Every OAuth client, partner systems and staff apps, by client_id "
                                  "(administrators with the OAuthClient scope).")
    async def oauth_clients(self, info: strawberry.Info, first: int | None = None, after: str | None = None,
                            filter: OAuthClientFilter | None = None) -> Connection[OAuthClient]:
        f = filter or OAuthClientFilter()
        check_input(f, ("filter",))
        page = await oauth_clients.list_clients(
            store=client_registry(info.context), principal=info.context.principal,
            filter=oauth_clients.ClientFilter(
                organization_id=(decode_id(f.organization_id, "Organization") or NOTHING)
                if f.organization_id is not None else None, active=f.active),
            page=page_request(first, after))
        return to_connection(page, OAuthClient.from_view)

    @strawberry.field(description="The organization's audit trail (supervisors and admins with AuditEvent scope).")
    async def audit_events(self, info: strawberry.Info, first: int | None = None, after: str | None = None,
                           filter: AuditEventFilter | None = None) -> Connection[AuditEvent]:
        f = filter or AuditEventFilter()
        check_input(f, ("filter",))
        page = await audit.page(
            store=SqlAuditTrail(info.context.db), principal=info.context.principal,
            filter=audit.AuditFilter(record_id=str(f.record_id) if f.record_id is not None else None, actor=f.actor,
                                     since=f.since, until=f.until),
            request=page_request(first, after),
        )
        return to_connection(page, AuditEvent.from_view)

    @strawberry.field(description="The assessment instruments recordAssessment accepts, each with its scale and "
                                  "the sub-domain keys and labels that `scores` takes.")
    async def assessment_instruments(self, info: strawberry.Info) -> list[AssessmentInstrument]:
        return [AssessmentInstrument.from_instrument(i) for i in await care.instruments(unit=info.context.unit)]

    @strawberry.field(description="Partners able to take a referral, best first, with the reasons for the ranking.")
    async def partner_matches(self, info: strawberry.Info, input: PartnerMatchInput) -> list[PartnerMatch]:
        context = info.context
        check_input(input, ("input",))

        async def offered(service: enums.ServiceType) -> list[PartnerCandidate]:
            return await partner_stats.candidates(context.db, service)

        async def history(ids: Iterable[uuid.UUID]) -> Mapping[uuid.UUID, TrackRecord]:
            return await partner_stats.track_records(context.db, ids)

        matches = await finding.match_partners(
            unit=context.unit, principal=context.principal, survivor_id=decode_id(input.survivor_id, "Survivor"),
            service=input.service, candidates=offered, track_records=history,
        )
        organizations = await context.loaders.organization_ref.load_many([m.organization_id for m in matches])
        return [PartnerMatch(organization=Organization.from_view(o), score=m.score, reasons=list(m.reasons))
                for m, o in zip(matches, organizations, strict=True) if o is not None]

    @strawberry.field(description="Your organization's webhook delivery attempts, newest first.")
    async def webhook_deliveries(self, info: strawberry.Info, event_id: str | None = None,
                                 first: int = 50) -> list[WebhookDeliveryAttempt]:
        check_input(event_id, ("eventId",))
        return await webhooks.deliveries(info, event_id, first)
