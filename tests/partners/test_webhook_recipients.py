"""Who an event reaches (issue 11.6): the systems registered when it happened, on every side the README
says — the acting organization's own systems included, so a coordinator's assignment made in a staff
app reaches her organization's case system."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from db import outbox
from db.crypto import MasterKeys
from db.engine import worker_transaction
from partners.webhooks import DeliveryPolicy
from partners.worker import run_once
from tests.factories import Factory
from tests.flows import WITHDRAW, Case, Network, act, network, referred_case
from tests.partners.receiver import Receiver
from tests.partners.test_webhooks import add_client, add_event

NGO, PARTNER = "ngo", "partner"


@pytest.fixture
def master(settings: Settings) -> MasterKeys:
    return MasterKeys.parse(settings.master_keys.get_secret_value())


async def test_an_event_goes_to_the_systems_registered_when_it_happened_not_to_later_ones(
        factory: Factory, owner_engine: AsyncEngine, master: MasterKeys, settings: Settings) -> None:
    partner = await factory.org()
    with Receiver() as receiver:
        await add_client(owner_engine, master, partner, receiver.url + "/before")
        event_id = await add_event(owner_engine, partner)
        await add_client(owner_engine, master, partner, receiver.url + "/after")
        await run_once(owner_engine, policy=DeliveryPolicy.from_settings(settings), master_keys=master)
        assert [r.path for r in receiver.for_event(event_id)] == ["/hook/before"]
        # A redelivery goes to the same endpoints: the later system is still not entitled to the event.
        async with owner_engine.begin() as connection:
            await outbox.redeliver(connection, event_id=event_id)
        await run_once(owner_engine, policy=DeliveryPolicy.from_settings(settings), master_keys=master)
        assert [r.path for r in receiver.for_event(event_id)] == ["/hook/before", "/hook/before"]


async def _events(engine: AsyncEngine, net: Network, record_gid: str) -> set[tuple[str, str]]:
    """(event type, side) of every event about the record, as the outbox holds them."""
    sides = {net.ngo.id: NGO, net.partner.id: PARTNER}
    async with engine.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT event_type, organization_id FROM outbox_event "
            "WHERE payload->>'referralId' = :gid OR payload->>'consentId' = :gid"), {"gid": record_gid})).all()
    return {(row.event_type, sides[row.organization_id]) for row in rows}


async def _accept(factory: Factory, net: Network) -> Case:
    case = await referred_case(factory, net)
    payload = await act(factory, net.token("coordinator"), "acceptReferral", "ReferralActionInput",
                        referralId=case.referral["id"])
    assert payload["userErrors"] == []
    return case


async def _assign(factory: Factory, net: Network) -> Case:
    case = await referred_case(factory, net, accept=True)
    payload = await act(factory, net.token("coordinator"), "assignCounselor", "AssignCounselorInput",
                        referralId=case.referral["id"], counselorId=net.counselor.gid)
    assert payload["userErrors"] == []
    return case


async def _cancel(factory: Factory, net: Network) -> Case:
    case = await referred_case(factory, net)
    payload = await act(factory, net.token("manager"), "cancelReferral", "ReferralReasonInput",
                        referralId=case.referral["id"], reason="The family moved to Nairobi.")
    assert payload["userErrors"] == []
    return case


async def _withdraw(factory: Factory, net: Network) -> Case:
    case = await referred_case(factory, net)
    body = await factory.gql(net.token("manager"), WITHDRAW, {"input": {
        "consentId": case.consent["id"], "reason": "The guardian withdrew consent."}})
    assert body["data"]["withdrawConsent"]["userErrors"] == []
    return case


async def _request(factory: Factory, net: Network) -> Case:
    return await referred_case(factory, net)


Scenario = Callable[[Factory, Network], Awaitable[Case]]
REQUESTED = {("referral.requested", PARTNER)}
BOTH_UPDATED = REQUESTED | {("referral.updated", NGO), ("referral.updated", PARTNER)}
BOTH_CANCELLED = REQUESTED | {("referral.cancelled", NGO), ("referral.cancelled", PARTNER)}
# Each README event, the change that causes it, and what each side's systems must hear of the referral
# and of the consent.
SCENARIOS: dict[str, tuple[Scenario, set[tuple[str, str]], set[tuple[str, str]]]] = {
    "requested": (_request, REQUESTED, set()),
    "accepted by the coordinator": (_accept, BOTH_UPDATED, set()),
    "the coordinator's own assignment": (_assign, BOTH_UPDATED, set()),
    "cancelled by the case manager": (_cancel, BOTH_CANCELLED, set()),
    "consent withdrawn": (_withdraw, BOTH_CANCELLED, {("consent.withdrawn", NGO), ("consent.withdrawn", PARTNER)}),
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
async def test_every_readme_event_reaches_each_side_it_concerns(
        factory: Factory, owner_engine: AsyncEngine,
        scenario: tuple[Scenario, set[tuple[str, str]], set[tuple[str, str]]]) -> None:
    change, about_referral, about_consent = scenario
    net = await network(factory)
    case = await change(factory, net)
    assert await _events(owner_engine, net, case.referral["id"]) == about_referral
    assert await _events(owner_engine, net, case.consent["id"]) == about_consent


async def test_the_coordinators_own_assignment_is_delivered_to_her_organizations_system(
        factory: Factory, owner_engine: AsyncEngine, app_engine: AsyncEngine, master: MasterKeys,
        settings: Settings) -> None:
    net = await network(factory)
    with Receiver() as receiver:
        await add_client(owner_engine, master, net.partner, receiver.url + "/partner")
        referral = await _assign(factory, net)
        async with worker_transaction(app_engine) as connection:
            await outbox.fan_out(connection)
        await run_once(app_engine, policy=DeliveryPolicy.from_settings(settings), master_keys=master)
        bodies = [json.loads(r.body) for r in receiver.received]
    assert ("referral.updated", referral.referral["id"]) in [(b["type"], b["data"].get("referralId")) for b in bodies]
