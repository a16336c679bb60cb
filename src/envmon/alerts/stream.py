"""The in-stream evaluators: threshold (value, AQI, water class) and spike rules on a batch.

Each evaluator turns the rows of one accepted batch (valid readings of the
parameters some rule watches, oldest first) into observations of the rule's
subjects, from memory only: the recent values are in a :class:`SeriesStore`,
the water sections' latest values per indicator in ``water_latest``.
:data:`IN_STREAM` is the table by rule kind; the engine steps every observation
through the episode tracker.

A water section's class (GB 3838, single factor: the worst indicator governs)
is judged on a *complete* set of indicators: every indicator the section
reported in the last week has a value younger than the rule's ``max_age``.
A partial set can only say "worse than the target" (the missing indicators
cannot make the worst class better); it never says "back within the target" —
so the indicators that happen to arrive first after a restart cannot end an
alert. The same holds for an hour's AQI (the highest IAQI): the pollutants a
station reported in the hours before must all be in for the hour before an
AQI alert can end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from envmon.alerts.kinds import OP_ZH, SpikeRule, ThresholdRule
from envmon.alerts.message import fmt_number, fmt_span, fmt_time
from envmon.alerts.model import Observation, at, city_subject
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
from envmon.parameters import BY_CODE
from envmon.standards import aqi as aqi_std
from envmon.standards import water as water_std
from envmon.standards.editions import StandardsError

logger = logging.getLogger(__name__)

PERIOD_S: Final = {"rt": 0, "1min": 60, "5min": 300, "1h": HOUR, "4h": 4 * HOUR, "1d": 24 * HOUR}
EXPECTED_S: Final = 7 * 86400  # a section's indicator set: what it reported within a week
_PERIOD_ZH: Final = {
    "rt": "实时值",
    "1min": "分钟值",
    "5min": "5分钟值",
    "1h": "小时值",
    "4h": "4小时值",
    "1d": "日均值",
}
_POLLUTANT_ZH: Final = {p: BY_CODE[p].name for p in AIR}

Row = tuple[str, str, str, int, float]  # station, parameter, period, ts (epoch s), value
WaterValue = tuple[int, float, int, int]  # data time, value, class, end of its period
StreamRule = ThresholdRule | SpikeRule


def series_periods(rule: Any) -> tuple[str, ...]:
    """The readings' periods an in-stream rule keeps in the value store."""
    if isinstance(rule, ThresholdRule):
        return rule.periods
    if isinstance(rule, SpikeRule):
        return (rule.period,)
    return ()


