"""`assessmentInstruments`: what `recordAssessment` accepts, readable by anyone signed in (issue 11.3)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.assessments import Instrument
from tests.api.test_staff_lifecycle import readme_example
from tests.factories import Factory
from tests.flows import network

QUERY = """{ assessmentInstruments { key version name scaleMin scaleMax restorationThreshold domains
  subdomains { key domain label } } }"""


async def test_every_actor_reads_the_instruments_as_stored(factory: Factory, owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    async with owner_engine.connect() as connection:
        stored = [Instrument.from_dict(row.definition) for row in (await connection.execute(text(
            "SELECT DISTINCT ON (key) definition FROM assessment_instrument WHERE active "
            "ORDER BY key, created_at DESC, version DESC"))).all()]
    assert stored, "migration 0005 seeds the NGO's instrument"
    expected = [{"key": i.key, "version": i.version, "name": i.name, "scaleMin": i.scale_min,
                 "scaleMax": i.scale_max, "restorationThreshold": i.restoration_threshold,
                 "domains": [d.value for d in i.domains],
                 "subdomains": [{"key": s.key, "domain": s.domain.value, "label": s.label} for s in i.subdomains]}
                for i in stored]
    client = await factory.oauth_client(net.partner)
    system = await factory.system_token(net.partner, client.client_id)
    for token in (net.token("counselor"), net.token("manager"), net.token("coordinator"), system):
        body = await factory.gql(token, QUERY)
        assert body["data"]["assessmentInstruments"] == expected
    assert len(expected[0]["subdomains"]) >= 2 and all(s["label"] for s in expected[0]["subdomains"])


async def test_the_readme_instruments_query_runs_as_written(factory: Factory) -> None:
    net = await network(factory)
    body = await factory.gql(net.token("counselor"), readme_example("assessment-instruments"))
    assert body["data"]["assessmentInstruments"][0]["subdomains"]

