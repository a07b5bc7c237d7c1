"""How many refused reads one principal can write into the audit trail, and the count of the rest.

Reads of survivor-data ids that show nothing are audited (domain/use_cases/refused_reads.py). Each
costs the caller one id in a request and the trail one hash-chained row that every later writer
waits behind, so a caller asking `nodes(ids:)` for random ids in a loop could flood it. Per
principal (user or system, with its client) and per window of the configured rate
(`PAMOJA_REFUSED_READ_AUDIT_LIMIT`, 30/minute by default): the first rows are written one per id,
the rest only counted; when the window ends one row with record type `Unrecorded` and the count as
its record id says how many were left out. The counters live in the process, like the default
rate-limit storage: with several workers each writes up to the rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from limits import parse
from sqlalchemy.ext.asyncio import AsyncEngine

from config.logging import get_logger
from db.audit import AuditRow, write_audit_rows
from db.engine import RowSecurityContext, transaction

UNRECORDED = "Unrecorded"

logger = get_logger("pamoja.audit")


@dataclass(slots=True)
class _Window:
    ends: float  # event-loop time
    recorded: int = 0
    unrecorded: int = 0
    first_left_out: AuditRow | None = None  # whose summary it is
    row_security: RowSecurityContext | None = None
    writing: bool = False


class RefusedReadLimit:
    """The per-principal windows of one process, and the summaries they still owe."""

    def __init__(self, rate: str, engine: AsyncEngine) -> None:
        item = parse(rate)
        self.amount = item.amount
        self.seconds = item.get_expiry()
        self.engine = engine
        self._windows: dict[tuple[str, str | None], _Window] = {}
        self._summaries: dict[asyncio.Task[None], _Window] = {}

    def admit(self, rows: Sequence[AuditRow], row_security: RowSecurityContext) -> list[AuditRow]:
        """The rows of one principal's operation to write now; the others are counted for the summary
        of the current window (written when it ends)."""
        if not rows:
            return []
        now = asyncio.get_running_loop().time()
        for key in [k for k, w in self._windows.items() if w.ends <= now]:
            del self._windows[key]  # a window still owed a summary is held by its summary task
        key = (rows[0].actor, rows[0].client_id)
        window = self._windows.setdefault(key, _Window(ends=now + self.seconds))
        room = max(self.amount - window.recorded, 0)
        admitted, left_out = list(rows[:room]), rows[room:]
        window.recorded += len(admitted)
        if left_out:
            if window.first_left_out is None:
                window.first_left_out, window.row_security = left_out[0], row_security
                task = asyncio.ensure_future(self._summarise_at_end(window))
                self._summaries[task] = window
                task.add_done_callback(self._forget)
            window.unrecorded += len(left_out)
        return admitted

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._summaries.pop(task, None)

    async def _summarise_at_end(self, window: _Window) -> None:
        await asyncio.sleep(max(window.ends - asyncio.get_running_loop().time(), 0))
        await self._summarise(window)

    async def _summarise(self, window: _Window) -> None:
        assert window.first_left_out is not None and window.row_security is not None
        window.writing = True
        row = replace(window.first_left_out, action="read", record_type=UNRECORDED,
                      record_id=str(window.unrecorded), request_id=None)
        try:
            async with transaction(self.engine, window.row_security) as db:
                await write_audit_rows(db.connection, [row])
        except Exception as exc:  # the count is not survivor data: the log keeps it when the trail cannot
            logger.warning("refused reads left out of the audit trail", error_type=type(exc).__name__,
                           client_id=row.client_id, count=window.unrecorded)

    async def close(self) -> None:
        """At shutdown: write now the summaries still waiting for their window to end."""
        for task, window in list(self._summaries.items()):
            if window.writing:
                await asyncio.wait([task])
            else:
                task.cancel()
                await self._summarise(window)
