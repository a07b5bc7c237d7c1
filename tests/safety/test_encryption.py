"""Encryption at rest: envelope AES-256-GCM per survivor, bound to table/column/row, rotatable."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pgserver
import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from db.crypto import (
    DataKeys,
    DecryptionFailed,
    MasterKeys,
    blind_index,
    decode_key,
    decrypt_field,
    encrypt_field,
    new_data_key,
)
from db.engine import Db, make_engine
from db.keyring import keys_still_on, rotate_master
from db.migrate import downgrade, upgrade
from db.survivors import SqlSurvivors, key_aad
from db.urls import plain
from domain.ids import from_global_id
from domain.ports import NewSurvivor
from tests.conftest import create_database, drop_database
from tests.factories import Factory
from tests.flows import (
    CREATE_REFERRAL,
    SEEDED_PII,
    WITHDRAW_CONSENT,
    Network,
    act,
    create_referral,
    network,
    record_consent,
    register_survivor,
)


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_same_plaintext_encrypts_differently_and_round_trips() -> None:
    key = new_data_key()
    a = encrypt_field(key, "+254712345678", table="survivor_identity", column="phone", row_id="r1")
    b = encrypt_field(key, "+254712345678", table="survivor_identity", column="phone", row_id="r1")
    assert a != b
    assert decrypt_field(key, a, table="survivor_identity", column="phone", row_id="r1") == "+254712345678"


class CountingMaster(MasterKeys):
    """Master keys that count their unwraps."""

    unwraps: list[str]

    def unwrap(self, key_id: str, wrapped: bytes, *, aad: str) -> bytes:
        self.unwraps.append(aad)
        return super().unwrap(key_id, wrapped, aad=aad)


def _sealed_for(master: MasterKeys, survivor: str, texts: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A survivor's wrapped key as a compiled read brings it, and each text sealed as its marker carries it."""
    data_key = new_data_key()
    master_id, wrapped = master.wrap(data_key, aad=key_aad(uuid.UUID(survivor)))
    sealed = {aad: base64.b64encode(encrypt_field(data_key, value, table="milestone", column="title", row_id=aad)
                                    or b"").decode() for aad, value in texts.items()}
    return f"{master_id} {base64.b64encode(wrapped).decode()}", sealed


def _survivor_aad(survivor: str) -> str:
    return key_aad(uuid.UUID(survivor))


def test_data_keys_unwrap_each_survivors_key_once_and_only_for_the_key_brought() -> None:
    master = CountingMaster(MasterKeys.parse(f"k1:{_key()}").keys)
    object.__setattr__(master, "unwraps", [])
    keys = DataKeys(master, size=2)
    amina, baraka, chausiku = (str(uuid.uuid4()) for _ in range(3))
    wrapped, sealed = _sealed_for(master, amina, {"m1": "First session attended", "m2": "Back at school"})
    aad = {name: f"milestone.title:{name}" for name in sealed}
    texts = {"m1": "First session attended", "m2": "Back at school"}
    for name in ("m1", "m2", "m1"):
        assert keys.open(amina, wrapped, sealed[name], aad=aad[name], key_aad=_survivor_aad).decode() == texts[name]
    assert len(master.unwraps) == 1  # remembered: one unwrap for three texts
    # Her wrapped key brought as another survivor's: its associated data names her, so it does not open.
    with pytest.raises(DecryptionFailed):
        keys.open(baraka, wrapped, sealed["m1"], aad=aad["m1"], key_aad=_survivor_aad)
    # Her key re-wrapped (a master key rotation): the new wrapped key is unwrapped, not matched to the old.
    data_key = master.unwrap(wrapped.split(" ")[0], base64.b64decode(wrapped.split(" ")[1]), aad=_survivor_aad(amina))
    rewrapped = master.wrap(data_key, aad=_survivor_aad(amina))
    rewrapped_text = f"{rewrapped[0]} {base64.b64encode(rewrapped[1]).decode()}"
    master.unwraps.clear()
    assert keys.open(amina, rewrapped_text, sealed["m2"], aad=aad["m2"], key_aad=_survivor_aad) == b"Back at school"
    assert len(master.unwraps) == 1
    # Bounded: a third key pushes out the least recently used (amina's first wrapping).
    other, other_sealed = _sealed_for(master, chausiku, {"m3": "Sleeps through the night"})
    keys.open(chausiku, other, other_sealed["m3"], aad="milestone.title:m3", key_aad=_survivor_aad)
    master.unwraps.clear()
    keys.open(amina, wrapped, sealed["m1"], aad=aad["m1"], key_aad=_survivor_aad)
    assert len(master.unwraps) == 1
    # A text sealed for one row does not open as another's; a broken marker is a decryption failure.
    with pytest.raises(DecryptionFailed):
        keys.open(amina, wrapped, sealed["m1"], aad=aad["m2"], key_aad=_survivor_aad)
    with pytest.raises(DecryptionFailed):
        keys.open(amina, wrapped, "not base64!", aad=aad["m1"], key_aad=_survivor_aad)


