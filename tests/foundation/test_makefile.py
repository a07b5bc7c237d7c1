"""The Makefile never deletes the embedded database by accident.

`make clean` is what people type to start over with dependencies; the embedded PostgreSQL under
var/pgdata holds every record entered while trying Pamoja out, so only a separate, clearly named
target deletes it, and only after a "y" typed at the terminal or CONFIRM=yes from a script.
The destructive target runs here in a temporary folder, never in the working tree.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"
TARGET = "destroy-local-database"
# Not from the caller: a confirmation, another data folder, or the flags of a `make test` running pytest.
INHERITED = {"CONFIRM", "PAMOJA_DATA_DIR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}


def make(*args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(MAKEFILE), *args], cwd=cwd, text=True, capture_output=True,
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL, timeout=60,
        env={**{k: v for k, v in os.environ.items() if k not in INHERITED}, **(env or {})},
    )


@pytest.fixture
def local_database(tmp_path: Path) -> Path:
    """A folder shaped like the embedded database `make run` leaves under ./var."""
    pgdata = tmp_path / "var" / "pgdata"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("16\n")
    return pgdata


def test_make_clean_leaves_the_embedded_database_alone() -> None:
    dry_run = make("-n", "clean", cwd=ROOT)
    assert dry_run.returncode == 0, dry_run.stderr
    assert ".venv" in dry_run.stdout, "make clean still removes the virtualenv and caches"
    for line in dry_run.stdout.splitlines():
        words = shlex.split(line)
        assert not any("pgdata" in word for word in words), f"make clean would delete the database: {line}"
        assert not {"var", "var/", "./var", "$(PAMOJA_DATA_DIR)"} & set(words), f"make clean would delete var: {line}"


@pytest.mark.parametrize("answer", ["n\n", "\n", "no\n", "yes please? \n", None])
def test_destroying_the_local_database_keeps_it_unless_the_answer_is_yes(local_database: Path, answer: str | None,
                                                                          ) -> None:
    """A plain Enter, anything but y/yes, and no terminal at all (stdin at end of file) keep the data."""
    result = make(TARGET, cwd=local_database.parents[1], stdin=answer)
    assert result.returncode != 0
    assert (local_database / "PG_VERSION").is_file()
    assert "[y/N]" in result.stdout and "var/pgdata" in result.stdout
    assert "kept" in result.stdout + result.stderr


@pytest.mark.parametrize("answer", ["y\n", "Y\n", "yes\n"])
def test_destroying_the_local_database_after_yes_at_the_terminal(local_database: Path, answer: str) -> None:
    result = make(TARGET, cwd=local_database.parents[1], stdin=answer)
    assert result.returncode == 0, result.stderr
    assert not local_database.exists()
    assert local_database.parent.is_dir(), "only the database folder goes"


def test_destroying_the_local_database_from_a_script_with_confirm_yes(local_database: Path) -> None:
    result = make(TARGET, "CONFIRM=yes", cwd=local_database.parents[1])
    assert result.returncode == 0, result.stderr
    assert not local_database.exists()
    assert "[y/N]" not in result.stdout


def test_destroying_follows_pamoja_data_dir(tmp_path: Path) -> None:
    elsewhere = tmp_path / "data" / "pgdata"
    elsewhere.mkdir(parents=True)
    decoy = tmp_path / "var" / "pgdata"
    decoy.mkdir(parents=True)
    result = make(TARGET, cwd=tmp_path, env={"PAMOJA_DATA_DIR": "data", "CONFIRM": "yes"})
    assert result.returncode == 0, result.stderr
    assert not elsewhere.exists() and decoy.is_dir()


def test_a_running_embedded_server_is_never_deleted(local_database: Path) -> None:
    """postmaster.pid naming a live process: PostgreSQL is running on these files (`make run`)."""
    (local_database / "postmaster.pid").write_text(f"{os.getpid()}\n{local_database}\n")
    result = make(TARGET, "CONFIRM=yes", cwd=local_database.parents[1])
    assert result.returncode != 0
    assert (local_database / "PG_VERSION").is_file()
    assert "running" in result.stderr and "stop" in result.stderr


def test_make_worker_runs_the_pamoja_worker() -> None:
    dry_run = make("-n", "worker", cwd=ROOT)
    assert dry_run.returncode == 0, dry_run.stderr
    assert shlex.split(dry_run.stdout.splitlines()[-1]) == [".venv/bin/pamoja", "worker"]


def test_every_make_command_the_readme_names_is_a_target() -> None:
    text = (ROOT / "README.md").read_text()
    targets = set(re.findall(r"`make ([a-z][a-z-]*)", text)) | set(re.findall(r"^make ([a-z][a-z-]*)", text, re.M))
    assert {"run", "test", "worker", "clean", "destroy-local-database"} <= targets
    for target in sorted(targets):
        dry_run = make("-n", target, cwd=ROOT)
        assert dry_run.returncode == 0, f"README says `make {target}`: {dry_run.stderr}"
