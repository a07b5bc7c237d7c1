"""Response deadlines: past respondBy while REQUESTED, a referral is overdue, listed, and announced once."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from db.crypto import MasterKeys
from domain.ids import from_global_id
from partners.webhooks import DeliveryPolicy
from partners.worker import run_once
from tests.factories import Factory
from tests.flows import network, referred_case

OVERDUE = """query($overdue: Boolean) { referrals(first: 100, filter: {overdue: $overdue}) {
  edges { node { id overdue respondBy status } } } }"""


async def test_an_overdue_referral_is_listed_and_announced_once(factory: Factory, owner_engine: AsyncEngine,
                                                                settings: Settings) -> None:
    net = await network(factory)
    late = await referred_case(factory, net)
    on_time = await referred_case(factory, net)
    late_id = from_global_id(late.referral["id"], "Referral")
    assert late_id is not None
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE referral SET respond_by = now() - interval '1 minute' WHERE id = :id"),
                                 {"id": late_id[1]})
    body = await factory.gql(net.token("manager"), OVERDUE, {"overdue": True})
    listed = {e["node"]["id"]: e["node"] for e in body["data"]["referrals"]["edges"]}
    assert late.referral["id"] in listed and on_time.referral["id"] not in listed
    assert listed[late.referral["id"]]["overdue"] is True
    not_overdue = await factory.gql(net.token("manager"), OVERDUE, {"overdue": False})
    assert on_time.referral["id"] in {e["node"]["id"] for e in not_overdue["data"]["referrals"]["edges"]}

    policy = DeliveryPolicy.from_settings(settings)
    master = MasterKeys.parse(settings.master_keys.get_secret_value())
    await run_once(owner_engine, policy=policy, master_keys=master)
    await run_once(owner_engine, policy=policy, master_keys=master)
    async with owner_engine.connect() as connection:
        events = (await connection.execute(text(
            "SELECT organization_id FROM outbox_event WHERE event_type = 'referral.overdue' "
            "AND payload->>'referralId' = :gid"), {"gid": late.referral["id"]})).scalars().all()
    assert sorted(map(str, events)) == sorted([str(net.ngo.id), str(net.partner.id)])
