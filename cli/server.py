"""`pamoja serve`, `pamoja migrate`, `pamoja schema`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from cli.context import Cli, CommandError


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="Apply migrations and serve the API.")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true", help="Do not apply migrations first.")
    serve.set_defaults(handler=_serve)

    migrate = sub.add_parser("migrate", help="Apply database migrations up to head (as the owner role).")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(handler=_migrate)

    schema = sub.add_parser("schema", help="Print the GraphQL SDL.")
    schema.set_defaults(handler=_schema)


def _migrate_now(cli: Cli, revision: str = "head") -> None:
    from db.migrate import upgrade

    try:
        upgrade(cli.urls.owner, revision, app_role=cli.settings.app_db_role)
    except Exception as exc:
        raise CommandError(f"migration failed ({type(exc).__name__})") from exc


def _migrate(args: argparse.Namespace) -> int:
    cli = Cli.load()
    _migrate_now(cli, args.revision)
    sys.stdout.write(f"migrated to {args.revision}\n")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    cli = Cli.load()
    if not args.no_migrate:
        _migrate_now(cli)
    # Workers build their app from the environment: hand them the resolved (maybe embedded) database.
    os.environ["DATABASE_URL"] = cli.urls.owner
    os.environ.setdefault("PAMOJA_APP_DATABASE_URL", cli.urls.app)
    host = args.host or cli.settings.host
    port = args.port or cli.settings.port
    uvicorn.run(
        "api.main:app_from_environment", factory=True, host=host, port=port, workers=args.workers,
        log_config=None, proxy_headers=True, forwarded_allow_ips="127.0.0.1",
        timeout_graceful_shutdown=10, server_header=False,
    )
    return 0


def _schema(args: argparse.Namespace) -> int:
    from api.graphql.schema import schema_sdl

    sys.stdout.write(schema_sdl())
    return 0
