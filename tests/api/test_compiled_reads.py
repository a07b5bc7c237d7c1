"""The read compiler (api/graphql/compiler.py) answers exactly as the resolver path does, in one statement.

Every query here runs two ways (tests/flows.every_way): compiled, and through the resolver path (graphql-core
and the resolvers); the HTTP bodies must be identical. Each test
also checks which engine answered, so a compiler that silently stepped aside would not pass for one
that answered. The access and BOLA matrices compare the two engines on every read they make
(tests/matrix/conftest.Cast.gql).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.graphql.router import json_bytes
from domain.enums import Role
from domain.ids import from_global_id
from tests.factories import Factory, unique
from tests.flows import (
    RECORD_MILESTONE,
    Network,
    act,
    care_network,
    every_way,
    referred_case,
    register_survivor,
    unseen_text,
)
from tests.oauth_helpers import extra_app, http_from
from tests.statements import sent_statements

ACTORS = ("manager", "supervisor", "coordinator", "counselor", "other_counselor")

DASHBOARD = """query Dashboard { referrals(first: 50, filter: {assignedToMe: true, status: [ACCEPTED, IN_PROGRESS]}) {
  edges { node { id status priority respondBy survivor { pseudonym ageBand }
    sessions(first: 5) { edges { node { startedAt durationMinutes modality attendance } } }
    goals { domain achievementStatus } milestones { title achievedOn } } } } }"""

EVERY_COMPILED_FIELD = """{ referrals(first: 10) {
  __typename totalCount pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor }
  edges { __typename cursor node { __typename id service priority status statusReason reason respondBy overdue
    outcome createdAt updatedAt version
    survivor { __typename id pseudonym birthYear ageBand sex county countyName languages riskLevel version erasedAt
      goals { __typename id description achievementStatus } }
    sessions(first: 2) { __typename totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { __typename cursor node { __typename id startedAt durationMinutes modality sessionType attendance
        version } } }
    goals { __typename id domain description targetDate lifecycleStatus achievementStatus version }
    milestones { __typename id title achievedOn note }
    history { __typename from to at reason actor }
    assignedCounselor { __typename id displayName roles active deactivatedAt version email deactivationReason }
    referringOrganization { __typename id name kind counties countyNames languages services minAge maxAge
      capacityStatus openSlots active version }
    receivingOrganization { name services capacityStatus openSlots countyNames }
    consent { __typename id purposes dataCategories givenBy childAssent validFrom validUntil status withdrawnAt
      withdrawalReason formVersion language witness version recipient { id name }
      survivor { pseudonym goals { description } } }
  } } } }"""

FRAGMENTS_AND_ALIASES = """query Mine($n: Int, $statuses: [ReferralStatus!]) {
  mine: referrals(first: $n, filter: {status: $statuses}) { ...Page }
  everything: referrals { total: totalCount }
}
fragment Page on ReferralConnection { totalCount edges { node { ...R ...N ... on Referral { version } } } }
fragment N on Node { id }
fragment S on Survivor { pseudonym }
fragment R on Referral { id a: status b: status __typename survivor { ... { pseudonym } theId: id ...S }
  first: sessions(first: 1) { edges { node { id } } } last: sessions(first: 3) { totalCount } }"""

BY_ID = """query($id: ID!) { node(id: $id) { __typename id ... on Referral { status reason survivor { birthYear }
  sessions(first: 2) { totalCount edges { node { id } } } goals { id } milestones { title } consent { id } }
  ... on Survivor { pseudonym birthYear dataProtection { legalHold { reason } } }
  ... on Consent { consentStatus: status witness withdrawalReason recipient { name }
    survivor { pseudonym goals { description } } } } }"""

PAGE = """query($after: String) { referrals(first: 1, after: $after) {
  totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id } } } }"""
SESSIONS_PAGE = """query($id: ID!, $after: String) { node(id: $id) { ... on Referral {
  sessions(first: 1, after: $after) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id startedAt } } } } } }"""
POLL = """query($since: DateTime, $after: String) {
  referrals(first: 2, after: $after, filter: {updatedSince: $since}) {
  totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id updatedAt } } } }"""
FILTERED = """query($f: ReferralFilter) {
  referrals(first: 20, filter: $f) { totalCount edges { node { id status } } } }"""


ORGANIZATIONS = """query($f: OrganizationFilter, $after: String) { organizations(first: 2, after: $after, filter: $f) {
  __typename totalCount pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor }
  edges { __typename cursor node { __typename id name kind counties countyNames languages services minAge maxAge
    capacityStatus openSlots active version counselors { __typename id displayName openCaseload } } } } }"""

CARE_BACK_REFERENCES = """{ referrals(first: 10) { edges { node { id
  sessions(first: 3) { edges { node { id referral { id status survivor { pseudonym } }
    counselor { displayName organization { name } } } } }
  goals { id survivor { pseudonym goals { id } } referral { id reason }
    history { __typename at achievementStatus note } }
  milestones { title referral { id consent { status } } goal { id description history { note } } } } } } }"""


SURVIVORS = """query($f: SurvivorFilter, $after: String) { survivors(first: 2, after: $after, filter: $f) {
  __typename totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  edges { cursor node { __typename id pseudonym birthYear ageBand sex county countyName languages riskLevel version
    erasedAt dataProtection { __typename legalHold { since reason } erasureRequestedAt erasureReason }
    consents { id status purposes witness withdrawalReason recipient { name } survivor { id pseudonym } }
    goals { id domain description targetDate lifecycleStatus }
    referrals(first: 1) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status reason
      sessions(first: 1) { totalCount } survivor { pseudonym } } } } } } } }"""


@pytest.fixture
async def busy_network(factory: Factory) -> tuple[Network, list[str]]:
    return await care_network(factory)


def _ids(body: Any) -> set[str]:
    return {e["node"]["id"] for e in body["data"]["referrals"]["edges"]}


VIEWER = """{ viewer { __typename clientId roles scopes organization { id name kind countyNames services }
  user { id displayName roles email } } referrals(first: 1) { totalCount } }"""


@pytest.mark.parametrize("query", [DASHBOARD, EVERY_COMPILED_FIELD, FRAGMENTS_AND_ALIASES, VIEWER],
                         ids=["dashboard", "every-compiled-field", "fragments-aliases", "viewer"])
async def test_every_actor_gets_the_resolver_paths_answer_from_one_statement(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]], query: str
) -> None:
    net, _ = busy_network
    shown = 0
    for actor in ACTORS:
        ran = await every_way(factory, app, net.token(actor), query,
                              {"n": 3, "statuses": ["ACCEPTED", "IN_PROGRESS", "REQUESTED"]} if "$n" in query else None)
        assert "errors" not in ran.body, (actor, ran.body)
        assert (ran.compiled, ran.compiled_stepped_aside) == (1, 0), actor
        shown += len(json.dumps(ran.body))
    assert shown > 1_500  # the network's care records were in the answers, not only empty lists


async def test_sealed_text_is_opened_and_categories_masked_as_the_policy_says(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]
) -> None:
    net, referral_ids = busy_network
    in_care, private, _, _ = referral_ids
    ran = await every_way(factory, app, net.token("coordinator"), EVERY_COMPILED_FIELD)
    nodes = {e["node"]["id"]: e["node"] for e in ran.body["data"]["referrals"]["edges"]}
    assert nodes[in_care]["milestones"][0]["title"] == "First session attended"
    assert nodes[in_care]["goals"][0]["description"] == "Knows her safety plan."
    assert nodes[in_care]["reason"]  # CASE_SUMMARY consented: the needs summary, opened
    # The referrer sees care as feedback only where consent names FEEDBACK_TO_REFERRER (private does not).
    ngo = await every_way(factory, app, net.token("supervisor"), EVERY_COMPILED_FIELD)
    by_id = {e["node"]["id"]: e["node"] for e in ngo.body["data"]["referrals"]["edges"]}
    assert by_id[in_care]["sessions"]["totalCount"] == 3 and by_id[in_care]["milestones"]
    assert by_id[private]["sessions"] == {"__typename": "CounselingSessionConnection", "totalCount": 0,
                                          "pageInfo": {"hasNextPage": False, "hasPreviousPage": False,
                                                       "startCursor": None, "endCursor": None}, "edges": []}
    assert by_id[private]["goals"] == [] and by_id[private]["milestones"] == []
    assert ngo.compiled == 1


SEALED_OF_REFERRAL = """query($id: ID!) { node(id: $id) { ... on Referral { reason survivor { id }
  goals { description } milestones { title } } } }"""


async def test_a_key_destroyed_after_a_read_opens_nothing_more(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]], owner_engine: AsyncEngine
) -> None:
    """Compiled reads remember survivors' unwrapped keys (db.crypto.DataKeys); erasing her destroys her
    key, and from then on nothing of hers opens, remembered or not."""
    net, (in_care, *_) = busy_network
    ran = await every_way(factory, app, net.token("coordinator"), SEALED_OF_REFERRAL, {"id": in_care})
    seen = ran.body["data"]["node"]
    assert ran.compiled == 1 and seen["reason"] and seen["milestones"][0]["title"] == "First session attended"
    decoded = from_global_id(seen["survivor"]["id"])
    assert decoded is not None
    survivor = str(decoded[1])
    remembered = app.state.pamoja.data_keys._ciphers
    assert any(who == survivor for who, _ in remembered)
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE survivor_key SET destroyed_at = now() WHERE survivor_id = :id"),
                                 {"id": survivor})
    ran = await every_way(factory, app, net.token("coordinator"), SEALED_OF_REFERRAL, {"id": in_care})
    erased = ran.body["data"]["node"]
    assert ran.compiled == 1 and erased["reason"] is None and erased["goals"] == erased["milestones"] == []


REFERRAL_PLAIN = """query($id: ID!) { node(id: $id) { ... on Referral {
  id status priority respondBy createdAt version survivor { pseudonym ageBand } } } }"""
# (query, whether one of its fields reads a survivor's data key): a sealed field, or a list of care records
# shown only while her key lives, or a care record by id whose text is sealed.
READS_A_KEY = {
    "referral-plain": (REFERRAL_PLAIN, False),
    "referral-sealed-reason": (REFERRAL_PLAIN.replace("version", "version reason"), True),
    "referral-milestones": (REFERRAL_PLAIN.replace("version", "version milestones { achievedOn }"), True),
    "survivors-plain": ("{ survivors(first: 5) { edges { node { id pseudonym ageBand } } } }", False),
    "dashboard": (DASHBOARD, True),
    "goal-by-id": ("""query($id: ID!) { node(id: $id) { ... on CareGoal { domain } } }""", True),
}


@pytest.mark.parametrize("case", list(READS_A_KEY), ids=list(READS_A_KEY))
async def test_a_read_whose_fields_need_no_key_reads_none(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]], owner_engine: AsyncEngine, case: str
) -> None:
    """The statement reads the survivors' data keys (and pays row security on them) only when a field needs
    one; without them the answer is the same, before and after her key is destroyed."""
    query, reads_a_key = READS_A_KEY[case]
    net, (in_care, *_) = busy_network
    token = net.token("coordinator")
    variables: dict[str, Any] = {"id": in_care}
    if case == "goal-by-id":
        found = await factory.gql(token, "query($id: ID!) { node(id: $id) { ... on Referral { goals { id } } } }",
                                  variables)
        variables = {"id": found["data"]["node"]["goals"][0]["id"]}
    await factory.gql(token, query, variables)  # the token validated, its principal cached
    with sent_statements(app.state.pamoja.engine) as seen:  # type: ignore[attr-defined]
        body = await factory.gql(token, unseen_text(query), variables)
    assert "errors" not in body and body["data"] and len(seen) == 2, (body, seen)
    assert ("survivor_key" in seen[1]) is reads_a_key, seen[1]
    ran = await every_way(factory, app, token, query, variables)
    assert ran.compiled == 1 and json.dumps(ran.body) == json.dumps(body)
    if reads_a_key:
        return
    survivor = (await factory.gql(token, "query($id: ID!) { node(id: $id) { ... on Referral { survivor { id } } } }",
                                  {"id": in_care}))["data"]["node"]["survivor"]["id"]
    decoded = from_global_id(survivor)
    assert decoded is not None
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE survivor_key SET destroyed_at = now() WHERE survivor_id = :id"),
                                 {"id": str(decoded[1])})
    after = await every_way(factory, app, token, query, variables)
    assert after.compiled == 1 and after.body == body


# (query, the category decisions its statement computes, the sealed referral columns its first page holds):
# each only when a field reads it (db.compiled_reads.OPTIONAL_COLUMNS).
DECISIONS_READ = {
    "referral-plain": (REFERRAL_PLAIN, set(), set()),
    "referral-reason": (REFERRAL_PLAIN.replace("version", "version reason"), {"sees_summary"}, {"reason_enc"}),
    "referral-sessions": (REFERRAL_PLAIN.replace("version", "version sessions(first: 2) { edges { node { id } } }"),
                          {"sees_sessions"}, set()),
    "referral-goals": (REFERRAL_PLAIN.replace("version", "version goals { domain }"), {"sees_assessments"}, set()),
    "referrals-page": ("{ referrals(first: 3) { edges { node { id reason outcome milestones { title } } } } }",
                       {"sees_summary", "sees_assessments"}, {"reason_enc", "outcome_enc"}),
    "dashboard": (DASHBOARD, {"sees_sessions", "sees_assessments"}, set()),
}


@pytest.mark.parametrize("case", list(DECISIONS_READ), ids=list(DECISIONS_READ))
async def test_a_statement_computes_only_the_decisions_its_fields_read(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]], case: str
) -> None:
    """A category decision nothing reads is left out of the statement (PostgreSQL would prepare and evaluate
    it for every row); the answer is the resolver path's, byte for byte."""
    query, decisions, sealed = DECISIONS_READ[case]
    net, (in_care, *_) = busy_network
    token = net.token("coordinator")
    variables: dict[str, Any] = {"id": in_care}
    await factory.gql(token, query, variables)
    with sent_statements(app.state.pamoja.engine) as seen:  # type: ignore[attr-defined]
        body = await factory.gql(token, unseen_text(query), variables)
    assert "errors" not in body and body["data"] and len(seen) == 2, (body, seen)
    assert set(re.findall(r"sees_[a-z]+", seen[1])) == decisions, seen[1]
    first_page = re.split(r"\sFROM\s", seen[1], maxsplit=1)[0]  # the columns of the statement's first CTE
    assert set(re.findall(r"\.((?:status_reason|reason|outcome)_enc)\b", first_page)) == sealed, first_page
    ran = await every_way(factory, app, token, query, variables)
    assert ran.compiled == 1 and json.dumps(ran.body) == json.dumps(body)


