"""Generated queries (hypothesis-graphql) over every query root of the schema (security.md rows 16 and 27).

For each generated query and for two actors on a network with care records: the server answers with
a GraphQL body (never a 5xx), no error is an unexpected one (MaskErrors' "Unexpected error." would
mean a resolver crashed), and the read compiler and the resolver path (graphql-core) give the same body. The
queries are drawn deterministically (derandomize), so a failure reproduces.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes, queries

from api.graphql.schema import build_schema
from tests.factories import Factory
from tests.flows import care_network, every_way

QUERY_ROOTS = ["referrals", "survivors", "viewer", "organizations", "node", "nodes", "partnerMatches",
               "auditEvents", "webhookDeliveries"]
PER_ROOT = 15


def _generated_queries() -> list[str]:
    """PER_ROOT queries for each root field (drawn per root: over all roots at once the derandomized
    generator settles on the first one)."""
    sdl = build_schema(production=False).as_str()
    scalars = {
        "DateTime": st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                                 timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat())),
        "Date": st.dates().map(lambda d: nodes.String(d.isoformat())),
    }
    found: list[str] = []
    for root in QUERY_ROOTS:

        @settings(max_examples=PER_ROOT, database=None, derandomize=True, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(queries(sdl, fields=[root], custom_scalars=scalars))
        def collect(query: str) -> None:
            found.append(query)

        collect()
    return found


async def test_generated_queries_never_crash_and_every_engine_gives_one_answer(factory: Factory, app: FastAPI) -> None:
    net, _ = await care_network(factory)
    generated = _generated_queries()
    assert len(generated) >= len(QUERY_ROOTS) * PER_ROOT // 2
    compiled_runs = 0
    for query in generated:
        for actor in ("coordinator", "manager"):
            ran = await every_way(factory, app, net.token(actor), query)
            compiled_runs += ran.compiled
            unexpected = [e for e in ran.body.get("errors") or [] if e.get("message") == "Unexpected error."]
            assert not unexpected, (actor, query, unexpected)
    # the generator reached queries the compiler runs, not only ones it hands back
    assert compiled_runs > 0
