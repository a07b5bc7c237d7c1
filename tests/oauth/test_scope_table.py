"""The README's scope table is the one in domain/scopes.py, not a copy that can drift."""

from __future__ import annotations

from pathlib import Path

from domain.enums import OrganizationKind, Role
from domain.scopes import ROLE_CEILING, SYSTEM_CEILING, ceiling_table, default_scopes, is_within, parse_scopes

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_prints_the_ceilings_from_the_scopes_module() -> None:
    assert ceiling_table() in README.read_text()


def test_every_role_default_is_within_its_ceiling_and_systems_never_hold_user_scopes() -> None:
    for role in Role:
        assert is_within(parse_scopes(default_scopes([role])), parse_scopes(ROLE_CEILING[role]))
        assert all(s.startswith("user/") for s in ROLE_CEILING[role])
    for kind in OrganizationKind:
        assert all(s.startswith("system/") for s in SYSTEM_CEILING[kind])
