"""Feeding simulated readings into the store: history backfill and the live hour.

The generator (``simulate``) is deterministic, so a backfill and the live feed
agree, and loading a range twice changes nothing (the writer's upsert).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from envmon.ingest.sink import Intake
from envmon.simulate.generator import simulate

logger = logging.getLogger(__name__)


@dataclass
class FeedResult:
    readings: int = 0
    rejected: int = 0


async def backfill(
    intake: Intake,
    start: datetime,
    end: datetime,
    *,
    kinds: Collection[str] = ("air", "water", "weather"),
    seed: int = 2025,
    source: str = "simulator",
    progress: Callable[[datetime], None] | None = None,
    history: bool = True,
) -> FeedResult:
    """Simulate [start, end) for every active catalog station and store it.

    History reaches only the sink's history listeners (the derive job, not the
    alerts: no alerts for last year's episodes); ``history=False`` for the
    live feed.
    """
    stations = [s for s in intake.catalog.stations if s.active and s.kind in kinds]
    out = FeedResult()
    for frame in simulate(stations, start, end, seed=seed, kinds=tuple(kinds), chunk_hours=24 * 7):
        validated = intake.validator.validate_frame(frame, source)
        await intake.sink.store(validated, history=history)
        out.readings += len(validated.batch)
        out.rejected += len(validated.rejected)
        if progress and len(frame):
            progress(datetime.fromisoformat(str(frame["time"].iloc[-1])))
    logger.info(
        "simulated %s–%s kinds=%s readings=%d rejected=%d",
        start,
        end,
        ",".join(kinds),
        out.readings,
        out.rejected,
    )
    return out
