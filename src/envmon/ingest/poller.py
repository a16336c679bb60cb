"""Pull collectors: scheduling, cursors, backoff, health — around sources that only fetch.

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
import math
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aiohttp
import pandas as pd
import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout
from pydantic import SecretStr

from envmon import timeutil
from envmon.catalog import Catalog
from envmon.errors import ConfigError, EnvmonError, FatalError, RetriableError
from envmon.ingest.sink import Intake
from envmon.ingest.sources import REGISTRY, Fetched, Http, PayloadError, Source, StationMap
from envmon.ingest.sources.base import HOUR, Sleep, TransientSourceError, raw_text
from envmon.ingest.sources_config import SourceConfig, SourcesConfig
from envmon.schemas.readings import ReadingBatch, Rejection, ValidationResult
from envmon.settings import CollectSettings

__all__ = [
    "Backoff",
    "Collectors",
    "PollReport",
    "SourceHealth",
    "SourcePoller",
    "backfill",
    "check_sources",
    "client_session",
    "read_health",
    "start_collection",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
State = Literal["starting", "ok", "down", "disabled"]
_DB_ERRORS = (psycopg.Error, PoolTimeout)


def floor_hour(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    f = floor_hour(t)
    return f if f == t.astimezone(UTC) else f + HOUR


# --------------------------------------------------------------------------- backoff


class Backoff:
    """Exponential backoff with "equal jitter": half the step fixed, half random.

    The fixed half keeps retries from hammering a platform that just failed;
    the random half keeps many sources (or workers) from retrying in step.
    A Retry-After from the platform is a floor, never shortened.
    """

    def __init__(self, base_s: float, cap_s: float, rng: random.Random) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng

    def step(self, failures: int) -> float:
        return min(self.cap_s, self.base_s * 2.0 ** max(0, failures - 1))

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        d = self.step(failures)
        d = d / 2.0 + self.rng.uniform(0.0, d / 2.0)
        if retry_after is not None and math.isfinite(retry_after):
            d = max(d, min(retry_after, 86400.0))
        return d


# --------------------------------------------------------------------------- reports


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
            out[name] = _iso(getattr(self, name))
        out["skipped"] = self.skipped
        out["error"] = self.error
        return out


@dataclass
class SourceHealth:
    source: str
    kind: str
    stale_after: timedelta
    period: timedelta
    state: State = "starting"
    state_since: datetime = field(default_factory=lambda: datetime.now(UTC))
    failures: int = 0
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    fetched_until: datetime | None = None
    stations: dict[str, datetime] = field(default_factory=dict)  # latest period start
    station_errors: dict[str, str] = field(default_factory=dict)
    mapped: list[str] = field(default_factory=list)
    last_poll: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return health_dict(
            source=self.source,
            kind=self.kind,
            state=self.state,
            state_since=self.state_since,
            failures=self.failures,
            last_attempt_at=self.last_attempt_at,
            last_success_at=self.last_success_at,
            last_error_at=self.last_error_at,
            last_error=self.last_error,
            next_attempt_at=self.next_attempt_at,
            fetched_until=self.fetched_until,
            stale_after=self.stale_after,
            period=self.period,
            stations=self.stations,
            station_errors=self.station_errors,
            mapped=self.mapped,
            last_poll=self.last_poll,
            now=now,
        )


def _iso(t: datetime | None) -> str | None:
    return timeutil.to_beijing(t).isoformat() if t else None


def health_dict(
    *,
    source: str,
    kind: str,
    state: str,
    state_since: datetime | None,
    failures: int,
    last_attempt_at: datetime | None,
    last_success_at: datetime | None,
    last_error_at: datetime | None,
    last_error: str | None,
    next_attempt_at: datetime | None,
    fetched_until: datetime | None,
    stale_after: timedelta,
    period: timedelta,
    stations: Mapping[str, datetime],
    station_errors: Mapping[str, str],
    mapped: Sequence[str],
    last_poll: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The health of one source as ``envmon status`` shows it (same shape live and from the DB).

    ``lag_s``: seconds since the end of the newest period received from any
    station; a station is stale when its own lag exceeds ``stale_after``; the
    source is stale when it has not succeeded within ``stale_after`` or its
    newest data are older than that.
    """
    newest = max(stations.values(), default=None)
    # 0 while the newest period is still running (a 4-hourly sample taken an hour ago).
    lag = max(0.0, (now - (newest + period)).total_seconds()) if newest else None
    stale_stations = sorted(
        sid
        for sid in (mapped or stations.keys())
        if sid not in stations or now - (stations[sid] + period) > stale_after
    )
    stale = (
        state == "disabled"
        or last_success_at is None
        or now - last_success_at > stale_after
        or lag is None
        or lag > stale_after.total_seconds()
    )
    return {
        "source": source,
        "kind": kind,
        "state": state,
        "since": _iso(state_since),
        "failures": failures,
        "last_attempt_at": _iso(last_attempt_at),
        "last_success_at": _iso(last_success_at),
        "last_error_at": _iso(last_error_at),
        "last_error": last_error,
        "next_attempt_at": _iso(next_attempt_at),
        "fetched_until": _iso(fetched_until),
        "newest_data": _iso(newest),
        "lag_s": None if lag is None else round(lag, 1),
        "stale_after_s": stale_after.total_seconds(),
        "stale": stale,
        "stations": {
            "mapped": len(mapped) or len(stations),
            "reporting": sum(1 for s in stations if s not in stale_stations),
            "stale": stale_stations,
            "errors": dict(station_errors),
        },
        "last_poll": dict(last_poll),
    }


