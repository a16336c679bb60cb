"""The collectors: every configured pull source, each on its own APScheduler job.

One source's trouble never holds up another: each runs as its own job
(``max_instances=1``, ``coalesce``, an explicit ``misfire_grace_time`` —
APScheduler's default of 1 s silently drops a run that starts late). The
pollers themselves are :class:`envmon.ingest.poller.SourcePoller`.

Several ``envmon run`` instances may share one database with the same
sources file (see docs/scaling.md): a scheduled poll runs only in the
instance that owns the source — a PostgreSQL advisory lock per source
(:class:`envmon.db.ownership.Ownership`), held for that instance's lifetime
and taken over by another at its next tick when the owner stops or dies.
So each source is polled once, not once per instance.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import SecretStr

from envmon import timeutil
from envmon.db.ownership import Ownership
from envmon.errors import ConfigError
from envmon.ingest.poller import Clock, PollReport, SourcePoller
from envmon.ingest.sink import Intake
from envmon.ingest.sources.base import Sleep
from envmon.ingest.sources_config import SourcesConfig
from envmon.settings import CollectSettings

logger = logging.getLogger(__name__)


class Collectors:
    """Every configured source, scheduled; ``envmon run`` holds one for its lifetime.

    ::

        async with Collectors(intake, sources_config, session) as c:
            ...            # polling runs on the loop
            c.health()     # for status
            await c.backfill("cnemc-air", t1, t2)

    ``clock``, ``sleep`` and ``rng`` are injectable (tests, replays);
    ``schedule=False`` builds the pollers without starting the scheduler
    (one-off commands, :meth:`poll_now` in tests and benchmarks).
    """

    def __init__(
        self,
        intake: Intake,
        config: SourcesConfig,
        session: aiohttp.ClientSession,
        *,
        secrets: Mapping[str, SecretStr] | None = None,
        clock: Clock = timeutil.now,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        schedule: bool = True,
        only: Sequence[str] | None = None,
    ) -> None:
        self.intake = intake
        self.config = config
        self.session = session
        self.secrets = dict(secrets or {})
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.schedule = schedule
        self.only = set(only) if only is not None else None
        self.pollers: dict[str, SourcePoller] = {}
        self.scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self.ownership: Ownership | None = None

    async def __aenter__(self) -> Collectors:
        for cfg in self.config.active():
            if self.only is not None and cfg.name not in self.only:
                continue
            self.pollers[cfg.name] = SourcePoller(
                self.intake,
                cfg,
                self.session,
                secrets=self.secrets,
                clock=self.clock,
                sleep=self.sleep,
                rng=random.Random(self.rng.random()),
            )
        await asyncio.gather(*(p.load() for p in self.pollers.values()))
        await asyncio.gather(*(p.save_health() for p in self.pollers.values()))
        if self.schedule:
            conninfo = self.intake.pool.conninfo
            if not isinstance(conninfo, str):  # envmon's pools are opened from a URL
                raise ConfigError("the collectors need a pool opened from a connection string")
            self.ownership = Ownership(conninfo, "envmon.poll")
            self._start_scheduler()
        logger.info(
            "collectors started sources=%d (%s)",
            len(self.pollers),
            ", ".join(f"{n}:{p.health.state}" for n, p in self.pollers.items()),
        )
        return self

    def _start_scheduler(self) -> None:
        scheduler = AsyncIOScheduler(timezone=timeutil.BEIJING)
        now = datetime.now(timeutil.BEIJING)
        for name, p in self.pollers.items():
            if p.disabled:
                continue
            seconds = p.config.interval.total_seconds()
            scheduler.add_job(
                self._job,
                IntervalTrigger(
                    seconds=seconds, timezone=timeutil.BEIJING, jitter=min(5.0, seconds / 10)
                ),
                args=[name],
                id=name,
                name=f"poll {name}",
                next_run_time=now,  # the first poll right away
                # A run that starts late (a busy loop, a suspended laptop) still runs:
                # APScheduler's default grace of 1 s would drop it silently.
                misfire_grace_time=max(1, int(seconds)),
                coalesce=True,  # several missed runs → one
                max_instances=1,  # never two polls of one source at once
                replace_existing=True,
            )
        scheduler.start()
        self.scheduler = scheduler

    async def _job(self, name: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            poller = self.pollers[name]
            if self.ownership is not None:
                taken = name not in self.ownership.held
                if not await self.ownership.owns(name):
                    logger.debug("poll %s skipped: another instance owns it", name)
                    return
                if taken:  # the cursors as the previous owner left them
                    await poller.load()
            await poller.poll()
        finally:
            if task is not None:
                self._running.discard(task)

    async def __aexit__(self, *exc: object) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the next loop turn
        self.scheduler = None
        running = list(self._running)
        for t in running:
            t.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        await asyncio.gather(
            *(p.save_health() for p in self.pollers.values() if self._owned(p.config.name)),
            return_exceptions=True,
        )
        if self.ownership is not None:
            await self.ownership.close()
            self.ownership = None
        logger.info("collectors stopped")

    def _owned(self, name: str) -> bool:
        return self.ownership is None or name in self.ownership.held

    def health(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [p.health.as_dict(now) for p in self.pollers.values()]

    def poller(self, name: str) -> SourcePoller:
        try:
            return self.pollers[name]
        except KeyError:
            raise ConfigError(
                f"no active source named '{name}' ({', '.join(self.pollers) or 'none'})"
            ) from None

    async def poll_now(self, names: Sequence[str] | None = None) -> dict[str, PollReport]:
        """One poll of each (or the named) source, concurrently, now."""
        chosen = [self.poller(n) for n in names] if names else list(self.pollers.values())
        reports = await asyncio.gather(*(p.poll(force=True) for p in chosen))
        return {r.source: r for r in reports}

    async def backfill(self, source: str, start: datetime, end: datetime) -> PollReport:
        return await self.poller(source).backfill(start, end)


def client_session(collect: CollectSettings | None = None) -> aiohttp.ClientSession:
    """The one HTTP session ``envmon run`` passes to :class:`Collectors` (close it on exit)."""
    collect = collect or CollectSettings()
    return aiohttp.ClientSession(
        headers={"User-Agent": collect.user_agent},
        connector=aiohttp.TCPConnector(limit=collect.max_connections, ttl_dns_cache=300),
        raise_for_status=False,
    )
