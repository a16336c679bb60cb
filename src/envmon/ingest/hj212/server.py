"""The HJ 212 receiver: an asyncio TCP server in front of :class:`Session`.

Everything protocol-shaped lives in :mod:`.session`; this module only moves
bytes, time and data between sockets, the sessions, the raw-frame archive and
the writer:

* one task per connection reads chunks, feeds its session, archives the
  frames, sends the replies and queues readings and rejects;
* one pipeline task validates and writes what all connections queued —
  ``flush_interval`` (0.2 s) after the oldest value arrived, or as soon as
  ``max_batch`` values wait, whatever arrived during the previous write
  included — then updates ``ingest_cursor`` and calls ``on_batch``: below
  saturation an alert waits well under half a second for its data;
* one housekeeping task closes idle connections, times out unanswered
  requests and split groups, flushes and prunes the archive;
* a gap-recovery task per newly seen station asks it for missing hours (2061).

Limits: ``max_connections`` (connections beyond are closed at once), the idle
timeout, the stream decoder's bounded buffer, a per-connection frame rate
(token bucket), a timeout on sending to a client that does not read, and
back-pressure — every connection stops reading while the pipeline holds more
than ``max_pending`` values (the database is slower than the devices).

The 9014 is sent when a frame is received and authenticated, not when its
readings are committed: that is what the standard's answer means (the device
may drop the packet from its send queue), and it keeps a device's round trip
independent of the database.  What is acknowledged but not yet written is at
most one flush interval of data; the writer spools it when the database is
down, and the raw frames reach the archive with the same batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final

import numpy as np
import pandas as pd
import psycopg
from psycopg_pool import PoolTimeout

from envmon import timeutil
from envmon.catalog import Catalog
from envmon.db.writer import Pool, Writer, WriteResult
from envmon.parameters import PARAMETERS
from envmon.schemas.readings import RawReading, ReadingBatch, Rejection, Validator
from envmon.settings import Settings

from .archive import FrameArchive
from .auth import load_secrets, normalize_mn
from .session import (
    SOURCE,
    AuthFailed,
    Directory,
    Hj212Config,
    Output,
    RequestFinished,
    Session,
    StationSeen,
    load_config,
    missing_hours,
)

logger = logging.getLogger(__name__)

OnBatch = Callable[[ReadingBatch], Awaitable[None]]

READ_SIZE: Final = 65536
GAP_MIN_AGE: Final = timedelta(hours=2)
_PRUNE_EVERY: Final = 3600.0
_MAX_FAILING_TRACKED: Final = 10_000
_REFUSED_LOG_EVERY: Final = 10.0

_LAST_HOUR = """
SELECT GREATEST(
    (SELECT last_ts FROM ingest_cursor WHERE source = %(source)s AND station_id = %(station)s),
    (SELECT max(m) FROM unnest(%(params)s::text[]) AS p(code),
        LATERAL (SELECT max(ts) AS m FROM reading
                 WHERE station_id = %(station)s AND parameter = p.code AND period = '1h') AS x)
)
"""
_CURSOR_SUCCESS = """
INSERT INTO ingest_cursor AS c (source, station_id, last_ts, last_success_at, updated_at)
SELECT %(source)s, s, t, now(), now()
FROM unnest(%(stations)s::text[], %(ts)s::timestamptz[]) AS u(s, t)
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
_DB_ERRORS = (psycopg.Error, PoolTimeout)


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


# --------------------------------------------------------------------------- pipeline


