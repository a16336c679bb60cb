"""Whether the database can be reached, said in one line an operator can act on.

A stopped database is an expected outage, not a bug: every command says so
in one line (where, why, what to do) and exits non-zero, and the service's
log says it without a traceback (:class:`OutageLogFilter`). Which errors
count as "cannot be reached" is :func:`envmon.db.writer.is_unavailable`'s
call, so that the CLI, the log and the sink agree.
"""

from __future__ import annotations

import logging
import time

import psycopg
from psycopg import conninfo

from envmon.db.writer import is_unavailable
from envmon.errors import DatabaseUnavailable

__all__ = ["OutageLogFilter", "check_reachable", "endpoint", "is_unavailable", "unreachable"]

EMBEDDED_HINT = "start it with `envmon db up`, or set ENVMON_DATABASE_URL"
EXTERNAL_HINT = "check that the server is running and ENVMON_DATABASE_URL"


def endpoint(url: str) -> str:
    """``HOST:PORT`` of a connection URL (never its password or user)."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unreadable database URL)"
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = str(parts.get("port") or 5432)
    return f"{host}:{port}"


def reason(err: BaseException) -> str:
    """The useful part of a driver message: ``Connection refused``, not four lines of it."""
    text = str(err).strip() or type(err).__name__
    first = text.splitlines()[0].strip()
    # libpq: 'connection failed: connection to server at "127.0.0.1", port 5433 failed: …'
    tail = first.rsplit(" failed: ", 1)[-1].strip()
    return tail or first


def unreachable(url: str, err: BaseException, *, embedded: bool) -> DatabaseUnavailable:
    hint = EMBEDDED_HINT if embedded else EXTERNAL_HINT
    out = DatabaseUnavailable(
        f"the database at {endpoint(url)} is not reachable ({reason(err)}); {hint}"
    )
    out.__cause__ = err
    return out


def check_reachable(url: str, *, embedded: bool, timeout: float = 5.0) -> None:
    """Connect once; :class:`DatabaseUnavailable` with the one-line message if it cannot."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout))):
            pass
    except psycopg.OperationalError as err:
        if is_unavailable(err):
            raise unreachable(url, err, embedded=embedded) from err
        raise


class OutageLogFilter(logging.Filter):
    """A record logged with a database outage as its exception loses the traceback.

    Task boundaries log with ``logger.exception`` so that bugs show their
    traceback; a pool time-out or a refused connection while the database is
    down is expected and becomes one WARNING line with the reason instead.
    """

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last_pool_warning = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "psycopg.pool" and str(record.msg).startswith("error connecting"):
            # The pool retries every couple of seconds while the server is down:
            # one line a minute says it, in one line instead of libpq's three.
            now = time.monotonic()
            if now - self._last_pool_warning < self.every_s:
                return False
            self._last_pool_warning = now
            args = record.args if isinstance(record.args, tuple) else ()
            err = args[-1] if args and isinstance(args[-1], BaseException) else None
            record.msg = "database not reachable (%s); the pool keeps retrying every few seconds"
            record.args = (reason(err) if err else "connection failed",)
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _is_outage(exc):
            record.msg = f"{record.getMessage()}: database unavailable ({reason(exc)})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno = logging.WARNING
                record.levelname = logging.getLevelName(logging.WARNING)
        return True


def _is_outage(err: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if is_unavailable(cur):
            return True
        seen.add(id(cur))
        cur = cur.__cause__
    return False