@pytest.mark.parametrize("size", [0, 1])
def test_data_keys_sized_by_the_setting_open_the_same_and_remember_at_most_that_many(size: int) -> None:
    """PAMOJA_DATA_KEY_CACHE_SIZE: 0 remembers nothing (every open unwraps), 1 only the last survivor's key;
    what opens is the same either way."""
    master = CountingMaster(MasterKeys.parse(f"k1:{_key()}").keys)
    object.__setattr__(master, "unwraps", [])
    settings = Settings(env="test", data_key_cache_size=size)
    keys = DataKeys(master, size=settings.data_key_cache_size)
    amina, baraka = str(uuid.uuid4()), str(uuid.uuid4())
    hers, her_texts = _sealed_for(master, amina, {"m1": "First session attended"})
    his, his_texts = _sealed_for(master, baraka, {"m2": "Back at school"})
    for survivor, wrapped, sealed, name, expected in ((amina, hers, her_texts, "m1", "First session attended"),
                                                  (amina, hers, her_texts, "m1", "First session attended"),
                                                  (baraka, his, his_texts, "m2", "Back at school"),
                                                  (amina, hers, her_texts, "m1", "First session attended")):
        opened = keys.open(survivor, wrapped, sealed[name], aad=f"milestone.title:{name}", key_aad=_survivor_aad)
        assert opened.decode() == expected
    assert len(master.unwraps) == (4 if size == 0 else 3)


def test_a_negative_data_key_cache_size_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(env="test", data_key_cache_size=-1)
    assert "data_key_cache_size" in str(refused.value)


def test_ciphertext_moved_to_another_row_or_column_does_not_decrypt() -> None:
    key = new_data_key()
    blob = encrypt_field(key, "Amina", table="survivor_identity", column="legal_name", row_id="r1")
    with pytest.raises(DecryptionFailed):
        decrypt_field(key, blob, table="survivor_identity", column="legal_name", row_id="r2")
    with pytest.raises(DecryptionFailed):
        decrypt_field(key, blob, table="survivor_identity", column="guardian_name", row_id="r1")


def test_a_flipped_bit_is_detected() -> None:
    key = new_data_key()
    blob = bytearray(encrypt_field(key, "Amina", table="t", column="c", row_id=1) or b"")
    blob[-1] ^= 1
    with pytest.raises(DecryptionFailed):
        decrypt_field(key, bytes(blob), table="t", column="c", row_id=1)


def test_blind_index_normalises_and_differs_per_column() -> None:
    key = os.urandom(32)
    assert blind_index(key, "phone", "Amina  ") == blind_index(key, "phone", "amina")
    assert blind_index(key, "phone", "x") != blind_index(key, "guardian_phone", "x")


def test_master_keys_parse_and_refuse_bad_values() -> None:
    keys = MasterKeys.parse(f"k2:{_key()},k1:{_key()}")
    assert keys.current_id == "k2"
    for bad in ("", "nokey", f"k1:{_key()},k1:{_key()}", "k1:c2hvcnQ="):
        with pytest.raises(ValueError):
            MasterKeys.parse(bad)


def test_master_keys_unwrap_with_the_key_named_and_never_show_in_a_repr() -> None:
    old, new = _key(), _key()
    before = MasterKeys.parse(f"k1:{old}")
    data_key = new_data_key()
    key_id, wrapped = before.wrap(data_key, aad="survivor:1")
    both = MasterKeys.parse(f"k2:{new},k1:{old}")
    assert both.unwrap(key_id, wrapped, aad="survivor:1") == data_key  # after a rotation, by the key's id
    with pytest.raises(DecryptionFailed):
        both.unwrap("k2", wrapped, aad="survivor:1")  # another master key
    with pytest.raises(DecryptionFailed):
        both.unwrap(key_id, wrapped, aad="survivor:2")  # another survivor's associated data
    with pytest.raises(DecryptionFailed):
        both.unwrap("k3", wrapped, aad="survivor:1")  # an id no key has
    for shown in (repr(both), str(both), repr([both]), f"{both!r}"):
        assert old not in shown and new not in shown
        assert repr(decode_key(old)) not in shown and repr(decode_key(new)) not in shown


