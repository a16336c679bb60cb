"""Everything the annual assessment report shows, gathered from the database.

Numbers come from the same functions the CLI and the API use — ``evaluate_year``
(targets), :mod:`envmon.evaluate.annual` (HJ 663 statistics, index, ranking),
:mod:`envmon.evaluate.trends` — so the report can never disagree with them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from envmon.evaluate import annual as annual_stats
from envmon.evaluate import trends as tr
from envmon.evaluate.assessment import DayRow, evaluate_year, region_days, water_year
from envmon.evaluate.normalise import BASELINE_YEAR, normalised_trend
from envmon.evaluate.regions import REGION_NAMES, REGIONS
from envmon.evaluate.targets import Target
from envmon.standards import aqi as aqi_std
from envmon.standards import validity

Conn = AsyncConnection[TupleRow]

TREND_YEARS: Final = 5  # the report's trend window: this year and the four before
AIR_TREND_PARAMETERS: Final = ("pm25", "pm10", "o3", "no2")
WATER_TREND_PARAMETERS: Final = ("codmn", "nh3n", "tp")


@dataclass
class MonthRow:
    month: int
    pm25: float | None  # dust-deducted mean of the valid days (as the annual mean)
    pm25_measured: float | None
    valid_days: int
    good_days: int
    aqi_days: int
    dust_days: int


@dataclass
class ReportData:
    year: int
    as_of: date
    cutoff: date  # first day not included
    days_elapsed: int
    evaluations: dict[str, dict[str, Any]]
    annual: dict[str, Any]
    months: list[MonthRow]
    calendar: dict[date, tuple[int | None, int | None]]  # zone: day → (AQI, category)
    water_months: dict[str, dict[int, int]]  # section → month → class
    stations: list[dict[str, Any]]  # air and water stations with coordinates
    trends: list[dict[str, Any]]
    zone_pm25_series: list[tr.MonthValue]
    zone_pm25_trend: tr.TrendResult | None
    completeness: list[dict[str, Any]]
    water_completeness: list[dict[str, Any]]
    dust_periods: list[dict[str, Any]]
    rejected: list[tuple[str, int]]
    region_invalid: dict[str, dict[str, int]] = field(default_factory=dict)
    # Annual class of every section with data (national, provincial, municipal): the map.
    section_classes: dict[str, int | None] = field(default_factory=dict)
    # The zone's observed vs weather-normalised PM2.5 (summary and months), or None.
    normalised: dict[str, Any] | None = None
    # The data review the figures rest on (envmon.review): see _review.
    review: Review | None = None


@dataclass(frozen=True)
class Review:
    """The review state of the period's data when the report was gathered."""

    as_of: datetime  # the marks in force at this moment are applied
    invalid_readings: int  # readings of the period invalidated (and not restored)
    invalid_station_hours: int  # distinct station-hours among them
    actions: int  # review actions on the period's data (invalidate and restore)
    last_action: datetime | None  # the latest of them


def month_rows(rows: list[DayRow], year: int) -> list[MonthRow]:
    by_month: dict[int, list[DayRow]] = defaultdict(list)
    for r in rows:
        by_month[r.day.month].append(r)
    out = []
    for m in range(1, 13):
        days = by_month.get(m, [])
        pm = [r.pm25_dust_free for r in days if r.pm25_dust_free is not None]
        measured = [r.pm25 for r in days if r.pm25 is not None]
        out.append(
            MonthRow(
                m,
                sum(pm) / len(pm) if pm else None,
                sum(measured) / len(measured) if measured else None,
                len(measured),
                sum(1 for r in days if r.aqi is not None and r.category in (1, 2)),
                sum(1 for r in days if r.aqi is not None),
                len(measured) - len(pm),
            )
        )
    return out


async def _stations(conn: Conn) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(
            "SELECT id, kind, name, city, county, lon, lat, control_level, assessed, river,"
            " target_class FROM station WHERE kind IN ('air', 'water') AND active"
            " ORDER BY kind, city, county, id"
        )
    ).fetchall()
    keys = [
        "id",
        "kind",
        "name",
        "city",
        "county",
        "lon",
        "lat",
        "control_level",
        "assessed",
        "river",
        "target_class",
    ]
    return [dict(zip(keys, r, strict=True)) for r in rows]


