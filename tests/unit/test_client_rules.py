"""The rules an OAuth client's registration and changes follow, for the operator and the administrator
alike (domain/use_cases/oauth_clients.py): fast tables, no database."""

from __future__ import annotations

import pytest

from domain.enums import OrganizationKind
from domain.errors import InvalidInput
from domain.scopes import SYSTEM_CEILING
from domain.use_cases.oauth_clients import CLI, GRAPHQL, check_allowed_scopes, check_name, check_redirect_uri

PARTNER, NGO = OrganizationKind.PARTNER, OrganizationKind.REFERRING_NGO


@pytest.mark.parametrize(("scopes", "kind", "staff_app", "kept"), [
    (["system/Referral.rus"], PARTNER, False, ("system/Referral.rus",)),
    ([" system/Referral.rus ", "system/Referral.rus"], PARTNER, False, ("system/Referral.rus",)),
    (list(SYSTEM_CEILING[PARTNER]), PARTNER, False, SYSTEM_CEILING[PARTNER]),
    (["system/Referral.rs"], NGO, False, ("system/Referral.rs",)),
    (["user/*.cruds"], PARTNER, True, ("user/*.cruds",)),  # a staff app: the person's roles narrow it
])
def test_scopes_a_client_may_hold(scopes: list[str], kind: OrganizationKind, staff_app: bool,
                                  kept: tuple[str, ...]) -> None:
    assert check_allowed_scopes(scopes, kind=kind, staff_app=staff_app) == tuple(kept)


@pytest.mark.parametrize(("scopes", "kind", "staff_app", "says"), [
    ([], PARTNER, False, "Give at least one scopes."),
    (["system/Survivor.cruds"], PARTNER, False, "scopes system/Survivor.cruds is beyond what a partner "
                                                "organization's system may hold (ceiling: "),
    (["system/Referral.rus"], NGO, False, "scopes system/Referral.rus is beyond what the NGO's system may hold"),
    (["system/*.cruds"], PARTNER, False, "beyond what a partner organization's system may hold"),
    (["user/Referral.rs"], PARTNER, False, "must all start with system/"),
    (["system/Referral.rs"], PARTNER, True, "must all start with user/"),
    (["Amina +254712345678"], PARTNER, False, "scopes: the scope in position 1 is not one"),
    (["system/Referral.rs", "system/Nothing.rs"], PARTNER, False, "position 2"),
])
def test_scopes_refused_say_why_and_where(scopes: list[str], kind: OrganizationKind, staff_app: bool,
                                          says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_allowed_scopes(scopes, kind=kind, staff_app=staff_app)
    assert says in refused.value.message and refused.value.field == ("input", "scopes")
    assert "Amina" not in refused.value.message


def test_the_command_line_names_its_options() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_allowed_scopes(["system/Survivor.cruds"], kind=PARTNER, staff_app=False, fields=CLI)
    assert refused.value.message.startswith("--scope system/Survivor.cruds is beyond") and refused.value.field == (
        "scope",)
    with pytest.raises(InvalidInput) as named:
        check_name("  ", fields=CLI)
    assert named.value.message.startswith("--name ") and GRAPHQL.name.path == ("input", "name")


@pytest.mark.parametrize(("url", "kept"), [
    ("https://app.example.org/callback", "https://app.example.org/callback"),
    (" https://app.example.org/cb?x=1 ", "https://app.example.org/cb?x=1"),
    ("http://127.0.0.1:8765/callback", "http://127.0.0.1:8765/callback"),
    ("http://localhost/callback", "http://localhost/callback"),
    ("http://[::1]:9000/cb", "http://[::1]:9000/cb"),
])
def test_redirect_uris_accepted(url: str, kept: str) -> None:
    assert check_redirect_uri(url) == kept


@pytest.mark.parametrize("url", [
    "http://app.example.org/callback", "https://app.example.org/cb#frag", "/sign-in/return", "app.example.org/cb",
    "javascript:alert(1)", "https://" + "a" * 2000 + ".example.org/", "http://127.0.0.1.example.org/cb",
    "ftp://127.0.0.1/cb",
])
def test_redirect_uris_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_redirect_uri(url)
    assert refused.value.field == ("input", "redirectUris") and url not in refused.value.message
