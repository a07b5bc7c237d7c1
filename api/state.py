"""What the running app holds: settings, the runtime engine, the database URLs, key material."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from auth.resource import Authenticator
from db.crypto import MasterKeys
from db.engine import DatabaseUrls


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    urls: DatabaseUrls
    master_keys: MasterKeys
    blind_index_key: bytes
    authenticator: Authenticator
