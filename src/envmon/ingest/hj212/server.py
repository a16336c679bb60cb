"""The HJ 212 receiver: an asyncio TCP server in front of :class:`Session`.

Everything protocol-shaped lives in :mod:`.session`; this module only moves
bytes, time and data between sockets, the sessions, the raw-frame archive and
the sink (``envmon.ingest.sink``):

* each connection is an asyncio protocol (no task per connection, which with
  thousands of loggers would cost a task switch per frame); what it reads is
  processed in turns of at most ``_TURN`` (5 ms) of work per turn of the
  event loop — fed to its session, the frames archived, the replies written,
  the readings (in columns) and rejects queued — so that a burst of frames
  never holds up the writer's round trips to the database;
* one pipeline task validates and writes what all connections queued — as
  long after the oldest value arrived as the previous write took (at least
  10 ms, at most ``flush_interval``, 0.2 s), or as soon as ``max_batch``
  values wait, whatever arrived during the previous write included (group
  commit: under load the batches grow by themselves, idle a frame is stored
  within milliseconds) — as one DataFrame per batch, stored through the sink
  (which tells the alerts and the derive job).  ``ingest_cursor`` is
  updated with the batch's stations at most every ``CURSOR_INTERVAL`` (1 s):
  one upsert per station per batch would cost the database as much as the
  readings;
* one housekeeping task closes idle connections, times out unanswered
  requests and split groups, flushes and prunes the archive;
* split groups are shared by all connections and journalled on disk
  (:mod:`.splitjournal`): a packet's 9014 waits for its journal entry;
* a newly seen station is asked for its missing hours, one 2061 request per
  run of them (:mod:`.recovery`);
* with receiver workers (``envmon run --workers N``) a connection is read up
  to its first frame's MN and, when the device lives in another worker,
  passed to it before anything is answered (:mod:`.workers`).

Limits: ``max_connections`` (connections beyond are closed at once), the idle
timeout, the stream decoder's bounded buffer, a per-connection frame rate
(token bucket), a timeout on sending to a client that does not read, and
back-pressure — a connection stops reading while the pipeline holds more
than ``max_pending`` values (the database is slower than the devices) and
reads on when the writer has taken them.

Durable before acknowledged: a device deletes what it got a 9014 for, so the
replies to frames that carry readings or rejects are sent only once the sink
has committed their batch (or made it durable in its spool or quarantine on
disk) — see :mod:`.pipeline`.  A frame with nothing to store is answered at
once, unless a reply of the same connection is still held (answers keep
their order).  The adaptive flush therefore sets the acknowledgement
latency; if the batch cannot be kept at all, its connections are closed
without their replies and the loggers send again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Final

from envmon import timeutil
from envmon.ingest.sink import Intake
from envmon.ratelimit import TokenBucket
from envmon.schemas.readings import Rejection
from envmon.settings import Settings

from .archive import FrameArchive
from .auth import load_keys, load_secrets, normalize_mn
from .connection import Connection, peer_name
from .noise import AUTH, NoiseLog
from .opensplits import OpenSplits
from .pipeline import MIN_LINGER, Pipeline, ServerStats
from .records import RecordStore
from .recovery import GapRecovery, LastHours
from .session import (
    SOURCE,
    AuthFailed,
    Directory,
    Hj212Config,
    Output,
    Readings,
    RequestFinished,
    Session,
    StationSeen,
    load_config,
)
from .splitjournal import SplitJournal
from .workers import Handoff, peek_mn

logger = logging.getLogger(__name__)

_PRUNE_EVERY: Final = 3600.0
_MAX_FAILING_TRACKED: Final = 10_000
_REFUSED_LOG_EVERY: Final = 10.0
_RESUME_PER_TURN: Final = 200
_TURN: Final = 0.005  # s of frame processing per turn of the event loop
_HANDOFF_RETRY: Final = 0.02  # s between tries while the home worker cannot take it
_HANDOFF_GIVE_UP: Final = 15.0  # s (a worker starts again in ~3 s): then closed unanswered


# --------------------------------------------------------------------------- connections


class _DeviceProtocol(asyncio.Protocol):
    """asyncio's callbacks for one device connection, handed to the server.

    A protocol rather than a stream reader and a task per connection: with
    thousands of loggers every frame is one read, one session feed and one
    9014, and callbacks spare each of them a task switch.
    """

    def __init__(self, server: Hj212Server, handed: bytes | None = None) -> None:
        self.server = server
        self.conn: Connection | None = None
        self.handed = handed  # what another worker read before it passed the connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.conn = self.server._accept(transport, routed=self.handed is not None)
        if self.conn is not None and self.handed:
            self.server._received(self.conn, self.handed)
        self.handed = None

    def data_received(self, data: bytes) -> None:
        if self.conn is not None:
            self.server._received(self.conn, data)

    def eof_received(self) -> bool:
        # The device is done sending: close once what it sent is answered.
        if self.conn is not None:
            self.server._eof(self.conn)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            self.server._lost(conn, exc)

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.server._writing_paused(self.conn)

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.server._writing_resumed(self.conn)


class Hj212Server:
    """The HJ 212 TCP receiver, as an async context manager.

    ``async with Hj212Server(...) as srv:`` binds ``settings.hj212.host:port``
    (port 0: any free port, see :attr:`port`) and serves until the block
    exits; on exit it stops accepting, closes the connections, writes what
    is pending and closes the archive.

    ``secrets`` (MN → password) defaults to :func:`load_secrets` of the
    settings' secrets file and environment; ``archive`` to a
    :class:`FrameArchive` under ``settings.archive_dir``; ``config`` to
    ``settings.hj212_config_path``.  Batches are stored through the intake's
    sink, which tells its listeners (alerts, derive) after each one.
    """

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        *,
        secrets: dict[str, str] | None = None,
        archive: FrameArchive | None = None,
        config: Hj212Config | None = None,
        clock: Callable[[], datetime] = timeutil.now,
        flush_interval: float = 0.2,
        min_linger: float = MIN_LINGER,
        max_batch: int = 5000,
        max_pending: int = 50_000,
        request_timeout: float = 60.0,
        max_frames_per_s: float = 200.0,
        send_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self.hj = settings.hj212
        catalog = self.catalog = intake.catalog
        pool = self.pool = intake.pool
        self.clock = clock
        self.request_timeout = request_timeout
        self.max_frames_per_s = max_frames_per_s
        self.send_timeout = send_timeout
        self.stats = ServerStats()
        if secrets is None:
            secrets = load_secrets(settings.hj212_secrets_path, self.hj.passwords)
        if config is None:
            config = load_config(settings.hj212_config_path, catalog)
        self.directory = Directory.build(
            catalog,
            secrets,
            config,
            load_keys(settings.hj212_secrets_path),
            crc_auto=self.hj.crc_auto,
        )
        self.records = RecordStore(pool)  # 3019/3020 device info and logs, 2013 raw data
        self._own_archive = archive is None
        self.archive = archive or FrameArchive(settings.archive_dir, self.hj.archive_retention_days)
        self.journal = SplitJournal(settings.split_journal_dir)
        self._pipeline = Pipeline(
            intake.validator,
            intake.sink,
            pool,
            self.archive,
            self.stats,
            interval=flush_interval,
            min_linger=min_linger,
            max_batch=max_batch,
            max_pending=max_pending,
            journal=self.journal,
        )
        self._pipeline.on_room = self._room_again
        # Open split groups, shared by all connections (a device may send the
        # rest of a group after a reconnect), and their durable journal.
        self._splits = OpenSplits(
            self.directory,
            self.journal,
            self._pipeline,
            self.clock,
            timeout=self.hj.split_timeout_s,
            max_groups=self.hj.split_max_groups,
        )
        self._recovery = GapRecovery(
            LastHours(
                pool,
                catalog,
                intake.sink.writer.timeout,
                self.hj.gap_recovery_max_hours,
                self.clock,
            ),
            self.hj,
            self.stats,
            self.clock,
            write=self._write,
            error=self._pipeline.error,
        )
        # Receiver workers (`envmon run --workers N`): each device is served by its home.
        self._handoff = Handoff(settings, self._adopt) if self.hj.workers > 1 else None
        self._adopting: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._per_address: dict[str, int] = {}  # open connections by IP address
        self._no_connections = asyncio.Event()
        self._no_connections.set()
        self._waiting_room: set[Connection] = set()  # paused until the pipeline has room
        self._resuming: asyncio.Handle | None = None
        self._inbox: deque[tuple[Connection, bytes | None]] = deque()
        self._draining: asyncio.Handle | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._failing: set[str] = set()  # MNs whose last frame failed authentication
        self.noise = NoiseLog()  # CRC mismatches and authentication failures
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

    @property
    def split_groups_open(self) -> int:
        """Split uploads waiting for their remaining packets."""
        return len(self._splits)

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
        loop = asyncio.get_running_loop()
        try:
            self._splits.replay()
            self.journal.start()
            self._server = await loop.create_server(
                lambda: _DeviceProtocol(self),
                self.hj.host,
                self.hj.port,
                backlog=min(self.hj.max_connections, 4096),
                reuse_port=self._handoff is not None or None,
            )
            if self._handoff is not None:
                # Before any accepted connection is read (no await in between):
                # taking hand-overs also says this worker serves the port.
                self._handoff.start()
        except OSError:
            self._closing = True
            if self._handoff is not None:
                self._handoff.close()
            await self._pipeline.stop()
            await self.journal.aclose()
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
        if self._handoff is not None:
            self._handoff.close()
        if self._resuming is not None:
            self._resuming.cancel()
            self._resuming = None
        # What was read is processed (and answered) before the connections close.
        if self._draining is not None:
            self._draining.cancel()
        self._drain(turn=float("inf"))
        # What was read is stored, and its replies sent, before the close.
        await self._pipeline.flush()
        for conn in list(self._connections):
            conn.close()
        # Closing sends what is still buffered for a client; a client that
        # does not read is cut off.
        try:
            async with asyncio.timeout(5.0):
                await self._no_connections.wait()
        except TimeoutError:
            for conn in list(self._connections):
                conn.transport.abort()
            await self._no_connections.wait()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self._recovery.close()
        await self._pipeline.stop()
        await self.journal.aclose()
        await self.records.flush()
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
        await self.records.flush()

    # ------------------------------------------------------------------ connections

    def _accept(self, transport: asyncio.Transport, *, routed: bool = False) -> Connection | None:
        peer = peer_name(transport)
        address = peer.rsplit(":", 1)[0]
        if self._per_address.get(address, 0) >= self.hj.max_connections_per_address:
            self.stats.refused += 1
            self._refused_log(peer, f"over {self.hj.max_connections_per_address} from {address}")
            transport.close()
            return None
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
            transport.close()
            return None
        mono = asyncio.get_running_loop().time()
        conn = Connection(
            peer,
            transport,
            Session(
                self.directory,
                max_buffer=self.hj.max_buffer_bytes,
                auth_failures_before_close=self.hj.auth_failures_before_close,
                request_timeout=self.request_timeout,
                splits=self._splits.assembler,
            ),
            last_rx=mono,
            bucket=TokenBucket(self.max_frames_per_s, self._burst, mono),
            opened=mono,
            routing=bytearray() if self._handoff is not None and not routed else None,
        )
        if routed:
            self.stats.adopted += 1
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self._connections.add(conn)
        self._no_connections.clear()
        self.stats.connections += 1
        logger.debug("hj212 connection opened peer=%s", peer)
        return conn

    def _refused_log(self, peer: str, why: str) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._refused_logged >= _REFUSED_LOG_EVERY:
            self._refused_logged = now
            logger.warning(
                "hj212 connection refused peer=%s reason=%s refused_total=%d",
                peer,
                why,
                self.stats.refused,
            )

    def _summarise_rejects(self, conn: Connection) -> None:
        """One row for the rejects a connection had beyond its cap."""
        if conn.rejects_dropped:
            self._pipeline.put(
                Readings(),
                [
                    Rejection(
                        SOURCE,
                        f"<{conn.rejects_dropped} more rejects from {conn.peer} not stored>",
                        f"over max_rejects_per_connection={self.hj.max_rejects_per_connection}",
                    )
                ],
            )
            conn.rejects_dropped = 0

    def _received(self, conn: Connection, data: bytes) -> None:
        """Bytes from a device: queued for :meth:`_drain`.

        The chunks of all connections are processed in turns of at most
        ``_TURN`` seconds of work: a burst of thousands of frames would
        otherwise hold the event loop, and the writer's round trips to the
        database (each waiting for its turn of the loop) with it — the write
        gets slower, the next batch bigger, the burst longer.
        """
        if conn.closing:
            return
        if conn.routing is not None:
            self._route(conn, data)
            return
        conn.last_rx = asyncio.get_running_loop().time()
        self.stats.bytes_in += len(data)
        self._inbox.append((conn, data))
        conn.queued += 1
        if conn.queued > 1:
            # A device waits for its answer before it sends on; one that does
            # not is read no faster than it is processed.
            conn.pause("inbox")
        if self._draining is None:
            self._draining = asyncio.get_running_loop().call_soon(self._drain)

    # ------------------------------------------------------------------ receiver workers

    def _route(self, conn: Connection, data: bytes) -> None:
        """Read up to the first frame's MN, then serve the connection here or
        pass it to its device's home worker (:mod:`.workers`)."""
        assert conn.routing is not None and self._handoff is not None
        conn.routing += data
        mn = peek_mn(conn.routing)
        if mn is None:
            return
        read, conn.routing = bytes(conn.routing), None
        home = self._handoff.home(mn) if mn else self._handoff.index
        if home == self._handoff.index:
            self._received(conn, read)
            return
        conn.pause("handoff")
        self._hand_off(conn, home, read, asyncio.get_running_loop().time())

    def _hand_off(self, conn: Connection, home: int, read: bytes, since: float) -> None:
        if conn.closing or self._handoff is None:
            return
        sock = conn.transport.get_extra_info("socket")
        loop = asyncio.get_running_loop()
        sent = self._handoff.send(home, sock, read) if sock is not None else False
        if sent is None and loop.time() - since < _HANDOFF_GIVE_UP:
            # The home is starting (or busy): the device waits a little.
            loop.call_later(_HANDOFF_RETRY, self._hand_off, conn, home, read, since)
            return
        if not sent:
            # Nothing was answered: the logger sends again on a new connection.
            logger.warning(
                "hj212 connection closed peer=%s reason=its home worker %d did not take it",
                conn.peer,
                home,
            )
            conn.close()
            return
        self.stats.handed_off += 1
        # The home worker holds the socket now: close this process's copy only
        # (no FIN: the connection lives on there).
        conn.closing = True
        conn.transport.abort()

    def _adopt(self, sock: socket.socket, read: bytes) -> None:
        """A connection another worker accepted, of a device that lives here."""
        if self._closing:
            sock.close()
            return
        sock.setblocking(False)

        async def adopt() -> None:
            try:
                await asyncio.get_running_loop().connect_accepted_socket(
                    lambda: _DeviceProtocol(self, handed=read), sock
                )
            except OSError as err:
                logger.warning("hj212 handed-over connection lost: %s", err)
                sock.close()

        task = asyncio.create_task(adopt(), name="hj212-adopt")
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    def _drain(self, turn: float = _TURN) -> None:
        self._draining = None
        loop = asyncio.get_running_loop()
        inbox = self._inbox
        deadline = loop.time() + turn
        while inbox:
            conn, data = inbox.popleft()
            if data is None:
                self._end(conn)
            else:
                conn.queued -= 1
                if not conn.closing:
                    self._process(conn, data)
                    if not conn.queued:
                        conn.resume("inbox")
                        self._finish_if_answered(conn)
            if loop.time() >= deadline:
                break
        if inbox:
            self._draining = loop.call_soon(self._drain)

    def _process(self, conn: Connection, data: bytes) -> None:
        """Feed a chunk to the connection's session, archive and queue what
        comes out, answer, and decide whether to read on."""
        try:
            now = self.clock()
            out = conn.session.feed(data, now=now, mono=conn.last_rx)
            self._absorb(conn, out, now)
            self._reply(conn, out)
            if out.close:
                logger.warning(
                    "hj212 connection closed peer=%s reason=%s", conn.peer, out.close_reason
                )
                conn.close()
                return
            if self._spend(conn, len(out.archive)):
                self._throttle(conn)
            if not self._pipeline.has_room:
                # Back-pressure: the next chunk waits in the socket until the
                # writer has caught up (see _room_again).
                conn.pause("room")
                self._waiting_room.add(conn)
        except Exception:
            logger.exception("hj212 connection failed peer=%s", conn.peer)
            conn.close()

    def _eof(self, conn: Connection) -> None:
        if conn.routing is not None:
            # Done sending before a whole first frame came: served here.
            read, conn.routing = bytes(conn.routing), None
            if read:
                self._received(conn, read)
        conn.eof = True
        self._finish_if_answered(conn)

    def _finish_if_answered(self, conn: Connection) -> None:
        """After the peer's EOF: close once its frames are processed and answered."""
        if conn.eof and not conn.queued and not conn.held and not conn.closing:
            conn.close()

    def _lost(self, conn: Connection, exc: Exception | None) -> None:
        if exc is not None:
            logger.debug("hj212 connection lost peer=%s: %s", conn.peer, exc)
        conn.lost = True
        for handle in (conn.timer, conn.send_deadline):
            if handle is not None:
                handle.cancel()
        self._waiting_room.discard(conn)
        if conn.queued:
            # What the device sent before it left comes first.
            self._inbox.append((conn, None))
        else:
            self._end(conn)

    def _end(self, conn: Connection) -> None:
        conn.closing = True
        if conn.timer is not None:
            conn.timer.cancel()
        for child in conn.tasks:
            child.cancel()
        try:
            self._absorb(
                conn, conn.session.end(now=self.clock(), mono=asyncio.get_running_loop().time())
            )
        except Exception:
            logger.exception("hj212 connection end failed peer=%s", conn.peer)
        if conn in self._connections:
            address = conn.peer.rsplit(":", 1)[0]
            left = self._per_address.get(address, 1) - 1
            if left > 0:
                self._per_address[address] = left
            else:
                self._per_address.pop(address, None)
        self._summarise_rejects(conn)
        self._connections.discard(conn)
        if not self._connections:
            self._no_connections.set()
        logger.debug("hj212 connection closed peer=%s frames=%d", conn.peer, conn.session.frames)

    def _room_again(self) -> None:
        """The pipeline has room: read the connections that waited for it.

        A few hundred per turn of the event loop: thousands of connections
        resumed at once would each deliver a frame in the same turn, and the
        writer's own round trips to the database would wait behind them all.
        """
        if self._resuming is None:
            self._resuming = asyncio.get_running_loop().call_soon(self._resume_some)

    def _resume_some(self) -> None:
        self._resuming = None
        if not self._pipeline.has_room:
            return  # full again: _room_again will be called when it is not
        for _ in range(min(_RESUME_PER_TURN, len(self._waiting_room))):
            self._waiting_room.pop().resume("room")
        if self._waiting_room:
            self._resuming = asyncio.get_running_loop().call_soon(self._resume_some)

    @property
    def _burst(self) -> float:
        return max(self.max_frames_per_s, 100.0)

    def _spend(self, conn: Connection, frames: int) -> bool:
        """Per-connection token bucket: a flood from one client only slows that
        client.  Whether the connection must wait (:meth:`_throttle`)."""
        conn.throttle_s = conn.bucket.take(frames, conn.last_rx)
        return conn.throttle_s > 0

    def _throttle(self, conn: Connection) -> None:
        conn.pause("throttle")
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer = asyncio.get_running_loop().call_later(conn.throttle_s, conn.resume, "throttle")

    def _reply(self, conn: Connection, out: Output) -> None:
        """Send the replies of what was fed, once it is durable.

        Replies to frames that carry readings or rejects (and every reply
        behind one still held, so that a device gets its answers in order)
        wait for the pipeline to store the batch; a split packet left waiting
        in its group waits for the next fsync of the journal (the pipeline's
        batches sync it first, so the order holds); the others go at once.
        """
        if not out.replies:
            return
        data = b"".join(out.replies)
        stored = len(out.readings) or out.rejects or out.split_done
        if not (stored or out.split_packets or conn.held):
            self._write(conn, data)
            return
        journal_only = not (stored or conn.held)
        conn.held += 1

        def ack(durable: bool) -> None:
            conn.held -= 1
            if durable:
                self._write(conn, data)
                self._finish_if_answered(conn)
            elif not conn.closing:
                logger.warning(
                    "hj212 connection closed peer=%s reason=frames could not be stored",
                    conn.peer,
                )
                conn.close()

        if journal_only:
            self.journal.after_sync(ack)
        else:
            self._pipeline.put(Readings(), [], ack)

    def _write(self, conn: Connection, data: bytes) -> None:
        if not conn.transport.is_closing():
            conn.transport.write(data)

    def _writing_paused(self, conn: Connection) -> None:
        """The client does not read what it is sent: stop reading it, and close
        it if it still has not read after ``send_timeout``."""
        conn.pause("writing")
        if conn.send_deadline is None:
            conn.send_deadline = asyncio.get_running_loop().call_later(
                self.send_timeout, self._send_timed_out, conn
            )

    def _writing_resumed(self, conn: Connection) -> None:
        if conn.send_deadline is not None:
            conn.send_deadline.cancel()
            conn.send_deadline = None
        conn.resume("writing")

    def _send_timed_out(self, conn: Connection) -> None:
        conn.send_deadline = None
        if conn.closing:
            return
        logger.warning(
            "hj212 connection closed peer=%s reason=client does not read for %g s",
            conn.peer,
            self.send_timeout,
        )
        # close() would wait for the buffer to drain, which is the problem.
        conn.closing = True
        conn.transport.abort()

    def _absorb(self, conn: Connection, out: Output, received: datetime | None = None) -> None:
        """Archive, queue and react to a session's output (everything but sending)."""
        if out.archive:
            received = received or self.clock()
            for entry in out.archive:
                if entry.status != "ok":
                    self.stats.frames_rejected += 1
                if entry.status == "error":
                    # Bytes that did not parse stay out of the archive (a flood
                    # of garbage would fill the disk); its reject says what came.
                    continue
                self.archive.append(received, conn.peer, entry.mn, entry.status, entry.raw)
            self.stats.frames += len(out.archive)
        rejects = out.rejects
        self.noise.note_crc(rejects, conn.peer)
        if rejects:
            room = max(0, self.hj.max_rejects_per_connection - conn.rejects)
            if len(rejects) > room:
                conn.rejects_dropped += len(rejects) - room
                rejects = rejects[:room]
            conn.rejects += len(rejects)
        self._splits.journal_packets(out)
        self._pipeline.put(out.readings, rejects, done=out.split_done)
        if out.records:
            self.records.put(out.records)
        for event in out.events:
            if isinstance(event, StationSeen):
                self._seen(conn, event)
            elif isinstance(event, AuthFailed):
                self._auth_failed(conn, event)
            elif isinstance(event, RequestFinished):
                self._finished(conn, event)

    def _seen(self, conn: Connection, event: StationSeen) -> None:
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
        if not self._closing:
            self._recovery.seen(conn, event)

    def _auth_failed(self, conn: Connection, event: AuthFailed) -> None:
        mn = normalize_mn(event.mn)
        if mn not in self._failing:
            if len(self._failing) >= _MAX_FAILING_TRACKED:
                self._failing.clear()
            self._failing.add(mn)
        self.noise.note(
            AUTH,
            f"MN={event.mn}",
            f"peer={conn.peer} station={event.station_id or '-'} reason={event.reason}",
        )
        if event.station_id is not None:
            self._pipeline.error(event.station_id, event.reason, self.clock())

    def _finished(self, conn: Connection, event: RequestFinished) -> None:
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
        self._recovery.finished(conn, event)

    # ------------------------------------------------------------------ housekeeping

    async def _housekeep(self) -> None:
        loop = asyncio.get_running_loop()
        period = min(1.0, self.hj.idle_timeout_s / 4, self.hj.auth_deadline_s / 4)
        while True:
            await asyncio.sleep(period)
            try:
                mono = loop.time()
                for conn in list(self._connections):
                    if conn.closing:
                        continue
                    if not conn.session.stations and mono - conn.opened > self.hj.auth_deadline_s:
                        logger.info(
                            "hj212 connection closed peer=%s reason=not authenticated within %g s",
                            conn.peer,
                            self.hj.auth_deadline_s,
                        )
                        conn.close()
                        continue
                    if mono - conn.last_rx > self.hj.idle_timeout_s:
                        logger.info(
                            "hj212 connection closed peer=%s reason=idle for %g s",
                            conn.peer,
                            self.hj.idle_timeout_s,
                        )
                        conn.close()
                        continue
                    if conn.session.waiting:
                        self._absorb(conn, conn.session.tick(mono))
                self._splits.expire(mono)
                if mono - self._last_prune >= _PRUNE_EVERY:
                    self._last_prune = mono
                    # A listing of ~100 names: cheap enough for the loop, and
                    # no thread may touch the archive's open file meanwhile.
                    self.archive.prune()
                if not self._pipeline.pending:
                    self.archive.flush()
                await self.records.flush()
            except Exception:
                logger.exception("hj212 housekeeping failed")