async def test_a_database_dump_holds_no_identifying_plaintext(factory: Factory, database_urls: object) -> None:
    net = await network(factory)
    name = f"Zawadi Chebet {secrets.token_hex(4)}"
    phone = f"+2547{secrets.randbelow(10**8):08d}"
    location = f"Behind the {secrets.token_hex(4)} kiosk, Kikambala"
    survivor = await register_survivor(factory, net.token("manager"), legalName=name, phone=phone,
                                       location=location, guardianName=f"Baba {secrets.token_hex(4)}")
    dump = await _dump(database_urls)
    assert survivor["pseudonym"] in dump  # the dump is real and complete
    for secret in (name, phone, phone.removeprefix("+"), location):
        assert secret not in dump


@pytest.fixture
async def scratch_url(server_url: str) -> AsyncIterator[str]:
    name = f"pamoja_keys_{secrets.token_hex(4)}"
    url = await create_database(server_url, name)
    await asyncio.to_thread(upgrade, url)
    yield url
    await drop_database(server_url, name)


async def test_master_key_rotation_rewraps_without_touching_records(scratch_url: str) -> None:
    old = MasterKeys.parse(f"old:{_key()}")
    engine = make_engine(scratch_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            org = (await connection.execute(text(
                "INSERT INTO organization (name, kind) VALUES ('NGO', 'REFERRING_NGO') RETURNING id"))).scalar_one()
            store = SqlSurvivors(Db(connection), master=old, index_key=os.urandom(32),
                                 now=datetime.now(UTC))
            survivor_id = await store.insert(NewSurvivor(
                pseudonym="P", legal_name="Neema Atieno", birth_year=2010, sex="FEMALE", county="001",
                languages=("sw",), risk_level="LOW", phone="+254711111111", guardian_name=None,
                guardian_phone=None, location=None), organization_id=org, registered_by_id=None)
            before = (await connection.execute(text(
                "SELECT legal_name_enc FROM survivor_identity WHERE survivor_id = :id"), {"id": survivor_id})).scalar()

        both = MasterKeys(keys=(("new", base64.urlsafe_b64decode(_key())), *old.keys))
        async with engine.begin() as connection:
            counts = await rotate_master(connection, both)
            assert counts["survivor_keys"] == 1
            assert await keys_still_on(connection, "old") == 0

        only_new = MasterKeys(keys=both.keys[:1])
        async with engine.begin() as connection:
            store = SqlSurvivors(Db(connection), master=only_new, index_key=os.urandom(32),
                                 now=datetime.now(UTC))
            identity = await store.identity(survivor_id)
            after = (await connection.execute(text(
                "SELECT legal_name_enc FROM survivor_identity WHERE survivor_id = :id"), {"id": survivor_id})).scalar()
        assert identity is not None and identity.legal_name == "Neema Atieno"
        assert after == before
    finally:
        await engine.dispose()


# ----------------------------------------------------------------------------- free text about the child

TEXT_OF_REFERRAL = """query($id: ID!) { node(id: $id) { ... on Referral { reason statusReason outcome
  history { to reason } consent { witness withdrawalReason }
  goals { description history { note } } milestones { title note } } } }"""
GOAL_PROGRESS = """mutation($input: UpdateGoalProgressInput!) { updateGoalProgress(input: $input) {
  goal { id description history { note } } userErrors { field code message } } }"""
MILESTONE = """mutation($input: RecordMilestoneInput!) { recordMilestone(input: $input) {
  milestone { id title note } userErrors { field code message } } }"""
GOAL = """mutation($input: SetCareGoalInput!) { setCareGoal(input: $input) {
  goal { id description } userErrors { field code message } } }"""


@dataclass
class FreeText:
    """A network whose records hold one unique piece of free text in every sealed column."""

    net: Network
    survivor: dict[str, Any]
    texts: dict[str, str]
    consent: str  # global id of a consent in force naming the partner
    completed: str  # global ids of referrals: reason, hold reason, goal, progress note, milestone, outcome
    rejected: str  # rejection reason
    withdrawn: str  # cancelled by the withdrawal of its consent (witness, withdrawal reason)


def _text(label: str) -> str:
    value = f"{label} {secrets.token_hex(5)}"
    SEEDED_PII.append(value)  # tests/conftest.py fails the session if one reaches a log line
    return value


async def _step(factory: Factory, token: str, name: str, input_type: str, **data: Any) -> None:
    payload = await act(factory, token, name, input_type, idempotencyKey=secrets.token_hex(8), **data)
    assert payload["userErrors"] == [], payload


async def free_text_case(factory: Factory) -> FreeText:
    """Every column of free text written through the API as its authors would, with idempotency keys."""
    net = await network(factory)
    t = {name: _text(label) for name, label in (
        ("reason", "Rescued from a bar in Mtwapa, nightmares"), ("witness", "Mwalimu Juma Baraka"),
        ("hold", "Moved to her aunt in Malindi"), ("goal", "Sleep without the light on"),
        ("progress", "Slept through twice this week"), ("title", "Walked to school alone"),
        ("milestone_note", "Proud, told her sister"), ("outcome", "Back in Form 2, living with her aunt"),
        ("rejection", "No counselor who speaks Giriama"), ("withdrawal", "Her uncle found the shelter"),
        ("witness_2", "Pastor Ruth Kahindi"), ("reason_2", "Threatened by the recruiter's cousin"))}
    manager, coordinator, counselor = net.token("manager"), net.token("coordinator"), net.token("counselor")
    survivor = await register_survivor(factory, manager)
    consent = await record_consent(factory, manager, survivor["id"], net.partner.gid, witness=t["witness"])
    completed = await create_referral(factory, manager, survivor["id"], net.partner.gid, consent["id"],
                                      reason=t["reason"])
    rejected = await create_referral(factory, manager, survivor["id"], net.partner.gid, consent["id"])
    await _step(factory, coordinator, "acceptReferral", "ReferralActionInput", referralId=completed["id"])
    await _step(factory, coordinator, "assignCounselor", "AssignCounselorInput", referralId=completed["id"],
                counselorId=net.counselor.gid)
    await _step(factory, counselor, "startReferral", "ReferralActionInput", referralId=completed["id"])
    await _step(factory, counselor, "holdReferral", "ReferralReasonInput", referralId=completed["id"],
                reason=t["hold"])
    await _step(factory, counselor, "resumeReferral", "ReferralActionInput", referralId=completed["id"])
    goal = (await factory.gql(counselor, GOAL, {"input": {"referralId": completed["id"], "domain": "MENTAL_WELLBEING",
                                                          "description": t["goal"],
                                                          "idempotencyKey": secrets.token_hex(8)}})
            )["data"]["setCareGoal"]
    assert goal["userErrors"] == [] and goal["goal"]["description"] == t["goal"], goal
    progress = (await factory.gql(counselor, GOAL_PROGRESS, {"input": {
        "goalId": goal["goal"]["id"], "achievementStatus": "IMPROVING", "note": t["progress"],
        "idempotencyKey": secrets.token_hex(8)}}))["data"]["updateGoalProgress"]
    assert progress["userErrors"] == [] and progress["goal"]["history"][-1]["note"] == t["progress"], progress
    milestone = (await factory.gql(counselor, MILESTONE, {"input": {
        "referralId": completed["id"], "goalId": goal["goal"]["id"], "title": t["title"],
        "note": t["milestone_note"], "achievedOn": datetime.now(UTC).date().isoformat(),
        "idempotencyKey": secrets.token_hex(8)}}))["data"]["recordMilestone"]
    assert milestone["userErrors"] == [] and milestone["milestone"]["title"] == t["title"], milestone
    await _step(factory, counselor, "completeReferral", "CompleteReferralInput", referralId=completed["id"],
                outcome=t["outcome"])
    await _step(factory, coordinator, "rejectReferral", "ReferralReasonInput", referralId=rejected["id"],
                reason=t["rejection"])
    second = await record_consent(factory, manager, survivor["id"], net.partner.gid, witness=t["witness_2"])
    withdrawn = await create_referral(factory, manager, survivor["id"], net.partner.gid, second["id"],
                                      reason=t["reason_2"])
    body = await factory.gql(manager, WITHDRAW_CONSENT, {"input": {
        "consentId": second["id"], "reason": t["withdrawal"], "idempotencyKey": secrets.token_hex(8)}})
    assert body["data"]["withdrawConsent"]["userErrors"] == []
    return FreeText(net=net, survivor=survivor, texts=t, consent=consent["id"], completed=completed["id"],
                    rejected=rejected["id"], withdrawn=withdrawn["id"])


def _row_id(gid: str) -> uuid.UUID:
    found = from_global_id(gid)
    assert found is not None, gid
    return found[1]


async def _dump(database_urls: object) -> str:
    pg_dump = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    command = [str(pg_dump), "--data-only", plain(database_urls.owner)]  # type: ignore[attr-defined]
    return (await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120,
                                    check=True)).stdout


