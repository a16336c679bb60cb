"""One pull source's coordinator: windows, cursors, retries, storage, health.

Each configured source (``config/sources.yaml``, kinds in
:data:`envmon.ingest.sources.REGISTRY`) gets a :class:`SourcePoller`, the
"coordinator" of Home Assistant's integrations: it owns the interval, the
timeout, the backoff and the health, and asks its source for one thing —
the readings whose period starts in a window.

Cursors (``ingest_cursor``):

* ``(source, '')`` — the *fetched-until* mark: the platform has been read,
  and what it returned stored, for every period starting before it. Each poll
  asks for ``[mark − overlap, now]`` (the overlap picks up late values and
  corrections: the writer's upsert makes re-reads free of duplicates). After
  an outage, or on start, the gap is fetched chunk by chunk, the mark moving
  after each stored chunk, so a failure half-way resumes where it stopped.
  The catch-up reaches back ``max_catchup`` at most; `envmon backfill` fetches
  anything older (:func:`backfill`).
* ``(source, station)`` — the latest period received from that station, when,
  and the last error that concerned it alone (a sensor gone, a location 404).

The scheduler that runs every poller is :mod:`envmon.ingest.collectors`; the
cursor and health SQL is :mod:`envmon.ingest.state`.

Errors, by what the poller does: retriable (timeouts, connection errors, 5xx,
429 honouring Retry-After, unreadable pages) → retried within the poll with
exponential backoff and jitter, then the source is "down" and later polls back
off further; fatal (401/403, other 4xx, bad config) → the source is disabled
and its health says why. A source logs once when it goes down and once when it
recovers. One source's trouble never holds up another: each runs as its own
APScheduler job (``max_instances=1``, ``coalesce``, an explicit
``misfire_grace_time`` — APScheduler's default of 1 s silently drops a run
that starts late).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pandas as pd
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout
from pydantic import SecretStr

from envmon import timeutil
from envmon.errors import ConfigError, FatalError, RetriableError
from envmon.ingest import state as st
from envmon.ingest.sink import Intake
from envmon.ingest.sources import REGISTRY, Fetched, Http, PayloadError, Source
from envmon.ingest.sources.base import Sleep, TransientSourceError, raw_text
from envmon.ingest.sources_config import SourceConfig
from envmon.ingest.state import SourceHealth, default_stale_after, iso
from envmon.retry import Backoff
from envmon.schemas.readings import ReadingBatch, Rejection, ValidationResult
from envmon.timeutil import HOUR, ceil_hour, floor_hour, time_range

__all__ = ["PollReport", "SourcePoller"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_DB_ERRORS = (psycopg.Error, PoolTimeout)


@dataclass
class PollReport:
    """What one poll (or one backfill) did."""

    source: str
    start: datetime | None = None
    end: datetime | None = None
    chunks: int = 0
    requests: int = 0
    readings: int = 0  # values the platform gave (before validation)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    spooled: int = 0
    ignored: int = 0  # records of stations the source does not map
    missing: int = 0  # values the platform marked as missing
    quarantined_pages: int = 0
    retries: int = 0
    completed_until: datetime | None = None
    skipped: str | None = None  # why nothing was done (disabled, backing off)
    error: str | None = None

    def counts(self) -> dict[str, int]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if isinstance(getattr(self, f.name), int)
        }

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, **self.counts()}
        for name in ("start", "end", "completed_until"):
            out[name] = iso(getattr(self, name))
        out["skipped"] = self.skipped
        out["error"] = self.error
        return out


class SourcePoller:
    """Polls one source: windows from its cursor, chunks, retries, storage, health."""

    def __init__(
        self,
        intake: Intake,
        config: SourceConfig,
        session: aiohttp.ClientSession,
        *,
        secrets: Mapping[str, SecretStr] | None = None,
        clock: Clock = timeutil.now,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.intake = intake
        self.config = config
        self.name = config.name
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.backoff = Backoff(
            config.backoff_base.total_seconds(), config.backoff_max.total_seconds(), self.rng
        )
        cls = REGISTRY.get(config.kind)
        period = cls.period if cls is not None else HOUR
        self.health = SourceHealth(
            config.name,
            config.kind,
            default_stale_after(config, period),
            period,
            state_since=clock(),
        )
        self.cursor: datetime | None = None
        self._payload_failures: dict[datetime, int] = {}
        # Each poll re-reads the overlap: a bad record there would be rejected again and
        # again. Remember what was quarantined lately and store it once.
        self._recent_rejects: OrderedDict[int, None] = OrderedDict()
        self._warned_catchup: datetime | None = None
        self._db_warned = False
        self.source: Source | None = None
        self.http = Http(
            session,
            source=config.name,
            base_url=config.base_url or "http://unconfigured.invalid",
            timeout=config.timeout.total_seconds(),
            concurrency=config.concurrency,
            rate_limit=config.rate_limit,
            headers=config.headers,
            sleep=sleep,
            retries=config.request_retries,
            backoff=self.backoff.delay,
            max_wait_s=min(30.0, config.interval.total_seconds() / 4),
        )
        try:
            if cls is None:
                raise ConfigError(f"source '{config.name}': unknown kind '{config.kind}'")
            if not config.base_url:
                raise ConfigError(f"source '{config.name}': base_url is required")
            self.source = cls(
                config,
                intake.catalog,
                self.http,
                secret=config.secret(secrets or {}),
                clock=clock,
            )
            self.health.mapped = sorted(self.source.stations.primary)
        except ConfigError as err:
            self._disable(err, at=clock())

    # ------------------------------------------------------------------ state

    @property
    def disabled(self) -> bool:
        return self.health.state == "disabled"

    def _disable(self, err: BaseException, *, at: datetime) -> None:
        h = self.health
        if h.state != "disabled":
            logger.error("source=%s disabled: %s", self.name, err)
        h.state = "disabled"
        h.state_since = at
        h.last_error_at = at
        h.last_error = str(err)
        h.next_attempt_at = None

    def _failed(self, err: BaseException, *, at: datetime) -> None:
        h = self.health
        h.failures += 1
        h.last_error_at = at
        h.last_error = str(err) or type(err).__name__
        retry_after = err.retry_after if isinstance(err, TransientSourceError) else None
        h.next_attempt_at = at + timedelta(seconds=self.backoff.delay(h.failures, retry_after))
        if h.state != "down":
            logger.warning(
                "source=%s unavailable: %s (next attempt %s)",
                self.name,
                h.last_error,
                iso(h.next_attempt_at),
            )
            h.state = "down"
            h.state_since = at
        else:
            logger.debug("source=%s still unavailable failures=%d: %s", self.name, h.failures, err)

    def _succeeded(self, *, at: datetime) -> None:
        h = self.health
        if h.state == "down":
            logger.info(
                "source=%s recovered after %s (%d failed polls)",
                self.name,
                at - h.state_since,
                h.failures,
            )
        if h.state != "ok":
            h.state = "ok"
            h.state_since = at
        h.failures = 0
        h.last_success_at = at
        h.next_attempt_at = None

    # ------------------------------------------------------------------ database

    async def load(self) -> None:
        """Cursors and the last known health from the database (on start; writes nothing)."""
        try:
            async with self.intake.pool.connection() as conn:
                rows = await (await conn.execute(st.LOAD_CURSORS, {"source": self.name})).fetchall()
                hrow = await (await conn.execute(st.LOAD_HEALTH, {"source": self.name})).fetchone()
        except _DB_ERRORS as err:
            logger.warning("source=%s cursors not loaded (database): %s", self.name, err)
            return
        for station, last_ts, last_error in rows:
            if station == "":
                self.cursor = last_ts
                self.health.fetched_until = last_ts
            else:
                if last_ts is not None:
                    self.health.stations[station] = last_ts
                if last_error:
                    self.health.station_errors[station] = last_error
        if hrow is not None and not self.disabled:
            _, _, _, last_success, last_error_at, last_error = hrow
            self.health.last_success_at = last_success
            self.health.last_error_at = last_error_at
            self.health.last_error = last_error

    async def save_health(self) -> None:
        h = self.health
        details = {
            "mapped": h.mapped,
            "last_poll": h.last_poll,
            "base_url": self.config.base_url,
            "interval_s": self.config.interval.total_seconds(),
        }
        try:
            async with self.intake.pool.connection() as conn:
                await conn.execute(
                    st.SAVE_HEALTH,
                    {
                        "source": h.source,
                        "kind": h.kind,
                        "state": h.state,
                        "state_since": h.state_since,
                        "failures": h.failures,
                        "last_attempt_at": h.last_attempt_at,
                        "last_success_at": h.last_success_at,
                        "last_error_at": h.last_error_at,
                        "last_error": h.last_error,
                        "next_attempt_at": h.next_attempt_at,
                        "stale_after": h.stale_after,
                        "period": h.period,
                        "details": Jsonb(details),
                    },
                )
                if h.state in ("down", "disabled") and h.last_error:
                    await conn.execute(
                        st.SOURCE_ERROR,
                        {"source": h.source, "at": h.last_error_at, "error": h.last_error},
                    )
        except _DB_ERRORS as err:
            self._db_warning(err)

    def _db_warning(self, err: BaseException) -> None:
        if not self._db_warned:
            logger.warning("source=%s cursor/health not saved (database): %s", self.name, err)
            self._db_warned = True

    async def _advance(self, until: datetime) -> None:
        if self.cursor is None or until > self.cursor:
            self.cursor = until
            self.health.fetched_until = until
        try:
            async with self.intake.pool.connection() as conn:
                await conn.execute(
                    st.SOURCE_CURSOR, {"source": self.name, "ts": until, "at": self.clock()}
                )
            self._db_warned = False
        except _DB_ERRORS as err:
            self._db_warning(err)

    async def _station_cursors(self, batch: ReadingBatch, errors: Mapping[str, str]) -> None:
        at = self.clock()
        params: dict[str, Any] | None = None
        if len(batch):
            latest = (
                pd.DataFrame({"s": batch.station_id, "t": batch.ts})
                .groupby("s", sort=True)["t"]
                .max()
            )
            stations = [str(s) for s in latest.index]
            ts = [pd.Timestamp(t).tz_localize("UTC").to_pydatetime() for t in latest]
            for s, t in zip(stations, ts, strict=True):
                if s not in self.health.stations or t > self.health.stations[s]:
                    self.health.stations[s] = t
                self.health.station_errors.pop(s, None)
            params = {"source": self.name, "stations": stations, "ts": ts, "at": at}
        for s, e in errors.items():
            self.health.station_errors[s] = e
        try:
            async with self.intake.pool.connection() as conn:
                if params is not None:
                    await conn.execute(st.STATION_CURSORS, params)
                if errors:
                    names = sorted(errors)
                    await conn.execute(
                        st.STATION_ERRORS,
                        {
                            "source": self.name,
                            "stations": names,
                            "errors": [errors[s] for s in names],
                            "at": at,
                        },
                    )
        except _DB_ERRORS as err:
            self._db_warning(err)

    # ------------------------------------------------------------------ polling

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """[start, end) of period starts the next poll asks for."""
        c = self.config
        end = floor_hour(now) + HOUR
        if self.cursor is None:
            start = floor_hour(now - c.initial_lookback)
        else:
            start = floor_hour(self.cursor - c.overlap)
            oldest = end - c.max_catchup
            if start < oldest:
                if self._warned_catchup != self.cursor:
                    logger.warning(
                        "source=%s fetched only up to %s: catching up the last %s; for the rest "
                        "run: envmon backfill --source %s --from %s --to %s",
                        self.name,
                        iso(self.cursor),
                        c.max_catchup,
                        self.name,
                        iso(self.cursor - c.overlap),
                        iso(oldest),
                    )
                    self._warned_catchup = self.cursor
                start = oldest
        return start, max(end, start + HOUR)

    async def poll(self, *, force: bool = False) -> PollReport:
        """One scheduled poll. Never raises (a task boundary): the outcome is in the health."""
        report = PollReport(self.name)
        now = self.clock()
        h = self.health
        if self.disabled or self.source is None:
            report.skipped = f"disabled: {h.last_error}"
            return report
        if not force and h.next_attempt_at is not None and now < h.next_attempt_at:
            report.skipped = f"backing off until {iso(h.next_attempt_at)}"
            return report
        h.last_attempt_at = now
        start, end = self.window(now)
        try:
            await self.run(start, end, report, live=True)
        except FatalError as err:
            report.error = str(err)
            self._disable(err, at=self.clock())
        except RetriableError as err:
            report.error = str(err)
            self._failed(err, at=self.clock())
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug in a source must not stop the others
            logger.exception("source=%s poll failed", self.name)
            report.error = f"{type(err).__name__}: {err}"
            self._failed(err, at=self.clock())
        else:
            self._succeeded(at=self.clock())
        h.last_poll = report.as_dict()
        await self.save_health()
        return report

    async def backfill(self, start: datetime, end: datetime) -> PollReport:
        """Fetch [start, end) again (gaps older than the catch-up, or corrections).

        Does not move the fetched-until mark; raises on a fatal error, or on a
        retriable one that outlasts the retries (the report's
        ``completed_until`` says where to start again).
        """
        if self.source is None:
            raise ConfigError(self.health.last_error or f"source '{self.name}' is not usable")
        report = PollReport(self.name)
        await self.run(floor_hour(start), ceil_hour(end), report, live=False)
        return report

    def _chunks(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        step = self.config.chunk
        out = []
        t = start
        while t < end:
            out.append((t, min(t + step, end)))
            t += step
        return out

    async def run(self, start: datetime, end: datetime, report: PollReport, *, live: bool) -> None:
        """Fetch and store [start, end) chunk by chunk, fetching the next while storing one."""
        report.start, report.end = start, end
        chunks = self._chunks(start, end)
        requests0, retried0 = self.http.requests, self.http.retried
        pending: asyncio.Task[Fetched] | None = None
        try:
            for i, (cs, ce) in enumerate(chunks):
                task = pending or asyncio.create_task(self._fetch_chunk(cs, ce, report, live=live))
                pending = None
                fetched = await task
                if i + 1 < len(chunks):
                    ns, ne = chunks[i + 1]
                    pending = asyncio.create_task(self._fetch_chunk(ns, ne, report, live=live))
                await self._store(fetched, report, live=live)
                report.chunks += 1
                report.completed_until = ce
                if live:
                    await self._advance(ce)
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            report.requests += self.http.requests - requests0
            report.retries += self.http.retried - retried0

    async def _fetch_chunk(
        self, start: datetime, end: datetime, report: PollReport, *, live: bool
    ) -> Fetched:
        try:
            fetched = await self._fetch_retrying(start, end, report, live=live)
        except PayloadError as err:
            n = self._payload_failures.get(start, 0) + 1
            self._payload_failures[start] = n
            if live and n < self.config.payload_retries:
                raise
            # Unreadable again and again: fetch hour by hour and quarantine only
            # the hours that stay unreadable, so one bad page cannot block the cursor.
            fetched = await self._salvage(start, end, err, report)
        self._payload_failures.pop(start, None)
        return fetched

    async def _salvage(
        self, start: datetime, end: datetime, first: PayloadError, report: PollReport
    ) -> Fetched:
        assert self.source is not None
        out = Fetched()
        steps = (
            [(t, min(t + HOUR, end)) for t in time_range(start, end, HOUR)]
            if end - start > HOUR
            else []
        )
        if not steps:
            self._quarantine(out, start, end, first, report)
            return out
        for hs, he in steps:
            try:
                out.extend(await self._fetch_retrying(hs, he, report, live=False))
            except PayloadError as err:
                self._quarantine(out, hs, he, err, report)
        return out

    def _quarantine(
        self, out: Fetched, start: datetime, end: datetime, err: PayloadError, report: PollReport
    ) -> None:
        report.quarantined_pages += 1
        logger.warning(
            "source=%s page for %s–%s unreadable after retries; quarantined: %s",
            self.name,
            iso(start),
            iso(end),
            err,
        )
        out.rejects.append(
            Rejection(
                source=self.name,
                raw=err.raw or str(err),
                reason=f"unreadable page for {iso(start)}–{iso(end)}, "
                f"quarantined after repeated attempts: {err}",
                ts=start,
            )
        )

    async def _fetch_retrying(
        self, start: datetime, end: datetime, report: PollReport, *, live: bool
    ) -> Fetched:
        assert self.source is not None
        c = self.config
        attempts = c.retries if live else max(c.retries, 5)
        # A poll waits at most half its interval in total; a backfill up to backoff_max.
        budget = c.interval.total_seconds() / 2 if live else c.backoff_max.total_seconds()
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.source.fetch(start, end)
            except RetriableError as err:
                retry_after = err.retry_after if isinstance(err, TransientSourceError) else None
                delay = self.backoff.delay(attempt, retry_after)
                if attempt >= attempts or waited + delay > budget:
                    raise
                report.retries += 1
                logger.debug(
                    "source=%s attempt %d for %s failed (%s); retrying in %.1f s",
                    self.name,
                    attempt,
                    iso(start),
                    err,
                    delay,
                )
                waited += delay
                await self.sleep(delay)

    def _fresh(self, rejects: list[Rejection]) -> list[Rejection]:
        out = []
        seen = self._recent_rejects
        for r in rejects:
            key = hash((r.reason, r.raw, r.station_id, r.parameter, r.ts))
            if key in seen:
                seen.move_to_end(key)
                continue
            seen[key] = None
            out.append(r)
        while len(seen) > REJECT_MEMORY:
            seen.popitem(last=False)
        return out

    async def _store(self, fetched: Fetched, report: PollReport, *, live: bool) -> None:
        report.readings += len(fetched)
        report.ignored += fetched.ignored
        report.missing += fetched.missing
        if len(fetched):
            validated = self.intake.validator.validate_frame(fetched.frame(), self.name)
        else:
            validated = ValidationResult(ReadingBatch.empty(self.name))
        rejects = self._fresh(
            [_with_record(r, fetched) for r in validated.rejected] + fetched.rejects
        )
        result = await self.intake.sink.store(
            ValidationResult(validated.batch, rejects), reason=None if live else "backfill"
        )
        report.inserted += result.inserted
        report.updated += result.updated
        report.unchanged += result.unchanged + result.duplicates
        report.rejected += result.rejected
        report.spooled += result.spooled
        await self._station_cursors(validated.batch, fetched.station_errors)


REJECT_MEMORY = 100_000


def _with_record(r: Rejection, fetched: Fetched) -> Rejection:
    """The validator knows the record number (as ``line``): give the rejection its raw record."""
    if r.line is None or not 0 <= r.line < len(fetched.records):
        return r
    return replace(r, raw=raw_text(fetched.records[r.line]), line=None)


# --------------------------------------------------------------------------- the service
