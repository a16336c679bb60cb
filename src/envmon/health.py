"""``envmon status --health``: what the container healthcheck asks besides "the database
answers" (issue 12): a spool that does not drain, a receiver that accepts no connection.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from envmon.db.spool import Spool
from envmon.settings import Settings

SPOOL_STUCK_AFTER_S = 600.0


def spool_problem(spool_dir: Path, *, stuck_after_s: float = SPOOL_STUCK_AFTER_S) -> str | None:
    """The oldest spooled file waiting longer than ``stuck_after_s``: the spool is stuck."""
    pending = Spool(spool_dir).pending()
    if not pending:
        return None
    age = time.time() - min(p.stat().st_mtime for p in pending)
    if age <= stuck_after_s:
        return None
    return f"spool stuck: {len(pending)} file(s) waiting, the oldest for {age / 60:.0f} min"


def accepting(host: str, port: int, timeout: float = 3.0) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        with socket.create_connection((target, port), timeout=timeout):
            return True
    except OSError:
        return False


def problems(settings: Settings, *, stuck_after_s: float = SPOOL_STUCK_AFTER_S) -> list[str]:
    """One line per thing that is wrong; empty when healthy."""
    out: list[str] = []
    if (p := spool_problem(settings.spool_dir, stuck_after_s=stuck_after_s)) is not None:
        out.append(p)
    if settings.hj212.enabled and not accepting(settings.hj212.host, settings.hj212.port):
        out.append(f"HJ 212 receiver not accepting connections on port {settings.hj212.port}")
    if settings.api.enabled and not accepting(settings.api.host, settings.api.port):
        out.append(f"HTTP API not accepting connections on port {settings.api.port}")
    return out
