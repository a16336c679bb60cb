"""``envmon evaluate``: the year's numbers against the zone's targets.

PM2.5: the annual mean of the region's valid daily values (HJ 663: city value =
mean of the assessed stations; annual = mean of the daily values; a year needs
>= 324 valid days to be a valid annual statistic). The assessment value is
dust-deducted (dust periods from the provincial/CNEMC audit, standards.md §4);
the as-measured mean is reported beside it.
Good days: share of valid days with daily AQI <= 100 (优 + 良); dust days are
kept (CNEMC convention).
Water: the national-control sections' annual mean per parameter, classified
(GB 3838-2002, single factor, worst governs); good = class I–III.

For the current year the status is a projection: the year-to-date value,
completed with the previous year's rest-of-year values scaled by how this year
compares with the same period last year (seasonality matters: Taiyuan's winter
heating season dominates PM2.5).
"""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final, Literal

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from envmon.errors import ConfigError, EnvmonError
from envmon.evaluate.annual import DustUnit, hourly_dust_free_pm25, zone_dust_free
from envmon.evaluate.derive import DAY_VALUES, WATER_SECTION, daily_result
from envmon.evaluate.regions import CITY_REGION, REGION_NAMES
from envmon.evaluate.targets import Target, find
from envmon.standards import aqi as aqi_std
from envmon.standards import validity
from envmon.standards import water as water_std
from envmon.standards.rounding import round_half_even

Conn = AsyncConnection[TupleRow]
AT_RISK_EFFORT = (
    0.85  # "at risk" while the rest of the year needs at most 15 % better than last year
)


@dataclass
class DayRow:
    day: date
    pm25: float | None
    pm25_dust_free: float | None
    aqi: int | None
    category: int | None


IncompleteDays = Literal["computed", "published"]
"""How a day with a missing pollutant counts in the good-day ratio (issue 15).

``computed`` (default): by the AQI of the pollutants present, in both editions —
HJ 633-2026 §5.3.1 publishes NA for such a day only when that AQI is ≤ 100, so
counting only the published AQIs would count incomplete days as bad only (a
biased ratio); 2012 has no NA rule and always computed it. ``published``: only
days with a published AQI count (the 2026 NA days drop out of the denominator).
"""

# City names → region slugs, as SQL rows.
_CITY_ROWS = "(VALUES ('太原市', 'taiyuan'), ('忻州市', 'xinzhou')) AS r(city, region)"
# A dust period of a city applies to the city and to every region containing it (the
# zone); a zone-wide period to every city.
_DUST = (
    "EXISTS (SELECT 1 FROM dust_period p WHERE p.region IN ({region}, 'zone')"
    " AND p.starts_at < bj_day_start({day} + 1)"
    " AND p.ends_at > bj_day_start({day}))"
)


async def region_days(
    conn: Conn,
    region: str,
    start: date,
    end: date,
    edition: int | None,
    incomplete: IncompleteDays = "computed",
    dust_unit: DustUnit = "day",
) -> list[DayRow]:
    """The region's daily values in [start, end), AQI recomputed when an edition is forced."""
    cur = await conn.execute(
        "SELECT d.day, d.so2, d.no2, d.co, d.pm10, d.pm25, d.o3_1h_max, d.o3_8h_max,"
        " d.aqi, d.category, d.complete, "
        + _DUST.format(region="d.region", day="d.day")
        + " FROM region_day d WHERE d.region = %s AND d.day >= %s AND d.day < %s ORDER BY d.day",
        (region, start, end),
    )
    fetched = await cur.fetchall()
    # The zone: a city's dust deducts that city's points (a zone-wide period all).
    zone_free = await zone_dust_free(conn, start, end) if region == "zone" else None
    hour_free = await hourly_dust_free_pm25(conn, start, end) if dust_unit == "hour" else None
    out = []
    for r in fetched:
        day, pm25, complete, dust = r[0], r[5], r[10], r[11]
        aqi, cat = r[8], r[9]
        by_date = aqi_std.edition_for(day)
        if (edition is not None and edition != by_date) or (
            incomplete == "computed" and aqi is None and not complete
        ):
            values = dict(zip(DAY_VALUES, r[1:8], strict=True))
            res = daily_result(values, day, edition or by_date)
            aqi = res.aqi if incomplete == "published" else res.aqi_computed
            cat = aqi_std.category_of(aqi) if aqi is not None else None
        if hour_free is not None and (region, day) in hour_free:
            free = hour_free[region, day]  # only the dust hours deducted
        elif zone_free is not None and day in zone_free:
            free = zone_free[day]["pm25"]  # some city had dust: its points are deducted
        else:
            free = None if dust else pm25
        out.append(DayRow(day, pm25, free, aqi, cat))
    return out