def default_stale_after(config: SourceConfig, period: timedelta) -> timedelta:
    return config.stale_after or max(3 * config.interval, 2 * period + HOUR)


# --------------------------------------------------------------------------- SQL

_SOURCE_CURSOR = """
INSERT INTO ingest_cursor AS c (source, station_id, last_ts, last_success_at, updated_at)
VALUES (%(source)s, '', %(ts)s, %(at)s, now())
ON CONFLICT (source, station_id) DO UPDATE
    SET last_ts = GREATEST(c.last_ts, EXCLUDED.last_ts),
        last_success_at = EXCLUDED.last_success_at, updated_at = now()
"""
_STATION_CURSORS = """
INSERT INTO ingest_cursor AS c (source, station_id, last_ts, last_success_at, updated_at)
SELECT %(source)s, s, t, %(at)s, now()
FROM unnest(%(stations)s::text[], %(ts)s::timestamptz[]) AS u(s, t)
ON CONFLICT (source, station_id) DO UPDATE
    SET last_ts = GREATEST(c.last_ts, EXCLUDED.last_ts),
        last_success_at = EXCLUDED.last_success_at, updated_at = now()
"""
_STATION_ERRORS = """
INSERT INTO ingest_cursor AS c (source, station_id, last_error_at, last_error, updated_at)
SELECT %(source)s, s, %(at)s, e, now()
FROM unnest(%(stations)s::text[], %(errors)s::text[]) AS u(s, e)
ON CONFLICT (source, station_id) DO UPDATE
    SET last_error_at = EXCLUDED.last_error_at, last_error = EXCLUDED.last_error,
        updated_at = now()
"""
_SOURCE_ERROR = """
INSERT INTO ingest_cursor AS c (source, station_id, last_error_at, last_error, updated_at)
VALUES (%(source)s, '', %(at)s, %(error)s, now())
ON CONFLICT (source, station_id) DO UPDATE
    SET last_error_at = EXCLUDED.last_error_at, last_error = EXCLUDED.last_error,
        updated_at = now()
"""
_LOAD_CURSORS = """
SELECT station_id, last_ts, last_error FROM ingest_cursor WHERE source = %(source)s
"""
_LOAD_HEALTH = """
SELECT state, state_since, failures, last_success_at, last_error_at, last_error
FROM source_health WHERE source = %(source)s
"""
_SAVE_HEALTH = """
INSERT INTO source_health AS h (source, kind, state, state_since, failures, last_attempt_at,
    last_success_at, last_error_at, last_error, next_attempt_at, stale_after, period, details,
    updated_at)
VALUES (%(source)s, %(kind)s, %(state)s, %(state_since)s, %(failures)s, %(last_attempt_at)s,
    %(last_success_at)s, %(last_error_at)s, %(last_error)s, %(next_attempt_at)s,
    %(stale_after)s, %(period)s, %(details)s, now())
ON CONFLICT (source) DO UPDATE SET kind = EXCLUDED.kind, state = EXCLUDED.state,
    state_since = EXCLUDED.state_since, failures = EXCLUDED.failures,
    last_attempt_at = EXCLUDED.last_attempt_at, last_success_at = EXCLUDED.last_success_at,
    last_error_at = EXCLUDED.last_error_at, last_error = EXCLUDED.last_error,
    next_attempt_at = EXCLUDED.next_attempt_at, stale_after = EXCLUDED.stale_after,
    period = EXCLUDED.period, details = EXCLUDED.details, updated_at = now()
"""


