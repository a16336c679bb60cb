"""Receiver workers: several processes serve one HJ 212 port (``envmon run
--workers N``), each device always in the same one.

The kernel spreads new connections over the processes listening on the port
(``SO_REUSEPORT``), by a hash of the connection's addresses and ports — a
device that reconnects lands on any of them. What a receiver keeps of a
device between its frames (its open split groups and their journal, the CRC
variant it was seen to use, its authentication warnings, its gap recovery)
must stay in one process, so every device has a **home**: worker
``crc32(MN) mod N``. The worker that accepted a connection reads up to the
first frame's ``MN``; when the device's home is another worker, it passes the
socket itself (``SCM_RIGHTS`` over a Unix datagram socket) and the bytes
read so far to the home, which serves the connection from then on as if it
had accepted it. Nothing is answered before the hand-over, so a connection
that cannot be handed over (its home is restarting) is closed unanswered and
the logger sends again on a new one.

The hand-over sockets live in Linux's abstract namespace (no path length
limit, nothing left on disk), named after the data directory; a message is
taken only from a process of the same user (``SO_PASSCRED``).

:func:`rehome` runs in the main process before the workers start: split
packets journalled by a worker that is no longer the home of their device
(N changed) move to the journal of their home, and the spool of a worker that
no longer runs moves to the main process's spool.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import hashlib
import logging
import os
import re
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Final

from envmon.db.spool import Spool
from envmon.settings import Settings

from .auth import normalize_mn
from .splitjournal import SplitJournal, SplitPacket

logger = logging.getLogger(__name__)

PEEK_LIMIT: Final = 16_384  # bytes read without an MN before the connection stays where it is
_HEADER_MN = re.compile(rb"(?:^|;)MN=([^;&\r\n]{0,64});")
_MAX_MESSAGE: Final = 1 << 18  # a datagram is at most the sender's buffer (~208 KiB)
_UCRED = struct.Struct("iII")  # pid, uid, gid


def home_of(mn: str, workers: int) -> int:
    """The worker that serves the device ``mn`` (stable across restarts)."""
    return zlib.crc32(normalize_mn(mn).encode()) % workers


def peek_mn(buf: bytes | bytearray) -> str | None:
    """The MN of the first frame in ``buf``: ``None`` while it may still come,
    ``""`` when it will not (no MN in the first frame's header, or nothing
    frame-like in ``PEEK_LIMIT`` bytes) — the connection then stays where it is,
    and its session answers (or rejects) what it sent."""
    start = buf.find(b"##")
    if start < 0:
        return "" if len(buf) >= PEEK_LIMIT else None
    header = bytes(buf[start + 6 : start + 6 + PEEK_LIMIT])
    found = _HEADER_MN.search(header)
    if found is not None:
        return found.group(1).decode("ascii", "replace").strip()
    if b"CP=" in header or b"\r\n" in header or len(header) >= PEEK_LIMIT - 6:
        return ""
    return None


def _address(settings: Settings, index: int) -> bytes:
    tag = hashlib.sha1(str(settings.data_dir.resolve()).encode()).hexdigest()[:16]
    return f"\0envmon-hj212-{tag}-{index}".encode()


def ready(settings: Settings, index: int) -> bool:
    """Whether worker ``index`` takes hand-overs (and so serves the port)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(_address(settings, index))
        except OSError:
            return False
    return True


