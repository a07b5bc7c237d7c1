"""Run Alembic programmatically as the owner role, with the URL from Settings."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from db.urls import to_async_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(owner_url: str, app_role: str = "pamoja_app") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", to_async_url(owner_url).render_as_string(hide_password=False).replace("%", "%%")
    )
    config.set_main_option("app_role", app_role)
    config.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def upgrade(owner_url: str, revision: str = "head", *, app_role: str = "pamoja_app") -> None:
    command.upgrade(alembic_config(owner_url, app_role), revision)


def downgrade(owner_url: str, revision: str, *, app_role: str = "pamoja_app") -> None:
    command.downgrade(alembic_config(owner_url, app_role), revision)


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/unused"))
    return script.get_current_head()


async def current_revision(url: str) -> str | None:
    """The revision the database is at (readable by the app role: alembic_version is granted)."""
    engine = create_async_engine(to_async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()

