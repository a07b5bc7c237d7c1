"""Configuration: production refuses development defaults in one message; URLs and JSON settings parse.

Settings are read from the environment the way a deployment sets them, so each test starts from an
environment with no PAMOJA_* variable and no DATABASE_URL.
"""

from __future__ import annotations

import base64
import secrets

import pytest
from pydantic import ValidationError

from config.settings import DEV_BLIND_INDEX_KEY, DEV_MASTER_KEYS, Settings
from db.urls import to_async_url, with_role

PROBLEM_NAMES = ("PAMOJA_MASTER_KEYS", "PAMOJA_BLIND_INDEX_KEY", "PAMOJA_GRAPHIQL", "DATABASE_URL",
                 "PAMOJA_PUBLIC_URL")


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("PAMOJA_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def production(env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A complete, acceptable production environment; tests break one thing at a time."""
    env.setenv("PAMOJA_ENV", "production")
    env.setenv("PAMOJA_MASTER_KEYS", f"k2:{_key()},k1:{_key()}")
    env.setenv("PAMOJA_BLIND_INDEX_KEY", _key())
    env.setenv("DATABASE_URL", "postgresql://pamoja_app:pw@db:5432/pamoja")
    env.setenv("PAMOJA_PUBLIC_URL", "https://pamoja.example.org/")
    return env


def _refusal() -> str:
    with pytest.raises(ValidationError) as caught:
        Settings()
    errors = caught.value.errors()
    assert len(errors) == 1, "every problem belongs in one message"
    message = str(errors[0]["msg"])
    assert "refusing to start in production" in message
    return message


def test_development_needs_nothing(env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.env == "development" and settings.database_url is None
    assert settings.graphiql_enabled and not settings.is_production


def test_a_complete_production_configuration_starts(production: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.is_production and not settings.graphiql_enabled
    assert settings.public_url == settings.issuer == "https://pamoja.example.org"


def test_production_with_every_development_default_names_each_problem_once(env: pytest.MonkeyPatch) -> None:
    env.setenv("PAMOJA_ENV", "production")
    env.setenv("PAMOJA_GRAPHIQL", "true")
    message = _refusal()
    for name in PROBLEM_NAMES:
        assert message.count(name) == 1, f"{name} missing or repeated in: {message}"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PAMOJA_MASTER_KEYS", None),
        ("PAMOJA_BLIND_INDEX_KEY", None),
        ("PAMOJA_GRAPHIQL", "true"),
        ("DATABASE_URL", None),
        ("PAMOJA_PUBLIC_URL", "http://pamoja.example.org"),
    ],
)
def test_production_refuses_each_development_default_alone(
    production: pytest.MonkeyPatch, variable: str, value: str | None
) -> None:
    if value is None:
        production.delenv(variable)
    else:
        production.setenv(variable, value)
    message = _refusal()
    assert [name for name in PROBLEM_NAMES if name in message] == [variable]


# The published development keys, as bytes: production must refuse them however they are written.
DEV_MASTER_TEXT = DEV_MASTER_KEYS.partition(":")[2]
DEV_MASTER = base64.urlsafe_b64decode(DEV_MASTER_TEXT)
DEV_BLIND = base64.urlsafe_b64decode(DEV_BLIND_INDEX_KEY)
REAL = _key()


def _spellings(key: bytes) -> dict[str, str]:
    """Every way a 32-byte key can be written that the key parsers read as those same bytes."""
    return {
        "urlsafe": base64.urlsafe_b64encode(key).decode(),
        "urlsafe-unpadded": base64.urlsafe_b64encode(key).decode().rstrip("="),
        "standard": base64.b64encode(key).decode(),
        "standard-unpadded": base64.b64encode(key).decode().rstrip("="),
    }


DEVELOPMENT_MASTER_KEYS = {
    "leading-space": " " + DEV_MASTER_KEYS,
    "trailing-newline": DEV_MASTER_KEYS + "\n",
    "another-id": f"k1:{DEV_MASTER_TEXT}",
    "appended-after-a-real-key": f"k2:{REAL},{DEV_MASTER_KEYS}",
    "appended-with-spaces": f"k2:{REAL} , dev-1 : {DEV_MASTER_TEXT} ",
    "the-blind-index-default": f"k1:{DEV_BLIND_INDEX_KEY}",
    **{f"{name}-under-another-id": f"k2:{REAL},prod:{text}" for name, text in _spellings(DEV_MASTER).items()},
}
DEVELOPMENT_BLIND_INDEX_KEYS = {
    "leading-space": " " + DEV_BLIND_INDEX_KEY,
    "trailing-newline": DEV_BLIND_INDEX_KEY + "\n",
    "hex": DEV_BLIND.hex(),
    "hex-upper-case": DEV_BLIND.hex().upper(),
    "the-master-default": DEV_MASTER_TEXT,
    **_spellings(DEV_BLIND),
}


@pytest.mark.parametrize("value", DEVELOPMENT_MASTER_KEYS.values(), ids=DEVELOPMENT_MASTER_KEYS.keys())
def test_production_refuses_a_development_master_key_in_any_spelling_anywhere_in_the_list(
    production: pytest.MonkeyPatch, value: str,
) -> None:
    production.setenv("PAMOJA_MASTER_KEYS", value)
    message = _refusal()
    assert [name for name in PROBLEM_NAMES if name in message] == ["PAMOJA_MASTER_KEYS"]
    assert "development key" in message and "pamoja keys generate" in message
    assert DEV_MASTER_TEXT.rstrip("=") not in message and REAL.rstrip("=") not in message


@pytest.mark.parametrize("value", DEVELOPMENT_BLIND_INDEX_KEYS.values(), ids=DEVELOPMENT_BLIND_INDEX_KEYS.keys())
def test_production_refuses_a_development_blind_index_key_in_any_spelling(
    production: pytest.MonkeyPatch, value: str,
) -> None:
    production.setenv("PAMOJA_BLIND_INDEX_KEY", value)
    message = _refusal()
    assert [name for name in PROBLEM_NAMES if name in message] == ["PAMOJA_BLIND_INDEX_KEY"]
    assert "development key" in message and "pamoja keys generate" in message
    assert value.strip().rstrip("=") not in message


SHORT = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()
MALFORMED_KEYS = [
    ("PAMOJA_MASTER_KEYS", f"k1:{SHORT}"),
    ("PAMOJA_MASTER_KEYS", f"k2:{REAL},k1:{SHORT}"),
    ("PAMOJA_MASTER_KEYS", f"k1:{base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()}"),
    ("PAMOJA_MASTER_KEYS", f"k1:{secrets.token_bytes(32).hex()}"),
    ("PAMOJA_MASTER_KEYS", f"k1:{REAL[:20]}!{REAL[20:]}"),
    ("PAMOJA_MASTER_KEYS", f"k1:{REAL},k1:{_key()}"),
    ("PAMOJA_MASTER_KEYS", f"k1:{REAL},"),
    ("PAMOJA_MASTER_KEYS", REAL),
    ("PAMOJA_MASTER_KEYS", ""),
    ("PAMOJA_BLIND_INDEX_KEY", SHORT),
    ("PAMOJA_BLIND_INDEX_KEY", secrets.token_bytes(16).hex()),
    ("PAMOJA_BLIND_INDEX_KEY", "correct horse battery staple"),
    ("PAMOJA_BLIND_INDEX_KEY", ""),
]


@pytest.mark.parametrize("environment", ["development", "test", "production"])
@pytest.mark.parametrize(("variable", "value"), MALFORMED_KEYS)
def test_short_or_malformed_keys_are_refused_in_every_environment(
    production: pytest.MonkeyPatch, environment: str, variable: str, value: str,
) -> None:
    production.setenv("PAMOJA_ENV", environment)
    production.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    [error] = caught.value.errors()
    message = str(error["msg"])
    assert [name for name in PROBLEM_NAMES if name in message] == [variable]
    assert "pamoja keys generate" in message
    for secret in (REAL.rstrip("="), SHORT.rstrip("=")):
        assert secret not in message


@pytest.mark.parametrize("spelling", ["urlsafe", "urlsafe-unpadded", "standard", "standard-unpadded", "hex"])
def test_production_accepts_real_keys_in_each_accepted_spelling(production: pytest.MonkeyPatch,
                                                                spelling: str) -> None:
    master, blind = secrets.token_bytes(32), secrets.token_bytes(32)
    write = (lambda key: key.hex()) if spelling == "hex" else (lambda key: _spellings(key)[spelling])
    if spelling != "hex":  # master keys are base64 only; a blind-index key is any text of 32 bytes or more
        production.setenv("PAMOJA_MASTER_KEYS", f" k2:{write(master)} , k1:{REAL}\n")
    production.setenv("PAMOJA_BLIND_INDEX_KEY", write(blind))
    assert Settings().is_production


def test_the_refusal_does_not_echo_secret_values(env: pytest.MonkeyPatch) -> None:
    key = _key()
    env.setenv("PAMOJA_ENV", "production")
    env.setenv("PAMOJA_BLIND_INDEX_KEY", key)
    message = _refusal()
    assert key not in message
    with pytest.raises(ValidationError) as caught:  # pydantic's own text shows the input unless told not to
        Settings()
    assert key[-12:] not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://amina:p%40ss@db.example.org:6543/pamoja",
        "postgres://amina:p%40ss@db.example.org:6543/pamoja",
        "postgresql+asyncpg://amina:p%40ss@db.example.org:6543/pamoja",
    ],
)
def test_database_url_accepts_the_usual_forms(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("DATABASE_URL", url)
    setting = Settings().database_url
    assert setting == url
    parsed = to_async_url(setting)
    assert parsed.drivername == "postgresql+asyncpg"
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database) == (
        "amina", "p@ss", "db.example.org", 6543, "pamoja")


