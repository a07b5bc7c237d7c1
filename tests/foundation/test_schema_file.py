"""schema.graphql at the root is what partners read and diff: it must be the schema the code serves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from api.graphql.schema import schema_sdl

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
CONTRACT_CHECK = SHARED / "tools" / "contract_check.py"


def test_schema_graphql_is_current() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema_sdl(), "schema.graphql is stale: run `make schema` and commit the result"


@pytest.fixture(scope="module")
def contract_check() -> subprocess.CompletedProcess[str]:
    if not CONTRACT_CHECK.is_file():
        pytest.skip(f"the shared contract checker is not next to the repository ({CONTRACT_CHECK} is absent)")
    return subprocess.run(
        [sys.executable, str(CONTRACT_CHECK), str(ROOT / "schema.graphql")],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_contract_checker_reads_our_schema(contract_check: subprocess.CompletedProcess[str]) -> None:
    """The checker parsed schema.graphql and compared it (exit 0 or 1), rather than crashing on it."""
    assert contract_check.returncode in (0, 1), contract_check.stderr
    assert re.search(r"^contract: \d+ checks, \d+ missing or different$", contract_check.stdout, re.MULTILINE)


def test_schema_covers_the_whole_contract(contract_check: subprocess.CompletedProcess[str]) -> None:
    problems = contract_check.stdout.splitlines()[:-1]
    assert contract_check.returncode == 0, f"{len(problems)} contract items missing, first: {problems[:10]}"
