"""Least-connections accepting for `pamoja serve --workers N`.

uvicorn's workers share one listening socket and the kernel wakes them all for a new connection:
whichever calls accept() first takes it. Connections are long-lived (keep-alive from a reverse proxy,
a partner system's client pool, the benchmark's users), so they pile up unevenly — 9/7 or even 16/0
over two workers — and the busier worker saturates its core while the other idles (measured in the
README's Benchmark section). Here each worker publishes how many connections it holds on a small
shared board; a worker that holds more than another live worker leaves a pending connection to that
one for up to `GRACE` seconds and takes it itself only if nobody did, so a hung or busy worker delays
a new connection by at most that and never refuses it.

uvicorn reaches this through its public loop setting: `balanced_loop` makes an event loop whose
`create_server(sock=...)` serves the shared socket this way. One worker, or TLS, keeps uvicorn's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvloop

BOARD_ENV = "PAMOJA_ACCEPT_BOARD"
"""Set by `pamoja serve` for its workers: the path of the board they share."""

GRACE = 0.05
"""How long a worker holding more connections than another leaves a pending connection to it."""

HEARTBEAT = 0.25
"""How often a worker refreshes its entry; an entry older than `STALE` is a worker that is gone."""

STALE = 1.0

_FIELDS = 3  # pid, connections held, heartbeat (CLOCK_MONOTONIC, ns: one clock for every process)
_WIDTH = 8

logger = logging.getLogger("pamoja.serve")


class Board:
    """One entry per worker in a file mapped by every worker: who it is, how many connections it holds."""

    def __init__(self, path: Path, slots: int) -> None:
        self.path = path
        self.slots = slots
        with path.open("r+b") as file:
            self._map = mmap.mmap(file.fileno(), slots * _FIELDS * _WIDTH)
        self._cells = memoryview(self._map).cast("q")
        self.slot: int | None = None

    @classmethod
    def create(cls, slots: int) -> Board:
        """A new, empty board for `slots` workers (the parent makes it before it starts them)."""
        descriptor, name = tempfile.mkstemp(prefix="pamoja-accept-")  # 0600, the serving user's own
        with os.fdopen(descriptor, "wb") as file:
            file.write(bytes(slots * _FIELDS * _WIDTH))
        return cls(Path(name), slots)

    @classmethod
    def for_workers(cls, workers: int) -> Board | None:
        """The board `pamoja serve` shares with its workers, or None: one worker needs none, and where no
        temporary file can be made (a read-only disk) the workers serve as uvicorn alone splits them."""
        if workers < 2:
            return None
        try:
            return cls.create(2 * workers)  # room for replacements started before the old worker is gone
        except OSError as exc:
            logger.warning("connections are not balanced between workers: no board could be made in the "
                           "temporary folder (%s); set TMPDIR to a writable folder", exc.strerror or type(exc).__name__)
            return None

    @classmethod
    def attach(cls, path: Path) -> Board:
        return cls(path, path.stat().st_size // (_FIELDS * _WIDTH))

    def claim(self, now_ns: int) -> bool:
        """Take an entry no live worker holds (never used, left, or a worker that died), under a file lock.

        The board has room for twice the workers (`for_workers`): uvicorn starts a replacement before the
        old worker is gone (on SIGHUP) or while a dead one's entry is still fresh.
        """
        with self.path.open("r+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            for slot in range(self.slots):
                if not (self._live(slot, now_ns) and _running(self._cells[slot * _FIELDS])):
                    self._write(slot, os.getpid(), 0, now_ns)
                    self.slot = slot
                    return True
        return False

    def publish(self, held: int, now_ns: int) -> None:
        if self.slot is not None:
            self._write(self.slot, os.getpid(), held, now_ns)

    def leave(self) -> None:
        if self.slot is not None:
            self._write(self.slot, 0, 0, 0)
            self.slot = None

    def fewer_elsewhere(self, held: int, now_ns: int) -> bool:
        """Whether another live worker holds fewer connections than `held`."""
        return any(self._cells[slot * _FIELDS + 1] < held for slot in self._others(now_ns))

    def _others(self, now_ns: int) -> Iterator[int]:
        return (slot for slot in range(self.slots) if slot != self.slot and self._live(slot, now_ns))

    def _live(self, slot: int, now_ns: int) -> bool:
        base = slot * _FIELDS
        return self._cells[base] != 0 and now_ns - self._cells[base + 2] < STALE * 1e9

    def _write(self, slot: int, pid: int, held: int, now_ns: int) -> None:
        base = slot * _FIELDS
        self._cells[base + 1] = held
        self._cells[base + 2] = now_ns
        self._cells[base] = pid


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class BalancedAcceptor:
    """Accepts on a shared listening socket when this worker holds the fewest connections (or after
    `GRACE`), and hands each connection to uvicorn's protocol; closes like an `asyncio.Server`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol_factory: Callable[[], asyncio.Protocol], board: Board, backlog: int) -> None:
        self._loop = loop
        self._sock = sock
        self._protocol_factory = protocol_factory
        self._board = board
        self._transports: set[asyncio.BaseTransport] = set()
        self._closed = False
        self._descriptor = sock.fileno()  # still known to the reader after close() closed the socket
        sock.setblocking(False)
        sock.listen(backlog)
        if not board.claim(time.monotonic_ns()):
            logger.warning("the accept board is full; this worker takes connections without publishing its load")
        self._tasks = [loop.create_task(self._accept_forever()), loop.create_task(self._heartbeat())]

    def held(self) -> int:
        """Connections this worker holds (a transport closes when its connection is lost or closed)."""
        self._transports = {transport for transport in self._transports if not transport.is_closing()}
        return len(self._transports)

    async def _accept_forever(self) -> None:
        while True:
            await self._readable()
            if self._board.fewer_elsewhere(self.held(), time.monotonic_ns()):
                await asyncio.sleep(GRACE)  # the less-loaded worker's turn; take it if it is still waiting
            try:
                connection, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue  # another worker took it, or the client gave up
            except OSError as exc:  # out of file descriptors or buffers: as asyncio does, wait a moment
                logger.error("accepting a connection failed (%s); retrying in 1 s", exc.strerror or type(exc).__name__)
                await asyncio.sleep(1)
                continue
            try:
                await self._serve(connection)
            except Exception as exc:  # one connection's failure (a reset mid-setup) never stops accepting
                connection.close()
                logger.warning("a new connection failed before serving (%s)", type(exc).__name__)

    async def _serve(self, connection: socket.socket) -> None:
        connection.setblocking(False)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport, _ = await self._loop.connect_accepted_socket(self._protocol_factory, connection)
        self._transports.add(transport)
        self._board.publish(self.held(), time.monotonic_ns())

    async def _readable(self) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:  # the socket stays readable until someone accepts: wake once
            if not ready.done():
                ready.set_result(None)

        self._loop.add_reader(self._descriptor, wake)
        try:
            await ready
        finally:
            if not self._closed:  # once closed, the descriptor's number may already name a new connection
                self._loop.remove_reader(self._descriptor)

    async def _heartbeat(self) -> None:
        while True:
            self._board.publish(self.held(), time.monotonic_ns())
            await asyncio.sleep(HEARTBEAT)

    def close(self) -> None:
        """Stop accepting (uvicorn then closes the connections it holds) and leave the board."""
        if self._closed:  # closing twice must not touch a descriptor number that now names a connection
            return
        self._closed = True
        self._loop.remove_reader(self._descriptor)
        for task in self._tasks:
            task.cancel()
        self._board.leave()
        self._sock.close()

    async def wait_closed(self) -> None:
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class BalancedLoop(uvloop.Loop):
    """uvloop, except that a server on a socket shared by several workers accepts through the board."""

    # One signature for uvloop's overloads: every call that is not uvicorn's (a shared socket, no TLS)
    # goes to uvloop unchanged.
    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.Protocol], *args: Any,
        sock: socket.socket | None = None, ssl: Any = None, **kwargs: Any,
    ) -> Any:
        path = os.environ.get(BOARD_ENV)
        if sock is None or ssl is not None or not path or args:
            return await super().create_server(protocol_factory, *args, sock=sock, ssl=ssl, **kwargs)
        return BalancedAcceptor(self, sock, protocol_factory, Board.attach(Path(path)), kwargs.get("backlog", 100))


def balanced_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's `loop` setting for several workers ("cli.accepting:balanced_loop")."""
    return BalancedLoop()