async def test_node_by_id_is_compiled_when_visible_and_answered_by_the_resolvers_when_not(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]], owner_engine: AsyncEngine
) -> None:
    net, referral_ids = busy_network
    ids = list(referral_ids)
    for referral_id in referral_ids:  # and each referral's survivor and consent
        found = (await factory.gql(net.token("manager"), BY_ID, {"id": referral_id}))["data"]["node"]
        ids += [found["consent"]["id"]]
    survivors_page = await factory.gql(net.token("manager"), SURVIVORS, {"f": None})
    ids += [e["node"]["id"] for e in survivors_page["data"]["survivors"]["edges"]]
    for actor in ACTORS:
        for referral_id in ids:
            ran = await every_way(factory, app, net.token(actor), BY_ID, {"id": referral_id})
            if ran.body["data"]["node"] is None:
                # unseen: the resolver path answers null and audits the id that showed nothing
                assert (ran.compiled, ran.compiled_stepped_aside) == (0, 1), (actor, referral_id)
            else:
                assert (ran.compiled, ran.compiled_stepped_aside) == (1, 0), (actor, referral_id)
                assert ran.body["data"]["node"]["__typename"] in ("Referral", "Survivor", "Consent")
    other = await every_way(factory, app, net.token("manager"), BY_ID, {"id": "not-an-id"})
    assert other.body["data"]["node"] is None and other.compiled == 0