def _mean(xs: list[float]) -> float | None:
    """The exact mean of published values (through their decimal strings)."""
    if not xs:
        return None
    return float(sum((Fraction(Decimal(str(x))) for x in xs), Fraction(0)) / len(xs))


def _r(x: float | None, nd: int = 1) -> float | None:
    """GB/T 8170 rounding (half-even on the decimal string), never binary ``round``."""
    return None if x is None else float(round_half_even(x, nd))


def month_validity(days: list[date], year: int) -> dict[str, Any]:
    """GB 3095 Table 4 for an annual mean: >= 324 daily values, >= 27 each month (Feb 25)."""
    per_month = Counter(d.month for d in days if d.year == year)
    short = {
        m: per_month.get(m, 0)
        for m in range(1, 13)
        if not validity.month_valid(per_month.get(m, 0), year, m)
    }
    return {
        "valid_year": validity.year_valid(len(days)) and not short,
        "days_per_month": [per_month.get(m, 0) for m in range(1, 13)],
        "short_months": short,
    }


async def annual_pm25(
    conn: Conn, region: str, year: int, edition: int | None = None
) -> dict[str, Any]:
    rows = await region_days(conn, region, date(year, 1, 1), date(year + 1, 1, 1), edition)
    measured = [r.pm25 for r in rows if r.pm25 is not None]
    dust_free = [r.pm25_dust_free for r in rows if r.pm25_dust_free is not None]
    return {
        "mean": _mean(dust_free),
        "mean_measured": _mean(measured),
        "valid_days": len(measured),
        "dust_days": len(measured) - len(dust_free),
        "valid_year": month_validity([r.day for r in rows if r.pm25 is not None], year)[
            "valid_year"
        ],
    }


async def annual_good(
    conn: Conn, region: str, year: int, edition: int | None = None
) -> dict[str, Any]:
    rows = await region_days(conn, region, date(year, 1, 1), date(year + 1, 1, 1), edition)
    cats = Counter(r.category for r in rows if r.aqi is not None)
    valid = sum(cats.values())
    good = cats[1] + cats[2]
    return {
        "good": good,
        "valid": valid,
        "ratio": good / valid if valid else None,
        "by_category": {aqi_std.CATEGORIES[c - 1].level: cats.get(c, 0) for c in range(1, 7)},
    }


async def water_year(
    conn: Conn, region: str, start: date, end: date, *, national_only: bool = True
) -> dict[str, Any]:
    """Annual class of the region's sections: the national ones (the target), or all."""
    cities = [c for c, r in CITY_REGION.items() if region in ("zone", r)]
    cur = await conn.execute(
        "SELECT s.id, s.name, s.county, s.river, coalesce(s.waterbody, 'river'), s.target_class,"
        " w.parameter, avg(w.value), count(DISTINCT w.day)"
        " FROM station s LEFT JOIN water_day w ON w.station_id = s.id"
        "  AND w.day >= %s AND w.day < %s"
        " WHERE s.kind = 'water' AND (NOT %s OR s.control_level = 'national')"
        " AND s.city = ANY(%s)"
        " GROUP BY s.id, s.name, s.county, s.river, s.waterbody, s.target_class, w.parameter"
        " ORDER BY s.id",
        (start, end, national_only, cities),
    )
    sections: dict[str, dict[str, Any]] = {}
    for sid, name, county, river, waterbody, target, param, value, n in await cur.fetchall():
        s = sections.setdefault(
            sid,
            {
                "id": sid,
                "name": name,
                "county": county,
                "river": river,
                "waterbody": waterbody,
                "target_class": target,
                "values": {},
                "n_days": 0,
            },
        )
        if param is not None and param in WATER_SECTION:
            s["values"][param] = float(value)
            s["n_days"] = max(s["n_days"], int(n))
    detail = []
    classes: Counter[str] = Counter()
    good = evaluated = 0
    for s in sections.values():
        values = s.pop("values")
        if not any(k in water_std.EVALUATED for k in values):
            detail.append(
                {
                    **s,
                    "class": None,
                    "roman": None,
                    "meets_target": None,
                    "main_pollutants": [],
                    "note": "no data",
                }
            )
            continue
        res = water_std.section_class(
            values, waterbody=s["waterbody"], target_class=s["target_class"]
        )
        evaluated += 1
        good += res.cls <= 3
        classes[res.roman] += 1
        detail.append(
            {
                **s,
                "class": res.cls,
                "roman": res.roman,
                "status": res.status,
                "meets_target": res.meets_target,
                "main_pollutants": [
                    f"{m.parameter}({m.multiple:.2f})" if m.multiple is not None else m.parameter
                    for m in res.main_pollutants
                ],
                "annual_means": {k: round(v, 4) for k, v in sorted(values.items())},
            }
        )
    return {
        "good": good,
        "sections": evaluated,
        "ratio": good / evaluated if evaluated else None,
        "by_class": {k: classes.get(k, 0) for k in ("Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", "Ⅴ", "劣Ⅴ")},
        "sections_detail": detail,
        "sections_total": len(sections),
    }


