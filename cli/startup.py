"""The first lines `pamoja serve` and `pamoja worker` log: which database, and whether its schema is at head.

"Which database is this talking to, and is it migrated?" is the first question when something is off.
The answer names the embedded PostgreSQL's folder, or the URL with every password masked (in the user
part and in libpq's query parameters alike): a log line must never carry a secret.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import ArgumentError

from cli.context import CommandError
from config.logging import get_logger
from config.settings import Settings
from db.migrate import current_revision, head_revision
from db.urls import to_async_url

logger = get_logger("pamoja.startup")
# A server that drops packets must not hold the start for asyncpg's 60 s connect timeout.
REVISION_CHECK_SECONDS = 10


def masked_url(url: str) -> str:
    try:
        parsed = to_async_url(url).set(drivername="postgresql")
    except ArgumentError:
        raise CommandError("the database URL (DATABASE_URL or PAMOJA_APP_DATABASE_URL) is not of the form "
                           "postgresql://user:password@host:port/database") from None
    base = parsed.set(query={}).render_as_string(hide_password=True)
    pairs = [(key, value) for key, values in parsed.query.items()
             for value in ((values,) if isinstance(values, str) else values)]
    query = "&".join(f"{key}={'***' if 'password' in key.lower() else value}" for key, value in pairs)
    return f"{base}?{query}" if query else base


def database_in_use(settings: Settings, url: str) -> str:
    """The embedded folder when Pamoja started its own PostgreSQL (no DATABASE_URL), else the masked URL."""
    if settings.database_url is None and url != settings.app_database_url:
        return f"embedded PostgreSQL in {(settings.data_dir / 'pgdata').resolve()}"
    return masked_url(url)


async def log_database_in_use(settings: Settings, url: str) -> None:
    """Log the database `url` points at and its migration revision against this code's head.

    Behind head is a warning, not a refusal: /readyz answers 503 until `pamoja migrate` has run, so a
    replica started before the migration step finished becomes ready without a restart.
    """
    logger.info("database in use", database=database_in_use(settings, url))
    head = head_revision()
    try:
        current = await asyncio.wait_for(current_revision(url), timeout=REVISION_CHECK_SECONDS)
    except Exception as exc:  # unreachable, refused, unknown database: the type says which, /readyz keeps checking
        logger.warning("could not read the database's migration revision; is it running and is the URL right?",
                       error_type=type(exc).__name__)
        return
    if current == head:
        logger.info("migrations at head", revision=head)
    else:
        logger.warning("migrations not at head: run `pamoja migrate`", revision=current, head=head)
