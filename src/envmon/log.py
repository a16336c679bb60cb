"""Logger names used across envmon, and the CLI's log format.

Every log line carries its time with the zone (Beijing time, ``+08:00``): the
messages speak Beijing time, and an operator comparing a log line with a
notice or a reading must not have to guess the zone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from envmon.timeutil import BEIJING

db_logger = logging.getLogger("envmon.db")
evaluate_logger = logging.getLogger("envmon.evaluate")

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class BeijingFormatter(logging.Formatter):
    """``2026-12-07T20:44:19.123+08:00``: ISO 8601, Beijing time, with its offset."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        t = datetime.fromtimestamp(record.created, BEIJING)
        if datefmt:
            return t.strftime(datefmt)
        return t.isoformat(timespec="milliseconds")


def configure(level: str = "INFO", *, filters: Iterable[logging.Filter] = ()) -> None:
    """Configure logging for a CLI process (called once, by the CLI)."""
    handler = logging.StreamHandler()
    handler.setFormatter(BeijingFormatter(FORMAT))
    for f in filters:
        handler.addFilter(f)
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # APScheduler logs every job run at INFO: too chatty for a service log.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