async def test_a_database_dump_holds_no_free_text_about_the_child(factory: Factory, database_urls: object) -> None:
    case = await free_text_case(factory)
    dump = await _dump(database_urls)
    assert case.survivor["pseudonym"] in dump  # the dump is real and complete
    leaked = [name for name, value in case.texts.items() if value in dump or value.encode().hex() in dump]
    assert leaked == [], f"in clear in the dump: {leaked}"


async def test_free_text_round_trips_to_those_allowed_to_read_it(factory: Factory) -> None:
    case = await free_text_case(factory)
    t = case.texts
    for who in ("manager", "coordinator", "counselor"):
        completed = (await factory.gql(case.net.token(who), TEXT_OF_REFERRAL, {"id": case.completed}))["data"]["node"]
        assert completed["reason"] == t["reason"] and completed["outcome"] == t["outcome"], who
        assert completed["statusReason"] is None  # COMPLETED takes no reason; the hold's stays in the history
        assert [h["reason"] for h in completed["history"] if h["to"] == "ON_HOLD"] == [t["hold"]], who
        assert completed["consent"] == {"witness": t["witness"], "withdrawalReason": None}, who
        assert completed["goals"] == [{"description": t["goal"], "history": [{"note": None}, {"note": t["progress"]}]}]
        assert completed["milestones"] == [{"title": t["title"], "note": t["milestone_note"]}], who
    manager = case.net.token("manager")
    rejected = (await factory.gql(manager, TEXT_OF_REFERRAL, {"id": case.rejected}))["data"]["node"]
    assert rejected["statusReason"] == t["rejection"] and rejected["history"][-1]["reason"] == t["rejection"]
    withdrawn = (await factory.gql(manager, TEXT_OF_REFERRAL, {"id": case.withdrawn}))["data"]["node"]
    assert withdrawn["reason"] == t["reason_2"] and withdrawn["statusReason"] == "CONSENT_WITHDRAWN"
    assert withdrawn["consent"] == {"witness": t["witness_2"], "withdrawalReason": t["withdrawal"]}
    # The partner no longer sees the referral whose consent was withdrawn; the other counselor sees
    # nothing of a referral not assigned to her.
    assert (await factory.gql(case.net.token("coordinator"), TEXT_OF_REFERRAL,
                              {"id": case.withdrawn}))["data"]["node"] is None
    assert (await factory.gql(case.net.token("other_counselor"), TEXT_OF_REFERRAL,
                              {"id": case.completed}))["data"]["node"] is None


