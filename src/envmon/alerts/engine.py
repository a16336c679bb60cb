"""The alert engine: rules on every accepted batch, scheduled rules, and episodes.

In the ingest path (``on_batch``, called right after each write) the engine
works from memory only: the batch's arrays are filtered with numpy, recent
valid values go into a small in-memory store, the in-stream rules (threshold,
spike) are evaluated for the subjects the batch touched, and each (rule,
subject) moves through its states. The database is written only when an
episode changes state — fires, escalates, resolves — in one transaction with
its notifications, which go straight to the delivery workers.

On a schedule (``run_scheduled``) the engine evaluates the offline, flatline,
data-quality and target-risk rules, escalates episodes nobody acknowledged,
announces episodes whose silence ended, and reloads silences, maintenance
windows and acknowledgements (the CLI writes them from another process).

Time: a rule's ``for`` and ``clear_for`` are measured in data time (the
readings' period starts), so that an hourly series needs three readings above
the line for ``for: 2h``, whenever they arrive. Escalation, silences,
flapping and offline use the service clock (injectable).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import math
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import psycopg
from psycopg_pool import PoolTimeout

from envmon import timeutil
from envmon.alerts import episodes as store_db
from envmon.alerts.message import Message, fmt_number, fmt_span, fmt_time, render
from envmon.alerts.model import (
    Episode,
    Notice,
    NoticeKind,
    Observation,
    city_subject,
    region_subject,
    source_subject,
)
from envmon.alerts.rules import (
    OP_ZH,
    AlertConfig,
    AnyRule,
    DataQualityRule,
    FlatlineRule,
    OfflineRule,
    SpikeRule,
    TargetRiskRule,
    ThresholdRule,
    parameters_of,
    stations_of,
)
from envmon.alerts.series import (
    AIR,
    HOUR,
    SeriesStore,
    aqi_of,
    daily_indicators,
    default_min_count,
    edition_at,
    hourly_indicators,
    mean_mapping,
)
from envmon.catalog import Catalog, Station
from envmon.db.writer import Pool
from envmon.errors import EnvmonError
from envmon.evaluate.derive import VALID_FLAGS
from envmon.evaluate.regions import REGION_NAMES
from envmon.parameters import BY_CODE, PERIODS
from envmon.schemas.readings import ReadingBatch
from envmon.settings import AlertSettings
from envmon.standards import aqi as aqi_std
from envmon.standards import water as water_std
from envmon.standards.editions import StandardsError
from envmon.timeutil import BEIJING

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_DB_ERRORS = (psycopg.Error, PoolTimeout)
_VALID: Final = frozenset(VALID_FLAGS)
_LOOKBACK_S: Final = 86400  # batches older than this are history for every rule
_RECHECK_S: Final = 600  # a silent station's newest reading is looked up at most this often
_PERIOD_ZH: Final = {
    "rt": "实时值",
    "1min": "分钟值",
    "5min": "5分钟值",
    "1h": "小时值",
    "4h": "4小时值",
    "1d": "日均值",
}
_POLLUTANT_ZH: Final = {p: BY_CODE[p].name for p in AIR}
_MEASURE_ZH: Final = {
    "good_day_budget": "剩余非优良天数额度",
    "pm25_remaining_max_mean": "PM2.5 年内剩余时段均值上限",
    "pm25_headroom": "PM2.5 年度目标余量（上限减预期均值）",
}

PERIOD_S: Final = {"rt": 0, "1min": 60, "5min": 300, "1h": HOUR, "4h": 4 * HOUR, "1d": 24 * HOUR}
Row = tuple[str, str, str, int, float]  # station, parameter, period, ts (epoch s), value


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, BEIJING)


@dataclass(slots=True)
class Track:
    """Per (rule, subject): where it is between quiet, pending, firing and clearing."""

    pending_since: float | None = None  # data time of the first breach in a row
    clear_since: float | None = None  # data time the open episode's condition first cleared
    last_ts: float = -math.inf
    episode: Episode | None = None
    starts: deque[float] = field(default_factory=deque)  # service-clock starts (flapping)


@dataclass(frozen=True, slots=True)
class Window:
    """A declared maintenance window (the rules file or ``alert_maintenance``)."""

    station_id: str | None
    city: str | None
    starts: float
    ends: float

    def covers(self, station_id: str | None, city: str | None, ts: float) -> bool:
        if not self.starts <= ts < self.ends:
            return False
        if self.station_id is not None:
            return station_id == self.station_id
        if self.city is not None:
            return city == self.city
        return True


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    rule: str | None
    station_id: str | None
    city: str | None
    starts: float
    ends: float

    def matches(self, rule: str, station_id: str | None, city: str | None, now: float) -> bool:
        return (
            self.starts <= now < self.ends
            and (self.rule is None or fnmatch.fnmatchcase(rule, self.rule))
            and (self.station_id is None or self.station_id == station_id)
            and (self.city is None or self.city == city)
        )


def _series_periods(rule: AnyRule) -> tuple[str, ...]:
    if isinstance(rule, ThresholdRule):
        return rule.periods
    if isinstance(rule, SpikeRule):
        return (rule.period,)
    return ()


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
        self.station_ids = {k: frozenset(s.id for s in v) for k, v in self.stations.items()}
        self.tracked: dict[str, set[str]] = defaultdict(set)  # parameter → periods kept
        horizon = 2 * HOUR
        for r in self.in_stream:
            for p in parameters_of(r):
                self.tracked[p].update(_series_periods(r))
            if isinstance(r, ThresholdRule):
                span = r.window.total_seconds() if r.window else 0
                if r.metric == "aqi":
                    span = 32 * HOUR if r.aqi_window >= timedelta(hours=24) else 25 * HOUR
                horizon = max(horizon, int(span) + HOUR)
            else:
                horizon = max(horizon, int(r.over.total_seconds()) + HOUR)
        self.store = SeriesStore(horizon)
        self._wants = {
            r.id: (frozenset(parameters_of(r)), frozenset(_series_periods(r)))
            for r in self.in_stream
        }
        self._tracked_params = np.array(sorted(self.tracked), dtype=object)
        self.tracks: dict[tuple[str, str], Track] = {}
        # (rule, section) → parameter → (data time, value, class, end of its period)
        self.water_latest: dict[tuple[str, str], dict[str, tuple[int, float, int, int]]] = {}
        self.last_seen: dict[str, float] = {}
        self.last_seen_source: dict[str, float] = {}
        self.mc_seen: dict[str, float] = {}
        self._db_checked: dict[str, float] = {}  # offline: when the database was last asked
        self.accepted: deque[tuple[float, Counter[str], Counter[str]]] = deque()
        self.silences: list[Silence] = []
        self.db_windows: list[Window] = []
        self.yaml_windows = (
            [
                Window(sid, None, w.starts.timestamp(), w.ends.timestamp())
                for w in config.maintenance
                for sid in w.stations
            ]
            + [
                Window(None, city, w.starts.timestamp(), w.ends.timestamp())
                for w in config.maintenance
                for city in w.city
            ]
            + [
                Window(None, None, w.starts.timestamp(), w.ends.timestamp())
                for w in config.maintenance
                if not w.stations and not w.city
            ]
        )
        self.due: dict[str, float] = {}
        self.started_s = 0.0
        self._queued: list[store_db.Transition] = []
        self._lock = asyncio.Lock()
        self._warned: set[tuple[str, str]] = set()
        self.flap = config.defaults.flapping
        self.hold_s = config.defaults.maintenance_hold.total_seconds()
        self.suppress = frozenset(config.defaults.suppress_flags)

    # ================================================================== start-up

    async def start(self) -> None:
        """Load open episodes, recent starts, controls; warm the value store."""
        now = self.clock()
        self.started_s = now.timestamp()
        async with self.pool.connection() as conn:
            for ep in await store_db.load_open(conn):
                self._track(ep.rule, ep.subject).episode = ep
            since = now - self.flap.window
            for rule, subject, started in await store_db.recent_starts(conn, since):
                self._track(rule, subject).starts.append(started.timestamp())
            await self._reload_controls(conn, now.timestamp())
            await self._warm(conn, now)
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
            for sid, received in await _last_received(conn, watched, self.catalog):
                self.last_seen[sid] = received.timestamp()
        gone = 0
        for (rule, _), t in self.tracks.items():
            if t.episode is not None and rule not in self.rules:
                # The rule was removed or disabled: its episodes are over.
                t.episode.details.setdefault("extra", []).append(["说明", "该规则已停用或删除"])
                self._resolve(t.episode, now)
                t.episode = None
                gone += 1
        if gone:
            await self._commit()
        logger.info(
            "alert engine started rules=%d in_stream=%d scheduled=%d open=%d",
            len(self.rules),
            len(self.in_stream),
            len(self.scheduled),
            sum(1 for t in self.tracks.values() if t.episode is not None),
        )

    async def _warm(self, conn: store_db.Conn, now: datetime) -> None:
        """The recent values the in-stream rules need, in one query."""
        if not self.tracked:
            return
        stations = sorted({s for r in self.in_stream for s in self.station_ids[r.id]})
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

    # ================================================================== in-stream

    async def on_batch(self, batch: ReadingBatch) -> None:
        """Evaluate the in-stream rules on one accepted batch (the app's listener)."""
        n = len(batch)
        if not n:
            return
        now = self.clock()
        now_s = now.timestamp()
        ts_s = batch.ts.astype("datetime64[s]").astype(np.int64)
        recent = ts_s >= now_s - _LOOKBACK_S
        if not recent.any():
            return  # an import of old data: history, nothing to alert on
        rec_idx = np.flatnonzero(recent)
        stations = batch.station_id[rec_idx]
        uniq, counts = np.unique(stations.astype(str), return_counts=True)
        for sid in uniq.tolist():
            self.last_seen[sid] = now_s
        self.last_seen_source[batch.source] = now_s
        self.accepted.append(
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
        kept = ts_s >= now_s - self.store.horizon - _LOOKBACK_S  # refined per period below
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
                self.mc_seen[sid] = now_s
                continue
            if flag not in _VALID:
                continue
            self.store.add((sid, p, period), ts, value)
            rows.append((sid, p, period, ts, value))
        rows.sort(key=lambda r: r[3])
        async with self._lock:
            if maintenance:
                self._maintenance_reset(maintenance)
            for rule in self.in_stream:
                if isinstance(rule, SpikeRule):
                    obs = self._spike(rule, rows, now_s)
                elif rule.metric == "water_class":
                    obs = self._water(rule, rows, now_s)
                elif rule.metric == "aqi":
                    obs = self._aqi(rule, rows, now_s)
                else:
                    obs = self._value(rule, rows, now_s)
                for o in obs:
                    self._step(rule, o, now, in_data_time=True)
            if self._queued:
                await self._commit()

    def _maintenance_reset(self, pairs: set[tuple[str, str]]) -> None:
        """An M/C reading breaks the run a pending alert was counting."""
        for rule in self.in_stream:
            params = self._wants[rule.id][0]
            for sid, p in pairs:
                if p in params:
                    t = self.tracks.get((rule.id, sid))
                    if t is not None:
                        t.pending_since = None

    def _rows_for(
        self, rule: ThresholdRule | SpikeRule, rows: Sequence[Row], now_s: float
    ) -> Iterable[Row]:
        params, periods = self._wants[rule.id]
        ids = self.station_ids[rule.id]
        oldest = now_s - rule.max_age.total_seconds()
        for r in rows:
            # Age from the end of the period: a 4-hourly value is 4 h old when it arrives.
            if (
                r[1] in params
                and r[2] in periods
                and r[0] in ids
                and r[3] + PERIOD_S[r[2]] >= oldest
            ):
                yield r

    def _value(self, rule: ThresholdRule, rows: Sequence[Row], now_s: float) -> list[Observation]:
        assert rule.parameter is not None
        p = BY_CODE[rule.parameter]
        window = int(rule.window.total_seconds()) if rule.window else 0
        hourly = rule.periods == ("1h",)
        need = rule.min_count or (default_min_count(window) if hourly else 1)

        def what(period: str) -> str:
            return f"{p.name} " + (
                f"{fmt_span(rule.window)}滑动平均" if rule.window else _PERIOD_ZH[period]
            )

        out: list[Observation] = []
        if rule.scope == "station":
            for sid, _, period, ts, value in self._rows_for(rule, rows, now_s):
                v = self.store.mean((sid, p.code, period), ts, window, need) if window else value
                if v is not None:
                    st = self.catalog.by_id[sid]
                    label = what(period)
                    ob = self._obs_value(rule, sid, st.city, ts, v, label, p.code, p.unit)
                    ob.period = period
                    out.append(ob)
            return out
        for (city, ts), _ in self._city_points(rule, rows, now_s).items():
            vals = []
            for st in self.stations[rule.id]:
                if st.city != city:
                    continue
                key = (st.id, p.code, rule.periods[0])
                v = self.store.mean(key, ts, window, need) if window else self.store.at(key, ts)
                if v is not None:
                    vals.append(v)
            if len(vals) >= rule.min_stations:
                v = sum(vals) / len(vals)
                label = what(rule.periods[0])
                ob = self._obs_value(rule, city_subject(city), city, ts, v, label, p.code, p.unit)
                ob.station_id = None
                ob.period = rule.periods[0]
                ob.details["extra"] = [["参与站点", f"{len(vals)} 个"]]
                out.append(ob)
        return out

    def _city_points(
        self, rule: ThresholdRule, rows: Sequence[Row], now_s: float
    ) -> dict[tuple[str, int], None]:
        points: dict[tuple[str, int], None] = {}
        for sid, _, _, ts, _ in self._rows_for(rule, rows, now_s):
            points[(self.catalog.by_id[sid].city, ts)] = None
        return points

    def _obs_value(
        self,
        rule: ThresholdRule,
        subject: str,
        city: str,
        ts: int,
        v: float,
        what: str,
        parameter: str,
        unit: str,
    ) -> Observation:
        limit = f"{OP_ZH[rule.op]} {fmt_number(rule.threshold)} {unit}"
        if rule.clear is not None:
            limit += f"（回到 {fmt_number(rule.clear)} {unit} 即恢复）"
        text = f"{fmt_number(v)} {unit}"
        if rule.op in (">", ">=") and rule.threshold > 0 and v > rule.threshold:
            text += f"（超标 {fmt_number(round((v - rule.threshold) / rule.threshold, 2))} 倍）"
        details: dict[str, Any] = {"what": what, "value_text": text, "limit_text": limit}
        category = _category(parameter, v, ts, rule.window)
        if category:
            details["category"] = category
        return Observation(
            subject,
            ts,
            v,
            rule.breach(v),
            rule.cleared(v),
            station_id=subject if subject in self.catalog.by_id else None,
            city=city,
            threshold=rule.threshold,
            parameter=parameter,
            unit=unit,
            details=details,
        )

    def _aqi(self, rule: ThresholdRule, rows: Sequence[Row], now_s: float) -> list[Observation]:
        daily = rule.aqi_window >= timedelta(hours=24)
        points: dict[tuple[str, int], None] = {}
        for sid, _, _, ts, _ in self._rows_for(rule, rows, now_s):
            key = sid if rule.scope == "station" else self.catalog.by_id[sid].city
            points[(key, ts)] = None
        out: list[Observation] = []
        for key, ts in points:
            edition = edition_at(ts)
            if rule.scope == "station":
                members = [self.catalog.by_id[key]]
            else:
                members = [s for s in self.stations[rule.id] if s.city == key]
            maps = []
            for st in members:
                m = (
                    daily_indicators(self.store, st.id, ts)
                    if daily
                    else hourly_indicators(self.store, st.id, ts)
                )
                if any(v is not None for v in m.values()):
                    maps.append(m)
            if len(maps) < (rule.min_stations if rule.scope == "city" else 1):
                continue
            mapping = maps[0] if len(maps) == 1 else mean_mapping(maps)
            try:
                res = aqi_of(mapping, edition, daily)
            except StandardsError as err:
                logger.warning("alert rule=%s AQI not computed: %s", rule.id, err)
                continue
            if res.aqi is None:
                continue
            primary = "、".join(_POLLUTANT_ZH.get(p, p) for p in res.primary) or "—"
            details: dict[str, Any] = {
                "what": ("近24小时滑动 AQI" if daily else "小时 AQI（实时报）")
                + f"（HJ 633-{edition}）",
                "value_text": f"AQI {res.aqi}",
                "limit_text": f"{OP_ZH[rule.op]} {fmt_number(rule.threshold)}"
                + (f"（回到 {fmt_number(rule.clear)} 即恢复）" if rule.clear is not None else ""),
                "category": f"{res.level}（{res.grade}），首要污染物 {primary}",
            }
            if rule.scope == "city":
                details["extra"] = [["参与站点", f"{len(maps)} 个"]]
            subject = key if rule.scope == "station" else city_subject(key)
            city = key if rule.scope == "city" else self.catalog.by_id[key].city
            out.append(
                Observation(
                    subject,
                    ts,
                    float(res.aqi),
                    rule.breach(res.aqi),
                    rule.cleared(res.aqi),
                    station_id=key if rule.scope == "station" else None,
                    city=city,
                    threshold=rule.threshold,
                    parameter="aqi",
                    unit=None,
                    details=details,
                    period="1h",
                )
            )
        out.sort(key=lambda o: o.ts)
        return out

    def _water(self, rule: ThresholdRule, rows: Sequence[Row], now_s: float) -> list[Observation]:
        out: list[Observation] = []
        for sid, p, period, ts, value in self._rows_for(rule, rows, now_s):
            st = self.catalog.by_id[sid]
            if st.target_class is None:
                continue
            try:
                cls = water_std.classify(p, value, waterbody=st.waterbody or "river")
            except StandardsError:
                continue
            latest = self.water_latest.setdefault((rule.id, sid), {})
            if p in latest and latest[p][0] > ts:
                continue
            latest[p] = (ts, value, cls, ts + PERIOD_S[period])
            oldest = now_s - rule.max_age.total_seconds()
            fresh = {k: v for k, v in latest.items() if v[3] >= oldest}
            worst = max(v[2] for v in fresh.values())
            target = st.target_class
            bad = sorted(
                ((k, v) for k, v in fresh.items() if v[2] > target), key=lambda kv: -kv[1][2]
            )
            details: dict[str, Any] = {
                "what": "水质类别（GB 3838-2002 单因子）",
                "value_text": f"{water_std.roman(worst)}类",
                "limit_text": f"目标 {water_std.roman(target)}类",
                "category": water_std.STATUS[worst],
            }
            if bad:
                details["extra"] = [
                    [
                        "超标指标",
                        "；".join(
                            f"{BY_CODE[k].name} {fmt_number(v[1])} {BY_CODE[k].unit}"
                            f"（{water_std.roman(v[2])}类）"
                            for k, v in bad
                        ),
                    ]
                ]
            out.append(
                Observation(
                    sid,
                    ts,
                    float(worst),
                    worst > target,
                    worst <= target,
                    station_id=sid,
                    city=st.city,
                    threshold=float(target),
                    parameter=bad[0][0] if bad else None,
                    unit=None,
                    details=details,
                    period=period,
                )
            )
        return out

    def _spike(self, rule: SpikeRule, rows: Sequence[Row], now_s: float) -> list[Observation]:
        p = BY_CODE[rule.parameter]
        over = int(rule.over.total_seconds())
        clear = rule.rise if rule.clear is None else rule.clear
        out: list[Observation] = []
        for sid, _, period, ts, value in self._rows_for(rule, rows, now_s):
            base = self.store.earlier((sid, p.code, period), ts, over)
            if not base:
                continue
            t0, low = min(base, key=lambda tv: tv[1])
            rise = value - low
            st = self.catalog.by_id[sid]
            details: dict[str, Any] = {
                "what": f"{p.name} {fmt_span(rule.over)}内上升",
                "value_text": f"上升 {fmt_number(rise)} {p.unit}（{fmt_time(_dt(t0))} "
                f"{fmt_number(low)} → {fmt_time(_dt(ts))} {fmt_number(value)}）",
                "limit_text": f"上升不低于 {fmt_number(rule.rise)} {p.unit}",
            }
            out.append(
                Observation(
                    sid,
                    ts,
                    rise,
                    rise >= rule.rise,
                    rise < clear,
                    station_id=sid,
                    city=st.city,
                    threshold=rule.rise,
                    parameter=p.code,
                    unit=p.unit,
                    details=details,
                    period=period,
                )
            )
        return out

    # ================================================================== states

    def _track(self, rule: str, subject: str) -> Track:
        t = self.tracks.get((rule, subject))
        if t is None:
            t = self.tracks[(rule, subject)] = Track()
        return t

    def _in_maintenance(self, station_id: str | None, city: str | None, at: float) -> bool:
        return any(w.covers(station_id, city, at) for w in (*self.yaml_windows, *self.db_windows))

    def _silenced(self, rule: str, station_id: str | None, city: str | None, now: float) -> bool:
        return any(s.matches(rule, station_id, city, now) for s in self.silences)

    def _step(self, rule: AnyRule, ob: Observation, now: datetime, *, in_data_time: bool) -> None:
        """One observation through the (rule, subject) state machine."""
        t = self._track(rule.id, ob.subject)
        if ob.ts < t.last_ts:
            return  # older than what this subject has already been judged on
        t.last_ts = ob.ts
        ep = t.episode
        if ep is not None:
            ep.last_value = ob.value
            ep.last_ts = _dt(ob.ts)
            ep.details["last_text"] = ob.details.get("value_text")
            ep.dirty = True
            if not ob.cleared:
                t.clear_since = None
                ep.clearing_since = None
                return
            if t.clear_since is None:
                t.clear_since = ob.ts
            if ob.ts - t.clear_since < rule.clear_for.total_seconds():
                return
            if ep.flapping:
                # A flapping episode ends only after a quiet flapping window.
                if ep.clearing_since is None:
                    ep.clearing_since = now
                return
            self._resolve(ep, now)
            t.episode = None
            t.clear_since = None
            t.pending_since = None
            return
        if not ob.breach:
            t.pending_since = None
            return
        at = ob.ts if in_data_time else now.timestamp()
        if self._in_maintenance(ob.station_id, ob.city, at):
            t.pending_since = None
            return
        if t.pending_since is None:
            t.pending_since = ob.ts
        if ob.ts - t.pending_since < rule.for_.total_seconds():
            return
        self._open(rule, ob, t, now)

    def _open(self, rule: AnyRule, ob: Observation, t: Track, now: datetime) -> None:
        now_s = now.timestamp()
        window = self.flap.window.total_seconds()
        while t.starts and now_s - t.starts[0] >= window:
            t.starts.popleft()
        flapping = len(t.starts) + 1 >= self.flap.max_episodes
        t.starts.append(now_s)
        route = self.config.route_for(rule.id, rule.severity, ob.city)
        silenced = self._silenced(rule.id, ob.station_id, ob.city, now_s)
        first = _dt(t.pending_since if t.pending_since is not None else ob.ts)
        ep = Episode(
            rule=rule.id,
            subject=ob.subject,
            severity=rule.severity,
            route=route.name,
            started_at=now,
            message=f"{rule.title}：{ob.details.get('value_text', fmt_number(ob.value))}",
            station_id=ob.station_id,
            city=ob.city,
            first_ts=first,
            value=ob.value,
            threshold=ob.threshold,
            last_value=ob.value,
            last_ts=_dt(ob.ts),
            parameter=ob.parameter,
            unit=ob.unit,
            details={**ob.details, **({"period": ob.period} if ob.period else {})},
            silenced=silenced,
            notified=not silenced,
            flapping=flapping,
        )
        t.episode = ep
        t.pending_since = None
        t.clear_since = None
        if flapping:
            logger.warning("alert rule=%s subject=%s is flapping", rule.id, ob.subject)
        self._queued.append(
            store_db.Transition(
                ep,
                new=True,
                notice=None if silenced else "firing",
                channels=[] if silenced else [(route.name, c) for c in route.channels],
            )
        )

    def _resolve(self, ep: Episode, now: datetime) -> None:
        ep.state = "resolved"
        ep.resolved_at = now
        channels: list[tuple[str, str]] = []
        if ep.notified:
            channels = self._route_channels(ep.route)
            if ep.escalated_at is not None:
                route = self.config.route_for(ep.rule, ep.severity, ep.city)
                if route.escalate_to:
                    channels += [
                        c for c in self._route_channels(route.escalate_to) if c not in channels
                    ]
            channels = list(dict.fromkeys(channels))
        self._queued.append(
            store_db.Transition(ep, notice="resolved" if channels else None, channels=channels)
        )

    def _route_channels(self, name: str) -> list[tuple[str, str]]:
        try:
            route = self.config.route(name)
        except KeyError:
            route = self.config.routes[-1]  # a route renamed since the episode began
        seen: list[tuple[str, str]] = []
        for c in route.channels:
            if all(c != x[1] for x in seen):
                seen.append((route.name, c))
        return seen

    def _render(self, kind: NoticeKind, ep: Episode) -> Message:
        rule = self.rules.get(ep.rule)
        title = rule.title if rule is not None else ep.rule
        return render(kind, ep, title, self.catalog, self.settings.grafana_url, self.clock())

    async def _commit(self) -> None:
        """Write queued transitions and their notices; hand the notices to delivery."""
        if not self._queued:
            return
        batch, self._queued = self._queued, []
        try:
            async with self.pool.connection() as conn:
                notices = await store_db.write(conn, batch, self._render)
        except (psycopg.OperationalError, PoolTimeout) as err:
            # The database is away: keep them, in order; the next batch or tick writes them.
            self._queued = batch + self._queued
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
                "alert %s rule=%s subject=%s id=%s value=%s",
                t.notice or ("opened" if t.new else ep.state),
                ep.rule,
                ep.subject,
                ep.id,
                fmt_number(ep.last_value),
            )
        if notices and self.on_notices is not None:
            self.on_notices(notices)

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
                            obs = await self._evaluate_scheduled(conn, rule, now)
                        except _DB_ERRORS:
                            raise
                        except EnvmonError as err:
                            self._warn_once(rule.id, str(err))
                            continue
                        for o in obs:
                            self._step(rule, o, now, in_data_time=False)
            except _DB_ERRORS as err:
                logger.warning("alert scheduled pass could not read the database: %s", err)
            self._housekeep(now)
            await self._commit()
            dirty = [
                t.episode
                for t in self.tracks.values()
                if t.episode is not None and t.episode.dirty and t.episode.id is not None
            ]
            if dirty:
                try:
                    async with self.pool.connection() as conn:
                        await store_db.flush_values(conn, dirty)
                except _DB_ERRORS as err:
                    logger.warning("alert values not written: %s", err)
        self.store.trim(now_s)
        horizon = max(
            [r.window.total_seconds() for r in self.scheduled if isinstance(r, DataQualityRule)]
            or [HOUR]
        )
        while self.accepted and now_s - self.accepted[0][0] > horizon:
            self.accepted.popleft()

    def _warn_once(self, rule: str, message: str) -> None:
        if (rule, message) not in self._warned:
            self._warned.add((rule, message))
            logger.warning("alert rule=%s cannot be evaluated: %s", rule, message)

    def _housekeep(self, now: datetime) -> None:
        """Held resolutions, announcements after a silence, escalations."""
        now_s = now.timestamp()
        flap_s = self.flap.window.total_seconds()
        for t in self.tracks.values():
            ep = t.episode
            if ep is None:
                continue
            if (
                ep.clearing_since is not None
                and (now - ep.clearing_since).total_seconds() >= flap_s
            ):
                self._resolve(ep, now)
                t.episode = None
                t.clear_since = None
                continue
            silenced = self._silenced(ep.rule, ep.station_id, ep.city, now_s)
            if not ep.notified and not silenced:
                ep.notified = True
                ep.silenced = False
                route = self.config.route_for(ep.rule, ep.severity, ep.city)
                ep.route = route.name
                self._queued.append(
                    store_db.Transition(
                        ep, notice="firing", channels=[(route.name, c) for c in route.channels]
                    )
                )
                continue
            if (
                ep.state != "firing"
                or not ep.notified
                or silenced
                or ep.acked_at is not None
                or self._in_maintenance(ep.station_id, ep.city, now_s)
            ):
                continue
            route = self.config.route_for(ep.rule, ep.severity, ep.city)
            if route.escalate_after is None or route.escalate_to is None:
                continue
            if now - ep.started_at < route.escalate_after:
                continue
            ep.state = "escalated"
            ep.escalated_at = now
            channels = self._route_channels(route.escalate_to)
            self._queued.append(store_db.Transition(ep, notice="escalated", channels=channels))

    async def _reload_controls(self, conn: store_db.Conn, now_s: float) -> None:
        """Silences, maintenance windows and acknowledgements (written by the CLI too)."""
        now = _dt(now_s)
        cur = await conn.execute(
            "SELECT id, rule, station_id, city, starts_at, ends_at FROM alert_silence"
            " WHERE ends_at > %s",
            (now,),
        )
        self.silences = [
            Silence(r[0], r[1], r[2], r[3], r[4].timestamp(), r[5].timestamp())
            for r in await cur.fetchall()
        ]
        cur = await conn.execute(
            "SELECT station_id, city, starts_at, ends_at FROM alert_maintenance WHERE ends_at > %s",
            (now - timedelta(days=2),),
        )
        self.db_windows = [
            Window(r[0], r[1], r[2].timestamp(), r[3].timestamp()) for r in await cur.fetchall()
        ]
        acks = await store_db.acks(conn)
        if acks:
            for t in self.tracks.values():
                ep = t.episode
                if ep is not None and ep.id in acks and ep.acked_at is None:
                    ep.acked_at, ep.acked_by = acks[ep.id]

    async def _evaluate_scheduled(
        self, conn: store_db.Conn, rule: AnyRule, now: datetime
    ) -> list[Observation]:
        if isinstance(rule, OfflineRule):
            return await self._offline(conn, rule, now)
        if isinstance(rule, FlatlineRule):
            return await self._flatline(conn, rule, now)
        if isinstance(rule, DataQualityRule):
            return await self._data_quality(conn, rule, now)
        if isinstance(rule, TargetRiskRule):
            return await self._target_risk(conn, rule, now)
        return []

    async def _offline(
        self, conn: store_db.Conn, rule: OfflineRule, now: datetime
    ) -> list[Observation]:
        now_s = now.timestamp()
        after = rule.after.total_seconds()
        grace = rule.grace.total_seconds()
        out: list[Observation] = []
        stations = self.stations[rule.id]
        # Whoever looks silent from here may have sent through another process (a
        # file import, another worker): ask the database before calling them offline.
        silent = [
            s.id
            for s in stations
            if now_s - self.last_seen.get(s.id, 0.0) >= after
            and now_s - self._db_checked.get(s.id, -math.inf) >= _RECHECK_S
        ]
        for sid in silent:
            self._db_checked[sid] = now_s
        if silent:
            for sid, received in await _last_received(conn, silent, self.catalog):
                self.last_seen[sid] = max(self.last_seen.get(sid, 0.0), received.timestamp())
        for st in stations:
            seen = self.last_seen.get(st.id)
            since = seen if seen is not None else self.started_s
            quiet = now_s - since
            hold_until = self.mc_seen.get(st.id, -math.inf) + self.hold_s
            settled = now_s - max(self.started_s, self.mc_seen.get(st.id, -math.inf)) >= grace
            breach = quiet >= after and settled and now_s >= hold_until
            out.append(self._offline_obs(rule, st.id, st.id, st.city, now_s, quiet, seen, breach))
        for src in rule.sources:
            seen = self.last_seen_source.get(src)
            quiet = now_s - (seen or self.started_s)
            breach = quiet >= after and now_s - self.started_s >= grace
            out.append(
                self._offline_obs(rule, source_subject(src), None, None, now_s, quiet, seen, breach)
            )
        return out

    def _offline_obs(
        self,
        rule: OfflineRule,
        subject: str,
        station_id: str | None,
        city: str | None,
        now_s: float,
        quiet: float,
        seen: float | None,
        breach: bool,
    ) -> Observation:
        minutes = quiet / 60.0
        last = f"最后收到数据 {fmt_time(_dt(seen))}" if seen else "启动以来未收到数据"
        return Observation(
            subject,
            now_s,
            round(minutes, 1),
            breach,
            # Over only when data came: never because nothing was heard since a restart.
            seen is not None and quiet < rule.after.total_seconds(),
            station_id=station_id,
            city=city,
            threshold=rule.after.total_seconds() / 60.0,
            parameter=None,
            unit="min",
            details={
                "what": "数据中断（无数据）",
                "value_text": f"已{fmt_span(timedelta(seconds=quiet))}无数据（{last}）",
                "limit_text": f"超过 {fmt_span(rule.after)} 无数据",
            },
        )

    async def _flatline(
        self, conn: store_db.Conn, rule: FlatlineRule, now: datetime
    ) -> list[Observation]:
        stations = self.stations[rule.id]
        cur = await conn.execute(
            "SELECT station_id, parameter, count(*), min(value), max(value) FROM reading"
            " WHERE station_id = ANY(%s) AND parameter = ANY(%s) AND period = ANY(%s)"
            " AND ts > %s AND ts <= %s AND flag = ANY(%s) GROUP BY 1, 2",
            (
                [s.id for s in stations],
                list(rule.parameters),
                list(rule.period),
                now - rule.span,
                now,
                list(_VALID),
            ),
        )
        flat: dict[str, list[tuple[str, int, float]]] = defaultdict(list)
        seen: set[str] = set()
        for sid, p, n, lo, hi in await cur.fetchall():
            if n >= rule.min_count:
                seen.add(sid)
                if hi - lo <= rule.tolerance:
                    flat[sid].append((p, int(n), float(hi)))
        now_s = now.timestamp()
        out = []
        for st in stations:
            if st.id not in seen:
                continue  # too little data to say (offline rules speak for silence)
            items = flat.get(st.id, [])
            text = "；".join(
                f"{BY_CODE[p].name} 恒为 {fmt_number(v)} {BY_CODE[p].unit}（{n} 个数据）"
                for p, n, v in items
            )
            out.append(
                Observation(
                    st.id,
                    now_s,
                    float(len(items)),
                    bool(items) and now_s >= self.mc_seen.get(st.id, -math.inf) + self.hold_s,
                    not items,
                    station_id=st.id,
                    city=st.city,
                    threshold=None,
                    parameter=items[0][0] if items else None,
                    unit=BY_CODE[items[0][0]].unit if items else None,
                    details={
                        "what": f"数据恒定不变（连续{fmt_span(rule.span)}）",
                        "value_text": text or "数据正常变化",
                        "limit_text": f"{fmt_span(rule.span)}内变化不超过 "
                        f"{fmt_number(rule.tolerance)}",
                    },
                )
            )
        return out

    async def _data_quality(
        self, conn: store_db.Conn, rule: DataQualityRule, now: datetime
    ) -> list[Observation]:
        now_s = now.timestamp()
        # Both counts from the same moment on: what this process saw accepted since
        # it started (or the window), against what the database holds as rejected.
        start_s = max(now_s - rule.window.total_seconds(), self.started_s)
        start = _dt(start_s)
        by_station = rule.by == "station"
        cur = await conn.execute(
            "SELECT " + ("station_id" if by_station else "source") + ", count(*),"
            " (array_agg(reason ORDER BY id DESC))[1] FROM rejected"
            " WHERE received_at >= %s AND (ts IS NULL OR ts >= %s)"
            + (" AND station_id IS NOT NULL" if by_station else "")
            + " GROUP BY 1",
            (start, now - timedelta(seconds=_LOOKBACK_S)),
        )
        rejected = {r[0]: (int(r[1]), r[2]) for r in await cur.fetchall()}
        accepted: Counter[str] = Counter()
        for at, st_counts, src_counts in self.accepted:
            if at >= start_s:
                accepted.update(st_counts if by_station else src_counts)
        subjects: list[tuple[str, str | None, str | None]]
        if by_station:
            subjects = [(s.id, s.id, s.city) for s in self.stations[rule.id]]
        else:
            subjects = [(str(src), None, None) for src in sorted(set(rejected) | set(accepted))]
        clear = rule.max_share if rule.clear is None else rule.clear
        out = []
        for key, sid, city in subjects:
            bad, reason = rejected.get(key, (0, None))
            total = bad + accepted.get(key, 0)
            if total < rule.min_total:
                continue
            share = bad / total
            details: dict[str, Any] = {
                "what": f"数据拒收比例（{fmt_span(rule.window)}）",
                "value_text": f"{share:.1%}（拒收 {bad} / 共 {total}）",
                "limit_text": f"高于 {rule.max_share:.0%}",
            }
            if reason:
                details["extra"] = [["最近拒收原因", str(reason)[:200]]]
            out.append(
                Observation(
                    key if by_station else source_subject(key),
                    now_s,
                    round(share, 4),
                    share > rule.max_share,
                    share <= clear,
                    station_id=sid,
                    city=city,
                    threshold=rule.max_share,
                    details=details,
                )
            )
        return out

    async def _target_risk(
        self, conn: store_db.Conn, rule: TargetRiskRule, now: datetime
    ) -> list[Observation]:
        from envmon.evaluate.assessment import evaluate_year

        if self.targets is None:
            raise EnvmonError("no targets file loaded")
        today = timeutil.beijing_day(now)
        clear = rule.below if rule.clear is None else rule.clear
        out = []
        for region in rule.regions:
            try:
                res = await evaluate_year(conn, today.year, region, self.targets, as_of=today)
            except EnvmonError as err:
                self._warn_once(f"{rule.id}/{region}", str(err))
                continue
            finally:
                await conn.rollback()
            pm, gd = res["pm25"], res["good_days"]
            value: float | None
            if rule.measure == "good_day_budget":
                value = gd.get("remaining_budget")
                unit, text = "天", f"{value} 天"
                extra = [
                    ["优良天数", f"{gd['good']}/{gd['valid']}（目标 ≥ {_pct(gd.get('target'))}）"],
                    ["预计全年", _pct(gd.get("projection"))],
                ]
            else:
                cap = pm.get("remaining_max_mean")
                expected = pm.get("expected_rest_mean")
                if rule.measure == "pm25_remaining_max_mean":
                    value = cap
                else:
                    value = None if cap is None or expected is None else cap - expected
                unit, text = "µg/m³", f"{fmt_number(value)} µg/m³"
                extra = [
                    [
                        "PM2.5 年均",
                        f"{fmt_number(pm.get('mean'))} µg/m³"
                        f"（目标 ≤ {fmt_number(pm.get('target'))}）",
                    ],
                    ["剩余时段均值上限", f"{fmt_number(cap)} µg/m³"],
                    ["按往年预计剩余均值", f"{fmt_number(expected)} µg/m³"],
                ]
            if value is None:
                continue
            value = float(value)
            out.append(
                Observation(
                    region_subject(region),
                    now.timestamp(),
                    value,
                    value < rule.below,
                    value >= clear,
                    threshold=rule.below,
                    parameter=rule.measure,
                    unit=unit,
                    details={
                        "what": _MEASURE_ZH[rule.measure],
                        "value_text": text,
                        "limit_text": f"低于 {fmt_number(rule.below)} {unit}",
                        "region_name": REGION_NAMES.get(region, region),
                        "extra": extra,
                    },
                )
            )
        return out

    # ================================================================== operations

    async def ack(self, event_id: int, by: str | None, note: str | None = None) -> bool:
        now = self.clock()
        async with self.pool.connection() as conn:
            ok = await store_db.ack(conn, event_id, by, note, now)
        for t in self.tracks.values():
            if t.episode is not None and t.episode.id == event_id and t.episode.acked_at is None:
                t.episode.acked_at, t.episode.acked_by = now, by
        return ok

    def open_episodes(self) -> list[Episode]:
        return [t.episode for t in self.tracks.values() if t.episode is not None]


def _pct(x: Any) -> str:
    return "—" if x is None else f"{float(x):.1%}"


def _category(parameter: str, value: float, ts: int, window: timedelta | None) -> str | None:
    """The AQI category a concentration corresponds to (for the message only)."""
    if parameter not in AIR:
        return None
    edition = edition_at(ts)
    daily = window is not None and window >= timedelta(hours=24)
    if parameter in ("pm25", "pm10"):
        key = f"{parameter}_24h" if daily or edition == 2012 else f"{parameter}_1h"
    else:
        key = f"{parameter}_24h" if daily and parameter != "o3" else f"{parameter}_1h"
    try:
        sub = aqi_std.iaqi(key, value, edition=edition)
    except StandardsError:
        return None
    if sub is None:
        return None
    cat = aqi_std.CATEGORIES[aqi_std.category_of(sub) - 1]
    return f"{cat.level}（IAQI {sub}）"


async def _last_received(
    conn: store_db.Conn, station_ids: list[str], catalog: Catalog
) -> list[tuple[str, datetime]]:
    """When each station's newest reading arrived, through the reading key index."""
    keys = [
        (sid, p.code, period)
        for sid in station_ids
        for p in BY_CODE.values()
        if p.kind == catalog.by_id[sid].kind
        for period in PERIODS
    ]
    if not keys:
        return []
    cur = await conn.execute(
        "SELECT k.s, max(x.received_at) FROM unnest(%s::text[], %s::text[], %s::text[])"
        " AS k(s, p, r) CROSS JOIN LATERAL (SELECT received_at FROM reading"
        "  WHERE station_id = k.s AND parameter = k.p AND period = k.r"
        "  ORDER BY ts DESC LIMIT 1) x GROUP BY k.s",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    )
    return [(r[0], r[1]) for r in await cur.fetchall()]
