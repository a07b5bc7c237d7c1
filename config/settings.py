"""One typed configuration for the whole process, read from PAMOJA_* variables and DATABASE_URL.

Passed explicitly into `create_app(settings)` and the CLI rather than imported as a global, so tests
can build as many differently configured apps as they need.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from limits import parse
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from db.crypto import KEY_BYTES, MasterKeys, decode_key

# Development defaults. They are derived from a public string, so they protect nothing; production
# refuses to start with any of them.
_DEV_SEED = "pamoja-development-only-do-not-use-in-production"


def _dev_key_bytes(purpose: str) -> bytes:
    return hashlib.sha256(f"{_DEV_SEED}:{purpose}".encode()).digest()


def _dev_key(purpose: str) -> str:
    return base64.urlsafe_b64encode(_dev_key_bytes(purpose)).decode()


DEV_MASTER_KEYS = f"dev-1:{_dev_key('master')}"
DEV_BLIND_INDEX_KEY = _dev_key("blind-index")
# Compared as bytes, not text: another key id, whitespace, padding or alphabet leaves the key as public.
DEVELOPMENT_KEYS = frozenset({_dev_key_bytes("master"), _dev_key_bytes("blind-index")})
HOW_TO_MAKE_KEYS = "make new keys with `pamoja keys generate`"
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def _master_key_problems(setting: str, *, production: bool) -> list[str]:
    """Unreadable or short keys in any environment; in production, a published key anywhere in the list."""
    try:
        keys = MasterKeys.parse(setting)
    except ValueError as exc:
        return [f"PAMOJA_MASTER_KEYS cannot be used ({exc}); {HOW_TO_MAKE_KEYS}"]
    published = [key_id for key_id, key in keys.keys if key in DEVELOPMENT_KEYS]
    if production and published:
        return [f"PAMOJA_MASTER_KEYS holds a development key, published in the source (key id {', '.join(published)}): "
                f"{HOW_TO_MAKE_KEYS}, put the new one first and rotate to it (README, Configuration)"]
    return []


def _blind_index_key_problems(setting: str, *, production: bool) -> list[str]:
    """The blind-index key is hashed from its text (db.crypto.blind_index_key), so any text would do; it
    must still be at least 32 bytes of base64, and in production none of its readings (base64, or hex
    when it is hex digits) may be a published key."""
    try:
        key = decode_key(setting)
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        return [f"PAMOJA_BLIND_INDEX_KEY must be base64 of at least {KEY_BYTES} random bytes; {HOW_TO_MAKE_KEYS}"]
    readings = {key}
    if _HEX.fullmatch(setting.strip()):
        readings.add(bytes.fromhex(setting.strip()))
    if production and readings & DEVELOPMENT_KEYS:
        return [f"PAMOJA_BLIND_INDEX_KEY is a development key, published in the source: {HOW_TO_MAKE_KEYS}"]
    return []


class Settings(BaseSettings):
    # hide_input_in_errors: pydantic would otherwise print the settings (keys among them) in its error text.
    model_config = SettingsConfigDict(env_prefix="PAMOJA_", extra="ignore", env_file=None, hide_input_in_errors=True)

    env: Literal["development", "test", "production"] = "development"
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "PAMOJA_DATABASE_URL"),
        description="Owner connection (migrations). Unset: an embedded PostgreSQL under data_dir.",
    )
    app_database_url: str | None = Field(
        default=None,
        description="Runtime connection as the non-owner role. Unset: database_url with app_db_role.",
    )
    app_db_role: str = "pamoja_app"
    app_db_password: SecretStr | None = None
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    graphiql: bool | None = Field(default=None, description="Unset: on outside production.")
    log_level: str = "INFO"
    log_json: bool = True
    # Connections a worker keeps open, and how many more it may open for a burst (closed again as each is
    # returned). Keep the pool at the concurrent requests a worker sees: a connection opened beyond it costs a
    # PostgreSQL backend's start, and the compiled reads' functions are made again on it (db/one_call.py); at
    # 16 clients the benchmark served 10% fewer referrals by id with a pool of 10 than with 16.
    db_pool_size: int = Field(default=16, ge=1)
    db_pool_overflow: int = Field(default=4, ge=0)
    db_statement_timeout_ms: int = 10_000
    # Survivors' data keys a worker keeps unwrapped for compiled reads (db.crypto.DataKeys): about 300 bytes
    # each, so the default is ~20 MB per worker and holds the active caseload of a large network (1,000
    # counselors with 50 cases each); 0 unwraps every key on every read.
    data_key_cache_size: int = Field(default=65_536, ge=0)

    master_keys: SecretStr = Field(
        default=SecretStr(DEV_MASTER_KEYS),
        description="Comma-separated `id:base64key` (32-byte keys). The first is current.",
    )
    blind_index_key: SecretStr = SecretStr(DEV_BLIND_INDEX_KEY)

    staff_token_ttl_seconds: int = 900
    system_token_ttl_seconds: int = 300
    refresh_token_ttl_seconds: int = 8 * 3600
    # How long a one-time link to set a staff password works (at most a week).
    password_link_ttl_seconds: int = Field(default=24 * 3600, gt=0, le=7 * 24 * 3600)
    # The staff console signs a person out after this long without a page (a shared phone, a left desk).
    console_idle_seconds: int = Field(default=1800, gt=0, le=12 * 3600)
    # NoDecode: _parse_issuers reads the JSON, so that an empty or malformed value is a clear
    # configuration error rather than pydantic-settings' SettingsError traceback.
    trusted_issuers: Annotated[list[dict[str, str]], NoDecode] = Field(
        default_factory=list,
        description='JSON list of {"issuer", "jwks_url", "audience", "email_claim"}: NGO identity providers '
                    "whose tokens are accepted for staff registered here with that e-mail.",
    )
    # Abuse limits on /oauth/token and the login form (the `limits` library's rate strings), and the
    # per-account login throttle: slower after a few failures, locked after more.
    rate_limit_storage: str = "async+memory://"
    token_rate_limit_per_client: str = "60/minute"  # noqa: S105 (a rate, not a secret)
    token_rate_limit_per_address: str = "300/minute"  # noqa: S105 (a rate, not a secret)
    login_rate_limit_per_client: str = "300/minute"
    login_rate_limit_per_address: str = "30/minute"
    login_slowdown_after_failures: int = 3
    login_slowdown_base_seconds: float = 2.0
    login_lockout_after_failures: int = 8
    login_lockout_seconds: int = 900
    # Reads of survivor-data ids that show nothing (probes) leave one audit row each up to this rate
    # per principal and process; beyond it they are counted, and one row per window says how many.
    refused_read_audit_limit: str = "30/minute"

    response_routine_hours: float = 120
    response_urgent_hours: float = 48
    response_asap_hours: float = 4
    restoration_threshold: float = 3.0

    webhook_retry_base_seconds: float = 30
    webhook_timeout_seconds: float = 10
    webhook_max_attempts: int = 8
    housekeeping_interval_seconds: float = 3600
    # Data protection (README "Data protection"): a survivor's record is erased this many years after her
    # last referral closed (never referred: after registration), unless under legal hold. The worker applies
    # it once a day when retention_enabled; `pamoja retention run` shows (and with --apply does) the same.
    retention_years: float = Field(default=7, gt=0, le=100)
    retention_enabled: bool = False

    request_timeout_seconds: float = 15
    # Reads answered by one SQL statement (api/graphql/compiler.py); off, every read takes the resolver path,
    # which answers the same (the tests compare the two): an operator's way back without a deployment.
    compiled_reads: bool = True
    # Larger request bodies get 413 before anything parses them (the longest legitimate one, a session
    # with 20,000 characters of notes, is well under 200 KB even with every character escaped).
    max_body_bytes: int = Field(default=1_048_576, gt=0)

    @field_validator("trusted_issuers", mode="before")
    @classmethod
    def _parse_issuers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @field_validator("refused_read_audit_limit")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError("PAMOJA_REFUSED_READ_AUDIT_LIMIT must be a rate such as 30/minute") from None
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _refuse_unusable_keys_and_development_defaults(self) -> Settings:
        """Every problem in one message. Keys are checked in every environment (a short or unreadable
        key should fail on a laptop, not first in production); development defaults only in production."""
        production = self.env == "production"
        problems = [*_master_key_problems(self.master_keys.get_secret_value(), production=production),
                    *_blind_index_key_problems(self.blind_index_key.get_secret_value(), production=production)]
        if production:
            if self.graphiql:
                problems.append("PAMOJA_GRAPHIQL must be off in production")
            if not self.database_url:
                problems.append("DATABASE_URL must be set (no embedded database in production)")
            if not self.public_url.startswith("https://"):
                problems.append("PAMOJA_PUBLIC_URL must be an https:// URL")
        if problems:
            raise ValueError(f"refusing to start{' in production' if production else ''}: " + "; ".join(problems))
        return self

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def graphiql_enabled(self) -> bool:
        return (not self.is_production) if self.graphiql is None else self.graphiql

    @property
    def issuer(self) -> str:
        return self.public_url

    @property
    def audience(self) -> str:
        return self.public_url
