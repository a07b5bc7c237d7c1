"""`pamoja serve`, `pamoja migrate`, `pamoja schema`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from types import FrameType
from typing import Any

from sqlalchemy import text

from cli.context import Cli, CommandError
from cli.startup import log_database_in_use
from config.logging import configure_logging


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="Apply migrations and serve the API.")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true", help="Do not apply migrations first.")
    serve.set_defaults(handler=_serve)

    migrate = sub.add_parser(
        "migrate",
        help="Apply database migrations up to head (as the owner role); with PAMOJA_APP_DB_PASSWORD set, "
        "also set the runtime role's login password.",
    )
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(handler=_migrate)

    schema = sub.add_parser("schema", help="Print the GraphQL SDL.")
    schema.set_defaults(handler=_schema)


def _migrate_now(cli: Cli, revision: str = "head") -> None:
    from db.crypto import MasterKeys
    from db.migrate import upgrade

    try:
        upgrade(cli.urls.owner, revision, app_role=cli.settings.app_db_role,
                master_keys=MasterKeys.parse(cli.settings.master_keys.get_secret_value()))
    except Exception as exc:
        raise CommandError(f"migration failed ({type(exc).__name__})") from exc
    if cli.settings.app_db_password is not None:
        try:
            asyncio.run(_set_app_role_password(cli, cli.settings.app_db_password.get_secret_value()))
        except Exception as exc:
            raise CommandError(f"could not set the password of role {cli.settings.app_db_role} "
                               f"({type(exc).__name__})") from exc


async def _set_app_role_password(cli: Cli, password: str) -> None:
    """Give the runtime role (created by migration 0001 without a password) its login password.

    Deployments (compose.yaml) connect the API as that role with PAMOJA_APP_DB_PASSWORD, so the
    operator sets one secret and `pamoja migrate` keeps the role in step with it on every run.
    ALTER ROLE takes no bind parameters, so PostgreSQL itself quotes the name and the password
    (format's %I and %L) from bound values: no quoting of ours can be got wrong.
    """
    engine = cli.owner_engine()
    try:
        async with engine.begin() as connection:
            statement = await connection.scalar(
                text("SELECT format('ALTER ROLE %I PASSWORD %L', CAST(:role AS text), CAST(:password AS text))"),
                {"role": cli.settings.app_db_role, "password": password},
            )
            await connection.exec_driver_sql(str(statement))
    finally:
        await engine.dispose()


def _migrate(args: argparse.Namespace) -> int:
    cli = Cli.load()
    _migrate_now(cli, args.revision)
    sys.stdout.write(f"migrated to {args.revision}\n")
    return 0


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into a normal exit so atexit handlers run (they stop the embedded PostgreSQL).

    uvicorn shuts down gracefully on SIGTERM and then re-raises the signal with the handler that was
    installed before it started; with the default handler the process would die on the spot and leave
    the embedded server under ./var running.
    """
    raise SystemExit(128 + signum)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cli.accepting import BOARD_ENV, Board

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    cli = Cli.load()
    configure_logging(level=cli.settings.log_level, json=cli.settings.log_json)
    if not args.no_migrate:
        _migrate_now(cli)
    asyncio.run(log_database_in_use(cli.settings, cli.urls.app))
    # Workers build their app from the environment: hand them the resolved (maybe embedded) database.
    os.environ["DATABASE_URL"] = cli.urls.owner
    os.environ.setdefault("PAMOJA_APP_DATABASE_URL", cli.urls.app)
    host = args.host or cli.settings.host
    port = args.port or cli.settings.port
    board = Board.for_workers(args.workers)
    if board is not None:  # the workers share it to send each new connection to the least-loaded one
        os.environ[BOARD_ENV] = str(board.path)
    try:
        uvicorn.run(
            "api.main:app_from_environment", factory=True, host=host, port=port, workers=args.workers,
            loop="auto" if board is None else "cli.accepting:balanced_loop",
            # uvicorn's own variable: the proxy addresses whose X-Forwarded-For/Proto are believed.
            log_config=None, proxy_headers=True, forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
            # One line per request is written by api.main.RequestIdAndAccessLog, with the request id.
            access_log=False, timeout_graceful_shutdown=10, server_header=False,
        )
    finally:
        if board is not None:
            board.path.unlink(missing_ok=True)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from api.graphql.schema import schema_sdl

    sys.stdout.write(schema_sdl())
    return 0
