"""Run Alembic programmatically as the owner role, with the URL (and master keys) from Settings.

The master keys reach migrations that rewrite encrypted data (0006 seals free text already stored)
through the Alembic config's attributes, never through a file or the environment of Alembic itself.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from db.crypto import MasterKeys
from db.urls import to_async_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(owner_url: str, app_role: str = "pamoja_app", master_keys: MasterKeys | None = None) -> Config:
    config = Config()
    config.attributes["master_keys"] = master_keys
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", to_async_url(owner_url).render_as_string(hide_password=False).replace("%", "%%")
    )
    config.set_main_option("app_role", app_role)
    config.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def upgrade(owner_url: str, revision: str = "head", *, app_role: str = "pamoja_app",
            master_keys: MasterKeys | None = None) -> None:
    command.upgrade(alembic_config(owner_url, app_role, master_keys), revision)


def downgrade(owner_url: str, revision: str, *, app_role: str = "pamoja_app",
              master_keys: MasterKeys | None = None) -> None:
    command.downgrade(alembic_config(owner_url, app_role, master_keys), revision)


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