async def _baseline(conn: Conn, t: Target | None, edition: int | None) -> float | None:
    if t is None or t.baseline is None:
        return None
    if t.baseline != "from_data":
        return float(t.baseline)
    assert t.baseline_year is not None
    if t.metric == "pm25_annual_mean":
        v = (await annual_pm25(conn, t.region, t.baseline_year, edition))["mean"]
    else:
        v = (await annual_good(conn, t.region, t.baseline_year, edition))["ratio"]
    if v is None:
        raise ConfigError(
            f"target {t.metric}/{t.region}: baseline is 'from_data' but no {t.baseline_year} "
            f"data are stored; import {t.baseline_year} data or give the baseline as a number"
        )
    return float(v)


async def evaluate_year(
    conn: Conn,
    year: int,
    region: str,
    targets: list[Target],
    *,
    as_of: date,
    edition: int | None = None,
    incomplete: IncompleteDays = "computed",
    dust_unit: DustUnit = "day",
) -> dict[str, Any]:
    if region not in REGION_NAMES:
        raise EnvmonError(f"unknown region '{region}' (zone, taiyuan, xinzhou)")
    start, end = date(year, 1, 1), date(year + 1, 1, 1)
    if as_of < start:
        raise EnvmonError(f"{year} has not begun on {as_of}")
    finished = as_of >= end
    cutoff = min(as_of + timedelta(days=1), end)  # data up to and including as_of
    days_in_year = 366 if calendar.isleap(year) else 365
    elapsed = (cutoff - start).days
    remaining = days_in_year - elapsed

    editions = {aqi_std.edition_for(start), aqi_std.edition_for(end - timedelta(days=1))}
    edition_label: int | str = (
        edition if edition else (editions.pop() if len(editions) == 1 else "by_date")
    )

    pm_t = find(targets, "pm25_annual_mean", region, year)
    gd_t = find(targets, "good_day_ratio", region, year)
    wt_t = find(targets, "water_good_ratio", region, year)

    # PM2.5
    rows = await region_days(conn, region, start, cutoff, edition, incomplete, dust_unit)
    pm = [r.pm25_dust_free for r in rows if r.pm25_dust_free is not None]
    pm_measured = [r.pm25 for r in rows if r.pm25 is not None]
    pm_base = await _baseline(conn, pm_t, edition)
    pm_target = pm_t.value(pm_base) if pm_t else None
    pm_mean = _mean(pm)
    pm_out: dict[str, Any] = {
        "mean": _r(pm_mean),
        "mean_measured": _r(_mean(pm_measured)),
        "baseline": _r(pm_base),
        "target": _r(pm_target),
        "valid_days": len(pm_measured),
        "dust_days": len(pm_measured) - len(pm),
        "invalid_days": elapsed - len(pm_measured),
        "unit": "µg/m³",
    }
    # Good days
    cats = Counter(r.category for r in rows if r.aqi is not None)
    valid = sum(cats.values())
    good = cats[1] + cats[2]
    gd_base = await _baseline(conn, gd_t, edition)
    gd_target = gd_t.value(gd_base) if gd_t else None
    gd_out: dict[str, Any] = {
        "good": good,
        "valid": valid,
        "ratio": _r(good / valid, 4) if valid else None,
        "baseline": _r(gd_base, 4),
        "target": _r(gd_target, 4),
        "by_category": {aqi_std.CATEGORIES[c - 1].level: cats.get(c, 0) for c in range(1, 7)},
        "invalid_days": elapsed - valid,
    }
    # Water
    w = await water_year(conn, region, start, cutoff)
    w_target = wt_t.value(None) if wt_t else None
    w_out = {**w, "ratio": _r(w["ratio"], 4), "target": w_target}

    pm_validity = month_validity([r.day for r in rows if r.pm25 is not None], year)
    pm_out["valid_year"] = pm_validity["valid_year"]
    pm_out["days_per_month"] = pm_validity["days_per_month"]
    if finished:
        # Published values compared (GB/T 8170 to 0.1 µg/m³, ratios to 0.1 %).
        pm_r, pm_tr = _r(pm_mean), _r(pm_target)
        pm_out["status"] = _met(
            pm_r is not None and pm_tr is not None and pm_r <= pm_tr,
            pm_target,
        )
        if pm_target is not None and not pm_validity["valid_year"]:
            # GB 3095 Table 4: no valid annual mean — neither met nor not met.
            pm_out["status"] = "insufficient_data"
            pm_out["short_months"] = pm_validity["short_months"]
        gd_ratio = Fraction(good, valid) if valid else None
        gd_out["status"] = (
            "no_data"
            if gd_target is not None and gd_ratio is None
            else _met(
                gd_ratio is not None
                and gd_target is not None
                and _r(float(gd_ratio), 3) >= _r(gd_target, 3),  # type: ignore[operator]
                gd_target,
            )
        )
        w_out["status"] = (
            "no_data"
            if w_target is not None and w["ratio"] is None
            else _met(
                w["ratio"] is not None and w_target is not None and w["ratio"] >= w_target - 1e-12,
                w_target,
            )
        )
    else:
        prev = await region_days(
            conn, region, date(year - 1, 1, 1), date(year, 1, 1), edition, incomplete
        )
        _project_pm(pm_out, pm, prev, elapsed, remaining, pm_target)
        _project_good(gd_out, good, valid, prev, elapsed, remaining, days_in_year, gd_target)
        w_out["status"] = _water_status(w, w_target)
    return {
        "year": year,
        "region": region,
        "region_name": REGION_NAMES[region],
        "edition": edition_label,
        "as_of": min(as_of, end - timedelta(days=1)).isoformat(),
        "finished": finished,
        "days_elapsed": elapsed,
        "days_in_year": days_in_year,
        "pm25": pm_out,
        "good_days": gd_out,
        "water": w_out,
    }


