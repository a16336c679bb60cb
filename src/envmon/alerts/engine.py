"""The alert engine: the evaluators, the episode tracker and the database, together.

In the ingest path (``on_batch``, called right after each write) the engine
works from memory only: the batch's arrays are filtered with numpy, recent
valid values go into a small in-memory store, the in-stream evaluators
(:mod:`envmon.alerts.stream`) judge the subjects the batch touched, and the
tracker (:mod:`envmon.alerts.tracker`) moves each (rule, subject) through its
states. The database is written only when an episode changes state — fires,
escalates, resolves — in one transaction with its notifications, which go
straight to the delivery workers (those of a digest route wait in the outbox).

On a schedule (``run_scheduled``) the engine runs the scheduled evaluators
(:mod:`envmon.alerts.scheduled`: offline, flatline, data quality, target
risk), escalates episodes nobody acknowledged, announces episodes whose silence
ended, and reloads silences, maintenance windows and acknowledgements (the CLI
and the API write them from other processes).

A restart is neither a recovery nor a new alert: before the first evaluation
``start`` restores the open episodes (with their acknowledgements and
flapping state), the silences and maintenance windows, the recent values the
rules judge on (the value store, each water section's latest indicators, when
each station last sent data); ``close`` writes the episodes' latest values.

Time: a rule's ``for`` and ``clear_for`` are measured in data time (the
readings' period starts), so that an hourly series needs three readings above
the line for ``for: 2h``, whenever they arrive. Escalation, silences,
flapping and offline use the service clock (injectable).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import psycopg
from psycopg_pool import PoolTimeout

from envmon import timeutil
from envmon.alerts import episodes as store_db
from envmon.alerts.kinds import (
    DataQualityRule,
    OfflineRule,
    SpikeRule,
    ThresholdRule,
    parameters_of,
    stations_of,
)
from envmon.alerts.message import Message, render, value_label
from envmon.alerts.model import Episode, Notice, NoticeKind, at
from envmon.alerts.rules import AlertConfig
from envmon.alerts.scheduled import (
    LOOKBACK_S,
    SCHEDULED,
    ScheduleContext,
    last_received,
)
from envmon.alerts.series import HOUR, SeriesStore
from envmon.alerts.stream import (
    EXPECTED_S,
    IN_STREAM,
    PERIOD_S,
    Row,
    StreamContext,
    series_periods,
)
from envmon.alerts.tracker import EpisodeTracker, Silence, Window
from envmon.catalog import Catalog, Station
from envmon.db.writer import Pool
from envmon.errors import EnvmonError
from envmon.evaluate.derive import VALID_FLAGS
from envmon.schemas.readings import ReadingBatch
from envmon.settings import AlertSettings

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_DB_ERRORS = (psycopg.Error, PoolTimeout)
_VALID: Final = frozenset(VALID_FLAGS)


class AlertEngine:
    """Evaluates the rules and keeps the episodes; see the module docstring."""

    def __init__(
        self,
        config: AlertConfig,
        catalog: Catalog,
        pool: Pool,
        *,
        settings: AlertSettings | None = None,
        targets: list[Any] | None = None,
        clock: Clock = timeutil.now,
        on_notices: Callable[[list[Notice]], None] | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.pool = pool
        self.settings = settings or AlertSettings()
        self.targets = targets
        self.clock = clock
        self.on_notices = on_notices
        rules = [r for r in config.rules if r.enabled]
        self.in_stream: list[ThresholdRule | SpikeRule] = [
            r for r in rules if isinstance(r, ThresholdRule | SpikeRule)
        ]
        self.scheduled = [r for r in rules if r.scheduled]
        self.rules = {r.id: r for r in rules}
        self.stations: dict[str, tuple[Station, ...]] = {
            r.id: stations_of(r, catalog) for r in rules
        }
        self.tracked: dict[str, set[str]] = defaultdict(set)  # parameter → periods kept
        horizon = 2 * HOUR
        for r in self.in_stream:
            for p in parameters_of(r):
                self.tracked[p].update(series_periods(r))
            if isinstance(r, ThresholdRule):
                span = r.window.total_seconds() if r.window else 0
                if r.metric == "aqi":
                    span = 32 * HOUR if r.aqi_window >= timedelta(hours=24) else 25 * HOUR
                horizon = max(horizon, int(span) + HOUR)
            else:
                horizon = max(horizon, int(r.over.total_seconds()) + HOUR)
        self.tracker = EpisodeTracker(config)
        self.stream = StreamContext(
            catalog,
            SeriesStore(horizon),
            self.stations,
            {
                r.id: (frozenset(parameters_of(r)), frozenset(series_periods(r)))
                for r in self.in_stream
            },
            open_parameter=self._open_parameter,
        )
        self.sched = ScheduleContext(
            catalog,
            self.stations,
            targets,
            config.defaults.maintenance_hold.total_seconds(),
            self._warn_once,
        )
        self._tracked_params = np.array(sorted(self.tracked), dtype=object)
        self.due: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._warned: set[tuple[str, str]] = set()
        self.suppress = frozenset(config.defaults.suppress_flags)

    @property
    def store(self) -> SeriesStore:
        return self.stream.store

    def _open_parameter(self, rule: str, subject: str) -> str | None:
        t = self.tracker.tracks.get((rule, subject))
        return t.episode.parameter if t is not None and t.episode is not None else None

    # ================================================================== start-up

    async def start(self) -> None:
        """Restore what a previous run left (see the module docstring), then go."""
        now = self.clock()
        self.sched.started_s = now.timestamp()
        async with self.pool.connection() as conn:
            self.tracker.restore(
                await store_db.load_open(conn),
                await store_db.recent_starts(conn, now - self.config.defaults.flapping.window),
            )
            await self._reload_controls(conn, now.timestamp())
            await self._warm(conn, now)
            await self._restore_water(conn, now)
            # When each watched station last sent data: an offline episode that was open
            # before a restart must not end just because nothing arrived yet since.
            watched = sorted(
                {
                    s.id
                    for r in self.scheduled
                    if isinstance(r, OfflineRule)
                    for s in self.stations[r.id]
                }
            )
            for sid, received in await last_received(conn, watched, self.catalog):
                self.sched.last_seen[sid] = received.timestamp()
        # The rules that were removed or disabled: their episodes are over.
        if self.tracker.retire(self.rules, now):
            await self._commit()
        logger.info(
            "alert engine started rules=%d in_stream=%d scheduled=%d open=%d",
            len(self.rules),
            len(self.in_stream),
            len(self.scheduled),
            len(self.tracker.open_episodes()),
        )

    async def close(self) -> None:
        """Write what is still queued and the open episodes' latest values."""
        async with self._lock:
            await self._commit()
            await self._flush_values()

    async def _warm(self, conn: store_db.Conn, now: datetime) -> None:
        """The recent values the in-stream rules need, in one query."""
        if not self.tracked:
            return
        stations = sorted({s for r in self.in_stream for s in self.stream.station_ids[r.id]})
        params = sorted(self.tracked)
        periods = sorted({p for v in self.tracked.values() for p in v})
        cur = await conn.execute(
            "SELECT station_id, parameter, period, extract(epoch FROM ts)::bigint, value"
            " FROM reading WHERE station_id = ANY(%s) AND parameter = ANY(%s)"
            " AND period = ANY(%s) AND ts >= %s AND ts <= %s AND flag = ANY(%s)",
            (
                stations,
                params,
                periods,
                now - timedelta(seconds=self.store.horizon),
                now + timedelta(hours=1),
                list(_VALID),
            ),
        )
        n = 0
        for sid, p, period, ts, value in await cur.fetchall():
            if period in self.tracked.get(p, ()):
                self.store.add((sid, p, period), int(ts), float(value))
                n += 1
        logger.debug("alert value store warmed readings=%d", n)

    async def _restore_water(self, conn: store_db.Conn, now: datetime) -> None:
        """Each section's newest value of every indicator of its water-class rules.

        Through the reading key index (one row per key). A section's class after a
        restart is then judged on what it last reported, not on whichever
        indicators arrive first.
        """
        rules = [r for r in self.in_stream if isinstance(r, ThresholdRule)]
        rules = [r for r in rules if r.metric == "water_class"]
        if not rules:
            return
        keys = sorted(
            {
                (s.id, p, period)
                for r in rules
                for s in self.stations[r.id]
                if s.target_class is not None
                for p in r.water_parameters
                for period in r.periods
            }
        )
        if not keys:
            return
        cur = await conn.execute(
            "SELECT k.s, k.p, k.r, extract(epoch FROM x.ts)::bigint, x.value"
            " FROM unnest(%s::text[], %s::text[], %s::text[]) AS k(s, p, r)"
            " CROSS JOIN LATERAL (SELECT ts, value FROM reading"
            "  WHERE station_id = k.s AND parameter = k.p AND period = k.r"
            "  AND flag = ANY(%s) AND ts >= %s AND ts <= %s ORDER BY ts DESC LIMIT 1) x",
            (
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                list(_VALID),
                now - timedelta(seconds=EXPECTED_S),
                now + timedelta(hours=1),
            ),
        )
        rows: list[Row] = [
            (sid, p, period, int(ts), float(v)) for sid, p, period, ts, v in await cur.fetchall()
        ]
        rows.sort(key=lambda r: r[3])
        n = self.stream.restore_water(rules, rows)
        logger.debug("alert water sections restored values=%d", n)

    # ================================================================== in-stream

    async def on_batch(self, batch: ReadingBatch) -> None:
        """Evaluate the in-stream rules on one accepted batch (the app's listener)."""
        n = len(batch)
        if not n:
            return
        now = self.clock()
        now_s = now.timestamp()
        ts_s = batch.ts.astype("datetime64[s]").astype(np.int64)
        recent = ts_s >= now_s - LOOKBACK_S
        if not recent.any():
            return  # an import of old data: history, nothing to alert on
        rec_idx = np.flatnonzero(recent)
        stations = batch.station_id[rec_idx]
        uniq, counts = np.unique(stations.astype(str), return_counts=True)
        for sid in uniq.tolist():
            self.sched.last_seen[sid] = now_s
        self.sched.last_seen_source[batch.source] = now_s
        self.sched.accepted.append(
            (
                now_s,
                Counter(dict(zip(uniq.tolist(), counts.tolist(), strict=True))),
                Counter({batch.source: len(rec_idx)}),
            )
        )
        if not len(self._tracked_params):
            return
        # Kept for the rolling windows as far back as they reach; judged (per rule)
        # only when younger than the rule's max_age.
        kept = ts_s >= now_s - self.store.horizon - LOOKBACK_S  # refined per period below
        idx = np.flatnonzero(kept & np.isin(batch.parameter, self._tracked_params))
        if not len(idx):
            return
        rows: list[Row] = []
        maintenance: set[tuple[str, str]] = set()
        st_l = batch.station_id[idx].tolist()
        pa_l = batch.parameter[idx].tolist()
        pe_l = batch.period[idx].tolist()
        ts_l = ts_s[idx].tolist()
        va_l = batch.value[idx].tolist()
        fl_l = batch.flag[idx].tolist()
        oldest = now_s - self.store.horizon
        for sid, p, period, ts, value, flag in zip(st_l, pa_l, pe_l, ts_l, va_l, fl_l, strict=True):
            if period not in self.tracked[p] or ts + PERIOD_S[period] < oldest:
                continue
            if flag in self.suppress:
                maintenance.add((sid, p))
                self.sched.mc_seen[sid] = now_s
                continue
            if flag not in _VALID:
                continue
            self.store.add((sid, p, period), ts, value)
            rows.append((sid, p, period, ts, value))
        rows.sort(key=lambda r: r[3])
        async with self._lock:
            for rule in self.in_stream:
                params = self.stream.wants[rule.id][0]
                for sid, p in maintenance:
                    if p in params:
                        self.tracker.reset_pending(rule.id, sid)
                for o in IN_STREAM[rule.kind](self.stream, rule, rows, now_s):
                    self.tracker.step(rule, o, now, in_data_time=True)
            if self.tracker.queued:
                await self._commit()

    # ================================================================== the database

    def _render(self, kind: NoticeKind, ep: Episode) -> Message:
        rule = self.rules.get(ep.rule)
        title = rule.title if rule is not None else ep.rule
        return render(kind, ep, title, self.catalog, self.settings.grafana_url, self.clock())

    async def _commit(self) -> None:
        """Write queued transitions and their notices; hand the notices to delivery."""
        batch = self.tracker.take()
        if not batch:
            return
        try:
            async with self.pool.connection() as conn:
                notices = await store_db.write(conn, batch, self._render)
        except (psycopg.OperationalError, PoolTimeout) as err:
            # The database is away: keep them, in order; the next batch or tick writes them.
            self.tracker.put_back(batch)
            logger.warning("alert transitions not written yet (%d): %s", len(batch), err)
            return
        except psycopg.Error:
            # Anything else would fail the same way every time: do not block the queue.
            logger.exception(
                "alert transitions dropped (%d): %s",
                len(batch),
                ", ".join(f"{t.episode.rule}/{t.episode.subject}" for t in batch),
            )
            return
        for t in batch:
            ep = t.episode
            logger.info(
                "alert #%s %s rule=%s subject=%s value=%s",
                ep.id,
                t.notice or ("opened" if t.new else ep.state),
                ep.rule,
                ep.subject,
                value_label(ep),
            )
        if notices and self.on_notices is not None:
            self.on_notices(notices)

    async def _flush_values(self) -> None:
        dirty = self.tracker.dirty()
        if not dirty:
            return
        try:
            async with self.pool.connection() as conn:
                await store_db.flush_values(conn, dirty)
        except _DB_ERRORS as err:
            logger.warning("alert values not written: %s", err)

    async def _reload_controls(self, conn: store_db.Conn, now_s: float) -> None:
        """Silences, maintenance windows and acknowledgements (written by the CLI too)."""
        now = at(now_s)
        silences = [
            Silence(r[0], r[1], r[2], r[3], r[4].timestamp(), r[5].timestamp())
            for r in await store_db.active_silences(conn, now)
        ]
        cur = await conn.execute(
            "SELECT station_id, city, starts_at, ends_at FROM alert_maintenance WHERE ends_at > %s",
            (now - timedelta(days=2),),
        )
        windows = [
            Window(r[0], r[1], r[2].timestamp(), r[3].timestamp()) for r in await cur.fetchall()
        ]
        self.tracker.set_controls(silences, windows, await store_db.acks(conn))

    # ================================================================== scheduled

    async def run_scheduled(self, now: datetime | None = None, *, force: bool = False) -> None:
        """Scheduled rules that are due, escalation, silences ending, held resolutions."""
        now = now or self.clock()
        now_s = now.timestamp()
        async with self._lock:
            try:
                async with self.pool.connection() as conn:
                    await self._reload_controls(conn, now_s)
                    for rule in self.scheduled:
                        if not force and self.due.get(rule.id, 0.0) > now_s:
                            continue
                        every = getattr(rule, "every", timedelta(minutes=1)).total_seconds()
                        self.due[rule.id] = now_s + every
                        try:
                            obs = await SCHEDULED[rule.kind](self.sched, conn, rule, now)
                        except _DB_ERRORS:
                            raise
                        except EnvmonError as err:
                            self._warn_once(rule.id, str(err))
                            continue
                        for o in obs:
                            self.tracker.step(rule, o, now, in_data_time=False)
            except _DB_ERRORS as err:
                logger.warning("alert scheduled pass could not read the database: %s", err)
            self.tracker.housekeep(now)
            await self._commit()
            await self._flush_values()
        self.store.trim(now_s)
        horizon = max(
            [r.window.total_seconds() for r in self.scheduled if isinstance(r, DataQualityRule)]
            or [HOUR]
        )
        accepted = self.sched.accepted
        while accepted and now_s - accepted[0][0] > horizon:
            accepted.popleft()

    def _warn_once(self, rule: str, message: str) -> None:
        if (rule, message) not in self._warned:
            self._warned.add((rule, message))
            logger.warning("alert rule=%s cannot be evaluated: %s", rule, message)

    # ================================================================== operations

    async def ack(self, event_id: int, by: str | None, note: str | None = None) -> bool:
        now = self.clock()
        async with self.pool.connection() as conn:
            ok = await store_db.ack(conn, event_id, by, note, now)
        self.tracker.ack(event_id, now, by)
        return ok

    def open_episodes(self) -> list[Episode]:
        return self.tracker.open_episodes()
