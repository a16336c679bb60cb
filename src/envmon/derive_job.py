"""The derive job: keeps the derived tables up to date in a long-running
process (``envmon run``, and each of its HJ 212 receiver workers) — soon after
this process stored new data, and every minute for what others stored.
Derivers in several processes are kept apart by the advisory locks of
:func:`envmon.evaluate.derive.process_dirty`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from envmon.app import App
from envmon.evaluate.derive import process_dirty
from envmon.schemas.readings import ReadingBatch
from envmon.timeutil import now

logger = logging.getLogger(__name__)


class DeriveJob:
    """Keeps the derived tables up to date: soon after new data, and every minute."""

    def __init__(self, app: App, *, debounce_s: float = 2.0, interval_s: float = 60.0) -> None:
        self.app = app
        self._unlisten: Callable[[], None] | None = None
        self.debounce_s = debounce_s
        self.interval_s = interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_run: datetime | None = None

    async def on_batch(self, batch: ReadingBatch) -> None:
        self._wake.set()

    async def __aenter__(self) -> DeriveJob:
        # Every stored batch, history included: the derived tables follow all data.
        self._unlisten = self.app.sink.listen(self.on_batch, history=True)
        self._task = asyncio.create_task(self._loop(), name="derive")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unlisten is not None:
            self._unlisten()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> int:
        async with self.app.pool.connection() as conn:
            stats = await process_dirty(conn, city_o3=self.app.settings.evaluate.city_o3)
        self.last_run = now()
        return stats.station_days

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            await asyncio.sleep(self.debounce_s)  # let a burst of batches land first
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:  # a task boundary: log, keep the service running
                logger.exception("derive job failed")