async def test_paging_and_polling_give_the_resolver_paths_cursors(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]
) -> None:
    net, referral_ids = busy_network
    for actor in ("supervisor", "coordinator"):
        after: str | None = None
        seen: list[str] = []
        while True:
            ran = await every_way(factory, app, net.token(actor), PAGE, {"after": after})
            assert ran.compiled == 1
            connection = ran.body["data"]["referrals"]
            seen += [e["node"]["id"] for e in connection["edges"]]
            if not connection["pageInfo"]["hasNextPage"]:
                break
            after = connection["pageInfo"]["endCursor"]
        assert len(seen) == len(set(seen)) >= 3
        # past the last page: an empty page, with the total and the resolver path's flags
        ran = await every_way(factory, app, net.token(actor), PAGE, {"after": after})
        assert ran.compiled == 1
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    after = None
    for _ in range(4):
        ran = await every_way(factory, app, net.token("coordinator"), POLL, {"since": since, "after": after})
        assert ran.compiled == 1
        after = ran.body["data"]["referrals"]["pageInfo"]["endCursor"]
    for cursor in (None, "bm90LWEtY3Vyc29y"):  # a bad cursor: the resolver path refuses it, by its words
        ran = await every_way(factory, app, net.token("counselor"), SESSIONS_PAGE,
                              {"id": referral_ids[0], "after": cursor})
        if cursor is None:
            assert ran.compiled == 1
            after = ran.body["data"]["node"]["sessions"]["pageInfo"]["endCursor"]
        else:
            assert ran.compiled_stepped_aside == 1 and ran.body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    totals = set()
    while after is not None:  # to one page past the last
        ran = await every_way(factory, app, net.token("counselor"), SESSIONS_PAGE, {"id": referral_ids[0],
                                                                                    "after": after})
        assert ran.compiled == 1
        after = ran.body["data"]["node"]["sessions"]["pageInfo"]["endCursor"]
        totals.add(ran.body["data"]["node"]["sessions"]["totalCount"])
    assert totals == {3}  # every session, on every page: the past-the-last one too (as root connections count)