async def test_free_text_moved_to_another_row_of_the_same_survivor_does_not_open(
    factory: Factory, owner_engine: AsyncEngine
) -> None:
    """Same survivor, same data key: only the associated data (table.column:row id) tells the rows apart."""
    case = await free_text_case(factory)
    t = case.texts
    ids = {"completed": _row_id(case.completed), "rejected": _row_id(case.rejected)}
    async with owner_engine.begin() as connection:
        await connection.execute(text(
            "UPDATE referral SET reason_enc = (SELECT reason_enc FROM referral WHERE id = :source) WHERE id = :target"),
            {"source": ids["completed"], "target": ids["rejected"]})
        await connection.execute(text(
            "UPDATE referral SET status_reason_enc = (SELECT reason_enc FROM referral WHERE id = :source) "
            "WHERE id = :source"), {"source": ids["completed"]})
    manager = case.net.token("manager")
    for gid, field in ((case.rejected, "reason"), (case.completed, "statusReason")):
        body = await factory.gql(manager, f"query($id: ID!) {{ node(id: $id) {{ ... on Referral {{ {field} }} }} }}",
                                 {"id": gid}, expect_errors=True)
        assert body["errors"] and t["reason"] not in json.dumps(body), body
        assert body["data"]["node"] is None or body["data"]["node"][field] is None, body
    # The referral's own columns still open; nothing else was disturbed.
    intact = (await factory.gql(manager, "query($id: ID!) { node(id: $id) { ... on Referral { reason } } }",
                                {"id": case.completed}))["data"]["node"]
    assert intact == {"reason": t["reason"]}