class _Pipeline:
    """Readings and rejects from every connection → validated batches → the writer."""

    def __init__(
        self,
        validator: Validator,
        writer: Writer,
        pool: Pool,
        archive: FrameArchive,
        on_batch: OnBatch | None,
        stats: ServerStats,
        *,
        interval: float,
        max_batch: int,
        max_pending: int,
    ) -> None:
        self.validator = validator
        self.writer = writer
        self.pool = pool
        self.archive = archive
        self.on_batch = on_batch
        self.stats = stats
        self.interval = interval
        self.max_batch = max_batch
        self.max_pending = max_pending
        # Write at once, whatever the interval, when a batch is full.
        self._full = min(max_batch, max_pending)
        self._readings: list[RawReading] = []
        self._rejects: list[Rejection] = []
        self._errors: dict[str, tuple[datetime, str]] = {}
        self._since: float | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
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

    def put(self, readings: list[RawReading], rejects: list[Rejection]) -> None:
        if not readings and not rejects:
            return
        before = self.pending
        self._readings.extend(readings)
        self._rejects.extend(rejects)
        if self._since is None:
            self._since = asyncio.get_running_loop().time()
        after = self.pending
        # Wake the writer only when there is something new for it to decide.
        if before == 0 or (before < self._full <= after):
            self._wake.set()
        if after >= self.max_pending:
            self._room.clear()

    def error(self, station_id: str, message: str, at: datetime) -> None:
        """Record a failure in ``ingest_cursor`` (with the next batch)."""
        self._errors[station_id] = (at, message)
        if self._since is None:
            self._since = asyncio.get_running_loop().time()
        self._wake.set()

    async def wait_room(self) -> None:
        await self._room.wait()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._since is None:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._since + self.interval - loop.time()
            if not self._stopping and self.pending < self._full and delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            await self.flush()

    async def flush(self) -> None:
        """Validate and write what is queued now."""
        async with self._lock:
            readings, self._readings = self._readings, []
            rejects, self._rejects = self._rejects, []
            errors, self._errors = self._errors, {}
            self._since = None
            self._room.set()
            batch = ReadingBatch.empty(SOURCE)
            handed_over = False
            clock = asyncio.get_running_loop().time
            started = clock()
            try:
                if readings:
                    result = self.validator.validate(readings, SOURCE)
                    batch = result.batch
                    rejects.extend(result.rejected)
                validated = clock()
                if len(batch) or rejects:
                    written = await self.writer.write(batch, rejects)
                    handed_over = True
                    self.stats.batches += 1
                    self.stats.written += written
                    if len(batch) and not written.spooled:
                        await self._cursor_success(batch)
                if errors:
                    await self._cursor_errors(errors)
                logger.debug(
                    "hj212 batch readings=%d rejects=%d validate_ms=%.0f write_ms=%.0f",
                    len(batch),
                    len(rejects),
                    (validated - started) * 1000,
                    (clock() - validated) * 1000,
                )
            except _DB_ERRORS as err:
                logger.warning("hj212 ingest_cursor update failed: %s", err)
            except Exception:
                logger.exception(
                    "hj212 batch failed readings=%d rejects=%d", len(readings), len(rejects)
                )
            finally:
                self.archive.flush()
        if handed_over and len(batch) and self.on_batch is not None:
            try:
                await self.on_batch(batch)
            except Exception:
                logger.exception("hj212 on_batch hook failed readings=%d", len(batch))

    async def _cursor_success(self, batch: ReadingBatch) -> None:
        df = pd.DataFrame(
            {
                "s": batch.station_id,
                # Only hourly data move last_ts: it is what gap recovery asks for.
                "t": np.where(batch.period == "1h", batch.ts, np.datetime64("NaT", "us")),
            }
        )
        latest = df.groupby("s", sort=True)["t"].max()
        stations = [str(s) for s in latest.index]
        ts = [None if pd.isna(t) else pd.Timestamp(t).tz_localize("UTC") for t in latest]
        async with self.pool.connection(timeout=self.writer.timeout) as conn:
            await conn.execute(_CURSOR_SUCCESS, {"source": SOURCE, "stations": stations, "ts": ts})

    async def _cursor_errors(self, errors: dict[str, tuple[datetime, str]]) -> None:
        stations = sorted(errors)
        async with self.pool.connection(timeout=self.writer.timeout) as conn:
            await conn.execute(
                _CURSOR_ERROR,
                {
                    "source": SOURCE,
                    "stations": stations,
                    "at": [errors[s][0] for s in stations],
                    "errors": [errors[s][1] for s in stations],
                },
            )


# --------------------------------------------------------------------------- connections


@dataclass(eq=False)
class _Connection:
    peer: str
    writer: asyncio.StreamWriter
    session: Session
    last_rx: float
    tokens: float
    last_refill: float
    closing: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def close(self) -> None:
        self.closing = True
        self.writer.close()


