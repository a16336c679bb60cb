"""The HJ 212 receiver's pipeline: readings and rejects of every connection →
validated batches → the sink.

Durable before acknowledged: the replies of the frames whose readings or
rejects are in a batch are handed in with them (:meth:`_Pipeline.put`) and
released only once the sink has committed the batch, or made it durable in
its spool or quarantine on disk.  When the batch cannot be kept at all the
replies are dropped and their connections closed: the loggers send again.
The split journal (:mod:`.splitjournal`) rides on the same hold: each batch
first fsyncs the packets of open split groups appended since the last one
(one fsync for every connection), and after the store drops (and fsyncs) the
entries of the groups the batch stored or rejected — then the replies go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd
import psycopg
from psycopg_pool import PoolTimeout

from envmon.db.writer import Pool, WriteResult
from envmon.ingest.sink import Sink
from envmon.schemas.readings import ReadingBatch, Rejection, Validator

from .archive import FrameArchive
from .redact import redact_text
from .session import SOURCE, Readings
from .splitjournal import SplitJournal, SplitPacket

logger = logging.getLogger(__name__)

Ack = Callable[[bool], None]


CURSOR_INTERVAL: Final = 1.0  # s between ingest_cursor updates of successful stations
MIN_LINGER: Final = 0.01  # s a batch waits at least for frames arriving together

# Times as microseconds since the epoch: exact, and no datetime object per station.
_CURSOR_SUCCESS = """
INSERT INTO ingest_cursor AS c (source, station_id, last_ts, last_success_at, updated_at)
SELECT %(source)s, s, timestamptz 'epoch' + us * interval '1 microsecond', now(), now()
FROM unnest(%(stations)s::text[], %(us)s::int8[]) AS u(s, us)
ON CONFLICT (source, station_id) DO UPDATE
    SET last_ts = GREATEST(c.last_ts, EXCLUDED.last_ts),
        last_success_at = EXCLUDED.last_success_at, updated_at = now()
"""
_CURSOR_ERROR = """
INSERT INTO ingest_cursor AS c (source, station_id, last_error_at, last_error, updated_at)
SELECT %(source)s, s, t, e, now()
FROM unnest(%(stations)s::text[], %(at)s::timestamptz[], %(errors)s::text[]) AS u(s, t, e)
ON CONFLICT (source, station_id) DO UPDATE
    SET last_error_at = EXCLUDED.last_error_at, last_error = EXCLUDED.last_error,
        updated_at = now()