# The free text of each table as migration 0006 found it in clear: (table, row id SQL, survivor SQL, columns).
SEALED_BY_0006 = (
    ("referral", "x.id", "x.survivor_id", ("reason", "status_reason", "outcome")),
    ("referral_status_change", "x.id", "(SELECT survivor_id FROM referral r WHERE r.id = x.referral_id)",
     ("reason",)),
    ("consent", "x.id", "x.survivor_id", ("withdrawal_reason", "witness")),
    ("care_goal", "x.id", "x.survivor_id", ("description",)),
    ("goal_progress", "x.id", "(SELECT survivor_id FROM care_goal g WHERE g.id = x.goal_id)", ("note",)),
    ("milestone", "x.id", "x.survivor_id", ("title", "note")),
)


async def _seed_plaintext(connection: Any, master: MasterKeys) -> dict[tuple[str, str, str], str]:
    """Rows written by the schema of revision 0005: free text in clear, one survivor without a data key
    (as the benchmark's bulk loader wrote them). Returns {(table, column, row id): text}."""
    ngo, partner = [(await connection.execute(text(
        "INSERT INTO organization (name, kind) VALUES (:name, :kind) RETURNING id"),
        {"name": f"Org {secrets.token_hex(3)}", "kind": kind})).scalar_one() for kind in ("REFERRING_NGO", "PARTNER")]
    store = SqlSurvivors(Db(connection), master=master, index_key=os.urandom(32), now=datetime.now(UTC))
    keyed = await store.insert(NewSurvivor(
        pseudonym="P1", legal_name="Neema Atieno", birth_year=2011, sex="FEMALE", county="003", languages=("sw",),
        risk_level="HIGH", phone=None, guardian_name=None, guardian_phone=None, location=None),
        organization_id=ngo, registered_by_id=None)
    keyless = (await connection.execute(text(
        "INSERT INTO survivor (organization_id, pseudonym, sex, risk_level) VALUES (:ngo, 'P2', 'FEMALE', 'LOW') "
        "RETURNING id"), {"ngo": ngo})).scalar_one()
    found: dict[tuple[str, str, str], str] = {}

    async def row(table: str, values: dict[str, Any], texts: dict[str, str]) -> Any:
        columns = {**values, **texts}
        row_id = (await connection.execute(text(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)}) "  # noqa: S608
            "RETURNING id"), columns)).scalar_one()
        found.update({(table, column, str(row_id)): value for column, value in texts.items()})
        return row_id

    for survivor, tag in ((keyed, "keyed"), (keyless, "keyless")):
        consent = await row("consent", {"survivor_id": survivor, "organization_id": ngo, "recipient_id": partner,
                                        "given_by": "GUARDIAN", "status": "WITHDRAWN"},
                            {"witness": f"Witness {tag}", "withdrawal_reason": f"Withdrawn {tag}"})
        referral = await row("referral", {"survivor_id": survivor, "referring_organization_id": ngo,
                                          "receiving_organization_id": partner, "consent_id": consent,
                                          "service": "SHELTER", "priority": "URGENT", "status": "COMPLETED"},
                             {"reason": f"Reason {tag}", "status_reason": f"Status {tag}",
                              "outcome": f"Outcome {tag}"})
        await row("referral_status_change", {"referral_id": referral, "organization_id": ngo,
                                             "to_status": "ON_HOLD", "actor": "test"}, {"reason": f"Hold {tag}"})
        owners = {"survivor_id": survivor, "referral_id": referral, "organization_id": partner,
                  "referring_organization_id": ngo}
        goal = await row("care_goal", {**owners, "domain": "SAFETY", "lifecycle_status": "ACTIVE",
                                       "achievement_status": "IMPROVING"}, {"description": f"Goal {tag}"})
        await row("goal_progress", {"goal_id": goal, "organization_id": partner, "referring_organization_id": ngo,
                                    "achievement_status": "IMPROVING", "lifecycle_status": "ACTIVE",
                                    "actor": "test"}, {"note": f"Progress {tag}"})
        await row("milestone", {**owners, "achieved_on": datetime.now(UTC).date()},
                  {"title": f"Milestone {tag}", "note": f"Milestone note {tag}"})
    return found


