"""CRC mismatches and authentication failures, made visible without flooding.

A misconfigured logger retries every few seconds and a scanner tries many
MNs: one WARNING per kind and MN (or peer, when the frame names no MN) per
``every_s`` (an hour), carrying the count since the previous one. The totals
since start are kept for the status line; ``envmon status`` counts the
``rejected`` rows of the last hour (another process: the database is the truth).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from envmon.schemas.readings import Rejection

logger = logging.getLogger(__name__)

CRC: Final = "crc mismatch"
AUTH: Final = "authentication failure"
# The reasons (``rejected.reason`` prefixes) counted as CRC mismatches.
CRC_REASONS: Final = ("bad_crc", "crc_mismatch")
# The reasons of authentication failures (``Session._authenticate``).
AUTH_REASONS: Final = ("unknown MN ", "no access password ", "wrong access password ")
_MN_RE: Final = re.compile(r"MN=([0-9A-Za-z]{1,32})")


def frame_mn(raw: str) -> str | None:
    """The MN a (possibly broken) frame's text names, if any."""
    found = _MN_RE.search(raw)
    return found.group(1) if found else None


@dataclass(slots=True)
class _Entry:
    count: int = 0  # since the last warning
    warned_at: float | None = None


class NoiseLog:
    """Counts per (kind, MN or peer); a WARNING at most once per ``every_s``."""

    def __init__(
        self,
        *,
        every_s: float = 3600.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_s = every_s
        self.max_keys = max_keys
        self.clock = clock
        self.totals: dict[str, int] = {CRC: 0, AUTH: 0}
        self._entries: dict[tuple[str, str], _Entry] = {}

    def note(self, kind: str, key: str, detail: str) -> bool:
        """Count one event; return whether it was logged (WARNING)."""
        self.totals[kind] = self.totals.get(kind, 0) + 1
        entry = self._entries.get((kind, key))
        if entry is None:
            if len(self._entries) >= self.max_keys:
                # A flood of distinct keys: forget the quietest half, keep counting.
                keep = sorted(self._entries.items(), key=lambda kv: -kv[1].count)
                self._entries = dict(keep[: self.max_keys // 2])
            entry = self._entries[(kind, key)] = _Entry()
        entry.count += 1
        now = self.clock()
        if entry.warned_at is not None and now - entry.warned_at < self.every_s:
            return False
        logger.warning(
            "hj212 %s from %s: count=%d since the previous warning (one per %g min) last: %s",
            kind,
            key,
            entry.count,
            self.every_s / 60,
            detail,
        )
        entry.count = 0
        entry.warned_at = now
        return True

    def note_crc(self, rejects: Iterable[Rejection], peer: str) -> None:
        """Count the CRC mismatches among a connection's rejects (by the MN the
        frame names, else the peer)."""
        for reject in rejects:
            if reject.reason.startswith(CRC_REASONS):
                mn = frame_mn(reject.raw)
                self.note(CRC, f"MN={mn}" if mn else f"peer={peer}", f"peer={peer} {reject.reason}")
