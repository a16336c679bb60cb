"""The alert owner: which instance judges, and how it takes over (see :mod:`envmon.alerts.relay`).

Every second each instance asks for the advisory lock ``envmon.alerts``.
The holder runs the engine (in-stream and scheduled rules) and the delivery
workers; the others run neither and forward their stored batches, each with
its own commit (a NOTIFY in the writer's transaction). Taking over: listen,
start the engine (open episodes restored from ``alert_event``), mark the
subjects whose episodes ended as judged up to their end, catch up on the
readings stored since the watermark less the margin, then judge what is
forwarded. Losing the lock (or the listening session) stops the
engine here at once; the next owner catches up from the watermark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Protocol

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from envmon.alerts import episodes as store_db
from envmon.alerts.engine import AlertEngine
from envmon.alerts.relay import (
    NAMESPACE,
    OWNER,
    announcement,
    decode,
    listen,
    load_watermark,
    mark_time,
    save_watermark,
    send_mark,
    stored_since,
)
from envmon.alerts.scheduled import LOOKBACK_S
from envmon.db.ownership import Ownership
from envmon.db.writer import Pool
from envmon.schemas.readings import ReadingBatch
from envmon.settings import AlertSettings

logger = logging.getLogger(__name__)


class Judge(Protocol):
    """What the owner starts and stops (the alert service)."""

    pool: Pool
    settings: AlertSettings
    engine: AlertEngine | None

    async def start_engine(self) -> None: ...

    async def stop_engine(self) -> None: ...


class AlertOwner:
    """One instance's part in the shared alert evaluation (see the module docstring)."""

    def __init__(self, judge: Judge, conninfo: str, instance: str) -> None:
        self.judge = judge
        self.conninfo = conninfo
        self.instance = instance
        self.ownership = Ownership(conninfo, NAMESPACE)
        self.running = False  # owner, caught up: batches are judged here
        self.forwarded = 0  # batches stored while another instance owned: sent to it
        self.caught_up = 0  # readings judged by catch-ups
        self._listener: AsyncConnection[TupleRow] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    @property
    def pool(self) -> Pool:
        return self.judge.pool

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="alerts-owner")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        await self._step_down()
        await self.ownership.close()

    # ------------------------------------------------------------------ the sink's listener

    def announce(self, batch: ReadingBatch) -> list[tuple[str, str]]:
        """The writer's hook (:attr:`envmon.db.writer.Writer.announce`): what to
        NOTIFY with a batch about to be stored. Nothing while this instance owns
        (it judges its own batches, :meth:`on_stored`); else the batch's recent rows
        for the owner, sent in the writing transaction, so they reach the owner
        exactly when the batch is committed — a crash right after the commit
        loses nothing."""
        if self.running:
            return []
        return announcement(batch, self.instance)

    async def on_stored(self, batch: ReadingBatch) -> None:
        """A batch this instance stored: judged here when it owns; else it went to
        the owner with its commit (:meth:`announce`).

        Owning changed in between: a batch written while not owning and stored
        as owner is judged twice (harmless); one written as owner and stored
        after losing the lock is judged by the next owner's catch-up (its
        ``received_at`` is after the last mark that came back)."""
        engine = self.judge.engine
        if self.running and engine is not None:
            await engine.on_batch(batch)
        else:
            self.forwarded += 1

    # ------------------------------------------------------------------ ownership

    async def _loop(self) -> None:
        claim_s = self.judge.settings.claim_s
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a task boundary: the next tick tries again
                logger.exception("alerts: ownership tick failed")
                await self._give_up()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), claim_s)

    async def _tick(self) -> None:
        if self._lost.is_set():
            self._lost.clear()
            await self._give_up()
        owned = await self.ownership.owns(OWNER)
        if owned and not self.running:
            await self._take_over()
        elif not owned and (self.running or self.judge.engine is not None):
            logger.warning("alerts: this instance lost the alert ownership")
            await self._step_down()
        elif owned:
            async with self.pool.connection() as conn:
                await send_mark(conn)

    async def _give_up(self) -> None:
        """Stop judging and release the lock: whoever takes it catches up."""
        await self._step_down()
        await self.ownership.close()

    async def _take_over(self) -> None:
        await self._step_down()  # what a lost session left
        self._listener = await listen(self.conninfo)
        await self.judge.start_engine()
        engine = self.judge.engine
        assert engine is not None
        now = engine.clock()
        margin = timedelta(seconds=self.judge.settings.catch_up_margin_s)
        async with self.pool.connection() as conn:
            mark = await load_watermark(conn)
            lookback = now - timedelta(seconds=LOOKBACK_S)
            for rule, subject, ts in await store_db.recent_ends(conn, lookback):
                engine.tracker.judged(rule, subject, ts.timestamp())
        since = max((mark[1] if mark else now) - margin, lookback)
        n = await self._catch_up(engine, since, now)
        self._consumer = asyncio.create_task(self._consume(self._listener), name="alerts-forwarded")
        self.running = True
        logger.info(
            "alerts: this instance (%s) owns alert evaluation; caught up on %d readings"
            " stored since %s (previous owner %s)",
            self.instance,
            n,
            since.isoformat(timespec="seconds"),
            mark[0] if mark else "none",
        )

    async def _catch_up(self, engine: AlertEngine, since: datetime, now: datetime) -> int:
        n = 0
        async for batch in stored_since(self.pool, since, now):
            await engine.on_batch(batch)
            n += len(batch)
        self.caught_up += n
        return n

    async def _step_down(self) -> None:
        self.running = False
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None
        if self._listener is not None:
            with contextlib.suppress(psycopg.Error):
                await self._listener.close()
            self._listener = None
        await self.judge.stop_engine()

    async def _consume(self, conn: AsyncConnection[TupleRow]) -> None:
        """Forwarded batches and marks, in commit order."""
        try:
            async for note in conn.notifies():
                when = mark_time(note.payload)
                if when is not None:
                    await save_watermark(self.pool, self.instance, when)
                    continue
                engine = self.judge.engine
                if engine is not None:
                    await engine.on_batch(decode(note.payload))
        except asyncio.CancelledError:
            raise
        except Exception:  # the listening session is gone: forwarded batches may be lost
            logger.exception("alerts: the listening session failed; giving the ownership up")
            self.running = False
            self._lost.set()
