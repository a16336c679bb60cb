"""The scheduled evaluators: offline, flatline, data-quality and target-risk rules.

Each runs every ``every`` of its rule over one database connection and returns
observations of the rule's subjects; :data:`SCHEDULED` is the table by rule
kind. What they need besides the database — when each station and source last
sent data, the maintenance holds, the readings accepted since the start — is
in the :class:`ScheduleContext` the engine keeps up to date from the batches.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from envmon import timeutil
from envmon.alerts.kinds import DataQualityRule, FlatlineRule, OfflineRule, TargetRiskRule
from envmon.alerts.message import fmt_number, fmt_span, fmt_time
from envmon.alerts.model import Observation, at, region_subject, source_subject
from envmon.catalog import Catalog, Station
from envmon.errors import EnvmonError
from envmon.evaluate.derive import VALID_FLAGS
from envmon.evaluate.regions import REGION_NAMES
from envmon.parameters import BY_CODE, PERIODS

Conn = AsyncConnection[TupleRow]
LOOKBACK_S: Final = 86400  # batches older than this are history for every rule
_RECHECK_S: Final = 600  # a silent station's newest reading is looked up at most this often
_VALID: Final = list(VALID_FLAGS)
_MEASURE_ZH: Final = {
    "good_day_budget": "剩余非优良天数额度",
    "pm25_remaining_max_mean": "PM2.5 年内剩余时段均值上限",
    "pm25_headroom": "PM2.5 年度目标余量（上限减预期均值）",
}


@dataclass
class ScheduleContext:
    """What the scheduled evaluators know besides the database."""

    catalog: Catalog
    stations: Mapping[str, tuple[Station, ...]]  # rule → stations it watches
    targets: list[Any] | None
    hold_s: float  # after an M/C reading a station may stay silent this long
    warn_once: Callable[[str, str], None]
    started_s: float = 0.0
    last_seen: dict[str, float] = field(default_factory=dict)  # station → service clock
    last_seen_source: dict[str, float] = field(default_factory=dict)
    mc_seen: dict[str, float] = field(default_factory=dict)  # station → last M/C reading
    db_checked: dict[str, float] = field(default_factory=dict)  # offline: database asked
    # (service clock, accepted per station, accepted per source) of each batch
    accepted: deque[tuple[float, Counter[str], Counter[str]]] = field(default_factory=deque)


async def _offline(
    ctx: ScheduleContext, conn: Conn, rule: OfflineRule, now: datetime
) -> list[Observation]:
    now_s = now.timestamp()
    after = rule.after.total_seconds()
    grace = rule.grace.total_seconds()
    out: list[Observation] = []
    stations = ctx.stations[rule.id]
    # Whoever looks silent from here may have sent through another process (a
    # file import, another worker): ask the database before calling them offline.
    silent = [
        s.id
        for s in stations
        if now_s - ctx.last_seen.get(s.id, 0.0) >= after
        and now_s - ctx.db_checked.get(s.id, -math.inf) >= _RECHECK_S
    ]
    for sid in silent:
        ctx.db_checked[sid] = now_s
    if silent:
        for sid, received in await last_received(conn, silent, ctx.catalog):
            ctx.last_seen[sid] = max(ctx.last_seen.get(sid, 0.0), received.timestamp())
    for st in stations:
        seen = ctx.last_seen.get(st.id)
        since = seen if seen is not None else ctx.started_s
        quiet = now_s - since
        hold_until = ctx.mc_seen.get(st.id, -math.inf) + ctx.hold_s
        settled = now_s - max(ctx.started_s, ctx.mc_seen.get(st.id, -math.inf)) >= grace
        breach = quiet >= after and settled and now_s >= hold_until
        out.append(_offline_obs(rule, st.id, st.id, st.city, now_s, quiet, seen, breach))
    for src in rule.sources:
        seen = ctx.last_seen_source.get(src)
        quiet = now_s - (seen or ctx.started_s)
        breach = quiet >= after and now_s - ctx.started_s >= grace
        out.append(_offline_obs(rule, source_subject(src), None, None, now_s, quiet, seen, breach))
    return out


def _offline_obs(
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
    last = f"最后收到数据 {fmt_time(at(seen))}" if seen else "启动以来未收到数据"
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
    ctx: ScheduleContext, conn: Conn, rule: FlatlineRule, now: datetime
) -> list[Observation]:
    stations = ctx.stations[rule.id]
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
            _VALID,
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
                bool(items) and now_s >= ctx.mc_seen.get(st.id, -math.inf) + ctx.hold_s,
                not items,
                station_id=st.id,
                city=st.city,
                threshold=None,
                parameter=items[0][0] if items else None,
                unit=BY_CODE[items[0][0]].unit if items else None,
                details={
                    "what": f"数据恒定不变（连续{fmt_span(rule.span)}）",
                    "value_text": text or "数据正常变化",
                    "limit_text": f"{fmt_span(rule.span)}内变化不超过 {fmt_number(rule.tolerance)}",
                },
            )
        )
    return out


async def _data_quality(
    ctx: ScheduleContext, conn: Conn, rule: DataQualityRule, now: datetime
) -> list[Observation]:
    now_s = now.timestamp()
    # Both counts from the same moment on: what this process saw accepted since
    # it started (or the window), against what the database holds as rejected.
    start_s = max(now_s - rule.window.total_seconds(), ctx.started_s)
    start = at(start_s)
    by_station = rule.by == "station"
    cur = await conn.execute(
        "SELECT " + ("station_id" if by_station else "source") + ", count(*),"
        " (array_agg(reason ORDER BY id DESC))[1] FROM rejected"
        " WHERE received_at >= %s AND (ts IS NULL OR ts >= %s)"
        + (" AND station_id IS NOT NULL" if by_station else "")
        + " GROUP BY 1",
        (start, now - timedelta(seconds=LOOKBACK_S)),
    )
    rejected = {r[0]: (int(r[1]), r[2]) for r in await cur.fetchall()}
    accepted: Counter[str] = Counter()
    for seen_at, st_counts, src_counts in ctx.accepted:
        if seen_at >= start_s:
            accepted.update(st_counts if by_station else src_counts)
    subjects: list[tuple[str, str | None, str | None]]
    if by_station:
        subjects = [(s.id, s.id, s.city) for s in ctx.stations[rule.id]]
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
    ctx: ScheduleContext, conn: Conn, rule: TargetRiskRule, now: datetime
) -> list[Observation]:
    from envmon.evaluate.assessment import evaluate_year

    if ctx.targets is None:
        raise EnvmonError("no targets file loaded")
    today = timeutil.beijing_day(now)
    clear = rule.below if rule.clear is None else rule.clear
    out = []
    for region in rule.regions:
        try:
            res = await evaluate_year(conn, today.year, region, ctx.targets, as_of=today)
        except EnvmonError as err:
            ctx.warn_once(f"{rule.id}/{region}", str(err))
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
                    f"{fmt_number(pm.get('mean'))} µg/m³（目标 ≤ {fmt_number(pm.get('target'))}）",
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


ScheduledEvaluator = Callable[[ScheduleContext, Conn, Any, datetime], Awaitable[list[Observation]]]
# The scheduled evaluators by rule kind.
SCHEDULED: Final[Mapping[str, ScheduledEvaluator]] = {
    "offline": _offline,
    "flatline": _flatline,
    "data_quality": _data_quality,
    "target_risk": _target_risk,
}


def _pct(x: Any) -> str:
    return "—" if x is None else f"{float(x):.1%}"


async def last_received(
    conn: Conn, station_ids: list[str], catalog: Catalog
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