@dataclass
class StreamContext:
    """What the in-stream evaluators read: the catalog, the value store, the latest values."""

    catalog: Catalog
    store: SeriesStore
    stations: Mapping[str, tuple[Station, ...]]  # rule → stations it watches
    wants: Mapping[str, tuple[frozenset[str], frozenset[str]]]  # rule → parameters, periods
    # (rule, section) → indicator → its latest value
    water_latest: dict[tuple[str, str], dict[str, WaterValue]] = field(default_factory=dict)
    # (rule, subject) → the parameter of its open episode (required for a complete set)
    open_parameter: Callable[[str, str], str | None] = lambda rule, subject: None
    station_ids: dict[str, frozenset[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.station_ids = {k: frozenset(s.id for s in v) for k, v in self.stations.items()}

    def add_water(self, rule: ThresholdRule, row: Row) -> bool:
        """A water indicator's value into the section's latest; False if not newer (or moot)."""
        sid, p, period, ts, value = row
        st = self.catalog.by_id[sid]
        if st.target_class is None:
            return False
        try:
            cls = water_std.classify(p, value, waterbody=st.waterbody or "river")
        except StandardsError:
            return False
        latest = self.water_latest.setdefault((rule.id, sid), {})
        if p in latest and latest[p][0] > ts:
            return False
        latest[p] = (ts, value, cls, ts + PERIOD_S[period])
        return True

    def restore_water(self, rules: Iterable[ThresholdRule], rows: Sequence[Row]) -> int:
        """The sections' newest values from the database (a start); how many were taken."""
        n = 0
        for rule in rules:
            params, periods = self.wants[rule.id]
            ids = self.station_ids[rule.id]
            for row in rows:
                if row[0] in ids and row[1] in params and row[2] in periods:
                    n += self.add_water(rule, row)
        return n

    def rows_for(self, rule: StreamRule, rows: Sequence[Row], now_s: float) -> Iterable[Row]:
        params, periods = self.wants[rule.id]
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


def _value(
    ctx: StreamContext, rule: ThresholdRule, rows: Sequence[Row], now_s: float
) -> list[Observation]:
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
        for sid, _, period, ts, value in ctx.rows_for(rule, rows, now_s):
            v = ctx.store.mean((sid, p.code, period), ts, window, need) if window else value
            if v is not None:
                st = ctx.catalog.by_id[sid]
                label = what(period)
                ob = _obs_value(ctx, rule, sid, st.city, ts, v, label, p.code, p.unit)
                ob.period = period
                out.append(ob)
        return out
    for (city, ts), _ in _city_points(ctx, rule, rows, now_s).items():
        vals = []
        for st in ctx.stations[rule.id]:
            if st.city != city:
                continue
            key = (st.id, p.code, rule.periods[0])
            v = ctx.store.mean(key, ts, window, need) if window else ctx.store.at(key, ts)
            if v is not None:
                vals.append(v)
        if len(vals) >= rule.min_stations:
            v = sum(vals) / len(vals)
            label = what(rule.periods[0])
            ob = _obs_value(ctx, rule, city_subject(city), city, ts, v, label, p.code, p.unit)
            ob.station_id = None
            ob.period = rule.periods[0]
            ob.details["extra"] = [["参与站点", f"{len(vals)} 个"]]
            out.append(ob)
    return out


def _city_points(
    ctx: StreamContext, rule: ThresholdRule, rows: Sequence[Row], now_s: float
) -> dict[tuple[str, int], None]:
    points: dict[tuple[str, int], None] = {}
    for sid, _, _, ts, _ in ctx.rows_for(rule, rows, now_s):
        points[(ctx.catalog.by_id[sid].city, ts)] = None
    return points


def _obs_value(
    ctx: StreamContext,
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
        station_id=subject if subject in ctx.catalog.by_id else None,
        city=city,
        threshold=rule.threshold,
        parameter=parameter,
        unit=unit,
        details=details,
    )


def _aqi(
    ctx: StreamContext, rule: ThresholdRule, rows: Sequence[Row], now_s: float
) -> list[Observation]:
    daily = rule.aqi_window >= timedelta(hours=24)
    points: dict[tuple[str, int], None] = {}
    for sid, _, _, ts, _ in ctx.rows_for(rule, rows, now_s):
        key = sid if rule.scope == "station" else ctx.catalog.by_id[sid].city
        points[(key, ts)] = None
    out: list[Observation] = []
    for key, ts in points:
        edition = edition_at(ts)
        if rule.scope == "station":
            members = [ctx.catalog.by_id[key]]
        else:
            members = [s for s in ctx.stations[rule.id] if s.city == key]
        maps = []
        missing: set[str] = set()
        for st in members:
            m = (
                daily_indicators(ctx.store, st.id, ts)
                if daily
                else hourly_indicators(ctx.store, st.id, ts)
            )
            if any(v is not None for v in m.values()):
                maps.append(m)
                missing |= aqi_missing(ctx.store, st.id, ts, int(rule.max_age.total_seconds()))
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
        breach = rule.breach(res.aqi)
        if missing and not (breach and rule.op in (">", ">=")):
            continue  # the AQI of a partial hour is a lower bound: it can only say "over"
        primary = "、".join(_POLLUTANT_ZH.get(p, p) for p in res.primary) or "—"
        details: dict[str, Any] = {
            "what": ("近24小时滑动 AQI" if daily else "小时 AQI（实时报）")
            + f"（HJ 633-{edition}）",
            "value_text": f"AQI {res.aqi}",
            "limit_text": f"{OP_ZH[rule.op]} {fmt_number(rule.threshold)}"
            + (f"（回到 {fmt_number(rule.clear)} 即恢复）" if rule.clear is not None else ""),
            "category": f"{res.level}（{res.grade}），首要污染物 {primary}",
        }
        extra: list[list[str]] = []
        if rule.scope == "city":
            extra.append(["参与站点", f"{len(maps)} 个"])
        if missing:
            extra.append(["尚未收到", "、".join(_POLLUTANT_ZH[p] for p in AIR if p in missing)])
        if extra:
            details["extra"] = extra
        subject = key if rule.scope == "station" else city_subject(key)
        city = key if rule.scope == "city" else ctx.catalog.by_id[key].city
        out.append(
            Observation(
                subject,
                ts,
                float(res.aqi),
                breach,
                rule.cleared(res.aqi) and not missing,
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


def aqi_missing(store: SeriesStore, station: str, hour: int, recent_s: int) -> set[str]:
    """Pollutants the station reported in the ``recent_s`` before ``hour`` but not for it.

    The AQI is the highest IAQI: judged on the pollutants that happen to have arrived
    for an hour it can only be too low. Readings of one hour may come in several
    batches (a poller per parameter, a logger's frames).
    """
    out = set()
    for p in AIR:
        key = (station, p, "1h")
        if store.at(key, hour) is None and store.earlier(key, hour, recent_s):
            out.add(p)
    return out


def _water(
    ctx: StreamContext, rule: ThresholdRule, rows: Sequence[Row], now_s: float
) -> list[Observation]:
    # One judgement per section and data time, after all of the batch's indicators
    # for that time are in (a logger sends them in one frame; a poller may not).
    groups: dict[tuple[str, int], str] = {}
    for row in ctx.rows_for(rule, rows, now_s):
        if ctx.add_water(rule, row):
            groups[(row[0], row[3])] = row[2]
    out: list[Observation] = []
    for (sid, ts), period in groups.items():
        ob = _water_obs(ctx, rule, ctx.catalog.by_id[sid], ts, period, now_s)
        if ob is not None:
            out.append(ob)
    return out


def water_missing(
    latest: Mapping[str, WaterValue], now_s: float, max_age_s: float, required: Iterable[str]
) -> set[str]:
    """Indicators of a section's set (reported within a week, or required) with no fresh value."""
    expected = {k for k, v in latest.items() if v[3] >= now_s - EXPECTED_S} | set(required)
    return {k for k in expected if k not in latest or latest[k][3] < now_s - max_age_s}


def _water_obs(
    ctx: StreamContext, rule: ThresholdRule, st: Station, ts: int, period: str, now_s: float
) -> Observation | None:
    latest = ctx.water_latest[(rule.id, st.id)]
    max_age = rule.max_age.total_seconds()
    fresh = {k: v for k, v in latest.items() if v[3] >= now_s - max_age}
    if not fresh or st.target_class is None:
        return None
    required = [p for p in [ctx.open_parameter(rule.id, st.id)] if p is not None]
    missing = water_missing(latest, now_s, max_age, required)
    worst = max(v[2] for v in fresh.values())
    target = st.target_class
    if missing and worst <= target:
        return None  # a partial set within the target says nothing: the rest may be worse
    bad = sorted(((k, v) for k, v in fresh.items() if v[2] > target), key=lambda kv: -kv[1][2])
    details: dict[str, Any] = {
        "what": "水质类别（GB 3838-2002 单因子）",
        "value_text": f"{water_std.roman(worst)}类",
        "limit_text": f"目标 {water_std.roman(target)}类",
        "category": water_std.STATUS[worst],
    }
    extra: list[list[str]] = []
    if bad:
        text = "；".join(
            f"{BY_CODE[k].name} {fmt_number(v[1])} {BY_CODE[k].unit}（{water_std.roman(v[2])}类）"
            for k, v in bad
        )
        extra.append(["超标指标", text])
    if missing:
        extra.append(["尚未收到", "、".join(BY_CODE[k].name for k in sorted(missing))])
    if extra:
        details["extra"] = extra
    return Observation(
        st.id,
        ts,
        float(worst),
        worst > target,
        worst <= target and not missing,
        station_id=st.id,
        city=st.city,
        threshold=float(target),
        parameter=bad[0][0] if bad else None,
        unit=None,
        details=details,
        period=period,
    )


def _spike(
    ctx: StreamContext, rule: SpikeRule, rows: Sequence[Row], now_s: float
) -> list[Observation]:
    p = BY_CODE[rule.parameter]
    over = int(rule.over.total_seconds())
    clear = rule.rise if rule.clear is None else rule.clear
    out: list[Observation] = []
    for sid, _, period, ts, value in ctx.rows_for(rule, rows, now_s):
        base = ctx.store.earlier((sid, p.code, period), ts, over)
        if not base:
            continue
        t0, low = min(base, key=lambda tv: tv[1])
        rise = value - low
        st = ctx.catalog.by_id[sid]
        details: dict[str, Any] = {
            "what": f"{p.name} {fmt_span(rule.over)}内上升",
            "value_text": f"上升 {fmt_number(rise)} {p.unit}（{fmt_time(at(t0))} "
            f"{fmt_number(low)} → {fmt_time(at(ts))} {fmt_number(value)}）",
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


StreamEvaluator = Callable[[StreamContext, Any, Sequence[Row], float], list[Observation]]
_METRICS: Final[Mapping[str, StreamEvaluator]] = {
    "value": _value,
    "aqi": _aqi,
    "water_class": _water,
}


def _threshold(
    ctx: StreamContext, rule: ThresholdRule, rows: Sequence[Row], now_s: float
) -> list[Observation]:
    return _METRICS[rule.metric](ctx, rule, rows, now_s)


# The in-stream evaluators by rule kind.
IN_STREAM: Final[Mapping[str, StreamEvaluator]] = {"threshold": _threshold, "spike": _spike}


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