def _peer(writer: asyncio.StreamWriter) -> str:
    info: Any = writer.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        host, port = info[0], info[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(info or "?")


class Hj212Server:
    """The HJ 212 TCP receiver, as an async context manager.

    ``async with Hj212Server(...) as srv:`` binds ``settings.hj212.host:port``
    (port 0: any free port, see :attr:`port`) and serves until the block
    exits; on exit it stops accepting, closes the connections, writes what
    is pending and closes the archive.

    ``secrets`` (MN → password) defaults to :func:`load_secrets` of the
    settings' secrets file and environment; ``archive`` to a
    :class:`FrameArchive` under ``settings.archive_dir``; ``config`` to
    ``<config_dir>/hj212.yaml``.  ``on_batch`` is awaited after each batch the
    writer took (stored, or spooled while the database is down).
    """

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        validator: Validator,
        writer: Writer,
        pool: Pool,
        *,
        secrets: dict[str, str] | None = None,
        archive: FrameArchive | None = None,
        config: Hj212Config | None = None,
        on_batch: OnBatch | None = None,
        clock: Callable[[], datetime] = timeutil.now,
        flush_interval: float = 0.2,
        max_batch: int = 5000,
        max_pending: int = 50_000,
        request_timeout: float = 60.0,
        max_frames_per_s: float = 200.0,
        send_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self.hj = settings.hj212
        self.catalog = catalog
        self.pool = pool
        self.clock = clock
        self.request_timeout = request_timeout
        self.max_frames_per_s = max_frames_per_s
        self.send_timeout = send_timeout
        self.stats = ServerStats()
        if secrets is None:
            secrets = load_secrets(settings.hj212_secrets_path, self.hj.passwords)
        if config is None:
            config = load_config(settings.config_dir / "hj212.yaml", catalog)
        self.directory = Directory.build(catalog, secrets, config)
        self._own_archive = archive is None
        self.archive = archive or FrameArchive(settings.archive_dir, self.hj.archive_retention_days)
        self._pipeline = _Pipeline(
            validator,
            writer,
            pool,
            self.archive,
            on_batch,
            self.stats,
            interval=flush_interval,
            max_batch=max_batch,
            max_pending=max_pending,
        )
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._housekeeping: asyncio.Task[None] | None = None
        self._recovering: dict[str, str] = {}  # station id → MN being asked for history
        self._failing: set[str] = set()  # MNs whose last frame failed authentication
        self._closing = False
        self._last_prune = 0.0
        self._refused_logged = -_REFUSED_LOG_EVERY

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not running")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def __aenter__(self) -> Hj212Server:
        missing = self.directory.without_password()
        if missing:
            logger.warning(
                "hj212 devices without an access password cannot authenticate: count=%d first=%s",
                len(missing),
                missing[0],
            )
        self.archive.prune()
        self._last_prune = asyncio.get_running_loop().time()
        self._pipeline.start()
        try:
            self._server = await asyncio.start_server(
                self._handle,
                self.hj.host,
                self.hj.port,
                backlog=min(self.hj.max_connections, 4096),
                limit=self.hj.max_buffer_bytes,
            )
        except OSError:
            self._closing = True
            await self._pipeline.stop()
            if self._own_archive:
                self.archive.close()
            raise
        self._housekeeping = asyncio.create_task(self._housekeep(), name="hj212-housekeeping")
        logger.info(
            "hj212 receiver listening host=%s port=%d devices=%d",
            self.hj.host,
            self.port,
            len(self.directory),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop accepting, close connections, write what is pending."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.close()
        # Handlers read what the peers had already sent, then end.
        if self._handlers:
            _, late = await asyncio.wait(set(self._handlers), timeout=5.0)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self._pipeline.stop()
        if self._server is not None:
            await self._server.wait_closed()
        if self._own_archive:
            self.archive.close()
        else:
            self.archive.flush()
        logger.info(
            "hj212 receiver stopped frames=%d readings=%d rejected=%d",
            self.stats.frames,
            self.stats.written.accepted + self.stats.written.spooled,
            self.stats.written.rejected,
        )

    async def flush(self) -> None:
        """Write what is queued now (tests, and a shutdown in two steps)."""
        await self._pipeline.flush()

    # ------------------------------------------------------------------ connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        if self._closing or len(self._connections) >= self.hj.max_connections:
            self.stats.refused += 1
            now = asyncio.get_running_loop().time()
            if now - self._refused_logged >= _REFUSED_LOG_EVERY:
                self._refused_logged = now
                logger.warning(
                    "hj212 connection refused peer=%s open=%d max=%d refused_total=%d",
                    peer,
                    len(self._connections),
                    self.hj.max_connections,
                    self.stats.refused,
                )
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        loop = asyncio.get_running_loop()
        mono = loop.time()
        conn = _Connection(
            peer,
            writer,
            Session(
                self.directory,
                max_buffer=self.hj.max_buffer_bytes,
                auth_failures_before_close=self.hj.auth_failures_before_close,
                request_timeout=self.request_timeout,
            ),
            last_rx=mono,
            tokens=self._burst,
            last_refill=mono,
        )
        self._connections.add(conn)
        self.stats.connections += 1
        logger.debug("hj212 connection opened peer=%s", peer)
        try:
            while not conn.closing:
                await self._pipeline.wait_room()
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                conn.last_rx = loop.time()
                self.stats.bytes_in += len(data)
                out = conn.session.feed(data, now=self.clock(), mono=conn.last_rx)
                self._absorb(conn, out)
                if out.replies:
                    await self._send(conn, out.replies)
                if out.close:
                    logger.warning(
                        "hj212 connection closed peer=%s reason=%s", peer, out.close_reason
                    )
                    break
                await self._throttle(conn, len(out.archive))
        except (ConnectionError, OSError) as err:
            logger.debug("hj212 connection lost peer=%s: %s", peer, err)
        except Exception:
            logger.exception("hj212 connection failed peer=%s", peer)
        finally:
            conn.close()
            for child in conn.tasks:
                child.cancel()
            self._absorb(conn, conn.session.end(now=self.clock(), mono=loop.time()))
            self._connections.discard(conn)
            if task is not None:
                self._handlers.discard(task)
            logger.debug("hj212 connection closed peer=%s frames=%d", peer, conn.session.frames)

    @property
    def _burst(self) -> float:
        return max(self.max_frames_per_s, 100.0)

    async def _throttle(self, conn: _Connection, frames: int) -> None:
        """Per-connection token bucket: a flood from one client only slows that client."""
        now = asyncio.get_running_loop().time()
        conn.tokens = min(
            self._burst, conn.tokens + (now - conn.last_refill) * self.max_frames_per_s
        )
        conn.last_refill = now
        conn.tokens -= frames
        if conn.tokens < 0:
            await asyncio.sleep(-conn.tokens / self.max_frames_per_s)

    async def _send(self, conn: _Connection, replies: list[bytes]) -> None:
        if conn.writer.is_closing():
            return
        conn.writer.write(b"".join(replies))
        if not conn.writer.transport.get_write_buffer_size():
            return  # all sent at once (the usual case): nothing to wait for
        try:
            async with asyncio.timeout(self.send_timeout):
                await conn.writer.drain()
        except TimeoutError:
            logger.warning(
                "hj212 connection closed peer=%s reason=client does not read for %g s",
                conn.peer,
                self.send_timeout,
            )
            conn.close()

    def _absorb(self, conn: _Connection, out: Output) -> None:
        """Archive, queue and react to a session's output (everything but sending)."""
        if out.archive:
            received = self.clock()
            for entry in out.archive:
                self.archive.append(received, conn.peer, entry.mn, entry.status, entry.raw)
                if entry.status != "ok":
                    self.stats.frames_rejected += 1
            self.stats.frames += len(out.archive)
        self._pipeline.put(out.readings, out.rejects)
        for event in out.events:
            if isinstance(event, StationSeen):
                self._seen(conn, event)
            elif isinstance(event, AuthFailed):
                self._auth_failed(conn, event)
            elif isinstance(event, RequestFinished):
                self._finished(conn, event)

    def _seen(self, conn: _Connection, event: StationSeen) -> None:
        mn = normalize_mn(event.mn)
        if mn in self._failing:
            self._failing.discard(mn)
            logger.info("hj212 device authenticated again mn=%s peer=%s", event.mn, conn.peer)
        logger.debug(
            "hj212 station connected station=%s mn=%s peer=%s",
            event.station_id,
            event.mn,
            conn.peer,
        )
        if self.hj.gap_recovery and not self._closing and event.station_id not in self._recovering:
            self._recovering[event.station_id] = mn
            task = asyncio.create_task(
                self._recover(conn, event), name=f"hj212-gap-{event.station_id}"
            )
            conn.tasks.add(task)
            task.add_done_callback(conn.tasks.discard)

    def _auth_failed(self, conn: _Connection, event: AuthFailed) -> None:
        mn = normalize_mn(event.mn)
        if mn not in self._failing:
            # Once per device until it authenticates again: a misconfigured
            # logger retries every few seconds.
            if len(self._failing) >= _MAX_FAILING_TRACKED:
                self._failing.clear()
            self._failing.add(mn)
            logger.warning(
                "hj212 authentication failed peer=%s station=%s reason=%s",
                conn.peer,
                event.station_id or "-",
                event.reason,
            )
        if event.station_id is not None:
            self._pipeline.error(event.station_id, event.reason, self.clock())

    def _finished(self, conn: _Connection, event: RequestFinished) -> None:
        if event.kind != "history":
            level = logging.DEBUG if event.ok else logging.WARNING
            logger.log(
                level,
                "hj212 %s request finished station=%s ok=%s %s",
                event.kind,
                event.station_id,
                event.ok,
                event.detail,
            )
            return
        if self._recovering.get(event.station_id) == normalize_mn(event.mn):
            del self._recovering[event.station_id]
        span = f"{event.begin:%Y-%m-%d %H:%M}..{event.end:%Y-%m-%d %H:%M}"
        if event.ok:
            logger.info(
                "hj212 gap recovery done station=%s hours=%s uploads=%d %s",
                event.station_id,
                span,
                event.uploads,
                event.detail,
            )
        else:
            logger.warning(
                "hj212 gap recovery failed station=%s hours=%s uploads=%d: %s",
                event.station_id,
                span,
                event.uploads,
                event.detail,
            )
            self._pipeline.error(
                event.station_id, f"history request {span} failed: {event.detail}", self.clock()
            )

    # ------------------------------------------------------------------ gap recovery

    async def _recover(self, conn: _Connection, event: StationSeen) -> None:
        sent = False
        try:
            last = await self._last_hour(event.station_id)
            now = self.clock()
            span = missing_hours(
                last,
                now,
                min_age=GAP_MIN_AGE,
                max_age=timedelta(hours=self.hj.gap_recovery_max_hours),
            )
            if span is None or conn.closing:
                return
            begin, end = span
            request = conn.session.request_history(
                event.mn, begin, end, now=now, mono=asyncio.get_running_loop().time()
            )
            sent = True
            self.stats.history_requests += 1
            logger.info(
                "hj212 gap recovery requested station=%s last=%s hours=%s..%s",
                event.station_id,
                last,
                f"{begin:%Y-%m-%d %H:%M}",
                f"{end:%Y-%m-%d %H:%M}",
            )
            await self._send(conn, [request])
        except _DB_ERRORS as err:
            logger.warning("hj212 gap check failed station=%s: %s", event.station_id, err)
        except Exception:
            logger.exception("hj212 gap recovery failed station=%s", event.station_id)
        finally:
            if not sent and self._recovering.get(event.station_id) == normalize_mn(event.mn):
                del self._recovering[event.station_id]

    async def _last_hour(self, station_id: str) -> datetime | None:
        station = self.catalog.by_id.get(station_id)
        params = [p.code for p in PARAMETERS if station is not None and p.kind == station.kind]
        async with self.pool.connection(timeout=self._pipeline.writer.timeout) as conn:
            cur = await conn.execute(
                _LAST_HOUR, {"source": SOURCE, "station": station_id, "params": params}
            )
            row = await cur.fetchone()
        value = row[0] if row else None
        return value if isinstance(value, datetime) else None

    # ------------------------------------------------------------------ housekeeping

    async def _housekeep(self) -> None:
        loop = asyncio.get_running_loop()
        period = min(1.0, self.hj.idle_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            try:
                mono = loop.time()
                for conn in list(self._connections):
                    if conn.closing:
                        continue
                    if mono - conn.last_rx > self.hj.idle_timeout_s:
                        logger.info(
                            "hj212 connection closed peer=%s reason=idle for %g s",
                            conn.peer,
                            self.hj.idle_timeout_s,
                        )
                        conn.close()
                        continue
                    self._absorb(conn, conn.session.tick(mono))
                if mono - self._last_prune >= _PRUNE_EVERY:
                    self._last_prune = mono
                    # A listing of ~100 names: cheap enough for the loop, and
                    # no thread may touch the archive's open file meanwhile.
                    self.archive.prune()
                if not self._pipeline.pending:
                    self.archive.flush()
            except Exception:
                logger.exception("hj212 housekeeping failed")
