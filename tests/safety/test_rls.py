"""Row-level security as the database's own backstop (security.md §3), tested as the runtime role."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import RowSecurityContext, transaction
from tests.factories import Factory
from tests.flows import network, referred_case

SURVIVOR_TABLES = ("survivor", "survivor_identity", "survivor_key", "consent", "referral", "referral_status_change",
                   "counseling_session", "care_goal", "goal_progress", "milestone", "assessment", "idempotency_record")


async def test_the_runtime_role_is_not_privileged_and_owns_nothing(app_engine: AsyncEngine) -> None:
    async with app_engine.connect() as connection:
        role = (await connection.execute(text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"))).one()
        owned = (await connection.execute(text(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE r.rolname = current_user AND c.relkind = 'r'"))).scalar_one()
    assert (role.rolsuper, role.rolbypassrls) == (False, False)
    assert owned == 0


async def test_every_survivor_table_has_forced_row_level_security(owner_engine: AsyncEngine) -> None:
    async with owner_engine.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = ANY(:names) AND relkind = 'r'"), {"names": list(SURVIVOR_TABLES)})).all()
    assert {r.relname: (r.relrowsecurity, r.relforcerowsecurity) for r in rows} == {
        name: (True, True) for name in SURVIVOR_TABLES}


async def _count(engine: AsyncEngine, context: RowSecurityContext, sql: str, **params: object) -> int:
    async with transaction(engine, context) as db:
        return int((await db.execute(text(sql), params)).scalar_one())


async def test_without_a_setting_the_database_returns_no_rows(factory: Factory, app_engine: AsyncEngine) -> None:
    net = await network(factory)
    await referred_case(factory, net)
    for table in ("survivor", "referral", "consent", "survivor_identity"):
        assert await _count(app_engine, RowSecurityContext(), f"SELECT count(*) FROM {table}") == 0  # noqa: S608


async def test_with_the_app_filter_removed_another_organization_sees_nothing(
    factory: Factory, app_engine: AsyncEngine
) -> None:
    """Raw SQL with no WHERE at all, as a different NGO: the database alone filters."""
    net = await network(factory)
    case = await referred_case(factory, net, accept=True)
    outsider = await factory.ngo()
    other_partner = await factory.org()
    referral_id = case.referral["id"]
    for org in (outsider, other_partner):
        context = RowSecurityContext(organization_id=str(org.id))
        for table in ("survivor", "survivor_identity", "survivor_key", "consent", "referral",
                      "referral_status_change"):
            assert await _count(app_engine, context, f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608
    own = RowSecurityContext(organization_id=str(net.ngo.id))
    assert await _count(app_engine, own, "SELECT count(*) FROM referral") == 1
    partner = RowSecurityContext(organization_id=str(net.partner.id))
    assert await _count(app_engine, partner, "SELECT count(*) FROM referral") == 1
    assert referral_id


async def test_a_partner_cannot_see_a_draft_even_with_raw_sql(factory: Factory, app_engine: AsyncEngine) -> None:
    net = await network(factory)
    from tests.flows import create_referral, record_consent, register_survivor

    survivor = await register_survivor(factory, net.token("manager"))
    consent = await record_consent(factory, net.token("manager"), survivor["id"], net.partner.gid)
    await create_referral(factory, net.token("manager"), survivor["id"], net.partner.gid, consent["id"], draft=True)
    partner = RowSecurityContext(organization_id=str(net.partner.id))
    assert await _count(app_engine, partner, "SELECT count(*) FROM referral") == 0
    assert await _count(app_engine, partner, "SELECT count(*) FROM survivor") == 0


async def test_writing_into_another_organization_is_refused(factory: Factory, app_engine: AsyncEngine) -> None:
    net = await network(factory)
    outsider = await factory.ngo()
    context = RowSecurityContext(organization_id=str(outsider.id))
    with pytest.raises((ProgrammingError, DBAPIError), match="row-level security"):
        async with transaction(app_engine, context) as db:
            await db.execute(text(
                "INSERT INTO survivor (id, organization_id, pseudonym, sex, risk_level) "
                "VALUES (:id, :org, 'x', 'FEMALE', 'LOW')"), {"id": uuid.uuid4(), "org": net.ngo.id})


async def test_an_update_cannot_move_a_row_to_another_organization(factory: Factory, app_engine: AsyncEngine) -> None:
    net = await network(factory)
    await referred_case(factory, net)
    outsider = await factory.ngo()
    context = RowSecurityContext(organization_id=str(net.ngo.id))
    with pytest.raises((ProgrammingError, DBAPIError), match="row-level security"):
        async with transaction(app_engine, context) as db:
            await db.execute(text("UPDATE survivor SET organization_id = :other WHERE organization_id = :own"),
                             {"other": outsider.id, "own": net.ngo.id})


async def test_the_setting_does_not_leak_to_the_next_transaction_on_a_pooled_connection(
    factory: Factory, database_urls: object
) -> None:
    """pool_size=1: the second transaction reuses the connection and must see the setting empty."""
    from db.engine import make_engine

    net = await network(factory)
    await referred_case(factory, net)
    engine = make_engine(database_urls.app, pool_size=1)  # type: ignore[attr-defined]
    try:
        with_org = RowSecurityContext(organization_id=str(net.ngo.id))
        assert await _count(engine, with_org, "SELECT count(*) FROM survivor") == 1
        async with engine.connect() as connection:
            setting = (await connection.execute(text("SELECT current_setting('app.organization_id', true)"))).scalar()
            leaked = (await connection.execute(text("SELECT count(*) FROM survivor"))).scalar_one()
        assert setting in (None, "")
        assert leaked == 0
    finally:
        await engine.dispose()


async def test_the_runtime_role_cannot_delete_records_or_touch_the_audit_trail(
    factory: Factory, app_engine: AsyncEngine
) -> None:
    net = await network(factory)
    await referred_case(factory, net)
    context = RowSecurityContext(organization_id=str(net.ngo.id))
    for statement in ("DELETE FROM survivor", "DELETE FROM referral_status_change",
                      "UPDATE audit_event SET actor = 'x'", "DELETE FROM audit_event", "TRUNCATE audit_event"):
        with pytest.raises((ProgrammingError, DBAPIError), match="permission denied"):
            async with transaction(app_engine, context) as db:
                await db.execute(text(statement))


async def test_a_temporary_table_cannot_stand_in_for_a_table_inside_a_definer_function(
    factory: Factory, app_engine: AsyncEngine, owner_engine: AsyncEngine
) -> None:
    """The API's role may make temporary objects (db/one_call.py does). A temporary `survivor` claiming
    another NGO's survivor for the caller's organization must not get her records' ids out of
    `subject_record_ids`, which runs as the owner: its search path puts `pg_temp` last (migration 0015)."""
    net = await network(factory)
    await referred_case(factory, net)
    async with owner_engine.connect() as connection:
        survivor = (await connection.execute(text("SELECT id FROM survivor WHERE organization_id = :org"),
                                             {"org": net.ngo.id})).scalar_one()
        configs = (await connection.execute(text(
            "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.prosecdef AND n.nspname = 'public'"))).all()
    outsider = RowSecurityContext(organization_id=str((await factory.ngo()).id))
    with pytest.raises((ProgrammingError, DBAPIError), match="outside the caller"):
        async with transaction(app_engine, outsider) as db:
            await db.execute(text("CREATE TEMPORARY TABLE survivor (id uuid, organization_id uuid) ON COMMIT DROP"))
            await db.execute(text("INSERT INTO pg_temp.survivor VALUES (:id, :org)"),
                             {"id": survivor, "org": outsider.organization_id})
            await db.execute(text("SELECT subject_record_ids(:id)"), {"id": survivor})
    assert configs and all(any(c.replace(" ", "") == "search_path=pg_catalog,public,pg_temp" for c in config or ())
                           for _, config in configs), configs