def _met(ok: bool, target: float | None) -> str:
    if target is None:
        return "no_target"
    return "met" if ok else "not_met"


def _same_period(prev: list[DayRow], elapsed: int) -> tuple[list[DayRow], list[DayRow]]:
    if not prev:
        return [], []
    first = prev[0].day.replace(month=1, day=1)
    split = first + timedelta(days=elapsed)
    return [r for r in prev if r.day < split], [r for r in prev if r.day >= split]


def _project_pm(
    out: dict[str, Any],
    pm: list[float],
    prev: list[DayRow],
    elapsed: int,
    remaining: int,
    target: float | None,
) -> None:
    if not pm or target is None:
        out["status"] = "no_target" if target is None else "at_risk"
        return
    ytd = sum(pm) / len(pm)
    before, after = _same_period(prev, elapsed)
    pb = [r.pm25_dust_free for r in before if r.pm25_dust_free is not None]
    pa = [r.pm25_dust_free for r in after if r.pm25_dust_free is not None]
    # Last year's rest-of-year mean, scaled by how this year compares so far.
    expected_rest = (sum(pa) / len(pa)) * (ytd / (sum(pb) / len(pb))) if pb and pa else ytd
    n_total = len(pm) + remaining
    projected = (sum(pm) + expected_rest * remaining) / n_total
    required = (target * n_total - sum(pm)) / remaining if remaining else None
    out.update(
        {
            "projection": round(projected, 1),
            "remaining_days": remaining,
            "remaining_max_mean": None if required is None else round(required, 1),
            "expected_rest_mean": round(expected_rest, 1),
        }
    )
    if projected <= target:
        out["status"] = "on_track"
    elif required is not None and required >= AT_RISK_EFFORT * expected_rest:
        out["status"] = "at_risk"
    else:
        out["status"] = "off_track"


