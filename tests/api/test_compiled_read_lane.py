"""The compiled-read lane (api/graphql/lane.py): a query the whole pipeline answered with a compiled statement
is answered again past FastAPI and strawberry, with the very response the pipeline sends; everything else,
and everything that depends on the request (token, cost with its variables, variables, scopes, a caller who
changed, a read that steps aside), is the full pipeline's, with its own errors, status codes and audit rows."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.graphql import lane
from api.graphql.compiler import MAX_REMEMBERED_TEXT
from api.graphql.cost import over_the_limit
from config.settings import Settings
from db.engine import statements_observed
from tests.api.test_compiled_reads import DASHBOARD
from tests.factories import Factory
from tests.flows import Network, care_network, unseen_text
from tests.oauth_helpers import extra_app, http_from

REFERRAL_BY_ID = """query Referral($id: ID!) { node(id: $id) { ... on Referral {
  id status priority respondBy createdAt version survivor { pseudonym ageBand } } } }"""
PAGED = "query Paged($n: Int) { referrals(first: $n) { edges { node { id sessions(first: 50) { totalCount } } } } }"
UNSEEN_REFERRAL = "UmVmZXJyYWw6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAx"  # Referral:0000…0001


@pytest.fixture
async def net(factory: Factory) -> tuple[Network, list[str]]:
    return await care_network(factory)


def _in_lane(app: FastAPI) -> int:
    return int(app.state.graphql_schema.compiler.in_lane)


async def _post(client: httpx.AsyncClient, token: str | None, body: Any, *, headers: dict[str, str] | None = None,
                url: str = "/graphql") -> httpx.Response:
    sent = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {}),
            **(headers or {})}
    return await client.post(url, content=json.dumps(body).encode(), headers=sent)


async def _known(factory: Factory, app: FastAPI, token: str, body: dict[str, Any]) -> httpx.Response:
    """Asked twice: answered by the whole pipeline, then by the lane, which knows the document from now on."""
    await _post(factory.client, token, body)
    before = _in_lane(app)
    again = await _post(factory.client, token, body)
    assert _in_lane(app) == before + 1, again.text
    return again


def _comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.items() if k != "x-request-id"]
    return response.status_code, headers, response.content


@pytest.mark.parametrize("accept", [None, "application/graphql-response+json"])
async def test_a_query_answered_once_is_answered_again_by_the_lane_with_the_pipelines_very_response(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]], accept: str | None
) -> None:
    network, referral_ids = net
    token = network.token("counselor")
    headers = {"accept": accept} if accept else {}
    for body in ({"query": unseen_text(DASHBOARD)},
                 {"query": unseen_text(REFERRAL_BY_ID), "variables": {"id": referral_ids[0]},
                  "operationName": "Referral"}):
        before = _in_lane(app)
        first = await _post(factory.client, token, body, headers=headers)
        assert _in_lane(app) == before  # the whole pipeline answered it
        second = await _post(factory.client, token, body, headers=headers)
        assert _in_lane(app) == before + 1
        assert _comparable(second) == _comparable(first)
        assert first.status_code == 200 and "errors" not in first.json() and first.content.count(b"survivor") >= 1


async def test_two_callers_sharing_a_known_document_each_see_only_their_own_rows(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]]
) -> None:
    network, _ = net
    query = unseen_text(DASHBOARD)
    mine = (await _post(factory.client, network.token("counselor"), {"query": query})).json()
    before = _in_lane(app)
    theirs = (await _post(factory.client, network.token("other_counselor"), {"query": query})).json()
    again = (await _post(factory.client, network.token("counselor"), {"query": query})).json()
    assert _in_lane(app) == before + 2
    assert mine["data"]["referrals"]["edges"] and again == mine
    assert theirs["data"]["referrals"]["edges"] == []  # nothing is assigned to the other counselor


@pytest.mark.parametrize("case", [
    "no token", "another scheme", "a forged token", "the token twice", "text/plain", "application/graphql",
    "a query string", "a batch", "another operationName", "a member the lane does not know", "extensions",
    "variables not an object", "a streamed answer"])
async def test_what_the_lane_does_not_take_is_the_pipelines(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]], case: str
) -> None:
    network, referral_ids = net
    token = network.token("counselor")
    body: Any = {"query": unseen_text(REFERRAL_BY_ID), "variables": {"id": referral_ids[0]}}
    known = await _post(factory.client, token, body)
    assert known.status_code == 200 and known.json()["data"]["node"]
    headers: dict[str, str] = {}
    url = "/graphql"
    sent_token: str | None = token
    if case == "no token":
        sent_token = None
    elif case == "another scheme":
        sent_token, headers = None, {"authorization": f"Basic {token}"}
    elif case == "a forged token":
        sent_token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    elif case == "the token twice":
        headers = {"authorization": f"Bearer {token}"}
    elif case in ("text/plain", "application/graphql"):
        headers = {"content-type": case}
    elif case == "a query string":
        url = "/graphql?x=1"
    elif case == "a batch":
        body = [body]
    elif case == "another operationName":
        body = {**body, "operationName": "Referral"}
    elif case == "a member the lane does not know":
        body = {**body, "id": 1}
    elif case == "extensions":
        body = {**body, "extensions": {"persistedQuery": {"version": 1}}}
    elif case == "variables not an object":
        body = {**body, "variables": [referral_ids[0]]}
    elif case == "a streamed answer":
        headers = {"accept": "multipart/mixed"}
    before = _in_lane(app)
    if case == "the token twice":
        sent = [("content-type", "application/json"), ("authorization", f"Bearer {token}"),
                ("authorization", f"Bearer {token}")]
        response = await factory.client.post(url, content=json.dumps(body).encode(), headers=sent)
    else:
        response = await _post(factory.client, sent_token, body, headers=headers, url=url)
    assert _in_lane(app) == before, case
    if case in ("no token", "another scheme", "a forged token"):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    elif case in ("text/plain", "application/graphql", "a batch", "variables not an object"):
        assert response.status_code == 400, response.text  # strawberry's own refusal of the body
    elif case == "another operationName":  # the pipeline answered it, and the lane knows it from now on
        assert response.json() == known.json()
        assert (await _post(factory.client, token, body)).json() == known.json() and _in_lane(app) == before + 1


async def test_the_cost_is_checked_with_each_requests_variables(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]]
) -> None:
    network, _ = net
    token = network.token("coordinator")
    query = unseen_text(PAGED)
    small = await _known(factory, app, token, {"query": query, "variables": {"n": 2}})
    assert small.status_code == 200 and "errors" not in small.json()
    before = _in_lane(app)
    large = await _post(factory.client, token, {"query": query, "variables": {"n": 100}})
    assert _in_lane(app) == before
    assert large.json()["errors"][0]["extensions"]["code"] == "COST_LIMIT"
    assert large.json()["data"] is None


async def test_only_a_document_with_variables_is_costed_again_in_the_lane(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document without variables costs what it cost when the pipeline answered it; one with variables is
    costed again with each request's (the test above)."""
    network, referral_ids = net
    token = network.token("counselor")
    costed: list[str] = []

    def counted(schema: Any, document: Any, variables: Any) -> Any:
        costed.append(document.definitions[0].name.value)
        return over_the_limit(schema, document, variables)

    dashboard = {"query": unseen_text(DASHBOARD)}
    referral = {"query": unseen_text(REFERRAL_BY_ID), "variables": {"id": referral_ids[0]}}
    await _known(factory, app, token, dashboard)
    await _known(factory, app, token, referral)
    monkeypatch.setattr(lane, "over_the_limit", counted)
    before = _in_lane(app)
    assert "errors" not in (await _post(factory.client, token, dashboard)).json()
    assert costed == [] and _in_lane(app) == before + 1
    again = await _post(factory.client, token, referral)
    assert "errors" not in again.json() and costed == ["Referral"] and _in_lane(app) == before + 2