async def test_a_survivors_referrals_count_all_of_hers_on_every_page(
        factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]) -> None:
    net, _ = busy_network
    query = """query($after: String) { survivors(first: 5) { edges { node { id
      referrals(first: 1, after: $after) { totalCount pageInfo { endCursor } edges { node { id } } } } } } }"""
    first = await every_way(factory, app, net.token("manager"), query, {"after": None})
    pages = [e["node"]["referrals"] for e in first.body["data"]["survivors"]["edges"]]
    assert first.compiled == 1 and all(p["totalCount"] == 1 for p in pages)
    # past her only referral: an empty page, still counting it (resolver path and compiler alike)
    past = await every_way(factory, app, net.token("manager"), query, {"after": pages[0]["pageInfo"]["endCursor"]})
    assert past.compiled == 1
    assert [e["node"]["referrals"]["totalCount"] for e in past.body["data"]["survivors"]["edges"]] == [1] * len(pages)
    assert all(e["node"]["referrals"]["edges"] == [] for e in past.body["data"]["survivors"]["edges"][:1])


@pytest.mark.parametrize("filter_", [
    {"status": ["ACCEPTED", "IN_PROGRESS"]}, {"status": []}, {"assignedToMe": True}, {"assignedToMe": False},
    {"overdue": True}, {"overdue": False}, {"needsAssignment": True}, {"needsAssignment": False},
    {"receivingOrganizationId": "PARTNER"}, {"receivingOrganizationId": "T3JnYW5pemF0aW9uOm5vdGhpbmc"},
    {"updatedSince": "2020-01-01T00:00:00+00:00", "status": ["REQUESTED"]},
], ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
async def test_every_filter_is_compiled(factory: Factory, app: FastAPI,
                                        busy_network: tuple[Network, list[str]], filter_: dict[str, Any]) -> None:
    net, _ = busy_network
    if filter_.get("receivingOrganizationId") == "PARTNER":
        filter_ = {"receivingOrganizationId": net.partner.gid}
    for actor in ACTORS:
        ran = await every_way(factory, app, net.token(actor), FILTERED, {"f": filter_})
        assert (ran.compiled, ran.compiled_stepped_aside) == (1, 0), (actor, ran.body)


async def test_a_survivor_filter_is_compiled_unless_its_page_is_empty_and_a_missing_scope_is_not(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]], owner_engine: AsyncEngine
) -> None:
    net, _ = busy_network
    # survivorId: an unseen survivor is audited by the resolver path (one row, naming the id asked)
    unseen = "U3Vydml2b3I6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAx"
    audited = text("SELECT count(*) FROM audit_event WHERE record_id = :id AND purpose = 'NOT_VISIBLE'")
    async with owner_engine.connect() as connection:
        before = (await connection.execute(audited, {"id": unseen})).scalar_one()
    ran = await every_way(factory, app, net.token("coordinator"), FILTERED, {"f": {"survivorId": unseen}})
    assert (ran.compiled, ran.compiled_stepped_aside) == (0, 1) and ran.body["data"]["referrals"]["edges"] == []
    async with owner_engine.connect() as connection:
        assert (await connection.execute(audited, {"id": unseen})).scalar_one() > before
    # a survivor seen, with referrals: compiled
    survivors = await factory.gql(net.token("manager"), "{ survivors { edges { node { id } } } }")
    for edge in survivors["data"]["survivors"]["edges"]:
        for actor in ACTORS:
            ran = await every_way(factory, app, net.token(actor), FILTERED, {"f": {"survivorId": edge["node"]["id"]}})
            shown = ran.body["data"]["referrals"]["edges"]
            assert (ran.compiled, ran.compiled_stepped_aside) == ((1, 0) if shown else (0, 1)), (actor, ran.body)
            if actor == "manager":
                assert shown
    # a token without the milestone scope: graphql-core refuses the field
    token = await factory.token(net.counselor, scopes=["user/Referral.rs", "user/Survivor.r"])
    ran = await every_way(factory, app, token, "{ referrals { edges { node { id milestones { id } } } } }")
    assert (ran.compiled, ran.compiled_stepped_aside) == (0, 1)
    assert ran.body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_two_principals_sharing_one_statement_each_see_only_their_own_rows(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]
) -> None:
    net, referral_ids = busy_network
    theirs = await referred_case(factory, net, accept=True)
    payload = await act(factory, net.token("coordinator"), "assignCounselor", "AssignCounselorInput",
                        referralId=theirs.referral["id"], counselorId=net.other_counselor.gid)
    assert payload["userErrors"] == []
    compiler = app.state.graphql_schema.compiler  # type: ignore[attr-defined]
    first = await every_way(factory, app, net.token("counselor"), DASHBOARD)
    statements = len(compiler._statements)
    second = await every_way(factory, app, net.token("other_counselor"), DASHBOARD)
    assert len(compiler._statements) == statements  # the same text, the other counselor's values bound
    assert (first.compiled, second.compiled) == (1, 1)
    assert _ids(first.body) == set(referral_ids[:2])
    assert _ids(second.body) == {theirs.referral["id"]}
    assert theirs.referral["id"] not in json.dumps(first.body)
    assert not set(referral_ids) & set(json.dumps(second.body).split('"'))


