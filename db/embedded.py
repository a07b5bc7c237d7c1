"""An embedded PostgreSQL for machines with no database server (development, first run, tests).

pgserver ships the PostgreSQL binaries as a wheel; the cluster lives in a folder we choose and is
reached through a Unix socket inside it, so it never collides with a server on port 5432.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
# pgserver logs every command it runs (including at interpreter exit, after stream capture closed).
logging.getLogger("pgserver").setLevel(logging.WARNING)

EMBEDDED_DATABASE = "pamoja"


def start_embedded(data_dir: Path, *, keep_running: bool = False) -> str:
    """Start (or reuse) the cluster under data_dir/pgdata and return an owner URL for `pamoja`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    get_server: Any = getattr(pgserver, "get_server")  # noqa: B009 (pgserver does not re-export it for mypy)
    server: Any = get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';")  # noqa: S608 (a constant)
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
    uri: str = server.get_uri(EMBEDDED_DATABASE)
    logger.info("embedded postgresql ready", extra={"event_kind": "embedded_db"})
    return uri
