"""The journal of open split uploads: acknowledged packets whose group waits
for the rest.

A logger deletes a packet once it has the packet's 9014, and common loggers
wait for that 9014 before they send the next packet: the receiver cannot
withhold the answers until the group is complete, and the readings of an
incomplete group exist nowhere but in its memory.  So each packet that
leaves its group open is appended here (its password redacted) and the
journal is fsynced before the packet's 9014 is released (:meth:`SplitJournal.after_sync`):
a flusher task fsyncs as soon as a reply waits, and the replies that came
meanwhile, from every connection, wait for the next fsync together (group
commit) — a packet's answer waits one fsync, not a batch of the pipeline.
The pipeline also syncs the journal before it stores a batch (:mod:`.pipeline`),
so the answers of one connection keep their order.  When the group's
readings (or its reject) are durable, its entries are dropped; on start the
journal is replayed into the receiver's split assembler: incomplete groups
wait for their remaining packets (a device may reconnect and send the rest)
until the split time-out, measured from their last packet, turns them into a
``rejected`` row with the reason.

Layout: ``DATA_DIR/hj212/open-splits/`` (0700) holds segment files
``NNNNNNNNNNNN.jsonl`` (0600) of JSON lines — a packet
``{"seq", "at", "station", "text", "message"}`` or a drop ``{"drop": [seq…]}``.
Segments are deleted oldest first, once none of their packets is live (a
drop may sit in a later segment than its packet: a segment goes only after
every one before it); at start the live packets are rewritten into a fresh
segment and the old ones deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from .codec import CpData, Message
from .redact import redact_text

logger = logging.getLogger(__name__)

SEGMENT_BYTES: Final = 4 << 20  # a new segment file after this many bytes
_DIR_MODE: Final = 0o700
_FILE_MODE: Final = 0o600
REDACTED: Final = "***"


@dataclass(slots=True, eq=False)
class SplitPacket:
    """One split packet as the journal keeps it (the assembler's token)."""

    station_id: str
    at: datetime  # when it was received (wall time): the time-out survives a restart
    text: str  # the frame as a reject quotes it (redacted, bounded)
    message: Message  # decoded (and decrypted), its password redacted
    seq: int = -1  # its journal entry, once appended
    held: bool = False  # it waits in an open group (its entry must be durable)

    @classmethod
    def of(cls, station_id: str, at: datetime, text: str, message: Message) -> SplitPacket:
        redacted = replace(
            message,
            pw=None if message.pw is None else REDACTED,
            cp=replace(message.cp, raw=redact_text(message.cp.raw)),
        )
        return cls(station_id, at, redact_text(text), redacted)


def _encode(packet: SplitPacket) -> bytes:
    m = packet.message
    entry = {
        "seq": packet.seq,
        "at": packet.at.isoformat(),
        "station": packet.station_id,
        "text": packet.text,
        "message": {
            "qn": m.qn,
            "st": m.st,
            "cn": m.cn,
            "pw": m.pw,
            "mn": m.mn,
            "flag": m.flag,
            "pnum": m.pnum,
            "pno": m.pno,
            "fields": m.cp.fields,
            "pollutants": m.cp.pollutants,
            "raw": m.cp.raw,
            "resend": m.resend,
        },
    }
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _decode(entry: dict[str, Any]) -> SplitPacket:
    m = entry["message"]
    message = Message(
        qn=m["qn"],
        st=str(m["st"]),
        cn=str(m["cn"]),
        pw=m["pw"],
        mn=str(m["mn"]),
        flag=m["flag"],
        pnum=int(m["pnum"]),
        pno=int(m["pno"]),
        cp=CpData(
            {str(k): str(v) for k, v in m["fields"].items()},
            {str(c): {str(k): str(v) for k, v in i.items()} for c, i in m["pollutants"].items()},
            str(m["raw"]),
        ),
        resend=bool(m["resend"]),
    )
    return SplitPacket(
        str(entry["station"]),
        datetime.fromisoformat(entry["at"]),
        str(entry["text"]),
        message,
        seq=int(entry["seq"]),
    )


class SplitJournal:
    """Append-only, fsynced journal of the packets of open split groups.

    :meth:`append` writes at once (unbuffered) and :meth:`sync` makes every
    append and drop so far durable with one fsync, then releases the replies
    that waited for it (:meth:`after_sync`); the flusher task (:meth:`start`)
    runs it whenever a reply waits, the pipeline before and after each batch.
    Not thread-safe: all calls but the fsync itself run on the event loop.
    """

    def __init__(self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._fd: int | None = None
        self._segment = 0
        self._size = 0
        self._seq = 0
        self._live: dict[int, int] = {}  # seq → the segment holding it
        self._count: dict[int, int] = {}  # segment → live packets in it
        self._retired: list[int] = []  # fds of full segments, closed after their fsync
        self._dirty = False
        self._new_file = False
        self._torn = False  # a write failed half-way: the next goes to a new segment
        self._lock = asyncio.Lock()
        # Replies waiting for the appends before them to be durable.
        self._waiting: list[Callable[[bool], None]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """Packets in the journal (not dropped)."""
        return len(self._live)

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}.jsonl"

    def _segments(self) -> list[Path]:
        return sorted(
            p for p in self.directory.glob("*.jsonl") if p.name[:12].isdigit() and len(p.name) == 18
        )

    # ------------------------------------------------------------------ start

    def open(self) -> list[SplitPacket]:
        """Read what the last run left, compact it into a fresh segment and
        return the live packets in the order they were received."""
        self.directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.directory, _DIR_MODE)
        old = self._segments()
        entries: dict[int, dict[str, Any]] = {}
        dropped: set[int] = set()
        for path in old:
            for number, line in enumerate(path.read_bytes().splitlines(), start=1):
                try:
                    entry = json.loads(line)
                    if "drop" in entry:
                        dropped.update(int(s) for s in entry["drop"])
                    else:
                        entries[int(entry["seq"])] = entry
                except (ValueError, KeyError, TypeError) as err:
                    # A torn last line (killed in the middle of a write): its
                    # packet was never acknowledged.
                    logger.warning(
                        "hj212 split journal line skipped file=%s line=%d: %s",
                        path.name,
                        number,
                        err,
                    )
        packets: list[SplitPacket] = []
        for seq in sorted(entries):
            if seq in dropped:
                continue
            try:
                packets.append(_decode(entries[seq]))
            except (ValueError, KeyError, TypeError) as err:
                logger.error("hj212 split journal entry unreadable seq=%d: %s", seq, err)
        self._seq = max([*entries, *dropped], default=0)
        self._segment = max((int(p.name[:12]) for p in old), default=0)
        self._roll()
        for packet in packets:
            self._write(packet)
        self._fsync([self._fd] if self._fd is not None else [], directory=True)
        self._dirty = self._new_file = False
        for path in old:
            path.unlink()
        if old:
            self._fsync([], directory=True)
        return packets

    # ------------------------------------------------------------------ appends

    def append(self, packet: SplitPacket) -> None:
        """Write ``packet`` (durable at the next :meth:`sync`); sets its ``seq``."""
        self._seq += 1
        packet.seq = self._seq
        self._write(packet)

    def drop(self, packets: Iterable[SplitPacket]) -> None:
        """The groups of ``packets`` are stored (or rejected): forget them."""
        seqs = [p.seq for p in packets if p.seq in self._live]
        if not seqs:
            return
        self._put(json.dumps({"drop": seqs}, separators=(",", ":")).encode() + b"\n")
        for seq in seqs:
            segment = self._live.pop(seq)
            self._count[segment] -= 1
        self._collect()

    def _collect(self) -> None:
        """Delete the oldest segments without live packets (not the current one)."""
        for segment in sorted(self._count):
            if segment == self._segment or self._count[segment]:
                return
            del self._count[segment]
            with contextlib.suppress(FileNotFoundError):
                self._path(segment).unlink()

    def _write(self, packet: SplitPacket) -> None:
        if self._size >= self.segment_bytes:
            self._roll()
        self._put(_encode(packet))
        self._live[packet.seq] = self._segment
        self._count[self._segment] = self._count.get(self._segment, 0) + 1

    def _put(self, data: bytes) -> None:
        if self._fd is None:
            raise RuntimeError("the split journal is not open")
        if self._torn:
            self._roll()  # never glue a line to a torn one
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self._torn = True
            raise
        self._size += len(data)
        self._dirty = True

    def _roll(self) -> None:
        """Start the next segment file (the full one is fsynced and closed at
        the next :meth:`sync`; deleted once its packets are dropped)."""
        fd = os.open(
            self._path(self._segment + 1), os.O_WRONLY | os.O_CREAT | os.O_APPEND, _FILE_MODE
        )
        if self._fd is not None:
            self._retired.append(self._fd)
        self._fd = fd
        self._segment += 1
        self._count.setdefault(self._segment, 0)
        self._collect()
        self._size = 0
        self._torn = False
        self._new_file = True
        self._dirty = True

    # ------------------------------------------------------------------ durability

    def start(self) -> None:
        """Run the flusher (after :meth:`open`)."""
        self._flusher = asyncio.create_task(self._flush_forever(), name="hj212-split-journal")

    def after_sync(self, ack: Callable[[bool], None]) -> None:
        """Call ``ack(True)`` once everything appended so far is durable
        (``ack(False)`` if the fsync failed)."""
        self._waiting.append(ack)
        self._wake.set()

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.sync()
            except Exception:
                logger.exception("hj212 split journal fsync failed (packets not acknowledged)")

    async def sync(self) -> None:
        """Make everything appended and dropped so far durable (one fsync,
        off the event loop), then release the replies that waited for it."""
        async with self._lock:
            waiting, self._waiting = self._waiting, []
            if not self._dirty or self._fd is None:
                _release(waiting, self._fd is not None)
                return
            self._dirty = False
            retired, self._retired = self._retired, []
            directory, self._new_file = self._new_file, False
            try:
                await asyncio.to_thread(self._fsync, [*retired, self._fd], directory=directory)
            except BaseException:
                # Not durable: the next sync tries again, the full segments too.
                self._dirty = True
                self._new_file = self._new_file or directory
                self._retired[:0] = retired
                _release(waiting, False)
                raise
            for fd in retired:
                os.close(fd)
            _release(waiting, True)

    def flush_now(self) -> None:
        """fsync now, on this thread (start-up, before the event loop serves)."""
        if self._fd is not None and self._dirty:
            self._fsync([*self._retired, self._fd], directory=True)
            self._dirty = self._new_file = False

    def _fsync(self, fds: list[int], *, directory: bool) -> None:
        for fd in fds:
            os.fsync(fd)
        if directory:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    async def aclose(self) -> None:
        """Stop the flusher, fsync and close (the entries stay for the next start)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        async with self._lock:
            waiting, self._waiting = self._waiting, []
            try:
                self.close()
            finally:
                _release(waiting, False)

    def close(self) -> None:
        """fsync and close (the entries stay for the next start)."""
        fds = [*self._retired, *([] if self._fd is None else [self._fd])]
        self._retired, self._fd = [], None
        try:
            self._fsync(fds, directory=self._new_file)
        finally:
            for fd in fds:
                os.close(fd)


def _release(acks: list[Callable[[bool], None]], durable: bool) -> None:
    for ack in acks:
        try:
            ack(durable)
        except Exception:
            logger.exception("hj212 acknowledgement failed")