@pytest.mark.parametrize("query", [DASHBOARD, SURVIVORS, ORGANIZATIONS.replace("$f: OrganizationFilter, ", "").replace(
    ", filter: $f", ""), VIEWER, "{ nodes(ids: []) { id } }", CARE_BACK_REFERENCES],
    ids=["dashboard", "survivors", "organizations", "viewer", "nodes", "care-back-references"])
async def test_a_compiled_read_is_the_set_config_and_one_statement(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]], query: str
) -> None:
    net, _ = busy_network
    token = net.token("coordinator")
    await factory.gql(token, query)  # the token validated, its principal cached
    with sent_statements(app.state.pamoja.engine) as seen:  # type: ignore[attr-defined]
        body = await factory.gql(token, unseen_text(query))
    assert "errors" not in body and body["data"]
    assert len(seen) == 2 and seen[0].startswith("SELECT set_config"), seen


async def test_a_value_that_looks_like_a_sealed_marker_is_only_text(
    factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]], owner_engine: AsyncEngine
) -> None:
    net, referral_ids = busy_network
    forged = '{"\\u0001" : "k1 AAAA 00000000-0000-0000-0000-000000000000 x AAAA"}'
    body = await factory.gql(net.token("counselor"), RECORD_MILESTONE, {"input": {
        "referralId": referral_ids[0], "title": forged, "achievedOn": datetime.now(UTC).date().isoformat()}})
    assert body["data"]["recordMilestone"]["userErrors"] == []
    async with owner_engine.begin() as connection:  # and a plain column holding the same text
        await connection.execute(text("UPDATE survivor SET pseudonym = :p WHERE id = (SELECT survivor_id FROM referral "
                                      "WHERE pamoja_global_id('Referral', id) = :r)"),
                                 {"p": forged, "r": referral_ids[0]})
    ran = await every_way(factory, app, net.token("counselor"), DASHBOARD)
    assert ran.compiled == 1
    node = next(e["node"] for e in ran.body["data"]["referrals"]["edges"] if e["node"]["id"] == referral_ids[0])
    assert node["survivor"]["pseudonym"] == forged
    assert forged in [m["title"] for m in node["milestones"]]