# --------------------------------------------------------------------------- one source


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
                _iso(h.next_attempt_at),
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
                rows = await (await conn.execute(_LOAD_CURSORS, {"source": self.name})).fetchall()
                hrow = await (await conn.execute(_LOAD_HEALTH, {"source": self.name})).fetchone()
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
                    _SAVE_HEALTH,
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
                        _SOURCE_ERROR,
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
                    _SOURCE_CURSOR, {"source": self.name, "ts": until, "at": self.clock()}
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
                    await conn.execute(_STATION_CURSORS, params)
                if errors:
                    names = sorted(errors)
                    await conn.execute(
                        _STATION_ERRORS,
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
                        _iso(self.cursor),
                        c.max_catchup,
                        self.name,
                        _iso(self.cursor - c.overlap),
                        _iso(oldest),
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
            report.skipped = f"backing off until {_iso(h.next_attempt_at)}"
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
                await self._store(fetched, report)
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
            [(t, min(t + HOUR, end)) for t in _range(start, end, HOUR)]
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
            _iso(start),
            _iso(end),
            err,
        )
        out.rejects.append(
            Rejection(
                source=self.name,
                raw=err.raw or str(err),
                reason=f"unreadable page for {_iso(start)}–{_iso(end)}, "
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
                    _iso(start),
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

    async def _store(self, fetched: Fetched, report: PollReport) -> None:
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
        result = await self.intake.sink.store(ValidationResult(validated.batch, rejects))
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


def _range(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    out = []
    t = start
    while t < end:
        out.append(t)
        t += step
    return out


# --------------------------------------------------------------------------- the service


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
            await self.pollers[name].poll()
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
            *(p.save_health() for p in self.pollers.values()), return_exceptions=True
        )
        logger.info("collectors stopped")

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


async def backfill(
    intake: Intake,
    config: SourcesConfig,
    session: aiohttp.ClientSession,
    source: str,
    start: datetime,
    end: datetime,
    *,
    secrets: Mapping[str, SecretStr] | None = None,
    sleep: Sleep = asyncio.sleep,
) -> PollReport:
    """``envmon backfill --source S --from T1 --to T2``: fetch [T1, T2) of one source.

    The source may be disabled in the file (a platform that is only backfilled
    from); a simulator source gets the simulated platforms started for the
    duration. Raises on a fatal error, or on a transient one that outlasts the
    retries — the message says up to where the range was stored.
    """
    cfg = config.get(source)
    if end <= start:
        raise ConfigError(f"backfill: --to ({_iso(end)}) must be after --from ({_iso(start)})")
    if not cfg.enabled:
        cfg = cfg.model_copy(update={"enabled": True})
    sim = config.simulator
    if not cfg.base_url and sim is not None and cfg in sim.sources:
        from envmon.simulate.platforms import serve_platforms

        async with serve_platforms(
            intake.catalog, sim.host, 0, seed=sim.seed, fault_rate=sim.fault_rate
        ) as url:
            cfg = cfg.model_copy(update={"base_url": url})
            return await _backfill(intake, cfg, session, start, end, secrets, sleep)
    return await _backfill(intake, cfg, session, start, end, secrets, sleep)


async def _backfill(
    intake: Intake,
    cfg: SourceConfig,
    session: aiohttp.ClientSession,
    start: datetime,
    end: datetime,
    secrets: Mapping[str, SecretStr] | None,
    sleep: Sleep,
) -> PollReport:
    poller = SourcePoller(intake, cfg, session, secrets=secrets, sleep=sleep)
    if poller.source is None:
        raise ConfigError(poller.health.last_error or f"source '{cfg.name}' is not usable")
    # The live health (source_health) belongs to `envmon run`: a backfill leaves it alone;
    # the stations' cursors do move (to the newest period received).
    report = PollReport(cfg.name)
    try:
        await poller.run(floor_hour(start), ceil_hour(end), report, live=False)
    except EnvmonError as err:
        done = _iso(report.completed_until) or "nothing"
        raise type(err)(f"backfill of '{cfg.name}' stopped (stored up to {done}): {err}") from err
    return report


def check_sources(
    catalog: Catalog, config: SourcesConfig, secrets: Mapping[str, SecretStr] | None = None
) -> list[dict[str, Any]]:
    """``envmon sources check``: every source's station mapping and options, no network."""
    out: list[dict[str, Any]] = []
    active = {s.name for s in config.active()}
    for cfg in config.all_sources():
        row: dict[str, Any] = {
            "source": cfg.name,
            "kind": cfg.kind,
            "active": cfg.name in active,
            "base_url": cfg.base_url or ("(simulator)" if cfg.name in active else None),
            "stations": 0,
            "problem": None,
        }
        cls = REGISTRY.get(cfg.kind)
        try:
            if cls is None:
                raise ConfigError(f"unknown kind '{cfg.kind}'")
            options = cls.parse_options(cfg)
            row["stations"] = len(StationMap.build(cfg, catalog, cls.feeds_with(options)))
            if cls.needs_secret and cfg.name in active and not cfg.secret(secrets or {}):
                hint = f'ENVMON_COLLECT__SECRETS=\'{{"{cfg.name}": "…"}}\''
                raise ConfigError(f"source '{cfg.name}' needs a key: {hint}")
        except ConfigError as err:
            row["problem"] = str(err)
        out.append(row)
    return out


# --------------------------------------------------------------------------- status / wiring


async def read_health(
    conn: psycopg.AsyncConnection[Any], *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every source's health as the last ``envmon run`` left it (for ``envmon status``)."""
    now = now or timeutil.now()
    rows = await (
        await conn.execute(
            "SELECT source, kind, state, state_since, failures, last_attempt_at, last_success_at,"
            " last_error_at, last_error, next_attempt_at, stale_after, period, details"
            " FROM source_health ORDER BY source"
        )
    ).fetchall()
    cursors = await (
        await conn.execute(
            "SELECT c.source, c.station_id, c.last_ts, c.last_error FROM ingest_cursor c"
            " JOIN source_health h ON h.source = c.source"
        )
    ).fetchall()
    by_source: dict[str, dict[str, Any]] = {}
    for source, station, last_ts, last_error in cursors:
        d = by_source.setdefault(source, {"until": None, "stations": {}, "errors": {}})
        if station == "":
            d["until"] = last_ts
        else:
            if last_ts is not None:
                d["stations"][station] = last_ts
            if last_error:
                d["errors"][station] = last_error
    out = []
    for (
        source,
        kind,
        state,
        since,
        failures,
        attempt,
        success,
        err_at,
        err,
        next_at,
        stale_after,
        period,
        details,
    ) in rows:
        c = by_source.get(source, {"until": None, "stations": {}, "errors": {}})
        details = details or {}
        out.append(
            health_dict(
                source=source,
                kind=kind,
                state=state,
                state_since=since,
                failures=failures,
                last_attempt_at=attempt,
                last_success_at=success,
                last_error_at=err_at,
                last_error=err,
                next_attempt_at=next_at,
                fetched_until=c["until"],
                stale_after=stale_after,
                period=period,
                stations=c["stations"],
                station_errors=c["errors"],
                mapped=details.get("mapped") or [],
                last_poll=details.get("last_poll") or {},
                now=now,
            )
        )
    return out


def client_session(collect: CollectSettings | None = None) -> aiohttp.ClientSession:
    """The one HTTP session ``envmon run`` passes to :class:`Collectors` (close it on exit)."""
    collect = collect or CollectSettings()
    return aiohttp.ClientSession(
        headers={"User-Agent": collect.user_agent},
        connector=aiohttp.TCPConnector(limit=collect.max_connections, ttl_dns_cache=300),
        raise_for_status=False,
    )


@asynccontextmanager
async def start_collection(
    intake: Intake,
    config: SourcesConfig,
    session: aiohttp.ClientSession,
    *,
    secrets: Mapping[str, SecretStr] | None = None,
    schedule: bool = True,
) -> AsyncIterator[Collectors]:
    """What ``envmon run`` starts: the simulator's platforms (when enabled) and the collectors."""
    async with AsyncExitStack() as stack:
        if config.simulator is not None and config.simulator.enabled:
            from envmon.simulate.platforms import serve_platforms

            sim = config.simulator
            base_url = await stack.enter_async_context(
                serve_platforms(
                    intake.catalog, sim.host, sim.port, seed=sim.seed, fault_rate=sim.fault_rate
                )
            )
            config = config.bind_simulator(base_url)
        yield await stack.enter_async_context(
            Collectors(intake, config, session, secrets=secrets, schedule=schedule)
        )