"""
DB_ERRORS = (psycopg.Error, PoolTimeout)
_NAT: Final = int(np.datetime64("NaT", "us").view(np.int64))


@dataclass
class ServerStats:
    """Counters since start (for ``envmon status``, logs and the benchmark)."""

    connections: int = 0
    refused: int = 0
    frames: int = 0
    frames_rejected: int = 0
    bytes_in: int = 0
    batches: int = 0
    written: WriteResult = field(default_factory=WriteResult)
    history_requests: int = 0
    acks_held: int = 0  # replies sent once their batch was durable
    handed_off: int = 0  # connections passed to their device's home worker
    adopted: int = 0  # connections another worker passed here


# --------------------------------------------------------------------------- pipeline


def validation_frame(readings: Readings) -> tuple[pd.DataFrame, pd.Series]:
    """The Validator's columns for a batch of uploads, and each row's frame text.

    Built from the columns the sessions filled, without an object per value:
    ``Validator.validate_frame`` checks the whole batch at once.  Text and
    time columns stay ``object`` (a string or datetime dtype would cost a
    conversion per value for nothing); ``value`` is already a number in the
    parameter's unit.
    """
    counts = np.asarray(readings.count, dtype=np.int64)

    def per_upload(values: list[Any]) -> pd.Series:
        return pd.Series(np.repeat(np.asarray(values, dtype=object), counts), dtype=object)

    frame = pd.DataFrame(
        {
            "station": per_upload(readings.station),
            "parameter": pd.Series(readings.parameter, dtype=object),
            "time": per_upload(readings.time),
            "value": np.asarray(readings.value, dtype=np.float64),
            "flag": pd.Series(readings.flag, dtype=object),
            "period": per_upload(readings.period),
        },
        copy=False,
    )
    return frame, per_upload(readings.raw)


class Pipeline:
    """Readings and rejects from every connection → validated batches → the writer."""

    def __init__(
        self,
        validator: Validator,
        sink: Sink,
        pool: Pool,
        archive: FrameArchive,
        stats: ServerStats,
        *,
        interval: float,
        max_batch: int,
        max_pending: int,
        min_linger: float = MIN_LINGER,
        journal: SplitJournal | None = None,
    ) -> None:
        self.validator = validator
        self.journal = journal
        # Split packets whose group is in the queued readings or rejects.
        self._done: list[SplitPacket] = []
        # Called with them when their batch could not be kept: the groups go
        # back to waiting (their packets are still in the journal).
        self.on_lost: Callable[[list[SplitPacket]], None] | None = None
        self.sink = sink
        self.pool = pool
        self.archive = archive
        self.stats = stats
        self.interval = interval
        # How long the last write took: the next batch lingers as long (at least
        # MIN_LINGER, at most ``interval``) before it is written. Idle, a frame
        # is stored within milliseconds; busy, what arrives during one write is
        # already the next batch (group commit): the flush adapts to the load.
        self.min_linger = min(min_linger, interval)
        self._last_write = self.min_linger
        self.max_batch = max_batch
        self.max_pending = max_pending
        # Write at once, whatever the interval, when a batch is full.
        self._full = min(max_batch, max_pending)
        self._readings = Readings()
        self._rejects: list[Rejection] = []
        # Replies held until the batch their frames are in is durable: each
        # is called with True (send it) or False (the batch was lost: close).
        self._acks: list[Ack] = []
        self._errors: dict[str, tuple[datetime, str]] = {}
        self._since: float | None = None
        self._wake = asyncio.Event()
        self._room = True
        self.on_room: Callable[[], None] | None = None  # called when room comes back
        # Successful stations' latest hours, written to ingest_cursor at most
        # every CURSOR_INTERVAL: with thousands of stations, an upsert of every
        # station per batch would cost the database as much as a small batch.
        self._cursor: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = []
        self._cursor_due: float | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._readings) + len(self._rejects)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hj212-pipeline")

    async def stop(self) -> None:
        """Write everything still queued, then end the task."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()

    def put(
        self,
        readings: Readings,
        rejects: list[Rejection],
        ack: Ack | None = None,
        done: list[SplitPacket] | None = None,
    ) -> None:
        """Queue readings and rejects; ``ack`` is called once they are durable
        (with True), or could not be kept (with False).  ``done``: split
        packets whose group these readings or rejects are (their journal
        entries are dropped once the batch is durable)."""
        if done:
            self._done.extend(done)
            self._start_batch(wake=True)
        if ack is not None:
            self._acks.append(ack)
            self._start_batch(wake=True)
        if not len(readings) and not rejects:
            return
        before = self.pending
        self._readings.extend(readings)
        self._rejects.extend(rejects)
        self._start_batch(wake=False)
        after = self.pending
        # Wake the writer only when there is something new for it to decide.
        if before == 0 or (before < self._full <= after):
            self._wake.set()
        if after >= self.max_pending:
            self._room = False

    def error(self, station_id: str, message: str, at: datetime) -> None:
        """Record a failure in ``ingest_cursor`` (with the next batch)."""
        self._errors[station_id] = (at, message)
        self._start_batch(wake=False)
        self._wake.set()

    def _start_batch(self, *, wake: bool) -> None:
        """The next batch's clock starts with the first thing queued for it
        (``wake``: tell the writer it has started)."""
        if self._since is None:
            self._since = asyncio.get_running_loop().time()
            if wake:
                self._wake.set()

    @property
    def has_room(self) -> bool:
        return self._room

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self._since is None:
                if self._stopping:
                    return
                if self._cursor_due is not None and self._cursor_due <= now:
                    try:
                        async with self._lock:
                            await self._write_cursor()
                    except Exception:
                        logger.exception("hj212 ingest_cursor update failed")
                    continue
                await self._sleep(None if self._cursor_due is None else self._cursor_due - now)
                continue
            delay = self._since + self.linger - now
            if not self._stopping and self.pending < self._full and delay > 0:
                await self._sleep(delay)
                continue
            await self.flush(cursor=False)

    @property
    def linger(self) -> float:
        """How long a batch waits for company before it is written."""
        return min(self.interval, max(self.min_linger, self._last_write))

    async def _sleep(self, delay: float | None) -> None:
        """Until something is queued (or the threshold is crossed), at most ``delay``."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    async def flush(self, *, cursor: bool = True) -> None:
        """Validate and write what is queued now; with ``cursor``, also the
        ``ingest_cursor`` updates still held back."""
        async with self._lock:
            readings, self._readings = self._readings, Readings()
            rejects, self._rejects = self._rejects, []
            acks, self._acks = self._acks, []
            done, self._done = self._done, []
            errors, self._errors = self._errors, {}
            self._since = None
            if not self._room:
                self._room = True
                if self.on_room is not None:
                    self.on_room()
            batch = ReadingBatch.empty(SOURCE)
            clock = asyncio.get_running_loop().time
            started = validated = clock()
            durable = False
            try:
                if self.journal is not None:
                    # The packets of open split groups whose replies are held.
                    await self.journal.sync()
                if len(readings):
                    frame, raw = validation_frame(readings)
                    result = self.validator.validate_frame(frame, SOURCE, raw)
                    batch = result.batch
                    rejects.extend(result.rejected)
                validated = clock()
                # Whatever a reject quotes (a value, a reason), never a password.
                rejects = [_redacted(r) for r in rejects]
                if len(batch) or rejects:
                    written = await self.sink.store_batch(batch, rejects)
                    self.stats.batches += 1
                    self.stats.written += written
                    if len(batch) and not written.spooled:
                        self._hold_cursor(batch)
                durable = True
                if done and self.journal is not None:
                    await self._drop(self.journal, done)
            except Exception:
                logger.exception(
                    "hj212 batch not stored (its frames are not acknowledged) readings=%d "
                    "rejects=%d",
                    len(readings),
                    len(rejects),
                )
            finally:
                self._last_write = clock() - started
                if not durable and done and self.on_lost is not None:
                    self.on_lost(done)
                self._release(acks, durable)
            try:
                if self._cursor_due is not None and (cursor or self._cursor_due <= clock()):
                    await self._write_cursor()
                if errors:
                    await self._cursor_errors(errors)
                logger.debug(
                    "hj212 batch readings=%d rejects=%d validate_ms=%.0f write_ms=%.0f",
                    len(batch),
                    len(rejects),
                    (validated - started) * 1000,
                    (clock() - validated) * 1000,
                )
            except DB_ERRORS as err:
                # The readings are the sink's (stored, spooled or quarantined);
                # only the ingest_cursor bookkeeping can fail here.
                logger.warning("hj212 ingest_cursor update failed: %s", err)
            except Exception:
                logger.exception("hj212 ingest_cursor update failed")
            finally:
                self.archive.flush()

    async def _drop(self, journal: SplitJournal, done: list[SplitPacket]) -> None:
        """Forget the journal entries of groups now stored, durably before the
        replies go: a crash before would bring the group back while its last
        packet, answered, would never come again."""
        try:
            journal.drop(done)
            await journal.sync()
        except OSError:
            # The readings are stored: at worst the group comes back after a
            # restart and times out as a reject.
            logger.exception("hj212 split journal drop failed packets=%d", len(done))

    def _release(self, acks: list[Ack], durable: bool) -> None:
        self.stats.acks_held += len(acks) if durable else 0
        for ack in acks:
            try:
                ack(durable)
            except Exception:
                logger.exception("hj212 acknowledgement failed")

    def _hold_cursor(self, batch: ReadingBatch) -> None:
        codes, stations = pd.factorize(batch.station_id)
        # Only hourly data move last_ts: it is what gap recovery asks for.
        # NaT is the smallest int64, so a station without hourly data keeps it.
        ts = np.where(batch.period == "1h", batch.ts, np.datetime64("NaT", "us")).view(np.int64)
        latest = np.full(len(stations), _NAT, dtype=np.int64)
        np.maximum.at(latest, codes, ts)
        self._cursor.append((np.asarray(stations, dtype=object), latest))
        if self._cursor_due is None:
            self._cursor_due = asyncio.get_running_loop().time() + CURSOR_INTERVAL

    async def _write_cursor(self) -> None:
        """Record the held successes in ``ingest_cursor`` (one upsert per station)."""
        held, self._cursor, self._cursor_due = self._cursor, [], None
        if not held:
            return
        codes, stations = pd.factorize(np.concatenate([s for s, _ in held]))
        latest = np.full(len(stations), _NAT, dtype=np.int64)
        np.maximum.at(latest, codes, np.concatenate([t for _, t in held]))
        micros = [None if t == _NAT else t for t in latest.tolist()]
        try:
            async with self.pool.connection(timeout=self.sink.writer.timeout) as conn:
                await conn.execute(
                    _CURSOR_SUCCESS,
                    {"source": SOURCE, "stations": [str(s) for s in stations], "us": micros},
                )
        except DB_ERRORS as err:
            logger.warning("hj212 ingest_cursor update failed stations=%d: %s", len(stations), err)

    async def _cursor_errors(self, errors: dict[str, tuple[datetime, str]]) -> None:
        stations = sorted(errors)
        async with self.pool.connection(timeout=self.sink.writer.timeout) as conn:
            await conn.execute(
                _CURSOR_ERROR,
                {
                    "source": SOURCE,
                    "stations": stations,
                    "at": [errors[s][0] for s in stations],
                    "errors": [errors[s][1] for s in stations],
                },
            )


def _redacted(reject: Rejection) -> Rejection:
    if "PW=" not in reject.raw and "PW=" not in reject.reason:
        return reject
    return replace(reject, raw=redact_text(reject.raw), reason=redact_text(reject.reason))