async def test_the_viewer_of_every_kind_of_caller_is_compiled(factory: Factory, app: FastAPI,
                                                              busy_network: tuple[Network, list[str]]) -> None:
    """Roles with no survivor rows (an administrator, an analyst) and a partner system (no user) too."""
    net, _ = busy_network
    admin = await factory.user(net.ngo, Role.ADMIN)
    analyst = await factory.user(net.ngo, Role.ANALYST)
    client = await factory.oauth_client(net.partner)
    tokens = [await factory.token(admin), await factory.token(analyst),
              await factory.system_token(net.partner, client.client_id)]
    only_viewer = VIEWER.replace(" referrals(first: 1) { totalCount }", "")
    for token in tokens:
        ran = await every_way(factory, app, token, only_viewer)
        assert (ran.compiled, ran.compiled_stepped_aside) == (1, 0), ran.body
        assert ran.body["data"]["viewer"]["organization"]["name"]
    assert (await every_way(factory, app, tokens[0], only_viewer)).body["data"]["viewer"]["user"]["email"]
    assert (await every_way(factory, app, tokens[2], only_viewer)).body["data"]["viewer"]["user"] is None
    # a scope missing for one root: graphql-core answers the whole operation (and refuses that root)
    refused = await every_way(factory, app, tokens[0], VIEWER)
    assert refused.compiled_stepped_aside == 1 and refused.body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("filter_", [
    None, {"county": "Kilifi"}, {"county": "003", "riskLevel": "HIGH"}, {"riskLevel": "LOW"},
    {"referralStatus": ["IN_PROGRESS"]}, {"referralStatus": ["REQUESTED", "CANCELLED"]}, {"underLegalHold": False},
], ids=lambda f: "-".join(f"{k}={v}" for k, v in (f or {}).items()) or "none")
async def test_survivors_are_compiled_with_every_filter_and_page(
        factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]],
        filter_: dict[str, Any] | None) -> None:
    net, _ = busy_network
    for actor in ACTORS:
        after: str | None = None
        while True:  # every page, then one past the last (no edges; the total and flags still compared)
            ran = await every_way(factory, app, net.token(actor), SURVIVORS, {"f": filter_, "after": after})
            if filter_ and "underLegalHold" in filter_ and actor not in ("manager", "supervisor"):
                assert ran.compiled_stepped_aside == 1  # a partner is refused, in the use case's words
                break
            assert (ran.compiled, ran.compiled_stepped_aside) == (1, 0), (actor, ran.body)
            page = ran.body["data"]["survivors"]
            if not page["edges"]:
                break
            after = page["pageInfo"]["endCursor"]


async def test_a_search_by_pseudonym_or_phone_is_compiled(
        factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]) -> None:
    """A pseudonym's start taken literally (`%` and `_` are not wildcards), a phone or a guardian's phone
    through the blind index among the caller's own organization's survivors only, refusals as the use case
    words them (graphql-core answers those)."""
    net, _ = busy_network
    phone, guardian = "+254712300001", "+254712300002"
    found = await register_survivor(factory, net.token("manager"), pseudonym="Zawadi_100%", phone=phone,
                                    guardianPhone=guardian)
    expected: dict[str, list[str]] = {
        "Zawadi_1": [found["id"]], "zawadi_100%": [found["id"]], "Zawadi%": [], "Zawad__100": [],
        phone: [found["id"]], "0712 300 002": [found["id"]], "+254712300009": []}
    for search, ids in expected.items():
        for actor in ("manager", "supervisor", "coordinator"):
            ran = await every_way(factory, app, net.token(actor), SURVIVORS, {"f": {"search": search}})
            assert (ran.compiled, ran.compiled_stepped_aside) == (1, 0), (search, actor, ran.body)
            shown = [e["node"]["id"] for e in ran.body["data"]["survivors"]["edges"]]
            assert shown == (ids if actor != "coordinator" else []), (search, actor)
    for refused in ("Z", "+2547"):  # too short, not a phone: the resolver path's own words
        ran = await every_way(factory, app, net.token("manager"), SURVIVORS, {"f": {"search": refused}})
        assert ran.compiled_stepped_aside == 1 and ran.body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_search_and_a_legal_hold_shown_to_her_organization_only(
        factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]) -> None:
    net, _ = busy_network
    search = await every_way(factory, app, net.token("manager"), SURVIVORS, {"f": {"search": "Nyota"}})
    assert search.compiled == 1 and search.body["data"]["survivors"]["totalCount"] >= 1
    first = search.body["data"]["survivors"]["edges"][0]["node"]["id"]
    held = await factory.gql(net.token("supervisor"), """mutation($i: PlaceLegalHoldInput!) {
      placeLegalHold(input: $i) { userErrors { field } } }""", {"i": {"survivorId": first, "reason": "PROSECUTION"}})
    assert held["data"]["placeLegalHold"]["userErrors"] == [], held
    for actor, shown in (("supervisor", True), ("coordinator", False)):
        ran = await every_way(factory, app, net.token(actor), SURVIVORS, {"f": None})
        assert ran.compiled == 1
        nodes = [e["node"] for e in ran.body["data"]["survivors"]["edges"]]
        if shown:
            assert any(n["dataProtection"]["legalHold"] for n in nodes if n["dataProtection"])
        else:
            assert all(n["dataProtection"] is None for n in nodes)


async def test_an_operator_turns_compiled_reads_off_and_the_resolvers_answer_the_same(
        factory: Factory, app: FastAPI, settings: Any, busy_network: tuple[Network, list[str]]) -> None:
    """PAMOJA_COMPILED_READS=false: the way back if a compiled answer is ever in doubt."""
    net, _ = busy_network
    compiled = await factory.gql(net.token("counselor"), DASHBOARD)
    off = extra_app(settings.model_copy(update={"compiled_reads": False}))
    async with off.router.lifespan_context(off), http_from(off) as http:
        response = await http.post("/graphql", json={"query": DASHBOARD},
                                   headers={"Authorization": f"Bearer {net.token('counselor')}"})
    schema = off.state.graphql_schema
    assert (schema.compiler.completed, schema.compiler.stepped_aside) == (0, 0)
    assert response.json() == compiled and _ids(compiled)


