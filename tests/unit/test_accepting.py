"""`pamoja serve --workers N` sends each new connection to the worker holding the fewest (cli/accepting.py).

The board is unit-tested as a table; the acceptor runs for real on uvloop, two "workers" in one loop
sharing one listening socket as uvicorn's workers do (each with its own descriptor of it), so which
one accepts is decided by the board alone, deterministically.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from cli.accepting import BOARD_ENV, STALE, BalancedAcceptor, Board, balanced_loop

NOW = 10**15


@pytest.fixture
def board_path() -> Iterator[Path]:
    board = Board.create(4)
    yield board.path
    board.path.unlink(missing_ok=True)


def test_a_new_board_is_empty_and_only_its_creator_can_read_it(board_path: Path) -> None:
    board = Board.attach(board_path)
    assert board.slots == 4
    assert not board.fewer_elsewhere(10**6, NOW)
    assert board_path.stat().st_mode & 0o077 == 0


def test_a_worker_defers_only_to_a_live_worker_holding_fewer(board_path: Path) -> None:
    me, other = Board.attach(board_path), Board.attach(board_path)
    assert me.claim(NOW) and other.claim(NOW)
    assert me.slot != other.slot
    other.publish(3, NOW)
    assert [me.fewer_elsewhere(held, NOW) for held in (2, 3, 4)] == [False, False, True]
    # A worker that stopped refreshing its entry (hung or gone) is not deferred to.
    assert not me.fewer_elsewhere(4, NOW + int(STALE * 1e9))
    other.leave()
    assert not me.fewer_elsewhere(4, NOW)


def test_a_workers_own_entry_never_counts_against_it(board_path: Path) -> None:
    me = Board.attach(board_path)
    assert me.claim(NOW)
    me.publish(0, NOW)
    assert not me.fewer_elsewhere(5, NOW)


def test_an_entry_of_a_worker_that_died_is_taken_over_and_a_full_board_refuses(board_path: Path) -> None:
    workers = [Board.attach(board_path) for _ in range(4)]
    assert all(worker.claim(NOW) for worker in workers)
    latecomer = Board.attach(board_path)
    assert not latecomer.claim(NOW), "every entry is held by a live (fresh, running) worker"
    dead = workers[2]
    assert dead.slot is not None
    dead._cells[dead.slot * 3] = _pid_of_a_finished_process()  # its entry is still fresh, its process gone
    assert latecomer.claim(NOW)
    assert latecomer.slot == dead.slot


def _pid_of_a_finished_process() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


# ------------------------------------------------------------------------------------ the acceptor


class Tagged(asyncio.Protocol):
    """Answers every message with the number of the worker that accepted the connection."""

    def __init__(self, worker: int) -> None:
        self.worker = worker

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's does not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.transport.write(str(self.worker).encode())


Connect = Callable[[], Awaitable[tuple[int, asyncio.StreamWriter]]]
Scenario = Callable[[Connect, list[BalancedAcceptor]], Awaitable[None]]


def serve_two_workers(board_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: Scenario) -> None:
    """Two acceptors made by BalancedLoop.create_server, as uvicorn's workers make theirs, on one socket."""
    monkeypatch.setenv(BOARD_ENV, str(board_path))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        workers: list[BalancedAcceptor] = []
        for number in (0, 1):
            server = await loop.create_server(functools.partial(Tagged, number), sock=listener.dup(), backlog=64)
            assert isinstance(server, BalancedAcceptor)
            workers.append(server)
        listener.close()

        async def connect() -> tuple[int, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"?")
            return int(await asyncio.wait_for(reader.read(1), timeout=10)), writer

        try:
            await scenario(connect, workers)
        finally:
            for worker in workers:
                worker.close()
            for worker in workers:
                await worker.wait_closed()

    with asyncio.Runner(loop_factory=balanced_loop) as runner:
        runner.run(main())


def test_connections_opened_one_after_another_are_split_evenly(
    board_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario(connect: Connect, workers: list[BalancedAcceptor]) -> None:
        opened = [await connect() for _ in range(16)]
        assert Counter(worker for worker, _ in opened) == {0: 8, 1: 8}
        assert [worker.held() for worker in workers] == [8, 8]

        # Worker 0's clients leave; once its heartbeat says so, new connections go to it until even again.
        for worker, writer in opened:
            if worker == 0:
                writer.close()
        board = Board.attach(board_path)
        deadline = time.monotonic() + 10
        while not board.fewer_elsewhere(8, time.monotonic_ns()):
            assert time.monotonic() < deadline, "worker 0 never published that it holds fewer"
            await asyncio.sleep(0.05)
        again = [await connect() for _ in range(8)]
        assert Counter(worker for worker, _ in again) == {0: 8}
        for _, writer in opened + again:
            writer.close()

    serve_two_workers(board_path, monkeypatch, scenario)


def test_a_worker_that_holds_fewer_but_does_not_accept_delays_a_connection_and_never_loses_it(
    board_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario(connect: Connect, workers: list[BalancedAcceptor]) -> None:
        first = await connect()
        workers[1].close()  # worker 1 stops accepting and leaves the board; a hung worker takes its place:
        board = Board.attach(board_path)
        assert board.claim(time.monotonic_ns())  # an entry, kept fresh, that says it holds no connection
        board.publish(0, time.monotonic_ns())
        for _ in range(5):
            worker, writer = await connect()
            assert worker == 0
            board.publish(0, time.monotonic_ns())
            writer.close()
        first[1].close()

    serve_two_workers(board_path, monkeypatch, scenario)


def test_without_a_board_the_loop_serves_as_uvloop_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BOARD_ENV, raising=False)

    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        server = await asyncio.get_running_loop().create_server(lambda: Tagged(7), sock=listener)
        assert not isinstance(server, BalancedAcceptor)
        reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        writer.write(b"?")
        assert await asyncio.wait_for(reader.read(1), timeout=10) == b"7"
        writer.close()
        server.close()
        await server.wait_closed()

    with asyncio.Runner(loop_factory=balanced_loop) as runner:
        runner.run(main())


def test_one_worker_needs_no_board_and_an_unwritable_temporary_folder_serves_unbalanced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    assert Board.for_workers(1) is None
    board = Board.for_workers(3)
    assert board is not None and board.slots == 6
    board.path.unlink()
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent/pamoja")
    assert Board.for_workers(2) is None
    assert "set TMPDIR to a writable folder" in caplog.text
