"""Planned execution (api/graphql/planned.py) answers exactly as graphql-core does.

Each query runs twice for every actor of a network with care records and a withdrawn consent:
once planned, once with the planner switched off, and the two HTTP bodies must be identical —
data, nulls, ordering of keys, errors. The planner must also really run the dashboard, and step
aside for what it does not handle (an error, an interface, an audited read).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from api.graphql.planned import PURE_READS
from tests.factories import Factory
from tests.flows import Network, both_ways, care_network

ISSUE_DASHBOARD = """query Dashboard {
  referrals(first: 50, filter: {assignedToMe: true, status: [ACCEPTED, IN_PROGRESS]}) {
    edges { node { id status priority respondBy survivor { pseudonym ageBand }
      sessions(first: 5) { edges { node { startedAt durationMinutes modality attendance } } }
      goals { domain achievementStatus } milestones { title achievedOn } } } } }"""

EVERY_REFERRAL_FIELD = """{ referrals(first: 10) {
  totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  edges { cursor node { __typename id service priority status statusReason reason respondBy overdue outcome
    createdAt updatedAt version
    survivor { id pseudonym birthYear ageBand sex county countyName languages riskLevel }
    referringOrganization { id name kind counties countyNames services active }
    receivingOrganization { name capacityStatus openSlots minAge maxAge }
    consent { id purposes dataCategories givenBy childAssent validFrom validUntil status withdrawnAt version
      recipient { id } survivor { pseudonym } }
    assignedCounselor { id displayName roles organization { name } }
    history { from to at reason actor }
    sessions(first: 2) { totalCount pageInfo { hasNextPage endCursor }
      edges { cursor node { id startedAt durationMinutes modality sessionType attendance version
        counselor { displayName } referral { id } } } }
    goals { id domain description targetDate lifecycleStatus achievementStatus version
      history { at achievementStatus note } survivor { id } referral { id } }
    milestones { id title achievedOn note goal { id domain } referral { status } } } } } }"""

FRAGMENTS_AND_ALIASES = """query Mine($n: Int, $statuses: [ReferralStatus!]) {
  mine: referrals(first: $n, filter: {status: $statuses}) { ...Page }
  everything: referrals { totalCount }
}
fragment Page on ReferralConnection { totalCount edges { node { ...R ... on Referral { version } } } }
fragment R on Referral { id a: status b: status __typename survivor { ... { pseudonym } theId: id }
  first: sessions(first: 1) { edges { node { id } } } last: sessions(first: 3) { totalCount } }"""

SURVIVORS = """{ survivors(first: 5) { totalCount edges { node { id pseudonym birthYear countyName
  consents { id status withdrawnAt recipient { name } survivor { id } }
  referrals(first: 3) { totalCount edges { node { id status } } }
  goals { id referral { id } survivor { id } } } } } }"""

VIEWER = """{ viewer { clientId roles scopes organization { id name countyNames } user { id displayName roles } }
  organizations(first: 5) { totalCount edges { node { id name kind countyNames } } } }"""

PAGE_TWO = """query($after: String) { referrals(first: 1, after: $after) { edges { cursor node { id } } } }"""
POLL = """query($since: DateTime) { referrals(first: 5, filter: {updatedSince: $since}) {
  edges { node { id updatedAt } } } }"""

TOO_BIG = "{ referrals(first: 1000) { totalCount } }"
BAD_CURSOR = """{ referrals(first: 2, after: "not-a-cursor") { totalCount } }"""
NESTED_ERROR = "{ referrals(first: 5) { edges { node { id sessions(first: 500) { totalCount } } } } }"
INTERFACE = """query($id: ID!) { node(id: $id) { id ... on Referral { status } } }"""
AUDITED = "{ survivors(first: 2) { edges { node { id identity { legalName } } } } }"

ACTORS = ("manager", "supervisor", "coordinator", "counselor", "other_counselor")


@pytest.fixture
async def busy_network(factory: Factory) -> tuple[Network, list[str]]:
    return await care_network(factory)


@pytest.mark.parametrize("query", [ISSUE_DASHBOARD, EVERY_REFERRAL_FIELD, FRAGMENTS_AND_ALIASES, SURVIVORS, VIEWER],
                         ids=["dashboard", "every-referral-field", "fragments-aliases", "survivors", "viewer"])
async def test_planned_answers_equal_graphql_core_for_every_actor(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]], query: str
) -> None:
    net, _ = busy_network
    seen_data = False
    for actor in ACTORS:
        body, completed, stepped_aside = await both_ways(
            factory, app, net.token(actor), query, {"n": 3, "statuses": ["ACCEPTED", "IN_PROGRESS", "REQUESTED"]}
            if "$n" in query else None)
        assert "errors" not in body, (actor, body)
        assert (completed, stepped_aside) == (1, 0), actor  # the planner answered, graphql-core did not
        seen_data = seen_data or ("edges" in json.dumps(body) and '"edges": []' not in json.dumps(body))
    assert seen_data


async def test_the_issue_dashboard_is_planned_and_shows_the_counselors_care(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]
) -> None:
    net, referral_ids = busy_network
    body, completed, _ = await both_ways(factory, app, net.token("counselor"), ISSUE_DASHBOARD)
    assert completed == 1
    edges = body["data"]["referrals"]["edges"]
    assert sorted(e["node"]["id"] for e in edges) == sorted(referral_ids[:2])
    for edge in edges:
        node = edge["node"]
        assert list(node) == ["id", "status", "priority", "respondBy", "survivor", "sessions", "goals", "milestones"]
        assert [s["node"]["durationMinutes"] for s in node["sessions"]["edges"]] == [46, 47, 48]  # newest first
        assert node["goals"] == [{"domain": "SAFETY", "achievementStatus": "IN_PROGRESS"}]
        assert [m["title"] for m in node["milestones"]] == ["First session attended"]
    # The other counselor is assigned nothing: the same query, planned, shows nothing.
    other, _, _ = await both_ways(factory, app, net.token("other_counselor"), ISSUE_DASHBOARD)
    assert other["data"]["referrals"]["edges"] == []


async def test_paging_and_polling_with_variables_are_planned_identically(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]
) -> None:
    net, _ = busy_network
    first, _, _ = await both_ways(factory, app, net.token("manager"), PAGE_TWO)
    cursor = first["data"]["referrals"]["edges"][0]["cursor"]
    second, completed, _ = await both_ways(factory, app, net.token("manager"), PAGE_TWO, {"after": cursor})
    assert completed == 1 and second["data"]["referrals"]["edges"][0]["node"] != first["data"]["referrals"]["edges"][0]
    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    polled, completed, _ = await both_ways(factory, app, net.token("coordinator"), POLL, {"since": since})
    assert completed == 1 and polled["data"]["referrals"]["edges"]


@pytest.mark.parametrize("query", [TOO_BIG, BAD_CURSOR, NESTED_ERROR],
                         ids=["first-too-big", "bad-cursor", "nested-error-under-a-list"])
async def test_errors_are_graphql_cores_own(factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]],
                                            query: str) -> None:
    net, _ = busy_network
    body, completed, stepped_aside = await both_ways(factory, app, net.token("counselor"), query)
    assert body["errors"]
    assert (completed, stepped_aside) == (0, 1)


async def test_interfaces_and_audited_reads_are_never_planned(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]
) -> None:
    net, referral_ids = busy_network
    for token, query, variables in ((net.token("coordinator"), INTERFACE, {"id": referral_ids[0]}),
                                    (net.token("manager"), AUDITED, None)):
        body, completed, stepped_aside = await both_ways(factory, app, token, query, variables)
        assert "errors" not in body
        assert (completed, stepped_aside) == (0, 0)


def test_no_audited_read_is_listed_as_pure() -> None:
    audited = {("Survivor", "identity"), ("Survivor", "assessments"), ("CounselingSession", "notes"),
               ("CounselingSession", "safeguardingConcern"), ("Referral", "safeguardingConcerns"),
               ("Query", "auditEvents")}
    assert not audited & PURE_READS