@pytest.mark.parametrize("filter_", [
    {"language": "kam"}, {"language": "kam", "county": "Nyamira"}, {"language": "kam", "kind": "PARTNER"},
    {"language": "kam", "service": "SHELTER"}, {"language": "kam", "county": "045", "service": "LEGAL_AID"},
], ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
async def test_the_directory_is_compiled_with_every_filter_and_page_and_names_in_cursors(
        factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]], filter_: dict[str, Any]) -> None:
    """Names that JSON escapes (quotes, accents, an emoji past U+FFFF) come back in cursors as the resolver
    path writes them; an inactive organization is listed for an administrator only."""
    net, _ = busy_network
    # (last in the directory's order, in counties no other test's organizations serve)
    for name in ('Zzz Kituo "Tumaini" Kwale', "Zzz Café Ngazi — Kwale", "Zzz Nyumba 😀 ya Amani", "Zzz Back\\slash"):
        await factory.org(name=unique(name), counties=("045", "046"), languages=("kam", "sw"),
                          services=("SHELTER", "LEGAL_AID"))
    closed = await factory.org(name=unique("Zzz Closed Kwale Home"), counties=("046",), languages=("kam",))
    async with factory.engine.begin() as connection:
        await connection.execute(text("UPDATE organization SET active = false WHERE id = :id"), {"id": closed.id})
    admin = await factory.token(await factory.user(net.ngo, Role.ADMIN))
    listed: dict[str, list[str]] = {}
    for who, token in [*((a, net.token(a)) for a in ("manager", "coordinator", "counselor")), ("admin", admin)]:
        after = None
        seen: list[str] = []
        for _ in range(40):
            ran = await every_way(factory, app, token, ORGANIZATIONS, {"f": filter_, "after": after})
            assert "errors" not in ran.body and (ran.compiled, ran.compiled_stepped_aside) == (1, 0), (who, ran.body)
            page = ran.body["data"]["organizations"]
            seen += [e["node"]["name"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        else:
            raise AssertionError("more pages than organizations")
        listed[who] = seen
    assert closed.name not in listed["manager"]
    assert (closed.name in listed["admin"]) is (set(filter_) <= {"language", "kind", "county"})
    assert [n for n in listed["admin"] if not n.startswith("Zzz Closed")] == listed["manager"] == listed["counselor"]


async def test_counselors_are_shown_to_their_own_partner_only(
        factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]) -> None:
    net, _ = busy_network
    query = """query($id: ID!) { node(id: $id) { ... on Organization { name counselors { id displayName
      openCaseload } } } viewer { organization { counselors { displayName } } user { organization { name
      counselors { openCaseload } } } } }"""
    partner = (await factory.gql(net.token("coordinator"), "{ viewer { organization { id } } }"))
    partner_id = partner["data"]["viewer"]["organization"]["id"]
    shown = {}
    for actor in ACTORS:
        ran = await every_way(factory, app, net.token(actor), query, {"id": partner_id})
        assert (ran.compiled, ran.compiled_stepped_aside) == (1, 0), (actor, ran.body)
        shown[actor] = ran.body["data"]["node"]["counselors"]
    assert shown["manager"] == shown["supervisor"] == []
    assert len(shown["coordinator"]) == 2 and shown["coordinator"] == shown["counselor"]
    assert sum(c["openCaseload"] for c in shown["coordinator"]) >= 2


NODES = """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on Referral { status survivor { pseudonym } }
  ... on Survivor { pseudonym } ... on Consent { consentStatus: status recipient { name } }
  ... on Organization { name active } } }"""


async def test_nodes_are_compiled_in_the_order_asked_and_unseen_ids_go_to_the_resolvers(
        factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]) -> None:
    net, _ = busy_network
    page = await factory.gql(net.token("manager"), """{ referrals { edges { node { id survivor { id }
      consent { id } receivingOrganization { id } referringOrganization { id } } } } }""")
    nodes = [e["node"] for e in page["data"]["referrals"]["edges"]]
    every = [n["id"] for n in nodes] + [nodes[0]["survivor"]["id"], nodes[1]["consent"]["id"],
                                        nodes[0]["receivingOrganization"]["id"],
                                        nodes[0]["referringOrganization"]["id"]]
    asked = [every[4], "not-an-id", every[0], every[5], every[0], every[6], every[7]]
    ran = await every_way(factory, app, net.token("manager"), NODES, {"ids": asked})
    assert (ran.compiled, ran.compiled_stepped_aside) == (1, 0), ran.body
    found = ran.body["data"]["nodes"]
    assert found[1] is None and found[2] == found[4] and [n["__typename"] for n in found if n] == [
        "Survivor", "Referral", "Consent", "Referral", "Organization", "Organization"]
    assert (await every_way(factory, app, net.token("manager"), NODES, {"ids": []})).body["data"]["nodes"] == []
    # the partner sees what was referred to it; a referral it was not sent is audited by the resolver path
    for actor in ("coordinator", "counselor", "other_counselor"):
        ran = await every_way(factory, app, net.token(actor), NODES, {"ids": asked})
        assert ran.compiled + ran.compiled_stepped_aside == 1, actor
    one = await every_way(factory, app, net.token("coordinator"), """query($id: ID!) { node(id: $id) {
      __typename ... on Organization { name } } }""", {"id": every[6]})
    assert (one.compiled, one.body["data"]["node"]["__typename"]) == (1, "Organization")


