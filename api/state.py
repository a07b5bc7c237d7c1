"""What the running app holds: settings, the runtime engine, the database URLs, key material."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from api.graphql.read_audit import RefusedReadLimit
from auth.resource import Authenticator
from config.settings import Settings
from db.crypto import DataKeys, MasterKeys
from db.engine import DatabaseUrls


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    urls: DatabaseUrls = field(repr=False)  # may carry database passwords
    master_keys: MasterKeys
    blind_index_key: bytes = field(repr=False)  # never in a repr, as MasterKeys
    authenticator: Authenticator
    refused_reads: RefusedReadLimit = field(init=False)
    data_keys: DataKeys = field(init=False)  # survivors' keys as compiled reads open them

    def __post_init__(self) -> None:
        self.data_keys = DataKeys(self.master_keys, size=self.settings.data_key_cache_size)
        self.refused_reads = RefusedReadLimit(self.settings.refused_read_audit_limit, self.engine)