async def _columns(connection: Any, table: str) -> set[str]:
    return set((await connection.execute(text(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = :t"),
        {"t": table})).scalars())


async def test_migration_0006_seals_free_text_already_stored_and_its_downgrade_restores_it(server_url: str) -> None:
    name = f"pamoja_0006_{secrets.token_hex(4)}"
    url = await create_database(server_url, name)
    master = MasterKeys.parse(f"m1:{_key()}")
    engine = make_engine(url, pool_size=1)
    try:
        await asyncio.to_thread(upgrade, url, "0005")
        async with engine.begin() as connection:
            stored = await _seed_plaintext(connection, master)

        with pytest.raises(RuntimeError, match="PAMOJA_MASTER_KEYS"):  # text in clear, no key to seal it with
            await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(upgrade, url, master_keys=master)

        sealed: dict[tuple[str, str, str], str | None] = {}
        async with engine.connect() as connection:
            for table, row_id, survivor, columns in SEALED_BY_0006:
                assert not set(columns) & await _columns(connection, table), f"{table} kept a column in clear"
                rows = (await connection.execute(text(
                    f"SELECT {row_id} AS id, k.survivor_id, k.master_key_id, k.wrapped_key, "  # noqa: S608
                    + ", ".join(f"x.{c}_enc" for c in columns)
                    + f" FROM {table} x JOIN survivor_key k ON k.survivor_id = {survivor}"))).all()
                for r in rows:
                    data_key = master.unwrap(r.master_key_id, r.wrapped_key, aad=key_aad(r.survivor_id))
                    for column in columns:
                        sealed[(table, column, str(r.id))] = decrypt_field(
                            data_key, getattr(r, f"{column}_enc"), table=table, column=column, row_id=r.id)
        assert sealed == stored

        await asyncio.to_thread(downgrade, url, "0005", master_keys=master)
        restored: dict[tuple[str, str, str], str] = {}
        async with engine.connect() as connection:
            for table, _, _, columns in SEALED_BY_0006:
                for r in (await connection.execute(text(f"SELECT id, {', '.join(columns)} FROM {table}"))).all():  # noqa: S608
                    restored.update({(table, c, str(r.id)): getattr(r, c) for c in columns})
        assert restored == stored
    finally:
        await engine.dispose()
        await drop_database(server_url, name)


async def test_destroying_the_survivors_data_key_erases_the_free_text_with_the_identity(
    factory: Factory, owner_engine: AsyncEngine
) -> None:
    case = await free_text_case(factory)
    async with owner_engine.begin() as connection:
        await connection.execute(text("UPDATE survivor_key SET destroyed_at = now() WHERE survivor_id = :id"),
                                 {"id": _row_id(case.survivor["id"])})
    for who in ("manager", "counselor"):
        erased = (await factory.gql(case.net.token(who), TEXT_OF_REFERRAL, {"id": case.completed}))["data"]["node"]
        assert erased["reason"] is None and erased["outcome"] is None, who
        assert [h["reason"] for h in erased["history"]] == [None] * len(erased["history"]), who
        assert erased["consent"] == {"witness": None, "withdrawalReason": None}, who
        # A goal or milestone is its text: with the key gone, the records go too.
        assert erased["goals"] == [] and erased["milestones"] == [], who
    # Nothing new can be written about an erased survivor: there is no key to seal it with.
    body = await factory.gql(case.net.token("manager"), CREATE_REFERRAL, {"input": {
        "survivorId": case.survivor["id"], "receivingOrganizationId": case.net.partner.gid, "priority": "URGENT",
        "service": "PSYCHOSOCIAL_COUNSELING", "reason": "Needs a shelter", "consentId": case.consent}})
    refused = body["data"]["createReferral"]
    assert refused["referral"] is None, refused
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["input", "survivorId"], "INVALID")]
