"""Encryption at rest: envelope AES-256-GCM per survivor, bound to table/column/row, rotatable."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pgserver
import pytest
from sqlalchemy import text

from db.crypto import (
    DecryptionFailed,
    MasterKeys,
    blind_index,
    decrypt_field,
    encrypt_field,
    new_data_key,
)
from db.engine import Db, make_engine
from db.keyring import keys_still_on, rotate_master
from db.migrate import upgrade
from db.survivors import SqlSurvivors
from db.urls import plain
from domain.ports import NewSurvivor
from tests.conftest import create_database, drop_database
from tests.factories import Factory
from tests.flows import network, register_survivor


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_same_plaintext_encrypts_differently_and_round_trips() -> None:
    key = new_data_key()
    a = encrypt_field(key, "+254712345678", table="survivor_identity", column="phone", row_id="r1")
    b = encrypt_field(key, "+254712345678", table="survivor_identity", column="phone", row_id="r1")
    assert a != b
    assert decrypt_field(key, a, table="survivor_identity", column="phone", row_id="r1") == "+254712345678"


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


async def test_a_database_dump_holds_no_identifying_plaintext(factory: Factory, database_urls: object) -> None:
    net = await network(factory)
    name = f"Zawadi Chebet {secrets.token_hex(4)}"
    phone = f"+2547{secrets.randbelow(10**8):08d}"
    location = f"Behind the {secrets.token_hex(4)} kiosk, Kikambala"
    survivor = await register_survivor(factory, net.token("manager"), legalName=name, phone=phone,
                                       location=location, guardianName=f"Baba {secrets.token_hex(4)}")
    pg_dump = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    command = [str(pg_dump), "--data-only", plain(database_urls.owner)]  # type: ignore[attr-defined]
    dump = (await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120,
                                    check=True)).stdout
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
