"""Webhooks to partner systems: event types, what a body may carry, signing, URL policy, retry schedule.

Bodies carry the event type, the event id, the time and ids only (rule 4); the receiver fetches
details through the API with its own token, so a leaked or replayed webhook discloses nothing about
a survivor. Requests follow Standard Webhooks 1.0 (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64>`) and are signed with the `standardwebhooks` package and the
client's `whsec_` secret. `webhook-id` is the outbox event id: the same on every retry and every
redelivery, so receivers deduplicate on it (delivery is at least once).

Event types, what a body may carry and the delivery statuses are domain/events.py.

Retry schedule (`DeliveryPolicy`): after failed attempt n the next attempt waits
base x 2.6^(n-1), times a random factor in [0.8, 1.2]. With the default base of 30 s and 8
attempts the waits are about 30 s, 78 s, 3.4 min, 8.8 min, 23 min, 59 min and 2.6 h: the 8th
attempt comes about 4.2 h after the first, then the delivery is DEAD (like Shopify's 8 tries over
4 hours). PAMOJA_WEBHOOK_RETRY_BASE_SECONDS shortens the whole schedule for tests and drills.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import re
import socket
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from standardwebhooks.webhooks import Webhook

from config.settings import Settings
from domain.events import iso_utc

USER_AGENT = "Pamoja-Webhooks/1"
GROWTH_FACTOR = 2.6
JITTER = 0.2
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ErrorKind(StrEnum):
    """Why an attempt failed; stored in the delivery log instead of any response body."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    NETWORK = "network"
    HTTP_STATUS = "http_status"
    REFUSED_URL = "refused_url"
    DNS = "dns"
    SECRET_UNAVAILABLE = "secret_unavailable"  # noqa: S105 (a label, not a secret)
    CLIENT_DISABLED = "client_disabled"


