"""What every CLI command needs: settings, resolved database URLs, an owner engine, the audit writer."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from config.settings import Settings
from db.audit import write_audit
from db.engine import DatabaseUrls, make_engine, resolve_urls
from domain.ids import from_global_id


class CommandError(Exception):
    """A one-line reason printed to stderr; the command exits non-zero and changes nothing."""


@dataclass
class Cli:
    settings: Settings
    urls: DatabaseUrls

    @classmethod
    def load(cls, *, keep_embedded_running: bool = False) -> Cli:
        try:
            settings = Settings()
        except ValidationError as exc:
            raise CommandError(configuration_problem(exc)) from None
        urls = resolve_urls(
            database_url=settings.database_url, app_database_url=settings.app_database_url,
            app_role=settings.app_db_role,
            app_password=settings.app_db_password.get_secret_value() if settings.app_db_password else None,
            data_dir=settings.data_dir, keep_embedded_running=keep_embedded_running,
        )
        return cls(settings=settings, urls=urls)

    def owner_engine(self) -> AsyncEngine:
        return make_engine(self.urls.owner, pool_size=1, application_name="pamoja-cli")

    @asynccontextmanager
    async def owner_transaction(self) -> AsyncIterator[AsyncConnection]:
        """Operator commands run as the owner, in one transaction: all or nothing."""
        engine = self.owner_engine()
        try:
            async with engine.begin() as connection:
                yield connection
        finally:
            await engine.dispose()

    async def audit(self, connection: AsyncConnection, *, action: str, record_type: str,
                    record_id: str | None, outcome: str = "allowed", purpose: str | None = None) -> None:
        await write_audit(connection, actor="operator:cli", client_id="pamoja-cli", organization_id=None,
                          action=action, record_type=record_type, record_id=record_id, purpose=purpose,
                          request_id=None, outcome=outcome)


def configuration_problem(exc: ValidationError) -> str:
    """One line naming each bad setting, without the values (they may be secrets, unlike pydantic's text)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        field = ".".join(str(part) for part in error["loc"])
        problems.append(f"PAMOJA_{field.upper()}: {message}" if field else message)
    return "invalid configuration: " + "; ".join(problems)


def record_id(value: str, type_name: str) -> uuid.UUID | None:
    """What an operator pastes for a record: its global id (as GraphQL shows it) or its UUID, with any
    surrounding whitespace; None when it is neither."""
    typed = value.strip()
    decoded = from_global_id(typed, type_name)
    if decoded is not None:
        return decoded[1]
    try:
        return uuid.UUID(typed)
    except ValueError:
        return None


def emit(data: dict[str, Any], *, as_json: bool, human: str) -> None:
    """With --json, one JSON object and nothing else on stdout."""
    sys.stdout.write((json.dumps(data) if as_json else human) + "\n")
