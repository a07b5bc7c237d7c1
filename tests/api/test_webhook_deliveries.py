"""webhookDeliveries and redeliverWebhook through GraphQL: the organization's own systems, coordinators,
supervisors and administrators (domain/policy.may_manage_webhooks); counselors and case managers are
refused; another organization's event, or an id that names nothing, is NOT_FOUND alike and audited."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.enums import OrganizationKind, Role
from domain.policy import may_manage_webhooks
from domain.principal import build_principal
from tests.factories import Factory
from tests.flows import network, referred_case

LOG = "query($e: String) { webhookDeliveries(eventId: $e, first: 10) { eventId outcome } }"
REDELIVER = """mutation($input: RedeliverWebhookInput!) { redeliverWebhook(input: $input) {
  queued userErrors { field code message } } }"""


@pytest.mark.parametrize(("roles", "system", "allowed"), [
    ((Role.PARTNER_COORDINATOR,), False, True), ((Role.SUPERVISOR,), False, True), ((Role.ADMIN,), False, True),
    ((), True, True), ((Role.COUNSELOR,), False, False), ((Role.CASE_MANAGER,), False, False),
    ((Role.ANALYST,), False, False),
])
def test_who_manages_webhooks(roles: tuple[Role, ...], system: bool, allowed: bool) -> None:
    principal = build_principal(organization_id=uuid.uuid4(), organization_kind=OrganizationKind.PARTNER,
                                client_id="c", token_scopes=["user/*.cruds" if not system else "system/*.rs"],
                                user_id=None if system else uuid.uuid4(), roles=frozenset(roles),
                                display_name="x", token_id=None)
    assert may_manage_webhooks(principal) is allowed


async def test_the_coordinator_redelivers_her_own_organizations_event_only(factory: Factory,
                                                                            owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    await factory.oauth_client(net.partner, webhook_url="https://hooks.example.org/pamoja")
    case = await referred_case(factory, net)
    async with owner_engine.connect() as connection:
        event_id = await connection.scalar(text(
            "SELECT id FROM outbox_event WHERE organization_id = :o ORDER BY created_at DESC LIMIT 1"),
            {"o": net.partner.id})
        theirs = await connection.scalar(text(
            "SELECT id FROM outbox_event WHERE organization_id <> :o ORDER BY created_at DESC LIMIT 1"),
            {"o": net.partner.id})
    assert event_id is not None and case.referral["id"]
    coordinator = net.token("coordinator")
    sent = await factory.gql(coordinator, REDELIVER, {"input": {"eventId": str(event_id)}})
    assert sent["data"]["redeliverWebhook"] == {"queued": 1, "userErrors": []}
    log = await factory.gql(coordinator, LOG, {"e": str(event_id)})
    assert log["data"]["webhookDeliveries"] == []  # queued, not yet attempted
    for other in (str(theirs), "not-an-event"):
        refused = await factory.gql(coordinator, REDELIVER, {"input": {"eventId": other}})
        assert [e["code"] for e in refused["data"]["redeliverWebhook"]["userErrors"]] == ["NOT_FOUND"]
    counselor = await factory.gql(net.token("counselor"), REDELIVER, {"input": {"eventId": str(event_id)}},
                                  expect_errors=True)
    assert [e["extensions"]["code"] for e in counselor["errors"]] == ["FORBIDDEN"]
    manager = await factory.gql(net.token("manager"), LOG, {}, expect_errors=True)
    assert [e["extensions"]["code"] for e in manager["errors"]] == ["FORBIDDEN"]