def build_body(*, event_id: str, event_type: str, created_at: datetime, data: Mapping[str, Any]) -> bytes:
    """The exact bytes sent and signed; identical on every retry of the same event."""
    body = {"type": event_type, "id": event_id, "timestamp": iso_utc(created_at), "data": dict(data)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(*, secret: str, message_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers; the timestamp is the send time, as receivers check it within 5 min."""
    sent = (now or datetime.now(UTC)).astimezone(UTC)
    signature = Webhook(secret).sign(msg_id=message_id, timestamp=sent, data=body.decode())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# ----------------------------------------------------------------------------- URL policy


class WebhookUrlRefused(ValueError):
    """The URL may not receive webhooks (scheme, credentials, or a private address in production)."""


class WebhookHostUnresolvable(WebhookUrlRefused):
    """The host did not resolve; the worker logs this as `dns` and retries."""


# IPv6 ranges whose last 32 bits are an IPv4 address that packets end up at (through the host's own
# stack, a NAT64 gateway or a tunnel): IPv4-mapped, SIIT-translated, IPv4-compatible, NAT64's
# well-known prefix. Such an address is as public as that IPv4 address.
_CARRY_IPV4 = tuple(ipaddress.IPv6Network(net) for net in ("::ffff:0:0/96", "::ffff:0:0:0/96", "::/96", "64:ff9b::/96"))
# Never a partner's endpoint: local-use NAT64 (the IPv4 sits wherever the operator's prefix length puts
# it) and Teredo (a tunnel through a relay to the IPv4 its client field hides).
_NEVER_PUBLIC = tuple(ipaddress.IPv6Network(net) for net in ("64:ff9b:1::/48", "2001::/32"))
_ISATAP_ID, _ISATAP_MASK = 0x00005EFE, 0xFCFFFFFF  # RFC 5214 interface id, either u/g bit
_LAST_32_BITS = 0xFFFFFFFF


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if any(address in net for net in _CARRY_IPV4):
        return ipaddress.IPv4Address(int(address) & _LAST_32_BITS)
    return address.sixtofour


def is_public_address(text: str) -> bool:
    """Whether webhooks may connect to this address in production: the one rule for the URL check and
    for the connection itself (PublicAddressesOnly). Public means globally reachable and not
    multicast; an IPv6 address that carries an IPv4 address is judged by that IPv4 address, and an
    address with a zone id (meaningful on one link only) is never public."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None or any(address in net for net in _NEVER_PUBLIC):
            return False
        carried = _carried_ipv4(address)
        if carried is not None:
            return is_public_address(str(carried))
        isatap = (int(address) >> 32) & _ISATAP_MASK == _ISATAP_ID
        if isatap and not is_public_address(str(ipaddress.IPv4Address(int(address) & _LAST_32_BITS))):
            return False
    return address.is_global and not address.is_multicast


_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+")


def _host(name: str) -> str:
    """The host as resolvers will read it, refusing spellings that hide an address.

    A last label that is a number makes resolvers read the whole host as an IPv4 address in any
    of the old inet_aton forms (2130706433, 0x7f.1, 017700000001, 127.1), so only the usual four
    decimal numbers are accepted; IDNA folds full-width digits and dots first; one trailing dot (a
    fully qualified name) is dropped.
    """
    host = unicodedata.normalize("NFKC", name).replace("\u3002", ".").lower().removesuffix(".")
    if "%" in host:
        raise WebhookUrlRefused("The webhook URL must not name a network interface (a zone id).")
    if ":" not in host and _NUMBER.fullmatch(host.rsplit(".", 1)[-1]) and _literal(host) is None:
        raise WebhookUrlRefused("Write an IPv4 address in a webhook URL as four decimal numbers (a.b.c.d).")
    return host


def _split(url: str, *, production: bool) -> tuple[str, int]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise WebhookUrlRefused("Not a valid URL.") from None
    scheme, host = parts.scheme.lower(), _host(parts.hostname or "")
    if not host:
        raise WebhookUrlRefused("The webhook URL needs a host.")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlRefused("The webhook URL must not contain credentials.")
    if scheme == "https":
        return host, port or 443
    if scheme == "http" and not production and host in LOCAL_HOSTS:
        return host, port or 80
    if production:
        raise WebhookUrlRefused("Webhook URLs must use https.")
    raise WebhookUrlRefused("Webhook URLs must use https (http only to 127.0.0.1 or localhost outside production).")


def _check_addresses(addresses: Iterable[str]) -> None:
    found = False
    for text in addresses:
        found = True
        if not is_public_address(text):
            raise WebhookUrlRefused("Webhook URLs must not point to a private, loopback or reserved address.")
    if not found:
        raise WebhookHostUnresolvable("The webhook host does not resolve.")


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def check_webhook_url(url: str, *, production: bool) -> None:
    """Raise WebhookUrlRefused unless webhooks may go to `url`.

    Production: https only, and every address the host resolves to must be public
    (`is_public_address`: no private, loopback, link-local, shared or reserved ranges, nor an IPv6
    form carrying one), so a partner cannot aim Pamoja at internal services. Development and test:
    https anywhere, plus http to 127.0.0.1/localhost. Blocking (it resolves the host); the worker
    uses `check_webhook_url_async`.
    """
    host, port = _split(url, production=production)
    if not production:
        return
    literal = _literal(host)
    if literal is not None:
        _check_addresses([literal])
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise WebhookHostUnresolvable("The webhook host does not resolve.") from None
    _check_addresses(str(info[4][0]) for info in infos)


def webhook_url_problem(url: str, *, production: bool) -> str | None:
    """Why webhooks may not go to `url` (a sentence naming no value), or None: the URL policy that the
    client registry (auth/clients.py) and the administrators' rules are given."""
    try:
        check_webhook_url(url, production=production)
    except WebhookUrlRefused as exc:
        return str(exc)
    return None


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (itself if it is an address), without blocking the event loop."""
    host = _host(host)
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise WebhookHostUnresolvable("The webhook host does not resolve.") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_webhook_url_async(url: str, *, production: bool) -> None:
    """check_webhook_url without blocking the event loop."""
    host, port = _split(url, production=production)
    if not production:
        return
    _check_addresses(await resolve_host(host, port))


Resolver = Callable[[str, int], Awaitable[list[str]]]


class PublicAddressesOnly(httpcore.AsyncNetworkBackend):
    """Connect only to public addresses this backend resolved and checked itself (production).

    Checking a URL and then letting the HTTP client resolve the host again leaves a window: a host
    can answer the check with a public address and the connection with 127.0.0.1 or a cloud
    metadata address (DNS rebinding). Here the address checked is the address connected to. TLS
    still verifies the certificate for the host name: httpcore passes it as server_hostname.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend, resolve: Resolver = resolve_host) -> None:
        self.inner = inner
        self.resolve = resolve

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore API
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        addresses = await self.resolve(host, port)
        _check_addresses(addresses)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109 - httpcore API
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Webhooks are not delivered to unix sockets.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


# ----------------------------------------------------------------------------- delivery


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    retry_base_seconds: float = 30
    max_attempts: int = 8
    timeout_seconds: float = 10
    production: bool = True
    growth_factor: float = GROWTH_FACTOR

    def __post_init__(self) -> None:
        if self.retry_base_seconds <= 0 or self.max_attempts < 1 or self.timeout_seconds <= 0:
            raise ValueError("Webhook retry base, attempts and timeout must be positive.")

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(retry_base_seconds=settings.webhook_retry_base_seconds,
                   max_attempts=settings.webhook_max_attempts, timeout_seconds=settings.webhook_timeout_seconds,
                   production=settings.is_production)

    @property
    def lease_seconds(self) -> float:
        """How long a claim lasts: a worker that dies mid-send frees its deliveries after this."""
        return self.timeout_seconds + 30

    def nominal_delay(self, failed_attempt: int) -> float:
        return self.retry_base_seconds * self.growth_factor ** (failed_attempt - 1)

    def retry_delay(self, failed_attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt n (1-based): exponential, with +/-20% jitter."""
        return self.nominal_delay(failed_attempt) * (1 - JITTER + 2 * JITTER * rand())


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    error_kind: ErrorKind | None

    @property
    def delivered(self) -> bool:
        return self.error_kind is None


async def post_webhook(http: httpx.AsyncClient, *, url: str, body: bytes, headers: Mapping[str, str],
                       production: bool) -> AttemptResult:
    """One attempt. The URL is checked before any connection; redirects are not followed; the
    response body is never read, so nothing a receiver echoes back can be stored or logged."""
    started = time.perf_counter()

    def elapsed() -> int:
        return round((time.perf_counter() - started) * 1000)

    try:
        await check_webhook_url_async(url, production=production)
    except WebhookHostUnresolvable:
        return AttemptResult(None, elapsed(), ErrorKind.DNS)
    except WebhookUrlRefused:
        return AttemptResult(None, elapsed(), ErrorKind.REFUSED_URL)
    try:
        async with http.stream("POST", url, content=body, headers=dict(headers)) as response:
            status = response.status_code
    except WebhookHostUnresolvable:  # from PublicAddressesOnly, resolving again at connect time
        return AttemptResult(None, elapsed(), ErrorKind.DNS)
    except WebhookUrlRefused:
        return AttemptResult(None, elapsed(), ErrorKind.REFUSED_URL)
    except httpx.TimeoutException:
        return AttemptResult(None, elapsed(), ErrorKind.TIMEOUT)
    except httpx.ConnectError:
        return AttemptResult(None, elapsed(), ErrorKind.CONNECT)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        return AttemptResult(None, elapsed(), ErrorKind.REFUSED_URL)
    except httpx.HTTPError:
        return AttemptResult(None, elapsed(), ErrorKind.NETWORK)
    if 200 <= status < 300:
        return AttemptResult(status, elapsed(), None)
    return AttemptResult(status, elapsed(), ErrorKind.HTTP_STATUS)


def http_client(policy: DeliveryPolicy, *, resolve: Resolver = resolve_host) -> httpx.AsyncClient:
    """No redirects (a 3xx is a failed attempt), no proxies from the environment, one timeout; in
    production, connections only to the public addresses checked at connect time (PublicAddressesOnly)."""
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=8)
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if policy.production:
        # httpx has no public hook for the network backend; its pool keeps it here. A test makes a
        # rebinding host fail to connect, so an httpx upgrade that moves it cannot go unnoticed.
        pool = transport._pool
        pool._network_backend = PublicAddressesOnly(pool._network_backend, resolve)
    return httpx.AsyncClient(timeout=httpx.Timeout(policy.timeout_seconds), follow_redirects=False,
                             trust_env=False, headers={"user-agent": USER_AGENT}, transport=transport)
