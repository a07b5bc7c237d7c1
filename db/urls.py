"""Database URLs: the usual `postgresql://user:pass@host:port/db` form in, driver URLs out."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url


def to_async_url(url: str) -> URL:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// and return the asyncpg form."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    return parsed.set(drivername="postgresql+asyncpg")


def with_role(url: str, role: str, password: str | None) -> str:
    """The same server and database, connecting as another role (the runtime, non-owner role)."""
    parsed = to_async_url(url).set(username=role, password=password)
    return parsed.render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return to_async_url(url).set(database=database).render_as_string(hide_password=False)


def plain(url: str) -> str:
    """A libpq-style URL (no driver suffix), for asyncpg.connect and psql."""
    return to_async_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
