"""`pamoja user ...` as an operator types it: add, list, roles, deactivate, reactivate, reset-password.

Run as the real console script against the throwaway database of tests/foundation/test_cli.py. Each
command's output is checked (a table, one JSON object with --json, a link as the last line), and the
database afterwards: the change, its audit row as `operator:cli`, and nothing at all after a refusal.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest

from domain.ids import from_global_id, to_global_id
from tests.foundation.test_cli import CliDatabase, add_org, cli_db, counts, fetch, one_json_object, pamoja

__all__ = ["cli_db"]  # the module's database fixture, shared


@dataclass(frozen=True)
class Partner:
    org: str
    coordinator: str
    counselor: str


async def add_user(cli_db: CliDatabase, org: str, role: str, *extra: str, email: str | None = None) -> str:
    email = email or f"{role.lower()}.{secrets.token_hex(4)}@example.org"
    result = await pamoja("user", "add", "--org", org, "--email", email, "--name", f"Staff {secrets.token_hex(2)}",
                          "--role", role, *extra, env=cli_db.env, cwd=cli_db.cwd)
    assert result.returncode == 0, result.stderr
    return email


@pytest.fixture(scope="module")
async def partner(cli_db: CliDatabase) -> Partner:
    org = await add_org(cli_db, f"Malindi Counselling {secrets.token_hex(3)}")
    return Partner(org=org, coordinator=await add_user(cli_db, org, "PARTNER_COORDINATOR", "--no-password-link"),
                   counselor=await add_user(cli_db, org, "COUNSELOR", "--no-password-link"))


async def run(cli_db: CliDatabase, *args: str) -> tuple[int, str, str]:
    result = await pamoja(*args, env=cli_db.env, cwd=cli_db.cwd)
    return result.returncode, result.stdout, result.stderr


async def refused(cli_db: CliDatabase, *args: str) -> str:
    """The one-line reason of a refused command, which changed nothing."""
    before = await counts(cli_db.url)
    code, out, err = await run(cli_db, *args)
    assert code != 0 and out == "", (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pamoja: "), err
    assert await counts(cli_db.url) == before
    return lines[0]


async def account(cli_db: CliDatabase, email: str) -> dict[str, object]:
    rows = await fetch(cli_db.url, "SELECT id, roles, active, password_hash, signed_out_at, deactivation_reason, "
                                   "display_name "
                                   "FROM staff_user WHERE email = $1", email)
    assert len(rows) == 1
    return dict(rows[0])


def staff_gid(user_id: object) -> str:
    return to_global_id("StaffUser", str(user_id))


async def audited(cli_db: CliDatabase, user_id: object) -> list[tuple[str, str]]:
    rows = await fetch(cli_db.url, "SELECT actor, action FROM audit_event WHERE record_id = $1 ORDER BY seq",
                       staff_gid(user_id))
    return [tuple(row) for row in rows]  # type: ignore[misc]


def token_of(link: str) -> str:
    parts = urlsplit(link)
    assert parts.path == "/account/password", link
    return parse_qs(parts.query)["token"][0]


async def test_user_add_without_a_password_prints_a_one_time_link(cli_db: CliDatabase, partner: Partner) -> None:
    email = f"amani.{secrets.token_hex(4)}@example.org"
    code, out, err = await run(cli_db, "user", "add", "--org", partner.org, "--email", email, "--name", "Amani K.",
                               "--role", "COUNSELOR")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("staff user ") and lines[1].startswith("one-time password link, valid until ")
    token = token_of(lines[-1])
    assert lines[-1].startswith("http://127.0.0.1:8000/account/password?token=")
    stored = await account(cli_db, email)
    assert stored["password_hash"] is None
    links = await fetch(cli_db.url, "SELECT token_hash, expires_at - created_at AS lifetime FROM staff_password_link "
                                    "WHERE staff_user_id = $1", stored["id"])
    assert [(row["token_hash"], round(row["lifetime"].total_seconds())) for row in links] == \
        [(hashlib.sha256(token.encode()).digest(), 86400)]
    assert await audited(cli_db, stored["id"]) == [("operator:cli", "create"), ("operator:cli", "issue_password_link")]

    other = f"baraka.{secrets.token_hex(4)}@example.org"
    data = one_json_object((await pamoja("user", "add", "--org", partner.org, "--email", other, "--name", "Baraka",
                                         "--role", "PARTNER_COORDINATOR", "--json", env=cli_db.env,
                                         cwd=cli_db.cwd)).stdout)
    assert set(data) == {"id", "email", "roles", "organization", "password_link", "password_link_expires_at"}
    token_of(str(data["password_link"]))


@pytest.mark.parametrize(("kind", "role", "allowed"), [
    ("PARTNER", "CASE_MANAGER", "PARTNER_COORDINATOR, COUNSELOR"),
    ("PARTNER", "ADMIN", "PARTNER_COORDINATOR, COUNSELOR"),
    ("REFERRING_NGO", "COUNSELOR", "CASE_MANAGER, SUPERVISOR, ANALYST, ADMIN"),
    ("REFERRING_NGO", "PARTNER_COORDINATOR", "CASE_MANAGER, SUPERVISOR, ANALYST, ADMIN"),
])
async def test_user_add_refuses_a_role_the_organization_kind_does_not_hold(cli_db: CliDatabase, kind: str,
                                                                           role: str, allowed: str) -> None:
    org = await add_org(cli_db, f"Kind {kind} {secrets.token_hex(3)}", kind=kind)
    reason = await refused(cli_db, "user", "add", "--org", org, "--email", f"{secrets.token_hex(4)}@example.org",
                           "--name", "N", "--role", role, "--json")
    assert reason.endswith(f"--role at {'a partner organization' if kind == 'PARTNER' else 'the referring NGO'} "
                           f"may only be {allowed}."), reason


async def test_user_add_refuses_a_short_password_from_stdin(cli_db: CliDatabase, partner: Partner) -> None:
    before = await counts(cli_db.url)
    result = await pamoja("user", "add", "--org", partner.org, "--email", f"{secrets.token_hex(4)}@example.org",
                          "--name", "N", "--role", "COUNSELOR", "--password-stdin", env=cli_db.env, cwd=cli_db.cwd,
                          stdin="short\n")
    assert result.returncode != 0 and "at least 12 characters" in result.stderr
    assert await counts(cli_db.url) == before


async def test_user_list_prints_a_table_or_json_and_filters(cli_db: CliDatabase, partner: Partner) -> None:
    code, out, err = await run(cli_db, "user", "list", "--org", partner.org)
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["EMAIL", "NAME", "ROLES", "ORGANIZATION", "STATUS", "ID"]
    assert any(row.startswith(partner.counselor) and "COUNSELOR" in row and " active " in row for row in rows)
    data = one_json_object((await pamoja("user", "list", "--org", partner.org, "--role", "counselor", "--json",
                                         env=cli_db.env, cwd=cli_db.cwd)).stdout)
    users = data["users"]
    assert isinstance(users, list) and data["count"] == len(users) >= 1
    assert all(u["roles"] == ["COUNSELOR"] and u["organization"] == partner.org for u in users)
    assert partner.counselor in [u["email"] for u in users]
    found = one_json_object((await pamoja("user", "list", "--search", partner.coordinator[:12].upper(), "--json",
                                          env=cli_db.env, cwd=cli_db.cwd)).stdout)
    assert [u["email"] for u in found["users"]] == [partner.coordinator]  # type: ignore[union-attr]
    nobody = await run(cli_db, "user", "list", "--org", partner.org, "--inactive", "--search", "nobody-at-all")
    assert nobody[:2] == (0, "no staff users match\n")
    assert "unknown role" in await refused(cli_db, "user", "list", "--role", "WIZARD")
    assert "--org" in await refused(cli_db, "user", "list", "--org", "not-an-id")


async def test_user_roles_set_add_and_remove_within_the_organization_kind(cli_db: CliDatabase) -> None:
    org = await add_org(cli_db, f"Watamu Shelter {secrets.token_hex(3)}")
    email = await add_user(cli_db, org, "COUNSELOR", "--no-password-link")
    code, out, err = await run(cli_db, "user", "roles", email, "--add", "partner_coordinator", "--json")
    assert code == 0, err
    assert one_json_object(out)["roles"] == ["PARTNER_COORDINATOR", "COUNSELOR"]
    assert (await run(cli_db, "user", "roles", email.upper(), "--remove", "COUNSELOR"))[1] == \
        f"{email}: PARTNER_COORDINATOR\n"
    assert (await run(cli_db, "user", "roles", email, "--set", "COUNSELOR,PARTNER_COORDINATOR"))[0] == 0
    assert (await account(cli_db, email))["roles"] == ["PARTNER_COORDINATOR", "COUNSELOR"]
    reason = await refused(cli_db, "user", "roles", email, "--add", "CASE_MANAGER")
    assert reason.endswith("roles at a partner organization may only be PARTNER_COORDINATOR, COUNSELOR.")
    assert "at least one role" in await refused(cli_db, "user", "roles", email, "--set", ",")
    assert "no staff user with that e-mail" in await refused(cli_db, "user", "roles", "nobody@example.org",
                                                             "--add", "COUNSELOR")
    stored = await account(cli_db, email)
    assert [a for a in await audited(cli_db, stored["id"]) if a[1] == "set_roles"] == \
        [("operator:cli", "set_roles")] * 3


async def test_user_update_corrects_a_name_and_an_e_mail_and_refuses_a_taken_one(cli_db: CliDatabase) -> None:
    org = await add_org(cli_db, f"Kilifi Centre {secrets.token_hex(3)}")
    email = await add_user(cli_db, org, "COUNSELOR", "--no-password-link")
    other = await add_user(cli_db, org, "COUNSELOR", "--no-password-link")
    code, out, err = await run(cli_db, "user", "update", email, "--name", "Wanjiru Otieno", "--json")
    assert code == 0, err
    assert one_json_object(out)["name"] == "Wanjiru Otieno"
    corrected = f"w.otieno.{secrets.token_hex(3)}@example.org"
    assert (await run(cli_db, "user", "update", email, "--new-email", corrected.upper()))[1] == \
        f"{corrected}: Wanjiru Otieno\n"
    stored = await account(cli_db, corrected)
    assert stored["display_name"] == "Wanjiru Otieno"
    assert "--new-email" in await refused(cli_db, "user", "update", corrected, "--new-email", other)
    assert "--new-email must be an e-mail address" in await refused(cli_db, "user", "update", corrected,
                                                                   "--new-email", "not an address")
    assert "Give --name or --new-email" in await refused(cli_db, "user", "update", corrected)
    assert [a for a in await audited(cli_db, stored["id"]) if a[1] == "update_details"] == \
        [("operator:cli", "update_details")] * 2


async def test_user_deactivate_ends_sessions_and_reactivate_lets_the_person_back(cli_db: CliDatabase,
                                                                                partner: Partner) -> None:
    email = await add_user(cli_db, partner.org, "COUNSELOR", "--no-password-link")
    stored = await account(cli_db, email)
    app = one_json_object((await pamoja("client", "add", "--org", partner.org, "--name", "Pamoja web",
                                        "--redirect-uri", "https://app.example/cb", "--scope", "user/*.cruds", "--json",
                                        env=cli_db.env, cwd=cli_db.cwd)).stdout)
    jti = f"jti-{secrets.token_hex(4)}"
    await fetch(cli_db.url, "INSERT INTO oauth_refresh_token (token_hash, family_id, client_id, user_id, scope, "
                            "access_jti, access_expires_at, expires_at) VALUES ($1, $2, $3, $4, 'user/Referral.rs', "
                            "$5, now() + interval '10 minutes', now() + interval '8 hours')",
                secrets.token_bytes(32), uuid.uuid4(), app["client_id"], stored["id"], jti)
    await run(cli_db, "user", "reset-password", email)

    code, out, err = await run(cli_db, "user", "deactivate", email, "--reason", "Left for Nairobi.", "--json")
    assert code == 0, err
    assert one_json_object(out) == {"id": staff_gid(stored["id"]), "email": email, "active": False,
                                    "ended_sessions": 1, "open_referrals": 0}
    after = await account(cli_db, email)
    assert after["active"] is False and after["signed_out_at"] is not None
    assert after["deactivation_reason"] == "Left for Nairobi."
    assert await fetch(cli_db.url, "SELECT 1 FROM revoked_token WHERE jti = $1", jti)
    assert await fetch(cli_db.url, "SELECT 1 FROM oauth_refresh_token WHERE user_id = $1 AND revoked_at IS NULL",
                       stored["id"]) == []
    assert await fetch(cli_db.url, "SELECT 1 FROM staff_password_link WHERE staff_user_id = $1 AND used_at IS NULL",
                       stored["id"]) == []
    assert "already deactivated" in await refused(cli_db, "user", "deactivate", email)
    assert "reactivate it before" in await refused(cli_db, "user", "reset-password", email)

    human = await run(cli_db, "user", "reactivate", email)
    assert human[:2] == (0, f"{email} reactivated\n")
    assert (await account(cli_db, email))["active"] is True
    assert "active already" in await refused(cli_db, "user", "reactivate", email)
    assert [action for _, action in await audited(cli_db, stored["id"])][-2:] == ["deactivate", "reactivate"]


async def test_user_reset_password_prints_a_new_link_last_and_ends_the_earlier_one(cli_db: CliDatabase,
                                                                                  partner: Partner) -> None:
    first = await run(cli_db, "user", "reset-password", partner.coordinator)
    second = await run(cli_db, "user", "reset-password", partner.coordinator.upper(), "--json")
    assert first[0] == second[0] == 0, (first, second)
    assert first[1].startswith(f"for {partner.coordinator}, one-time password link, valid until ")
    earlier, later = token_of(first[1].splitlines()[-1]), token_of(str(one_json_object(second[1])["password_link"]))
    stored = await account(cli_db, partner.coordinator)
    links = {bytes(row["token_hash"]): row["used_at"] is None for row in await fetch(
        cli_db.url, "SELECT token_hash, used_at FROM staff_password_link WHERE staff_user_id = $1", stored["id"])}
    assert links == {hashlib.sha256(earlier.encode()).digest(): False, hashlib.sha256(later.encode()).digest(): True}
    decoded = from_global_id(str(one_json_object(second[1])["id"]), "StaffUser")
    assert decoded is not None and decoded[1] == stored["id"]
    assert "no staff user with that e-mail" in await refused(cli_db, "user", "reset-password", "nobody@example.org")
