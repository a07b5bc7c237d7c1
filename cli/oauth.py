"""`pamoja client ...`, `pamoja token` and `pamoja keys rotate`: the operator's side of OAuth.

Every command runs in one owner transaction and leaves an audit event. Secrets are printed once,
at creation or rotation; only their hashes (client secrets) or ciphertexts (webhook secrets) are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auth import keys as signing_keys
from auth.clients import UrlPolicy, disable_client, register_client, rotate_client_secret, update_client
from auth.config import OAuthConfig
from auth.login import StaffIdentity, normalize_email
from auth.tokens import mint_access_token
from cli.context import Cli, CommandError, emit
from db import oauth as store
from db.crypto import MasterKeys
from domain.errors import DomainError
from domain.ids import from_global_id, to_global_id
from domain.scopes import default_scopes, is_within, parse_scope, role_ceiling
from domain.use_cases.oauth_clients import ClientChange
from partners.webhooks import webhook_url_problem

OPERATOR_CLIENT_ID = "pamoja-cli"


def _url_policy(cli: Cli) -> UrlPolicy:
    return functools.partial(webhook_url_problem, production=cli.settings.is_production)


def register(sub: Any) -> None:
    client = sub.add_parser("client", help="OAuth clients: partner systems and staff login apps.")
    commands = client.add_subparsers(dest="client_command", required=True)

    add = commands.add_parser("add", help="Register a partner system (or, with --redirect-uri, a staff login app).")
    add.add_argument("--org", required=True, help="The owning organization's global id.")
    add.add_argument("--name", required=True)
    add.add_argument("--scope", action="append", default=[], required=True,
                     help="An allowed scope, e.g. system/Referral.rus; repeatable.")
    add.add_argument("--jwks-file", type=Path, default=None,
                     help="Public JWKS for private_key_jwt; no client secret is issued then.")
    add.add_argument("--webhook-url", default=None, help="Where partner-system webhooks are delivered.")
    add.add_argument("--redirect-uri", action="append", default=[],
                     help="Makes this a staff login app (authorization code + PKCE); repeatable.")
    add.add_argument("--confidential", action="store_true",
                     help="A staff login app that also authenticates with a client secret.")
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=_client_add)

    listing = commands.add_parser("list", help="List OAuth clients (never their secrets).")
    listing.add_argument("--org", default=None, help="Only this organization's (global id).")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_client_list)

    change = commands.add_parser("update", help="Change a client's name, scopes, webhook URL or redirect URIs; "
                                                "what is not given stays.")
    change.add_argument("client", help="client_id or global id")
    change.add_argument("--name", default=None)
    change.add_argument("--scope", action="append", default=None,
                        help="Repeatable; replaces the whole set, within the organization's ceiling.")
    hook = change.add_mutually_exclusive_group()
    hook.add_argument("--webhook-url", default=None, help="Where webhooks go from now on.")
    hook.add_argument("--no-webhook-url", action="store_true", help="Stop sending webhooks to this client.")
    change.add_argument("--redirect-uri", action="append", default=None,
                        help="Staff login apps: repeatable; replaces the whole set.")
    change.add_argument("--json", action="store_true")
    change.set_defaults(handler=_client_update)

    rotate = commands.add_parser("rotate-secret", help="Issue a new client secret; the old one stops working.")
    rotate.add_argument("client", help="client_id or global id")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(handler=_client_rotate)

    disable = commands.add_parser("disable", help="Refuse a client from now on, and revoke its live tokens.")
    disable.add_argument("client", help="client_id or global id")
    disable.add_argument("--json", action="store_true")
    disable.set_defaults(handler=_client_disable)

    token = sub.add_parser("token", help="Mint a staff access token (operators and tests); audited.")
    token.add_argument("--user", required=True, help="The staff user's e-mail.")
    token.add_argument("--scope", action="append", default=[], help="Narrow to these scopes; repeatable.")
    token.add_argument("--ttl", type=int, default=None, help="Lifetime in seconds (at most the staff token TTL).")
    token.set_defaults(handler=_token)

    keys = sub.add_parser("keys", help="Token-signing keys, master keys, fresh secrets.").add_subparsers(
        dest="keys_command", required=True)
    krotate = keys.add_parser("rotate", help="Add a signing key; older keys retire after the longest token TTL.")
    krotate.add_argument("--json", action="store_true")
    krotate.set_defaults(handler=_keys_rotate)
    from cli.keygen import register_generate
    from cli.safety import register_keys

    register_generate(keys)
    register_keys(keys)


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except DomainError as exc:
        raise CommandError(exc.message) from None


def _master(cli: Cli) -> MasterKeys:
    return MasterKeys.parse(cli.settings.master_keys.get_secret_value())


def _client_add(args: argparse.Namespace) -> int:
    jwks = None
    if args.jwks_file is not None:
        try:
            jwks = json.loads(args.jwks_file.read_text())
        except (OSError, ValueError):
            raise CommandError("--jwks-file is not a readable JSON file") from None

    async def run() -> dict[str, str]:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            registered = await register_client(
                connection, _master(cli), organization_gid=args.org, name=args.name, scopes=args.scope, jwks=jwks,
                webhook_url=args.webhook_url, redirect_uris=args.redirect_uri, confidential=args.confidential,
                url_policy=_url_policy(cli),
            )
            await cli.audit(connection, action="create", record_type="OAuthClient", record_id=registered.id)
            return registered.as_output()

    out = _run(run())
    human = "\n".join(f"{k}: {v}" for k, v in out.items())
    if "client_secret" in out or "webhook_secret" in out:
        human += "\n(secrets are shown once; store them now)"
    emit(out, as_json=args.json, human=human)
    return 0


def _client_list(args: argparse.Namespace) -> int:
    organization_id = None
    if args.org is not None:
        decoded = from_global_id(args.org, "Organization")
        if decoded is None:
            raise CommandError("--org is not an organization id; `pamoja org list` shows them")
        organization_id = decoded[1]

    async def run() -> list[dict[str, Any]]:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            found = await store.list_clients(connection, organization_id=organization_id)
        return [{"id": to_global_id("OAuthClient", row.id), "client_id": row.client_id, "name": row.name,
                 "organization": to_global_id("Organization", row.organization_id),
                 "organization_name": row.organization_name,
                 "kind": "staff login app" if row.redirect_uris else "partner system",
                 "authentication": "client_secret" if row.has_secret else
                 "pkce (public)" if row.redirect_uris else "private_key_jwt",
                 "scopes": list(row.allowed_scopes or []), "webhook_url": row.webhook_url,
                 "redirect_uris": list(row.redirect_uris or []), "active": not row.disabled,
                 "created_at": row.created_at.isoformat() if row.created_at else None} for row in found]

    rows = _run(run())
    header = ("CLIENT_ID", "NAME", "ORGANIZATION", "KIND", "STATUS", "SCOPES")
    cells = [(r["client_id"], r["name"], r["organization_name"], r["kind"], "active" if r["active"] else "disabled",
              " ".join(r["scopes"])) for r in rows]
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
    table = "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
                      for line in (header, *cells)) if rows else "no clients match"
    emit({"clients": rows, "count": len(rows)}, as_json=args.json, human=table)
    return 0


def _client_update(args: argparse.Namespace) -> int:
    async def run() -> dict[str, str]:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            async def audit(action: str, record_id: str) -> None:
                await cli.audit(connection, action=action, record_type="OAuthClient", record_id=record_id)

            change = ClientChange(name=args.name, scopes=args.scope, webhook_url=args.webhook_url,
                                  remove_webhook=args.no_webhook_url, redirect_uris=args.redirect_uri)
            return await update_client(connection, _master(cli), args.client, change=change,
                                       url_policy=_url_policy(cli), audit=audit)

    out = _run(run())
    human = f"client {out['client_id']} updated"
    if "webhook_secret" in out:
        human += f"\nwebhook_secret: {out['webhook_secret']}\n(shown once; store it now)"
    emit(out, as_json=args.json, human=human)
    return 0


def _client_rotate(args: argparse.Namespace) -> int:
    async def run() -> dict[str, str]:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            rotated = await rotate_client_secret(connection, args.client)
            await cli.audit(connection, action="rotate_secret", record_type="OAuthClient", record_id=rotated.id)
            return rotated.as_output()

    out = _run(run())
    emit(out, as_json=args.json, human="\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


def _client_disable(args: argparse.Namespace) -> int:
    async def run() -> dict[str, str]:
        cli = Cli.load()
        async with cli.owner_transaction() as connection:
            disabled = await disable_client(connection, args.client)
            await cli.audit(connection, action="disable", record_type="OAuthClient", record_id=disabled.id)
            return {**disabled.as_output(), "disabled": "true"}

    out = _run(run())
    emit(out, as_json=args.json, human=f"client {out['client_id']} disabled")
    return 0


def _token(args: argparse.Namespace) -> int:
    async def run() -> tuple[str, dict[str, Any], str]:
        cli = Cli.load()
        config = OAuthConfig.from_settings(cli.settings)
        ttl = config.staff_token_seconds if args.ttl is None else args.ttl
        if not 1 <= ttl <= config.staff_token_seconds:
            raise CommandError(f"--ttl must be between 1 and {config.staff_token_seconds} seconds "
                               "(a longer token could outlive a retiring signing key)")
        async with cli.owner_transaction() as connection:
            row = await store.active_staff_by_email(connection, normalize_email(args.user))
            if row is None:
                raise CommandError("no active staff user with that e-mail")
            user = StaffIdentity.from_row(row)
            if args.scope:
                try:
                    requested = [parse_scope(s.strip()) for s in args.scope]
                except ValueError as exc:
                    raise CommandError(f"invalid --scope: {exc}") from None
                if not is_within(requested, role_ceiling(user.roles)):
                    raise CommandError("a --scope exceeds what this user's roles allow")
                scopes = list(dict.fromkeys(str(s) for s in requested))
            else:
                scopes = list(default_scopes(user.roles))
            material = await signing_keys.load(connection, _master(cli))
            token, claims = mint_access_token(
                material.current, issuer=config.issuer, audience=config.audience, subject=user.gid,
                client_id=OPERATOR_CLIENT_ID, organization=user.organization_gid, scopes=scopes,
                roles=[r.value for r in user.roles], ttl_seconds=ttl,
            )
            await cli.audit(connection, action="issue_token", record_type="StaffUser", record_id=user.gid,
                            purpose="operator token")
            return token, claims, user.gid

    token, claims, gid = _run(run())
    expires = datetime.fromtimestamp(claims["exp"], UTC).isoformat()
    # The token is the last line, so `pamoja token ... | tail -n 1` captures it.
    sys.stdout.write(f"# staff token for {gid}, scope: {claims['scope']}, expires {expires}\n{token}\n")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    async def run() -> dict[str, Any]:
        cli = Cli.load()
        config = OAuthConfig.from_settings(cli.settings)
        async with cli.owner_transaction() as connection:
            rotation = await signing_keys.rotate(connection, _master(cli),
                                                 longest_token_seconds=config.longest_token_seconds)
            await cli.audit(connection, action="rotate", record_type="SigningKey", record_id=rotation.new_kid)
            return {"kid": rotation.new_kid, "retiring": list(rotation.retiring),
                    "retire_at": rotation.retire_at.isoformat(), "pruned": rotation.pruned}

    out = _run(run())
    human = f"new signing key {out['kid']}"
    if out["retiring"]:
        human += f"; {', '.join(out['retiring'])} retire at {out['retire_at']}"
    emit(out, as_json=args.json, human=human)
    return 0