async def test_care_records_back_to_their_referral_survivor_goal_and_counselor_are_compiled(
        factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]) -> None:
    """What planned execution (deleted) answered under a referral's care records, compiled instead: a goal's
    history (sealed notes opened), its survivor and referral, a milestone's goal, a session's counselor."""
    net, _ = busy_network
    goals = await factory.gql(net.token("counselor"), "{ referrals { edges { node { goals { id } } } } }")
    goal_ids = [g["id"] for e in goals["data"]["referrals"]["edges"] for g in e["node"]["goals"]]
    assert goal_ids
    for goal_id in goal_ids:
        body = await factory.gql(net.token("counselor"), """mutation($i: UpdateGoalProgressInput!) {
          updateGoalProgress(input: $i) { userErrors { field } } }""", {"i": {
            "goalId": goal_id, "achievementStatus": "IMPROVING", "note": "Sleeps through the night now."}})
        assert body["data"]["updateGoalProgress"]["userErrors"] == []
    notes = 0
    for actor in ACTORS:
        ran = await every_way(factory, app, net.token(actor), CARE_BACK_REFERENCES)
        assert "errors" not in ran.body and (ran.compiled, ran.compiled_stepped_aside) == (1, 0), (actor, ran.body)
        notes += json.dumps(ran.body).count("Sleeps through the night now.")
    assert notes >= 4  # the history's notes and the milestones' goals' notes were opened


CARE_NODES = """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on CounselingSession { startedAt attendance
  referral { id } counselor { displayName } } ... on CareGoal { description history { achievementStatus } }
  ... on Milestone { title goal { description } referral { status } } } }"""


async def test_care_records_by_id_are_compiled_and_a_sessions_notes_are_not(
        factory: Factory, app: FastAPI, busy_network: tuple[Network, list[str]]) -> None:
    net, _ = busy_network
    page = await factory.gql(net.token("counselor"), """{ referrals { edges { node {
      sessions(first: 2) { edges { node { id } } } goals { id } milestones { id } } } } }""")
    ids = [i for e in page["data"]["referrals"]["edges"] for i in (
        [s["node"]["id"] for s in e["node"]["sessions"]["edges"]] + [g["id"] for g in e["node"]["goals"]]
        + [m["id"] for m in e["node"]["milestones"]])]
    assert len(ids) >= 6
    for actor in ACTORS:
        ran = await every_way(factory, app, net.token(actor), CARE_NODES, {"ids": ids})
        # a record the actor does not see is audited by the resolver path
        assert ran.compiled + ran.compiled_stepped_aside == 1, actor
        if actor in ("counselor", "coordinator"):
            assert ran.compiled == 1 and None not in ran.body["data"]["nodes"], (actor, ran.body)
    for record_id in ids:
        one = await every_way(factory, app, net.token("counselor"), """query($id: ID!) { node(id: $id) {
          __typename ... on CounselingSession { durationMinutes } ... on CareGoal { domain }
          ... on Milestone { achievedOn } } }""", {"id": record_id})
        assert one.compiled == 1 and one.body["data"]["node"]
    # notes are an audited read: a session's id steps aside, a referral's id in the same document does not
    notes = """query($id: ID!) { node(id: $id) { id ... on CounselingSession { notes } ... on Referral { status } } }"""
    ran = await every_way(factory, app, net.token("counselor"), notes, {"id": ids[0]})
    assert (ran.compiled, ran.compiled_stepped_aside) == (0, 1)
    referral_id = (await factory.gql(net.token("counselor"), "{ referrals(first: 1) { edges { node { id } } } }")
                   )["data"]["referrals"]["edges"][0]["node"]["id"]
    ran = await every_way(factory, app, net.token("counselor"), notes, {"id": referral_id})
    assert (ran.compiled, ran.compiled_stepped_aside) == (1, 0)


TRICKY_TEXT = ['say "hi"', "back\\slash", "\b\f\n\r\t", "\x01\x1f", "\x7f", "Wanjirũ é", "🙂 emoji", "\u2028 line",
               "a/b <script>", "", "tab\tand 'quote'"]


async def test_answers_are_written_as_postgresql_writes_json(owner_engine: AsyncEngine) -> None:
    """The resolver path's JSON (api/graphql/router.json_bytes) is byte for byte what PostgreSQL writes for the
    same values, so a compiled answer and the resolver path's can be compared as bytes."""
    async with owner_engine.connect() as connection:
        for value in TRICKY_TEXT:
            written = (await connection.execute(text(
                "SELECT json_build_object('k', CAST(:v AS text), 'n', 1, 'list', "
                "(SELECT json_agg(x) FROM unnest(ARRAY[CAST(:v AS text), 'b']) x), 'none', NULL::int, "
                "'empty', '[]'::json, 'yes', true)::text"), {"v": value})).scalar()
            assert json_bytes({"k": value, "n": 1, "list": [value, "b"], "none": None, "empty": [], "yes": True}) \
                == written.encode(), value
    # A lone surrogate (no stored text holds one) cannot be written as UTF-8: it is escaped instead.
    assert json_bytes({"k": "\ud800"}) == b'{"k" : "\\ud800"}'