async def _water_months(conn: Conn, year: int) -> dict[str, dict[int, int]]:
    rows = await (
        await conn.execute(
            "SELECT station_id, extract(month FROM month)::int, class FROM water_section_month"
            " WHERE month >= %s AND month < %s",
            (date(year, 1, 1), date(year + 1, 1, 1)),
        )
    ).fetchall()
    out: dict[str, dict[int, int]] = defaultdict(dict)
    for sid, m, cls in rows:
        out[sid][int(m)] = int(cls)
    return dict(out)


async def _completeness(
    conn: Conn, start: date, cutoff: date, elapsed: int
) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(
            "SELECT s.id, s.name, s.city, s.county, s.assessed,"
            " count(d.pm25), count(d.o3_8h_max), count(*) FILTER (WHERE d.complete),"
            " count(d.day)"
            " FROM station s LEFT JOIN air_day d ON d.station_id = s.id"
            "  AND d.day >= %s AND d.day < %s"
            " WHERE s.kind = 'air' GROUP BY s.id, s.name, s.city, s.county, s.assessed"
            " ORDER BY s.city, s.county, s.id",
            (start, cutoff),
        )
    ).fetchall()
    out = []
    for sid, name, city, county, assessed, n_pm, n_o3, n_complete, n_days in rows:
        out.append(
            {
                "id": sid,
                "name": name,
                "city": city,
                "county": county,
                "assessed": assessed,
                "pm25_days": int(n_pm),
                "o3_days": int(n_o3),
                "complete_days": int(n_complete),
                "days_with_data": int(n_days),
                "capture": int(n_pm) / elapsed if elapsed else None,
                "valid_year": validity.year_valid(int(n_pm)),
            }
        )
    return out


async def _water_completeness(conn: Conn, start: date, cutoff: date) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(
            "SELECT s.id, s.name, s.river, s.control_level, count(DISTINCT w.day)"
            " FROM station s LEFT JOIN water_day w ON w.station_id = s.id"
            "  AND w.day >= %s AND w.day < %s"
            " WHERE s.kind = 'water' GROUP BY s.id, s.name, s.river, s.control_level"
            " ORDER BY s.control_level, s.id",
            (start, cutoff),
        )
    ).fetchall()
    return [
        {"id": r[0], "name": r[1], "river": r[2], "control_level": r[3], "days": int(r[4])}
        for r in rows
    ]


async def _dust(conn: Conn, start: date, cutoff: date) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(
            "SELECT region, starts_at, ends_at, note FROM dust_period"
            " WHERE starts_at < bj_day_start(%s::date)"
            " AND ends_at > bj_day_start(%s::date)"
            " ORDER BY starts_at",
            (cutoff, start),
        )
    ).fetchall()
    return [{"region": r[0], "starts_at": r[1], "ends_at": r[2], "note": r[3]} for r in rows]


async def _rejected(conn: Conn, start: date, cutoff: date) -> list[tuple[str, int]]:
    rows = await (
        await conn.execute(
            "SELECT reason, count(*) FROM rejected"
            " WHERE ts >= bj_day_start(%s::date)"
            " AND ts < bj_day_start(%s::date)"
            " GROUP BY reason ORDER BY count(*) DESC, reason LIMIT 10",
            (start, cutoff),
        )
    ).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


async def _review(conn: Conn, start: date, cutoff: date) -> Review:
    """Invalidations in force now over [start, cutoff), and the actions on that period."""
    row = await (
        await conn.execute(
            "SELECT now(), m.readings, m.hours, count(a.id), max(a.at)"
            " FROM (SELECT count(*) AS readings,"
            "       count(DISTINCT (station_id, date_trunc('hour', ts))) AS hours"
            "       FROM review_mark WHERE restored_at IS NULL"
            "       AND ts >= bj_day_start(%(lo)s::date) AND ts < bj_day_start(%(hi)s::date)) m"
            " LEFT JOIN review_action a ON a.ts_from < bj_day_start(%(hi)s::date)"
            "  AND a.ts_to > bj_day_start(%(lo)s::date)"
            " GROUP BY m.readings, m.hours",
            {"lo": start, "hi": cutoff},
        )
    ).fetchone()
    assert row is not None
    return Review(row[0], int(row[1]), int(row[2]), int(row[3]), row[4])