async def test_variables_that_do_not_fit_get_the_pipelines_error(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]]
) -> None:
    network, referral_ids = net
    token = network.token("counselor")
    query = unseen_text(REFERRAL_BY_ID)
    await _known(factory, app, token, {"query": query, "variables": {"id": referral_ids[0]}})
    before = _in_lane(app)
    for variables in ({}, {"id": None}, {"id": [referral_ids[0]]}, {"id": {"id": 1}}):
        refused = await _post(factory.client, token, {"query": query, "variables": variables})
        assert refused.json()["errors"] and refused.json().get("data") is None, variables
    assert _in_lane(app) == before


async def test_a_read_that_steps_aside_is_answered_and_audited_once_by_the_pipeline(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]], owner_engine: AsyncEngine
) -> None:
    network, referral_ids = net
    token = network.token("counselor")
    query = unseen_text(REFERRAL_BY_ID)
    await _known(factory, app, token, {"query": query, "variables": {"id": referral_ids[0]}})
    audited = text("SELECT count(*) FROM audit_event WHERE record_id = :id AND purpose = 'NOT_VISIBLE'")
    async with owner_engine.connect() as connection:
        rows_before = (await connection.execute(audited, {"id": UNSEEN_REFERRAL})).scalar_one()
    compiler = app.state.graphql_schema.compiler
    before = _in_lane(app), compiler.stepped_aside
    unseen = await _post(factory.client, token, {"query": query, "variables": {"id": UNSEEN_REFERRAL}})
    assert unseen.json()["data"] == {"node": None}
    assert (_in_lane(app), compiler.stepped_aside) == (before[0], before[1] + 1)  # stepped aside once, counted once
    async with owner_engine.connect() as connection:
        assert (await connection.execute(audited, {"id": UNSEEN_REFERRAL})).scalar_one() == rows_before + 1