def _project_good(
    out: dict[str, Any],
    good: int,
    valid: int,
    prev: list[DayRow],
    elapsed: int,
    remaining: int,
    days_in_year: int,
    target: float | None,
) -> None:
    if target is None:
        out["status"] = "no_target"
        return
    allowed_non_good = int(days_in_year * (1 - target) + 1e-9)
    non_good = valid - good
    _, after = _same_period(prev, elapsed)
    a = [r for r in after if r.aqi is not None]
    rest_ratio = (
        (sum(1 for r in a if r.aqi is not None and r.aqi <= 100) / len(a))
        if a
        else (good / valid if valid else target)
    )
    projected = (good + rest_ratio * remaining) / (valid + remaining) if valid + remaining else None
    out.update(
        {
            "projection": None if projected is None else round(projected, 4),
            "remaining_days": remaining,
            "non_good_days": non_good,
            "allowed_non_good_days": allowed_non_good,
            "remaining_budget": allowed_non_good - non_good,
        }
    )
    if allowed_non_good - non_good < 0:
        out["status"] = "off_track"
    elif projected is not None and projected >= target:
        out["status"] = "on_track"
    else:
        out["status"] = "at_risk"


def _water_status(w: dict[str, Any], target: float | None) -> str:
    if target is None:
        return "no_target"
    if w["ratio"] is None:
        return "no_data"
    if w["ratio"] >= target - 1e-12:
        return "on_track"
    worst = max((d["class"] or 0) for d in w["sections_detail"])
    return "at_risk" if worst <= 4 else "off_track"


# Status words for people (the CLI table, the report); ``--json`` keeps the tokens.
STATUS_ZH: Final[dict[str, str]] = {
    "met": "已完成",
    "not_met": "未完成",
    "on_track": "按进度可完成",
    "at_risk": "存在风险",
    "off_track": "难以完成",
    "no_target": "未设目标",
}


def _zh(status: str) -> str:
    return STATUS_ZH.get(status, status)


def render_table(res: dict[str, Any]) -> str:
    """A readable summary for the terminal, in Chinese (``--json`` for machines)."""
    pm, gd, w = res["pm25"], res["good_days"], res["water"]
    lines = [
        f"{res['region_name']} {res['year']} 年 — 截至 {res['as_of']}"
        f"（标准版本 {res['edition']}；已过 {res['days_elapsed']}/{res['days_in_year']} 天）",
        "",
        f"  PM2.5 年均浓度      {_f(pm['mean'])} µg/m³（实况 {_f(pm['mean_measured'])}，"
        f"有效 {pm['valid_days']} 天，扣除沙尘 {pm['dust_days']} 天）",
        f"                      基准 {_f(pm['baseline'])}  目标 ≤ {_f(pm['target'])}"
        f"  → {_zh(pm['status'])}"
        + (
            f"；预计 {pm['projection']}，余下时段均值须 ≤ {pm['remaining_max_mean']}"
            if "projection" in pm
            else ""
        ),
        f"  优良天数            {gd['good']}/{gd['valid']} = {_pct(gd['ratio'])}"
        f"  基准 {_pct(gd['baseline'])}  目标 ≥ {_pct(gd['target'])}  → {_zh(gd['status'])}"
        + (f"；尚可容许非优良 {gd['remaining_budget']} 天" if "remaining_budget" in gd else ""),
        "                      " + "  ".join(f"{k} {v}" for k, v in gd["by_category"].items()),
        f"  地表水Ⅰ–Ⅲ类比例   {w['good']}/{w['sections']} 个国控断面 = "
        f"{_pct(w['ratio'])}  目标 {_pct(w['target'])}  → {_zh(w['status'])}",
    ]
    for d in w["sections_detail"]:
        lines.append(
            f"      {d['name']:<8} {d['river'] or '':<6} {d['roman'] or '—':<3}"
            f" 目标 {water_std.roman(d['target_class']) if d['target_class'] else '—'}"
            f"  {' '.join(d['main_pollutants'])}"
        )
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"
