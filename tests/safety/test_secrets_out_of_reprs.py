"""No secret in a repr: a log line, a traceback with its locals or a debugger that prints one of these
records must not carry a key, a token or a password (db.crypto.MasterKeys has its own test in
test_encryption.py). A pure table, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from api.graphql.compiler import Reading
from api.state import AppState
from auth.clients import RegisteredClient
from db.console import SessionRow
from db.engine import DatabaseUrls
from domain.use_cases.staff_admin import PasswordLink

SECRET = "Sentinel-Secret-7f3a"
NOW = datetime(2026, 12, 5, tzinfo=UTC)


def _app_state() -> AppState:
    """AppState builds its caches from its settings after init; only its repr is read here."""
    state = object.__new__(AppState)
    for name, value in {"settings": None, "engine": None, "urls": DatabaseUrls(f"postgresql://o:{SECRET}@h/d",
                                                                                 f"postgresql://a:{SECRET}@h/d"),
                        "master_keys": None, "blind_index_key": SECRET.encode(), "authenticator": None,
                        "refused_reads": None, "data_keys": None}.items():
        setattr(state, name, value)
    return state


RECORDS: dict[str, Any] = {
    "database URLs": DatabaseUrls(owner=f"postgresql://owner:{SECRET}@db/pamoja",
                                  app=f"postgresql://pamoja_app:{SECRET}@db/pamoja"),
    "the app's state": _app_state(),
    "a compiled read's arguments": Reading(principal=None, index_key=SECRET.encode(),  # type: ignore[arg-type]
                                           node_types=frozenset()),
    "a registered client": RegisteredClient(id="T0F1dGhDbGllbnQ6MQ==", client_id="partner-app",
                                            client_secret=SECRET, webhook_secret=SECRET),
    "a password link": PasswordLink(staff_user_id=uuid.uuid4(), token=SECRET, expires_at=NOW),
    "a console session": SessionRow(id_hash=b"\x00", staff_user_id=uuid.uuid4(), csrf_token=SECRET, language="en",
                                    login_state=None, login_verifier=SECRET, access_token=SECRET,
                                    refresh_token=SECRET, access_expires_at=NOW, last_seen_at=NOW, expires_at=NOW),
}


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_a_record_holding_a_secret_never_shows_it_in_a_repr(name: str) -> None:
    record = RECORDS[name]
    for shown in (repr(record), str(record), repr([record]), f"{record!r}"):
        assert SECRET not in shown and repr(SECRET.encode()) not in shown, shown