def test_the_runtime_url_is_the_same_database_as_another_role() -> None:
    app = to_async_url(with_role("postgres://owner:secret@db:5432/pamoja", "pamoja_app", "app pw/@"))
    assert (app.username, app.password, app.host, app.port, app.database) == (
        "pamoja_app", "app pw/@", "db", 5432, "pamoja")


def test_pamoja_database_url_is_an_alias(env: pytest.MonkeyPatch) -> None:
    env.setenv("PAMOJA_DATABASE_URL", "postgresql://u@h/d")
    assert Settings().database_url == "postgresql://u@h/d"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('[{"issuer": "https://login.ngo.example", "jwks_url": "https://login.ngo.example/jwks"}]',
         [{"issuer": "https://login.ngo.example", "jwks_url": "https://login.ngo.example/jwks"}]),
        ("[]", []),
        ("", []),
        ("   ", []),
    ],
)
def test_trusted_issuers_are_read_as_json(env: pytest.MonkeyPatch, value: str, expected: list[dict[str, str]]) -> None:
    env.setenv("PAMOJA_TRUSTED_ISSUERS", value)
    assert Settings().trusted_issuers == expected


@pytest.mark.parametrize("value", ["not json", '{"issuer": "https://x"}', '["https://x"]'])
def test_malformed_trusted_issuers_are_a_validation_error(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("PAMOJA_TRUSTED_ISSUERS", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert {error["loc"][0] for error in caught.value.errors()} == {"trusted_issuers"}
