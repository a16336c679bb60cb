"""Logger names used across envmon (only names; configuration is the CLI's)."""

from __future__ import annotations

import logging

db_logger = logging.getLogger("envmon.db")
evaluate_logger = logging.getLogger("envmon.evaluate")


def configure(level: str = "INFO") -> None:
    """Configure logging for a CLI process (called once, by the CLI)."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # APScheduler logs every job run at INFO: too chatty for a service log.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
