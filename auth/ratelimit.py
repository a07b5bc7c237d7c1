"""Rate limits on the token endpoint and the login form, per client and per address (`limits` library).

The storage is `async+memory://` by default: limits then hold per process, which is right for one
worker and conservative-per-worker for several. Point PAMOJA_RATE_LIMIT_STORAGE at a shared store
(for example `async+redis://...`) to enforce them across workers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


@dataclass(frozen=True)
class Limit:
    name: str
    item: RateLimitItem


class RateLimits:
    def __init__(self, *, storage: str, token_per_client: str, token_per_address: str, login_per_client: str,
                 login_per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage))
        self.token_client = Limit("token-client", parse(token_per_client))
        self.token_address = Limit("token-address", parse(token_per_address))
        self.login_client = Limit("login-client", parse(login_per_client))
        self.login_address = Limit("login-address", parse(login_per_address))

    async def hit(self, *checks: tuple[Limit, str | None]) -> int | None:
        """Count one request against each (limit, key); the seconds to wait if any is exhausted, else None.

        Every applicable limit is counted even when an earlier one refuses, so a caller cannot dodge
        the per-address budget by also exhausting a per-client one.
        """
        wait: int | None = None
        for limit, key in checks:
            if not key:
                continue
            if not await self._limiter.hit(limit.item, limit.name, key):
                stats = await self._limiter.get_window_stats(limit.item, limit.name, key)
                seconds = max(1, math.ceil(stats.reset_time - time.time()))
                wait = max(wait or 0, seconds)
        return wait
