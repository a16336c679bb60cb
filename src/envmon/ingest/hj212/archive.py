"""The raw-frame archive: every HJ 212 frame received, with when and from whom.

Provenance for a bureau: whatever a reading says, the bytes it came from can be
found again.  One append-only text file per UTC day (``hj212-2025-06-01.log``),
one line per frame::

    <ISO receive time, UTC>\\t<peer>\\t<MN or ->\\t<ok|rejected|error>\\t<frame, escaped>

The frame is escaped so that a line is always one frame: ``\\\\``, ``\\r``,
``\\n``, ``\\t``, other control characters as ``\\xNN``, and bytes that are not
UTF-8 as ``\\xNN`` too (:func:`unescape` reverses it exactly).

Appends go to an in-memory buffer; :meth:`FrameArchive.flush` writes it with
one ``write`` call (the receiver flushes once per batch, every ~0.2 s), so the
event loop never waits on the disk per frame.  No ``fsync``: the archive is a
record, not the durable path of the data (that is the database and its spool).
Passwords are redacted (``PW=***``) before a frame is buffered; the folder is
created 0700 and the files 0600.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Final

from .redact import redact

logger = logging.getLogger(__name__)

STATUSES: Final = frozenset({"ok", "rejected", "error"})
_NAME_RE: Final = re.compile(r"hj212-(\d{4}-\d{2}-\d{2})\.log")
_ESCAPE_RE: Final = re.compile(r"[\x00-\x1f\x7f\\\udc80-\udcff]")
_ESCAPES: Final = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", "\t": "\\t"}
_UNESCAPE_RE: Final = re.compile(r"\\(x[0-9a-f]{2}|.)")
# Flush by itself once this much is buffered, whatever the caller does.
_MAX_BUFFERED: Final = 1 << 20


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    known = _ESCAPES.get(char)
    if known is not None:
        return known
    code = ord(char)
    # Lone surrogates come from bytes that were not UTF-8 (surrogateescape).
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def escape(raw: bytes) -> str:
    """``raw`` as one line of text, reversibly (see the module doc)."""
    text = raw.decode("utf-8", "surrogateescape")
    # The usual frame: printable text and its CRLF tail.
    if text.endswith("\r\n") and _ESCAPE_RE.search(text, 0, len(text) - 2) is None:
        return text[:-2] + "\\r\\n"
    return _ESCAPE_RE.sub(_escape_char, text)


def unescape(text: str) -> bytes:
    """The bytes :func:`escape` was given."""
    out = bytearray()
    pos = 0
    for match in _UNESCAPE_RE.finditer(text):
        out += text[pos : match.start()].encode("utf-8")
        token = match.group(1)
        if token.startswith("x") and len(token) == 3:
            out.append(int(token[1:], 16))
        else:
            out += {"\\": b"\\", "r": b"\r", "n": b"\n", "t": b"\t"}.get(
                token, ("\\" + token).encode("utf-8")
            )
        pos = match.end()
    out += text[pos:].encode("utf-8")
    return bytes(out)


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """One line of the archive, parsed back."""

    received_at: datetime
    peer: str
    mn: str | None
    status: str
    raw: bytes


def parse_line(line: str) -> ArchiveRecord:
    """Parse one archive line (as written by :meth:`FrameArchive.append`)."""
    received, peer, mn, status, frame = line.rstrip("\n").split("\t", 4)
    return ArchiveRecord(
        datetime.fromisoformat(received), peer, None if mn == "-" else mn, status, unescape(frame)
    )


class FrameArchive:
    """Append-only daily files of raw frames under ``directory``.

    Files older than ``retention_days`` (by the UTC day in their name) are
    deleted by :meth:`prune`.  Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, directory: Path, retention_days: int) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.directory = directory
        self.retention_days = retention_days
        self._pending: dict[date, list[str]] = {}
        self._size = 0
        self._day: date | None = None
        self._file: IO[str] | None = None
        self._failing = False
        self._stamp: tuple[datetime, str, date] | None = None  # the last receive time, formatted
        self.lost = 0  # frames that could not be written (disk full, …)

    def path_for(self, day: date) -> Path:
        return self.directory / f"hj212-{day.isoformat()}.log"

    def append(
        self, received_at: datetime, peer: str, mn: str | None, status: str, raw: bytes
    ) -> None:
        """Queue one frame; written at the next :meth:`flush`."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}, not {status!r}")
        stamp = self._stamp
        if stamp is None or stamp[0] is not received_at:
            # The receiver stamps every frame of one read with the same time.
            at = received_at.astimezone(UTC)
            stamp = self._stamp = (received_at, at.isoformat(), at.date())
        _, iso, day = stamp
        # Never a device's password on disk (issue 18).
        line = f"{iso}\t{peer or '-'}\t{_field(mn)}\t{status}\t{escape(redact(raw))}\n"
        self._pending.setdefault(day, []).append(line)
        self._size += len(line)
        if self._size >= _MAX_BUFFERED:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered (one write per day file touched)."""
        if not self._pending:
            return
        pending, self._pending, self._size = self._pending, {}, 0
        for day in sorted(pending):
            try:
                handle = self._open(day)
                handle.write("".join(pending[day]))
                handle.flush()
            except OSError as err:
                # A full or read-only disk must not stop the receiver: the data
                # still reach the database; say once, loudly, that provenance is lost.
                self.lost += len(pending[day])
                if not self._failing:
                    self._failing = True
                    logger.error(
                        "hj212 archive write failed dir=%s day=%s frames=%d: %s",
                        self.directory,
                        day,
                        len(pending[day]),
                        err,
                    )
                self._close_file()
            else:
                if self._failing:
                    self._failing = False
                    logger.warning(
                        "hj212 archive writable again dir=%s frames_lost=%d",
                        self.directory,
                        self.lost,
                    )

    def prune(self, today: date | None = None) -> list[Path]:
        """Delete day files older than ``retention_days``; return what was deleted."""
        today = today or datetime.now(UTC).date()
        cutoff = today - timedelta(days=self.retention_days)
        removed: list[Path] = []
        if not self.directory.is_dir():
            return removed
        for path in sorted(self.directory.iterdir()):
            match = _NAME_RE.fullmatch(path.name)
            if match is None:
                continue
            try:
                day = date.fromisoformat(match.group(1))
            except ValueError:
                continue
            if day < cutoff:
                if day == self._day:
                    self._close_file()
                try:
                    path.unlink()
                except OSError:
                    logger.exception("hj212 archive prune failed file=%s", path.name)
                    continue
                removed.append(path)
        if removed:
            logger.info("hj212 archive pruned files=%d before=%s", len(removed), cutoff)
        return removed

    def close(self) -> None:
        self.flush()
        self._close_file()

    def __enter__(self) -> FrameArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, day: date) -> IO[str]:
        if self._file is not None and self._day == day:
            return self._file
        self._close_file()
        # Only the service's user may read the frames: folders 0700, files 0600.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        fd = os.open(self.path_for(day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        # newline="" keeps "\n" as written on every platform.
        self._file = open(fd, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._day = day
        return self._file

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                logger.exception("hj212 archive close failed day=%s", self._day)
        self._file = None
        self._day = None


def _field(text: str | None) -> str:
    if not text:
        return "-"
    return _ESCAPE_RE.sub(_escape_char, text)