class Handoff:
    """One worker's end of the hand-overs: it receives the connections whose
    devices live here, and sends those of devices that live elsewhere."""

    def __init__(self, settings: Settings, adopt: Callable[[socket.socket, bytes], None]) -> None:
        self.settings = settings
        self.index = settings.hj212.worker_index
        self.workers = settings.hj212.workers
        self.adopt = adopt
        self._in: socket.socket | None = None
        self._out: socket.socket | None = None

    def home(self, mn: str) -> int:
        return home_of(mn, self.workers)

    def start(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.bind(_address(self.settings, self.index))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._in = sock
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        if self._in is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._in.fileno())
            self._in.close()
            self._in = None
        if self._out is not None:
            self._out.close()
            self._out = None

    def send(self, home: int, sock: socket.socket, data: bytes) -> bool | None:
        """Hand ``sock`` and what was read of it to worker ``home``: True once
        sent; None when that worker cannot take it now (not started yet, being
        started again, its queue full: try again shortly); False when it never
        will (the message is too big, this end is closed)."""
        if self._out is None:
            return False
        fds = array.array("i", [sock.fileno()])
        try:
            self._out.sendmsg(
                [data],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)],
                0,
                _address(self.settings, home),
            )
        except (BlockingIOError, ConnectionRefusedError, FileNotFoundError):
            return None
        except OSError as err:
            logger.warning("hj212 hand-over to worker %d failed: %s", home, err)
            return False
        return True

    def _readable(self) -> None:
        assert self._in is not None
        fd_space = socket.CMSG_SPACE(array.array("i", [0]).itemsize)
        cred_space = socket.CMSG_SPACE(_UCRED.size)
        while True:
            try:
                data, ancillary, _flags, _addr = self._in.recvmsg(
                    _MAX_MESSAGE, fd_space + cred_space
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                logger.exception("hj212 hand-over receive failed")
                return
            fds: list[int] = []
            uid: int | None = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    got = array.array("i")
                    got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                    fds.extend(got)
                elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    _pid, uid, _gid = _UCRED.unpack(payload[: _UCRED.size])
            if uid != os.getuid() or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                logger.warning("hj212 hand-over refused: uid=%s fds=%d", uid, len(fds))
                continue
            try:
                sock = socket.socket(fileno=fds[0])
            except OSError:
                os.close(fds[0])
                continue
            try:
                self.adopt(sock, data)
            except Exception:
                logger.exception("hj212 handed-over connection failed")
                sock.close()


# --------------------------------------------------------------------------- start-up


def journal_dir(settings: Settings, index: int) -> Path:
    return settings.for_worker(index).split_journal_dir


def _worker_indexes(settings: Settings) -> list[int]:
    root = settings.workers_dir
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and int(p.name) > 0)


def rehome(settings: Settings, workers: int) -> tuple[int, int]:
    """Before the receivers start (main process): split packets move to the
    journal of their device's home among ``workers``, and the spools of
    workers beyond ``workers`` move to the main spool. Returns (packets moved,
    spool files moved).

    Crash-safe: a packet is appended and fsynced at its new home before it is
    dropped where it was (a crash in between leaves it in both; its group
    takes it once)."""
    indexes = [0, *_worker_indexes(settings)]
    journals: dict[int, SplitJournal] = {}
    moving: dict[int, list[SplitPacket]] = {}
    try:
        for k in indexes:
            directory = journal_dir(settings, k)
            if k and not directory.is_dir():
                continue
            journal = journals[k] = SplitJournal(directory)
            for packet in journal.open():
                if home_of(packet.message.mn or "", workers) != k:
                    moving.setdefault(k, []).append(packet)
        moved = 0
        for packets in moving.values():
            for packet in packets:
                home = home_of(packet.message.mn or "", workers)
                if home not in journals:
                    journals[home] = SplitJournal(journal_dir(settings, home))
                    journals[home].open()
                journals[home].append(replace(packet, seq=-1))
                moved += 1
        for journal in journals.values():
            journal.flush_now()
        for k, packets in moving.items():
            journals[k].drop(packets)
    finally:
        for journal in journals.values():
            journal.close()
    files = 0
    main_spool = Spool(settings.for_worker(0).spool_dir)
    for k in indexes:
        spool = settings.for_worker(k).spool_dir
        if k >= workers and spool.is_dir():
            files += main_spool.adopt(spool)
    if moved or files:
        logger.info(
            "hj212 workers=%d: %d split packets moved to their device's home, %d spool files "
            "taken over from workers no longer running",
            workers,
            moved,
            files,
        )
    return moved, files