async def test_a_caller_who_changed_is_read_again_by_the_pipeline_and_one_who_is_gone_refused(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]], owner_engine: AsyncEngine
) -> None:
    network, _ = net
    token = network.token("counselor")
    query = unseen_text(DASHBOARD)
    assert (await _known(factory, app, token, {"query": query})).json()["data"]["referrals"]["edges"]
    before = _in_lane(app)
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE staff_user SET active = false WHERE id = :id"),
                                 {"id": str(network.counselor.id)})
    gone = await _post(factory.client, token, {"query": query})
    assert gone.status_code == 401 and _in_lane(app) == before


async def test_the_lane_answers_nothing_while_compiled_reads_are_off(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]]
) -> None:
    network, _ = net
    token = network.token("counselor")
    query = unseen_text(DASHBOARD)
    compiled = await _post(factory.client, token, {"query": query})
    compiler = app.state.graphql_schema.compiler
    compiler.enabled = False
    try:
        before = compiler.completed
        resolved = await _post(factory.client, token, {"query": query})
        assert compiler.completed == before  # graphql-core and the resolvers answered
    finally:
        compiler.enabled = True
    assert _comparable(resolved) == _comparable(compiled)


async def test_a_document_padded_past_what_the_lane_remembers_is_always_the_pipelines(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]]
) -> None:
    network, referral_ids = net
    token = network.token("counselor")
    padded = unseen_text(REFERRAL_BY_ID) + "\n#" + "x" * MAX_REMEMBERED_TEXT  # a comment: no tokens, all text
    before = _in_lane(app)
    answers = [await _post(factory.client, token, {"query": padded, "variables": {"id": referral_ids[0]}})
               for _ in range(3)]
    assert _in_lane(app) == before
    assert all(a.status_code == 200 and a.json()["data"]["node"] for a in answers)


async def test_a_caller_without_a_scope_the_known_document_needs_is_refused_and_audited_by_the_pipeline(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]], owner_engine: AsyncEngine
) -> None:
    network, _ = net
    query = unseen_text("{ referrals { edges { node { id milestones { id } } } } }")
    await _known(factory, app, network.token("counselor"), {"query": query})
    narrow = await factory.token(network.counselor, scopes=["user/Referral.rs", "user/Survivor.r"])
    refusals = text("SELECT count(*) FROM audit_event WHERE actor = :actor AND purpose = 'FORBIDDEN'")
    async with owner_engine.connect() as connection:
        before_rows = (await connection.execute(refusals, {"actor": network.counselor.gid})).scalar_one()
    before = _in_lane(app)
    refused = await _post(factory.client, narrow, {"query": query})
    assert _in_lane(app) == before
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    async with owner_engine.connect() as connection:
        assert (await connection.execute(refusals, {"actor": network.counselor.gid})).scalar_one() == before_rows + 1


async def test_a_known_read_is_one_statement_that_sets_the_row_security_context_itself(
    factory: Factory, app: FastAPI, net: tuple[Network, list[str]]
) -> None:
    """Past the first request on each pooled connection (which makes the connection's function), a read in
    the lane is one round trip: no BEGIN, no separate set_config, no COMMIT (db/one_call.py)."""
    network, referral_ids = net
    token = network.token("counselor")
    body = {"query": unseen_text(REFERRAL_BY_ID), "variables": {"id": referral_ids[0]}}
    expected = (await _known(factory, app, token, body)).content
    rounds: list[list[str]] = []
    sent: list[str] = []
    with statements_observed(app.state.pamoja.engine, lambda text, _seconds: sent.append(text)):
        for _ in range(25):
            sent.clear()
            before = _in_lane(app)
            answer = await _post(factory.client, token, body)
            assert _in_lane(app) == before + 1 and answer.content == expected
            rounds.append(list(sent))
            if len(sent) == 1:
                break
    assert all(s[-1].startswith("SELECT * FROM pg_temp.pamoja_read_") for s in rounds), rounds
    assert all(len(s) == 1 or s[-2].startswith("CREATE FUNCTION pg_temp.") for s in rounds), rounds
    assert rounds[-1] == rounds[-1][-1:], rounds


async def test_where_temporary_functions_are_refused_the_lane_reads_in_a_transaction(
    factory: Factory, net: tuple[Network, list[str]], settings: Settings, temporary_objects_refused: None
) -> None:
    network, referral_ids = net
    token = network.token("counselor")
    body = {"query": unseen_text(REFERRAL_BY_ID), "variables": {"id": referral_ids[0]}}
    other = extra_app(settings)
    async with other.router.lifespan_context(other), http_from(other) as client:
        answers = [await _post(client, token, body) for _ in range(3)]
        # the pipeline; the lane, refused, hands over; the lane again, in a transaction
        assert _in_lane(other) == 1
        sent: list[str] = []
        with statements_observed(other.state.pamoja.engine, lambda text, _seconds: sent.append(text)):
            answers.append(await _post(client, token, body))
        assert _in_lane(other) == 2
    assert len({(a.status_code, a.content) for a in answers}) == 1 and answers[0].json()["data"]["node"]
    assert sent[0].startswith("BEGIN") and sent[1].startswith("SELECT set_config") and sent[-1] == "COMMIT;", sent