async def _trends(
    conn: Conn, year: int, cutoff: date, water_sections: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tr.MonthValue], tr.TrendResult | None]:
    start = date(year - TREND_YEARS + 1, 1, 1)
    # Whole months only: the current month is left out until it is over.
    end = cutoff.replace(day=1)
    out: list[dict[str, Any]] = []
    zone_series: list[tr.MonthValue] = []
    zone_trend: tr.TrendResult | None = None
    if end <= start:
        return out, zone_series, zone_trend
    for region in REGIONS:
        for p in AIR_TREND_PARAMETERS:
            series = await tr.monthly_means(conn, p, start, end, region=region)
            res = tr.trend(series)
            if region == "zone" and p == "pm25":
                zone_series, zone_trend = series, res
            out.append({"kind": "air", "unit": REGION_NAMES[region], "parameter": p, "result": res})
    for s in water_sections:
        for p in WATER_TREND_PARAMETERS:
            series = await tr.monthly_means(conn, p, start, end, station=s["id"])
            if not any(v.n_days for v in series):
                continue
            out.append(
                {"kind": "water", "unit": s["name"], "parameter": p, "result": tr.trend(series)}
            )
    return out, zone_series, zone_trend


async def collect(conn: Conn, year: int, targets: list[Target], *, as_of: date) -> ReportData:
    start, cutoff, elapsed = annual_stats.year_window(year, as_of)
    evaluations = {
        region: await evaluate_year(conn, year, region, targets, as_of=as_of) for region in REGIONS
    }
    annual = await annual_stats.annual_report(conn, year, as_of=as_of)
    zone_rows = await region_days(conn, "zone", start, cutoff, None)
    calendar = {r.day: (r.aqi, r.category) for r in zone_rows}
    region_invalid: dict[str, dict[str, int]] = {}
    for region in REGIONS:
        rows = (
            zone_rows if region == "zone" else await region_days(conn, region, start, cutoff, None)
        )
        with_pm = sum(1 for r in rows if r.pm25 is not None)
        with_aqi = sum(1 for r in rows if r.aqi is not None)
        region_invalid[region] = {
            "pm25_invalid": elapsed - with_pm,
            "aqi_invalid": elapsed - with_aqi,
            "dust": sum(1 for r in rows if r.pm25 is not None and r.pm25_dust_free is None),
        }
    stations = await _stations(conn)
    national_water = [
        s for s in stations if s["kind"] == "water" and s["control_level"] == "national"
    ]
    trends, zone_series, zone_trend = await _trends(conn, year, cutoff, national_water)
    return ReportData(
        year=year,
        as_of=min(as_of, date(year, 12, 31)),
        cutoff=cutoff,
        days_elapsed=elapsed,
        evaluations=evaluations,
        annual=annual,
        months=month_rows(zone_rows, year),
        calendar=calendar,
        water_months=await _water_months(conn, year),
        stations=stations,
        trends=trends,
        zone_pm25_series=zone_series,
        zone_pm25_trend=zone_trend,
        completeness=await _completeness(conn, start, cutoff, elapsed),
        water_completeness=await _water_completeness(conn, start, cutoff),
        dust_periods=await _dust(conn, start, cutoff),
        rejected=await _rejected(conn, start, cutoff),
        region_invalid=region_invalid,
        normalised=await _normalised(conn, year),
        review=await _review(conn, start, cutoff),
        section_classes={
            d["id"]: d["class"]
            for d in (await water_year(conn, "zone", start, cutoff, national_only=False))[
                "sections_detail"
            ]
        },
    )


async def _normalised(conn: Conn, year: int) -> dict[str, Any] | None:
    if year <= BASELINE_YEAR:
        return None
    res = await normalised_trend(conn, year, region="zone")
    return {**res.summary(), "months": res.monthly()}


def days_of(year: int) -> list[date]:
    d, out = date(year, 1, 1), []
    while d.year == year:
        out.append(d)
        d += timedelta(days=1)
    return out


CATEGORY_COLOURS: Final = {c.number: c.colour for c in aqi_std.CATEGORIES}
