"""SQL for the authorization server: clients, codes, refresh-token families, assertion replay, login throttle.

Codes and refresh tokens are looked up by their SHA-256 hash; the plain values exist only in the
responses that hand them out. Rows that decide a one-time use are read `FOR UPDATE`, so two
concurrent redemptions of one code or one refresh token are serialised and the second one is seen
as a reuse.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import Row, Select, Update, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.engine import Db
from db.tables import (
    LoginThrottle,
    OAuthAssertionJti,
    OAuthAuthorizationCode,
    OAuthClient,
    OAuthRefreshToken,
    Organization,
    RevokedToken,
    StaffUser,
)

# A row of any shape: callers read columns by name.
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

clients = OAuthClient.__table__  # type: ignore[attr-defined]
orgs = Organization.__table__  # type: ignore[attr-defined]
users = StaffUser.__table__  # type: ignore[attr-defined]
codes = OAuthAuthorizationCode.__table__  # type: ignore[attr-defined]
refresh = OAuthRefreshToken.__table__  # type: ignore[attr-defined]
assertions = OAuthAssertionJti.__table__  # type: ignore[attr-defined]
throttle = LoginThrottle.__table__  # type: ignore[attr-defined]
revoked = RevokedToken.__table__  # type: ignore[attr-defined]


def _now() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------------------- clients

_CLIENT_COLUMNS = (
    clients.c.id, clients.c.client_id, clients.c.name, clients.c.organization_id, orgs.c.kind,
    clients.c.secret_hash, clients.c.jwks, clients.c.allowed_scopes, clients.c.redirect_uris,
    clients.c.disabled, orgs.c.active.label("organization_active"),
)


async def active_client(connection: AsyncConnection, client_id: str) -> AnyRow | None:
    """An enabled client of an active organization, or None (unknown, disabled and retired look alike)."""
    return (await connection.execute(
        select(*_CLIENT_COLUMNS).join(orgs, orgs.c.id == clients.c.organization_id)
        .where(clients.c.client_id == client_id, clients.c.disabled.is_(False), orgs.c.active.is_(True))
    )).first()


async def client_by_id_or_client_id(connection: AsyncConnection, *, row_id: uuid.UUID | None,
                                    client_id: str | None) -> AnyRow | None:
    """Operator lookups: disabled clients included."""
    condition = clients.c.id == row_id if row_id is not None else clients.c.client_id == client_id
    return (await connection.execute(
        select(*_CLIENT_COLUMNS).join(orgs, orgs.c.id == clients.c.organization_id).where(condition)
    )).first()


async def insert_client(connection: AsyncConnection, *, row_id: uuid.UUID, organization_id: uuid.UUID,
                        client_id: str, name: str, secret_hash: str | None, jwks: dict[str, Any] | None,
                        allowed_scopes: Sequence[str], redirect_uris: Sequence[str], webhook_url: str | None,
                        webhook_secret_enc: bytes | None) -> None:
    await connection.execute(insert(clients).values(
        id=row_id, organization_id=organization_id, client_id=client_id, name=name, secret_hash=secret_hash,
        jwks=jwks, allowed_scopes=list(allowed_scopes), redirect_uris=list(redirect_uris),
        webhook_url=webhook_url, webhook_secret_enc=webhook_secret_enc,
    ))


# What an operator and an administrator see of a client; never a secret or its hash.
CLIENT_VIEW_COLUMNS = (
    clients.c.id, clients.c.client_id, clients.c.name, clients.c.organization_id, orgs.c.kind,
    orgs.c.name.label("organization_name"), clients.c.allowed_scopes, clients.c.redirect_uris,
    clients.c.webhook_url, (clients.c.webhook_secret_enc.is_not(None)).label("has_webhook_secret"),
    (clients.c.secret_hash.is_not(None)).label("has_secret"),
    clients.c.disabled, clients.c.created_at, clients.c.version,
)


def client_views() -> Select[Any]:
    return select(*CLIENT_VIEW_COLUMNS).join(orgs, orgs.c.id == clients.c.organization_id)


async def list_clients(connection: AsyncConnection, *, organization_id: uuid.UUID | None) -> list[AnyRow]:
    """Every client (or one organization's), by organization and name."""
    query = client_views().order_by(orgs.c.name, clients.c.name, clients.c.client_id)
    if organization_id is not None:
        query = query.where(clients.c.organization_id == organization_id)
    return list((await connection.execute(query)).all())


def update_client(row_id: uuid.UUID, values: dict[str, Any]) -> Update:
    return update(clients).where(clients.c.id == row_id).values(**values, version=clients.c.version + 1)


async def set_client_secret(connection: AsyncConnection, row_id: uuid.UUID, secret_hash: str) -> None:
    await connection.execute(update(clients).where(clients.c.id == row_id)
                             .values(secret_hash=secret_hash, version=clients.c.version + 1))


async def set_client_disabled(connection: AsyncConnection, row_id: uuid.UUID) -> None:
    await connection.execute(update(clients).where(clients.c.id == row_id)
                             .values(disabled=True, version=clients.c.version + 1))


# ----------------------------------------------------------------------------- staff


_STAFF_COLUMNS = (
    users.c.id, users.c.email, users.c.display_name, users.c.roles, users.c.organization_id, orgs.c.kind,
    users.c.password_hash,
)


async def active_staff_by_email(connection: AsyncConnection, email: str) -> AnyRow | None:
    return (await connection.execute(
        select(*_STAFF_COLUMNS).join(orgs, orgs.c.id == users.c.organization_id)
        .where(users.c.email == email, users.c.active.is_(True), orgs.c.active.is_(True))
    )).first()


async def active_staff_by_id(connection: AsyncConnection, user_id: uuid.UUID) -> AnyRow | None:
    return (await connection.execute(
        select(*_STAFF_COLUMNS).join(orgs, orgs.c.id == users.c.organization_id)
        .where(users.c.id == user_id, users.c.active.is_(True), orgs.c.active.is_(True))
    )).first()


# ----------------------------------------------------------------------------- authorization codes


async def insert_code(connection: AsyncConnection, *, code_hash: bytes, client_id: str, user_id: uuid.UUID,
                      redirect_uri: str, scope: str, code_challenge: str, code_challenge_method: str,
                      expires_at: datetime) -> None:
    await connection.execute(insert(codes).values(
        code_hash=code_hash, client_id=client_id, user_id=user_id, redirect_uri=redirect_uri, scope=scope,
        code_challenge=code_challenge, code_challenge_method=code_challenge_method, expires_at=expires_at,
    ))


async def lock_code(connection: AsyncConnection, code_hash: bytes) -> AnyRow | None:
    return (await connection.execute(select(codes).where(codes.c.code_hash == code_hash).with_for_update())).first()


async def mark_code_used(connection: AsyncConnection, code_hash: bytes, family_id: uuid.UUID | None) -> None:
    await connection.execute(update(codes).where(codes.c.code_hash == code_hash)
                             .values(used_at=_now(), family_id=family_id))


# ----------------------------------------------------------------------------- refresh tokens and revocation


async def insert_refresh(connection: AsyncConnection, *, token_hash: bytes, family_id: uuid.UUID, client_id: str,
                         user_id: uuid.UUID, scope: str, access_jti: str, access_expires_at: datetime,
                         expires_at: datetime) -> None:
    await connection.execute(insert(refresh).values(
        token_hash=token_hash, family_id=family_id, client_id=client_id, user_id=user_id, scope=scope,
        access_jti=access_jti, access_expires_at=access_expires_at, expires_at=expires_at,
    ))


async def find_refresh(connection: AsyncConnection, token_hash: bytes, *, lock: bool) -> AnyRow | None:
    statement = select(refresh).where(refresh.c.token_hash == token_hash)
    return (await connection.execute(statement.with_for_update() if lock else statement)).first()


async def mark_refresh_used(connection: AsyncConnection, token_hash: bytes) -> None:
    await connection.execute(update(refresh).where(refresh.c.token_hash == token_hash).values(used_at=_now()))


async def revoke_access(connection: AsyncConnection | Db, jti: str, expires_at: datetime) -> None:
    await connection.execute(pg_insert(revoked).values(jti=jti, expires_at=expires_at)
                             .on_conflict_do_nothing(index_elements=[revoked.c.jti]))


async def revoke_families(connection: AsyncConnection | Db, *, family_id: uuid.UUID | None = None,
                          client_id: str | None = None, user_id: uuid.UUID | None = None) -> int:
    """Revoke every refresh token of a family (or of a client, or of a staff user) and the access
    tokens they issued; returns how many of those access tokens were still live."""
    if family_id is not None:
        condition = refresh.c.family_id == family_id
    elif user_id is not None:
        condition = refresh.c.user_id == user_id
    else:
        condition = refresh.c.client_id == client_id
    now = _now()
    await connection.execute(update(refresh).where(condition, refresh.c.revoked_at.is_(None))
                             .values(revoked_at=now))
    live = (await connection.execute(
        select(refresh.c.access_jti, refresh.c.access_expires_at)
        .where(condition, refresh.c.access_expires_at > now)
    )).all()
    for row in live:
        await revoke_access(connection, row.access_jti, row.access_expires_at)
    return len(live)


# ----------------------------------------------------------------------------- client assertion replay


async def remember_assertion(connection: AsyncConnection, *, client_id: str, jti: str,
                             expires_at: datetime) -> bool:
    """True the first time a (client, jti) is seen while unexpired; False on a replay."""
    await connection.execute(delete(assertions).where(assertions.c.client_id == client_id,
                                                      assertions.c.expires_at < _now()))
    inserted = (await connection.execute(
        pg_insert(assertions).values(client_id=client_id, jti=jti, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=[assertions.c.client_id, assertions.c.jti])
        .returning(assertions.c.jti)
    )).first()
    return inserted is not None


# ----------------------------------------------------------------------------- login throttle


async def lock_throttle(connection: AsyncConnection, key_hash: bytes) -> AnyRow:
    """The throttle row for one submitted identifier, locked until the attempt's transaction ends."""
    await connection.execute(pg_insert(throttle).values(key_hash=key_hash)
                             .on_conflict_do_nothing(index_elements=[throttle.c.key_hash]))
    return (await connection.execute(
        select(throttle).where(throttle.c.key_hash == key_hash).with_for_update()
    )).one()


async def record_login_failure(connection: AsyncConnection, key_hash: bytes, *, failures: int,
                               locked_until: datetime | None) -> None:
    await connection.execute(update(throttle).where(throttle.c.key_hash == key_hash).values(
        failures=failures, last_failure_at=_now(), locked_until=locked_until,
    ))


async def clear_login_failures(connection: AsyncConnection, key_hash: bytes) -> None:
    await connection.execute(delete(throttle).where(throttle.c.key_hash == key_hash))

