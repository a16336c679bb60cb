"""The one way in: every source stores its validated readings here.

The HJ 212 receiver, the HTTP pollers, ``envmon import``, the simulator and
``envmon spool replay`` all hand their validated batches to one :class:`Sink`.
It alone

* writes ``reading`` and ``rejected`` (through :class:`~envmon.db.writer.Writer`);
* spools a batch to disk while the database is unreachable, and replays the
  spool, oldest first, before anything newer is written;
* quarantines (on disk, with the reason) a batch the database refuses for any
  other reason, so that it never blocks the batches after it and is never lost;
* tells its listeners (the derive job, the alert engine, counters) about each
  batch after it was committed (or spooled), in the order they were stored.

A guarantee added here holds for every source. Listeners register with
:meth:`Sink.listen` and get an unsubscribe function back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from envmon.catalog import Catalog
from envmon.db.spool import Spool
from envmon.db.writer import Prepared, Unwritten, Writer, WriteResult, is_unavailable
from envmon.errors import DatabaseUnavailable
from envmon.schemas.readings import ReadingBatch, Rejection, ValidationResult, Validator

logger = logging.getLogger(__name__)

Listener = Callable[[ReadingBatch], Awaitable[None]]
Unsubscribe = Callable[[], None]


@dataclass(frozen=True)
class _Subscription:
    listener: Listener
    history: bool


class Sink:
    """Validated batches → the database (or the spool) → the listeners.

    ``history=True`` on :meth:`store` marks data loaded after the fact (the
    simulator's past years): only listeners registered with ``history=True``
    (the derive job) hear of it; the alert engine and the live counters do not.
    """

    def __init__(self, writer: Writer, spool: Spool, *, retry_after: float = 5.0) -> None:
        self.writer = writer
        self.spool = spool
        self.retry_after = retry_after
        self._subscriptions: list[_Subscription] = []
        self._down_until = 0.0
        # One batch at a time through the spool check and the write: the spool is
        # replayed before anything newer, and batches reach listeners in order.
        self._lock = asyncio.Lock()

    # -- listeners -----------------------------------------------------------

    def listen(self, listener: Listener, *, history: bool = False) -> Unsubscribe:
        """Call ``listener`` after each stored batch; returns the function that stops it."""
        sub = _Subscription(listener, history)
        self._subscriptions.append(sub)

        def unsubscribe() -> None:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)

        return unsubscribe

    @property
    def listeners(self) -> list[Listener]:
        """The registered listeners, in the order they are told (a copy)."""
        return [sub.listener for sub in self._subscriptions]

    async def _notify(self, batch: ReadingBatch, *, history: bool) -> None:
        if not len(batch):
            return
        for sub in list(self._subscriptions):
            if history and not sub.history:
                continue
            try:
                await sub.listener(batch)
            except Exception:  # a listener must not stop ingestion
                logger.exception("batch listener %r failed source=%s", sub.listener, batch.source)

    # -- the circuit breaker -----------------------------------------------------

    # While the database is known to be down, batches go straight to the spool
    # instead of each waiting ``writer.timeout`` for a connection: ingestion stays
    # fast, and the first store after ``retry_after`` tries the database again.
    def _known_down(self) -> bool:
        return time.monotonic() < self._down_until

    def _mark_down(self) -> None:
        self._down_until = time.monotonic() + self.retry_after

    @property
    def database_down(self) -> bool:
        return self._known_down()

    # -- storing -------------------------------------------------------------------

    async def store(
        self,
        validated: ValidationResult,
        *,
        history: bool = False,
        reason: str | None = None,
        prepared: Prepared | None = None,
    ) -> WriteResult:
        """Store a validated batch and its rejects, then tell the listeners.

        ``reason`` names why stored readings this batch changes were replaced
        (``envmon.db.writer.REVISION_REASONS``; default: by the source);
        ``prepared`` is ``envmon.db.writer.prepare`` of the batch, done ahead.
        """
        return await self.store_batch(
            validated.batch, validated.rejected, history=history, reason=reason, prepared=prepared
        )

    async def store_batch(
        self,
        batch: ReadingBatch,
        rejects: Sequence[Rejection] = (),
        *,
        history: bool = False,
        reason: str | None = None,
        prepared: Prepared | None = None,
    ) -> WriteResult:
        async with self._lock:
            result, replayed = await self._store_locked(batch, rejects, reason, history, prepared)
        for old in replayed:
            await self._notify(old, history=False)
        await self._notify(batch, history=history)
        return result

    async def _store_locked(
        self,
        batch: ReadingBatch,
        rejects: Sequence[Rejection],
        reason: str | None = None,
        history: bool = False,
        prepared: Prepared | None = None,
    ) -> tuple[WriteResult, list[ReadingBatch]]:
        result = WriteResult(rejected=len(rejects))
        replayed: list[ReadingBatch] = []
        if self.spool.pending() and not self._known_down():
            try:
                replayed = await self._replay_locked(WriteResult())
            except DatabaseUnavailable:
                self._mark_down()
        if self.spool.pending() or self._known_down():
            # Still down, or not yet drained: keep the order by spooling behind.
            if len(batch):
                self.spool.append_batch(batch)
                result.spooled += len(batch)
            if rejects:
                self.spool.append_rejects(list(rejects))
            return result, replayed
        if len(batch):
            written, unwritten = await self.writer.write_readings(
                batch, reason=reason, announce=not history, prepared=prepared
            )
            result += written
            self._keep(unwritten, result)
        if rejects:
            try:
                await self.writer.write_rejects(rejects)
            except DatabaseUnavailable:
                self._mark_down()
                self.spool.append_rejects(list(rejects))
        return result, replayed

    def _keep(self, unwritten: list[Unwritten], result: WriteResult) -> None:
        """Spool what the database could not take now; quarantine what it refused."""
        for part in unwritten:
            if part.unavailable:
                self._mark_down()
                self.spool.append_batch(part.batch)
                result.spooled += len(part.batch)
            else:
                self.spool.quarantine(part.batch, f"refused by the database: {part.error}")
                result.quarantined += len(part.batch)

    # -- the spool -------------------------------------------------------------------

    async def replay_spool(self) -> WriteResult:
        """Write what the spool holds, oldest first, then tell the listeners.

        Raises :class:`DatabaseUnavailable` (keeping what is left) if the
        database is still down.
        """
        total = WriteResult()
        async with self._lock:
            replayed = await self._replay_locked(total)
        for batch in replayed:
            await self._notify(batch, history=False)
        return total

    async def _replay_locked(self, total: WriteResult) -> list[ReadingBatch]:
        replayed: list[ReadingBatch] = []
        for path in self.spool.pending():
            item = Spool.load(path)
            if isinstance(item, ReadingBatch):
                written, unwritten = await self.writer.write_readings(item)
                if any(u.unavailable for u in unwritten):
                    # Parts of this file may be committed: replaying the whole file
                    # again later is harmless (the upsert is idempotent).
                    total += written
                    err = next(u.error for u in unwritten if u.unavailable)
                    raise DatabaseUnavailable(str(err)) from err
                total += written
                if unwritten:
                    refused = WriteResult()
                    self._keep(unwritten, refused)
                    total.quarantined += refused.quarantined
                replayed.append(item)
            else:
                try:
                    await self.writer.write_rejects(item)
                except DatabaseUnavailable:
                    raise
                except Exception as err:  # refused: never block the spool
                    if is_unavailable(err):
                        raise DatabaseUnavailable(str(err)) from err
                    self.spool.quarantine(path, f"refused by the database: {err}")
                    continue
                total.rejected += len(item)
            path.unlink()
            logger.info("spool replayed file=%s", path.name)
        return replayed


@dataclass(frozen=True)
class Intake:
    """What every source is handed: where to store, how to validate, the stations, the pool.

    Never the service that assembles them: a source knows nothing above it.
    """

    sink: Sink
    validator: Validator
    catalog: Catalog
    pool: AsyncConnectionPool[AsyncConnection[TupleRow]]
