"""An embedded PostgreSQL for machines with no database server (development, first run, tests).

pgserver ships the PostgreSQL binaries as a wheel; the cluster lives in a folder we choose and is
reached through a Unix socket inside it, so it never collides with a server on port 5432.
"""

from __future__ import annotations

import json
import logging
import os
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
    _forget_dead_processes(pgdata)
    get_server: Any = getattr(pgserver, "get_server")  # noqa: B009 (pgserver does not re-export it for mypy)
    server: Any = get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';")  # noqa: S608 (a constant)
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
    uri: str = server.get_uri(EMBEDDED_DATABASE)
    logger.info("embedded postgresql ready", extra={"event_kind": "embedded_db"})
    return uri


def _forget_dead_processes(pgdata: Path) -> None:
    """Drop processes that died without letting go (SIGKILL, a crash) from pgserver's handle list.

    pgserver stops the server when the last process holding a handle exits, and reads "last" from a
    list of process ids in the data folder; a dead process left in it would keep the server running
    after every later `pamoja serve` ended.
    """
    from pgserver.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _is_running(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def stop_embedded(data_dir: Path) -> None:
    """Stop the cluster this process started under data_dir, now rather than at interpreter exit.

    pgserver keeps one handle per data folder and counts the processes using it; the server stops
    only when the last of them lets go, so a cluster another process still uses keeps running.
    """
    from pgserver.postgres_server import PostgresServer

    server: Any = PostgresServer._instances.get((data_dir / "pgdata").resolve())
    if server is None:
        return
    if server.cleanup_mode is None:  # started with keep_running: stopping was asked for explicitly
        server.cleanup_mode = "stop"
    server.cleanup()
