"""`pamoja subject export|hold|release|erase`, `pamoja retention run` and `pamoja audit report`, as an operator
types them, against the session's database (the records come from the GraphQL API, as in real life)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.context import Cli
from cli.subject import retention_once
from config.settings import Settings
from db.engine import DatabaseUrls, make_engine
from tests.api.test_data_subject_rights import ERASE, HOLD, LIFT, _story, _uuid
from tests.factories import Factory
from tests.flows import act, create_referral, network, record_consent, register_survivor
from tests.foundation.test_cli import base_env, pamoja


@pytest.fixture
def operator(settings: Settings, tmp_path: Path) -> dict[str, Any]:
    env = base_env()
    env.update(DATABASE_URL=settings.database_url or "", PAMOJA_APP_DATABASE_URL=settings.app_database_url or "",
               PAMOJA_ENV="test")
    return {"env": env, "cwd": tmp_path}


async def _run(operator: dict[str, Any], *args: str) -> tuple[int, str, str]:
    result = await pamoja(*args, env=operator["env"], cwd=operator["cwd"])
    return result.returncode, result.stdout, result.stderr


async def _sql(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.begin() as connection:
        result = await connection.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


async def test_the_operator_exports_a_survivor_to_a_private_file_and_the_export_is_audited(
        factory: Factory, operator: dict[str, Any], owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    story = await _story(factory, net, "Cli")
    out = operator["cwd"] / "export.json"
    code, stdout, stderr = await _run(operator, "subject", "export", "--survivor", story.survivor_id,
                                      "--out", str(out), "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["survivor"] == story.survivor_id and summary["counts"]["sessions"] == 1
    assert story.words["legalName"] not in stdout  # the data goes to the file, never the terminal
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    document = json.loads(out.read_text())
    assert document["survivor"]["identity"]["legalName"] == story.words["legalName"]
    assert document["sessions"][0]["notes"] == story.words["notes"]
    assert document["auditTrail"][-1]["actor"] == "operator:cli"
    # never overwrites a file; an unknown survivor is named as the option at fault
    code, _, stderr = await _run(operator, "subject", "export", "--survivor", story.survivor_id, "--out", str(out))
    assert code == 2 and "already exists" in stderr
    code, _, stderr = await _run(operator, "subject", "export", "--survivor", "nonsense", "--out",
                                 str(operator["cwd"] / "x.json"))
    assert code == 2 and stderr.startswith("pamoja: --survivor")


async def test_the_operator_holds_releases_and_erases(factory: Factory, operator: dict[str, Any]) -> None:
    net = await network(factory)
    story = await _story(factory, net, "CliErase")
    code, stdout, stderr = await _run(operator, "subject", "hold", "--survivor", f" {story.survivor_id}\n",
                                      "--reason", "COURT_ORDER", "--json")  # pasted with its whitespace
    assert code == 0, stderr
    code, stdout, stderr = await _run(operator, "subject", "erase", "--survivor", story.survivor_id,
                                      "--reason", "GUARDIAN_REQUEST", "--json")
    assert code == 0 and json.loads(stdout)["status"] == "WAITING_FOR_LEGAL_HOLD", stderr
    code, _, stderr = await _run(operator, "subject", "release", "--survivor", story.survivor_id,
                                 "--reason", "ORDER_DISCHARGED")
    assert code == 0, stderr
    code, stdout, stderr = await _run(operator, "subject", "erase", "--survivor", story.survivor_id,
                                      "--reason", "GUARDIAN_REQUEST", "--json")
    assert code == 0 and json.loads(stdout)["status"] == "ERASED", stderr
    code, _, stderr = await _run(operator, "subject", "erase", "--survivor", story.survivor_id,
                                 "--reason", "GUARDIAN_REQUEST")
    assert code == 2 and "erased" in stderr


async def _backdate(engine: AsyncEngine, survivor_id: str, *, years: float) -> None:
    """Make a survivor (and her referrals' history) look `years` old."""
    await _sql(engine, "UPDATE survivor SET created_at = now() - make_interval(days => :d) WHERE id = :id",
               d=int(years * 365.25), id=_uuid(survivor_id))
    await _sql(engine, "UPDATE referral SET updated_at = now() - make_interval(days => :d) WHERE survivor_id = :id",
               d=int(years * 365.25), id=_uuid(survivor_id))
    await _sql(engine, "UPDATE referral_status_change SET at = now() - make_interval(days => :d) "
               "WHERE referral_id IN (SELECT id FROM referral WHERE survivor_id = :id)",
               d=int(years * 365.25), id=_uuid(survivor_id))


async def test_retention_lists_exactly_what_is_due_and_applies_only_with_apply(
        factory: Factory, operator: dict[str, Any], owner_engine: AsyncEngine) -> None:
    net = await network(factory)
    manager, supervisor = net.token("manager"), net.token("supervisor")
    never_referred = await register_survivor(factory, manager)
    closed_long_ago = (await _story(factory, net, "Closed", open_referral=False)).survivor_id
    closed_last_year = (await _story(factory, net, "Recent", open_referral=False)).survivor_id
    still_open = (await _story(factory, net, "Open")).survivor_id
    held = await register_survivor(factory, manager)
    waited = await register_survivor(factory, manager)
    for survivor_id, years in ((never_referred["id"], 8), (closed_long_ago, 8), (closed_last_year, 1),
                               (still_open, 10), (held["id"], 8)):
        await _backdate(owner_engine, survivor_id, years=years)
    for survivor_id in (held["id"], waited["id"]):
        body = await factory.gql(supervisor, HOLD, {"input": {"survivorId": survivor_id, "reason": "INVESTIGATION"}})
        assert body["data"]["placeLegalHold"]["userErrors"] == []
    body = await factory.gql(supervisor, ERASE, {"input": {"survivorId": waited["id"], "reason": "SUBJECT_REQUEST"}})
    assert body["data"]["requestSurvivorErasure"]["erasure"]["status"] == "WAITING_FOR_LEGAL_HOLD"
    body = await factory.gql(supervisor, LIFT, {"input": {"survivorId": waited["id"],
                                                          "reason": "PROCEEDINGS_CONCLUDED"}})
    assert body["data"]["liftLegalHold"]["userErrors"] == []
    mine = {never_referred["id"], closed_long_ago, closed_last_year, still_open, held["id"], waited["id"]}
    before = await _sql(owner_engine, "SELECT count(*) FROM survivor WHERE erased_at IS NULL")

    code, stdout, stderr = await _run(operator, "retention", "run", "--years", "5", "--json")
    assert code == 0, stderr
    plan = json.loads(stdout)
    assert plan["applied"] is False and plan["erased"] == 0
    listed = {item["survivor"]: item["reason"] for item in plan["erase"] if item["survivor"] in mine}
    assert listed == {never_referred["id"]: "RETENTION_EXPIRED", closed_long_ago: "RETENTION_EXPIRED",
                      waited["id"]: "SUBJECT_REQUEST"}
    assert {i["survivor"]: i["reason"] for i in plan["skipped"] if i["survivor"] in mine} == {held["id"]: "LEGAL_HOLD"}
    assert set(plan["erase"][0]) == {"survivor", "survivorUuid", "organization", "reason",
                                     "lastClosedAt"}  # ids and reasons only
    assert await _sql(owner_engine, "SELECT count(*) FROM survivor WHERE erased_at IS NULL") == before

    code, stdout, stderr = await _run(operator, "retention", "run", "--years", "5", "--apply", "--json")
    assert code == 0, stderr
    erased = {row.id for row in await _sql(owner_engine, "SELECT id FROM survivor WHERE erased_at IS NOT NULL "
                                           "AND id = ANY(:ids)", ids=[_uuid(s) for s in mine])}
    assert erased == {_uuid(never_referred["id"]), _uuid(closed_long_ago), _uuid(waited["id"])}
    reasons = await _sql(owner_engine, "SELECT erasure_reason FROM survivor WHERE id = :id", id=_uuid(waited["id"]))
    assert reasons[0].erasure_reason == "SUBJECT_REQUEST"
    code, stdout, _ = await _run(operator, "retention", "run", "--years", "5")
    assert code == 0 and "would erase" in stdout


async def test_audit_report_answers_who_saw_her_record_and_what_a_client_read(
        factory: Factory, operator: dict[str, Any]) -> None:
    net = await network(factory)
    story = await _story(factory, net, "Breach")
    other = await register_survivor(factory, net.token("manager"))
    consent = await record_consent(factory, net.token("manager"), other["id"], net.partner.gid)
    referral = await create_referral(factory, net.token("manager"), other["id"], net.partner.gid, consent["id"])
    accepted = await act(factory, net.token("coordinator"), "acceptReferral", "ReferralActionInput",
                         referralId=referral["id"])
    assert accepted["userErrors"] == []

    code, stdout, stderr = await _run(operator, "audit", "report", "--survivor", story.survivor_id, "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    actors = {w["actor"]: w for w in report["byActor"]}
    assert actors[net.counselor.gid]["reads"] >= 1  # the counselor read her identity
    assert net.manager.gid in actors and net.coordinator.gid in actors
    assert report["survivors"] == [story.survivor_id]
    assert story.words["legalName"] not in stdout

    code, stdout, stderr = await _run(operator, "audit", "report", "--actor", net.coordinator.email, "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert set(report["survivors"]) == {story.survivor_id, other["id"]}
    assert all(r["actor"] == net.coordinator.gid for r in report["rows"])

    code, stdout, stderr = await _run(operator, "audit", "report", "--client", "nobody-" + secrets.token_hex(3),
                                      "--since", "2026-01-01")
    assert code == 0 and stdout.startswith("0 audit events"), stderr
    code, _, stderr = await _run(operator, "audit", "report", "--actor", "nobody@example.org")
    assert code == 2 and "--actor" in stderr
    code, _, stderr = await _run(operator, "audit", "report", "--client", "x", "--since", "yesterday")
    assert code == 2 and "--since" in stderr


async def test_the_worker_applies_retention_as_the_runtime_role_and_nothing_else_may(
        factory: Factory, owner_engine: AsyncEngine, database_urls: DatabaseUrls, settings: Settings) -> None:
    net = await network(factory)
    old = (await _story(factory, net, "WorkerOld", open_referral=False)).survivor_id
    await _backdate(owner_engine, old, years=30)
    engine = make_engine(database_urls.app, pool_size=1, application_name="pamoja-test-retention")
    try:
        cli = Cli(settings=settings.model_copy(update={"retention_years": 20}), urls=database_urls)
        assert await retention_once(cli, engine) >= 1
        erased = await _sql(owner_engine, "SELECT erased_at, erasure_reason FROM survivor WHERE id = :id",
                            id=_uuid(old))
        assert erased[0].erased_at is not None and erased[0].erasure_reason == "RETENTION_EXPIRED"
        audit = await _sql(owner_engine, "SELECT actor FROM audit_event WHERE record_id = :id AND action = 'erase'",
                           id=old)
        assert [a.actor for a in audit] == ["system:retention"]
        # the runtime role without the worker's mark (a request, say) may not list or erase across organizations
        async with engine.begin() as connection:
            with pytest.raises(DBAPIError):
                await connection.execute(text("SELECT * FROM retention_due(now(), ARRAY['REQUESTED'])"))
        other = await network(factory)
        victim = await register_survivor(factory, other.token("manager"))
        async with engine.begin() as connection:
            await connection.execute(text("SELECT set_config('app.organization_id', :org, true)"),
                                     {"org": str(net.ngo.id)})
            with pytest.raises(DBAPIError):
                await connection.execute(text("SELECT * FROM erase_survivor(:id, 'SUBJECT_REQUEST', ARRAY['X'])"),
                                         {"id": _uuid(victim["id"])})
    finally:
        await engine.dispose()
    still = await _sql(owner_engine, "SELECT erased_at FROM survivor WHERE id = :id", id=_uuid(victim["id"]))
    assert still[0].erased_at is None
