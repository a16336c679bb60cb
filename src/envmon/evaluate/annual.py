"""Annual air-quality statistics of HJ 663 per station, county and region, per edition.

For each unit (an air station, a county, a city or the zone) and a year:

* annual means of SO2, NO2, PM10, PM2.5 (mean of the valid daily values; a year
  needs >= 324 of them to be a valid annual statistic, GB 3095 Table 4);
* CO: 95th percentile of the daily means; O3: 90th percentile of the daily
  maximum 8-h means (MDA8); SO2/NO2 P98 and PM P95 of the daily means for the
  attainment test — percentiles by HJ 663 Annex A (standards.md §3.1–3.2);
* the comprehensive index I_sum = Σ C_i/S_i (standards.md §3.5) and rankings
  (smaller is better; equal indices at two decimals share a rank: 并列);
* the good-day ratio and days per AQI category, with the AQI of the edition asked
  for (a year spanning 2026-03-01 can be stated under both editions side by side);
* attainment per pollutant against the GB 3095 limit set of the edition
  (2012; 2026 transitional until 2030, final from 2031), standards.md §3.4.

Dust (standards.md §4, CNEMC convention): PM10/PM2.5 means and percentiles and
the comprehensive index are dust-deducted (days overlapping a ``dust_period`` of
the unit's city or of the zone are left out); the as-measured PM means are given
beside them; the good-day ratio keeps dust days.

County values are the mean of the county's assessed stations' daily values, the
way city values are formed (HJ 663: average the points first, then the AQI).
Station statistics include the clean-control points, flagged ``assessed: false``
and left out of rankings.
"""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final, Literal

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from envmon.evaluate.derive import daily_result, published
from envmon.evaluate.regions import REGION_NAMES, REGIONS
from envmon.standards import aqi as aqi_std
from envmon.standards import validity
from envmon.standards.editions import LimitSet, check_edition
from envmon.standards.limits import limit_in_set
from envmon.standards.stats import comprehensive_index, percentile

Conn = AsyncConnection[TupleRow]
UnitKind = Literal["station", "county", "region"]

DAILY_COLUMNS: Final = ("so2", "no2", "co", "pm10", "pm25", "o3_1h_max", "o3_8h_max")
POLLUTANTS: Final = ("so2", "no2", "pm10", "pm25", "co", "o3")
DUST_DEDUCTED: Final = frozenset({"pm10", "pm25"})
# The daily column behind each pollutant's annual statistics: O3 is judged on MDA8.
SOURCE_COLUMN: Final[dict[str, str]] = {
    "so2": "so2",
    "no2": "no2",
    "pm10": "pm10",
    "pm25": "pm25",
    "co": "co",
    "o3": "o3_8h_max",
}
# Percentile tested against the 24-h (O3: 8-h) limit, standards.md §3.1.
PERCENTILES: Final[dict[str, float]] = {
    "so2": 0.98,
    "no2": 0.98,
    "pm10": 0.95,
    "pm25": 0.95,
    "co": 0.95,
    "o3": 0.90,
}
RANK_DECIMALS: Final = 2

_DUST_SQL = (
    "EXISTS (SELECT 1 FROM dust_period p WHERE p.region IN ({region}, 'zone')"
    " AND p.starts_at < bj_day_start(d.day + 1)"
    " AND p.ends_at > bj_day_start(d.day))"
)
_CITY_REGION_SQL = "(VALUES ('太原市', 'taiyuan'), ('忻州市', 'xinzhou')) AS r(city, region)"


@dataclass(frozen=True, slots=True)
class Day:
    """One unit's daily values (``DAILY_COLUMNS``) and what the database said about them."""

    day: date
    values: dict[str, float | None]
    dust: bool
    aqi: int | None = None  # as stored (edition ``edition``); None = compute
    category: int | None = None
    edition: int | None = None
    # The zone: PM10/PM2.5 over the cities without dust that day (a city's dust
    # period deducts that city's points from the zone value); None = all or nothing.
    dust_free: dict[str, float | None] | None = None


@dataclass(frozen=True, slots=True)
class Unit:
    kind: UnitKind
    id: str
    name: str
    city: str | None = None
    county: str | None = None
    assessed: bool = True


def limit_set_of(edition: int, year: int) -> LimitSet:
    """The GB 3095 limit set an edition's annual statistics are judged against."""
    if check_edition(edition) == 2012:
        return "2012"
    return "2026-final" if year >= 2031 else "2026-transitional"


def editions_of_year(year: int) -> list[int]:
    """The editions in force during a year: two for 2026 (the switch on 2026-03-01)."""
    return sorted({aqi_std.edition_for(date(year, 1, 1)), aqi_std.edition_for(date(year, 12, 31))})


def _mean(xs: Sequence[float]) -> float | None:
    """Exact mean of published values (through their decimal strings)."""
    if not xs:
        return None
    return float(sum((Fraction(Decimal(str(x))) for x in xs), Fraction(0)) / len(xs))


def _aqi_of(d: Day, edition: int) -> tuple[int | None, int | None]:
    # The stored AQI is the by-date edition's; recompute under the other one, and
    # where HJ 633-2026 §5.3.1 left it NA: a day missing a pollutant counts by the
    # AQI of the others in both editions (assessment.IncompleteDays "computed").
    if d.edition is not None and d.edition == edition and d.aqi is not None:
        return d.aqi, d.category
    res = daily_result(d.values, d.day, edition)
    aqi = res.aqi_computed
    return aqi, (None if aqi is None else aqi_std.category_of(aqi))


def _dust_deducted(d: Day, col: str) -> float | None:
    if d.dust_free is not None:
        return d.dust_free.get(col)
    return None if d.dust else d.values.get(col)


def annual_statistics(
    days: Sequence[Day], *, year: int, edition: int, days_elapsed: int | None = None
) -> dict[str, Any]:
    """HJ 663 annual statistics of one unit's daily values under one edition (pure)."""
    ed = check_edition(edition)
    elapsed = days_elapsed if days_elapsed is not None else (366 if calendar.isleap(year) else 365)
    lset = limit_set_of(ed, year)
    out: dict[str, Any] = {"edition": ed, "limit_set": lset, "days_elapsed": elapsed}
    conc: dict[str, Any] = {}
    index_terms: dict[str, float] = {}
    attain: dict[str, bool | None] = {}
    dust_days = sum(1 for d in days if d.dust)
    for p in POLLUTANTS:
        col = SOURCE_COLUMN[p]
        measured = [v for d in days if (v := d.values.get(col)) is not None]
        used = (
            [v for d in days if (v := _dust_deducted(d, col)) is not None]
            if p in DUST_DEDUCTED
            else measured
        )
        q = PERCENTILES[p]
        entry: dict[str, Any] = {
            "valid_days": len(measured),
            "used_days": len(used),
            "valid_year": validity.year_valid(len(measured)),
            "mean": _mean(used),
            f"p{round(q * 100)}": percentile(used, q) if used else None,
        }
        if p in DUST_DEDUCTED:
            entry["mean_measured"] = _mean(measured)
        # The index and attainment statistic: mean for the four, P95 CO, P90 O3 MDA8.
        if p == "co":
            stat_value = entry["p95"]
            annual_ok = True
        elif p == "o3":
            stat_value = entry["p90"]
            annual_ok = True
        else:
            stat_value = entry["mean"]
            annual_ok = stat_value is not None and stat_value <= limit_in_set(f"{p}_annual", lset)
        short_stat = "o3_8h" if p == "o3" else f"{p}_24h"
        pct = entry[f"p{round(q * 100)}"]
        entry["limit_annual"] = None if p in ("co", "o3") else limit_in_set(f"{p}_annual", lset)
        entry["limit_short"] = limit_in_set(short_stat, lset)
        if stat_value is not None:
            index_terms[p] = stat_value
        if stat_value is None or pct is None:
            attain[p] = None
        else:
            attain[p] = bool(annual_ok and pct <= limit_in_set(short_stat, lset))
        entry["attains"] = attain[p]
        conc[p] = entry
    out["pollutants"] = conc
    if len(index_terms) == len(POLLUTANTS):
        out["comprehensive_index"] = comprehensive_index(index_terms, edition=ed)
        out["index_note"] = None
    else:
        missing = [p for p in POLLUTANTS if p not in index_terms]
        out["comprehensive_index"] = None
        out["index_note"] = f"no valid annual value for {', '.join(missing)}"
    known = [a for a in attain.values() if a is not None]
    out["attains"] = (
        None if len(known) < len(POLLUTANTS) else all(known)
    )  # 达标: all six pollutants
    cats: Counter[int] = Counter()
    for d in days:
        aqi, cat = _aqi_of(d, ed)
        if aqi is not None and cat is not None:
            cats[cat] += 1
    valid = sum(cats.values())
    good = cats[1] + cats[2]
    out["good_days"] = {
        "good": good,
        "valid": valid,
        "ratio": good / valid if valid else None,
        "by_category": {aqi_std.CATEGORIES[c - 1].level: cats.get(c, 0) for c in range(1, 7)},
        "heavy_or_worse": cats[5] + cats[6],
    }
    out["dust_days"] = dust_days
    out["invalid_days"] = elapsed - valid
    return out


def rank(values: Iterable[tuple[str, float | None]]) -> dict[str, int | None]:
    """Competition ranking, smaller first; equal at two decimals = the same rank (并列).

    Units without a value are listed with rank ``None``.
    """
    items = list(values)
    ranked = sorted(
        ((k, round(v, RANK_DECIMALS)) for k, v in items if v is not None), key=lambda kv: kv[1]
    )
    out: dict[str, int | None] = {k: None for k, v in items if v is None}
    prev: float | None = None
    current = 0
    for i, (k, v) in enumerate(ranked, 1):
        if v != prev:
            current, prev = i, v
        out[k] = current
    return out


# -- loading ------------------------------------------------------------------------------


def _row_values(r: Sequence[Any]) -> dict[str, float | None]:
    return {c: (None if v is None else float(v)) for c, v in zip(DAILY_COLUMNS, r, strict=True)}


async def load_station_days(conn: Conn, start: date, end: date) -> dict[str, list[Day]]:
    cols = ", ".join(f"d.{c}" for c in DAILY_COLUMNS)
    cur = await conn.execute(
        f"SELECT d.station_id, d.day, {cols}, d.aqi, d.category, d.edition,"
        f" {_DUST_SQL.format(region='r.region')}"
        f" FROM air_day d JOIN station s ON s.id = d.station_id"
        f" LEFT JOIN {_CITY_REGION_SQL} ON r.city = s.city"
        " WHERE s.kind = 'air' AND d.day >= %s AND d.day < %s ORDER BY d.station_id, d.day",
        (start, end),
    )
    out: dict[str, list[Day]] = defaultdict(list)
    n = len(DAILY_COLUMNS)
    for r in await cur.fetchall():
        out[r[0]].append(
            Day(r[1], _row_values(r[2 : 2 + n]), bool(r[-1]), r[2 + n], r[3 + n], r[4 + n])
        )
    return dict(out)


async def load_county_days(conn: Conn, start: date, end: date) -> dict[str, list[Day]]:
    avgs = ", ".join(f"avg(d.{c})" for c in DAILY_COLUMNS)
    cur = await conn.execute(
        f"SELECT s.county, d.day, {avgs}, bool_or({_DUST_SQL.format(region='r.region')})"
        f" FROM air_day d JOIN station s ON s.id = d.station_id"
        f" LEFT JOIN {_CITY_REGION_SQL} ON r.city = s.city"
        " WHERE s.kind = 'air' AND s.assessed AND d.day >= %s AND d.day < %s"
        " GROUP BY s.county, d.day ORDER BY s.county, d.day",
        (start, end),
    )
    out: dict[str, list[Day]] = defaultdict(list)
    n = len(DAILY_COLUMNS)
    for r in await cur.fetchall():
        out[r[0]].append(Day(r[1], _row_values(r[2 : 2 + n]), bool(r[-1])))
    return dict(out)


async def zone_dust_free(conn: Conn, start: date, end: date) -> dict[date, dict[str, float | None]]:
    """The zone's dust-deducted PM10/PM2.5 on the days some city has dust: the exact
    mean of the evaluation points of the cities without dust, rounded per GB/T 8170.
    Days without dust are absent (the zone value stands)."""
    cur = await conn.execute(
        "SELECT d.day, sum(d.pm10::numeric), count(d.pm10), sum(d.pm25::numeric),"
        f" count(d.pm25), {_DUST_SQL.format(region='r.region')}"
        f" FROM air_day d JOIN station s ON s.id = d.station_id JOIN {_CITY_REGION_SQL}"
        " ON r.city = s.city WHERE s.kind = 'air' AND s.evaluation_point"
        " AND d.day >= %s AND d.day < %s GROUP BY d.day, r.region",
        (start, end),
    )
    acc: dict[date, list[Any]] = {}
    dusty: set[date] = set()
    for day, s10, n10, s25, n25, dust in await cur.fetchall():
        a = acc.setdefault(day, [Decimal(0), 0, Decimal(0), 0])
        if dust:
            dusty.add(day)
        else:
            a[0] += s10 or 0
            a[1] += n10
            a[2] += s25 or 0
            a[3] += n25
    return {
        day: {
            "pm10": published("pm10", a[0] / a[1]) if a[1] else None,
            "pm25": published("pm25", a[2] / a[3]) if a[3] else None,
        }
        for day, a in acc.items()
        if day in dusty
    }


DustUnit = Literal["day", "hour"]
"""What a dust period deducts (issue 15): ``day`` (default) — every PM value of a day
the period touches (CNEMC deducts affected data during audit; its unit is not
public, and whole days are what its published city figures allow to check);
``hour`` — only the hours inside the period: a station's day keeps its PM2.5 mean
over the other hours when >= 20 remain (GB 3095 Table 4), else it is deducted."""


async def hourly_dust_free_pm25(
    conn: Conn, start: date, end: date
) -> dict[tuple[str, date], float | None]:
    """Per region and dusty day: PM2.5 over the evaluation points' hours outside dust."""
    cur = await conn.execute(
        "SELECT r.region, bj_day(h.ts) AS day, h.station_id,"
        " avg(h.pm25::numeric) FILTER (WHERE NOT x.dust),"
        " count(h.pm25) FILTER (WHERE NOT x.dust), bool_or(x.dust)"
        f" FROM air_hour h JOIN station s ON s.id = h.station_id JOIN {_CITY_REGION_SQL}"
        " ON r.city = s.city CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM dust_period p"
        "  WHERE p.region IN (r.region, 'zone') AND p.starts_at < h.ts + interval '1 hour'"
        "  AND p.ends_at > h.ts) AS dust) x"
        " WHERE s.kind = 'air' AND s.evaluation_point"
        " AND h.ts >= bj_day_start(%s::date)"
        " AND h.ts < bj_day_start(%s::date)"
        " GROUP BY 1, 2, 3",
        (start, end),
    )
    per: dict[tuple[str, date], list[Decimal]] = defaultdict(list)
    dusty: set[tuple[str, date]] = set()
    for region, day, _sid, mean, n, any_dust in await cur.fetchall():
        for unit in (region, "zone"):
            if any_dust:
                dusty.add((unit, day))
            if validity.day_valid(int(n)) and mean is not None:
                value = published("pm25", mean)
                assert value is not None
                per[unit, day].append(Decimal(str(value)))
    out: dict[tuple[str, date], float | None] = {}
    for key in dusty:  # (city, day) and ("zone", day) of every day a point had dust
        vals = per.get(key, [])
        out[key] = published("pm25", sum(vals) / len(vals)) if vals else None
    return out


async def load_region_days(conn: Conn, start: date, end: date) -> dict[str, list[Day]]:
    cols = ", ".join(f"d.{c}" for c in DAILY_COLUMNS)
    cur = await conn.execute(
        f"SELECT d.region, d.day, {cols}, d.aqi, d.category, d.edition,"
        f" {_DUST_SQL.format(region='d.region')}"
        " FROM region_day d WHERE d.day >= %s AND d.day < %s ORDER BY d.region, d.day",
        (start, end),
    )
    out: dict[str, list[Day]] = defaultdict(list)
    n = len(DAILY_COLUMNS)
    zone_free = await zone_dust_free(conn, start, end)
    for r in await cur.fetchall():
        values = _row_values(r[2 : 2 + n])
        free = zone_free.get(r[1]) if r[0] == "zone" else None
        # The zone is a dust day when no city's PM2.5 is left after the deduction.
        dust = (
            values.get("pm25") is not None and free.get("pm25") is None
            if free is not None
            else bool(r[-1])
        )
        out[r[0]].append(Day(r[1], values, dust, r[2 + n], r[3 + n], r[4 + n], free))
    return dict(out)


async def load_units(conn: Conn) -> list[Unit]:
    cur = await conn.execute(
        "SELECT id, name, city, county, assessed FROM station WHERE kind = 'air' ORDER BY id"
    )
    stations = [Unit("station", r[0], r[1], r[2], r[3], bool(r[4])) for r in await cur.fetchall()]
    counties = sorted({(u.county or "", u.city or "") for u in stations if u.assessed})
    return (
        [Unit("region", r, REGION_NAMES[r]) for r in REGIONS]
        + [Unit("county", c, c, city, c) for c, city in counties]
        + stations
    )


def year_window(year: int, as_of: date | None) -> tuple[date, date, int]:
    """[start, cutoff) of the year's data up to ``as_of`` and the days it spans."""
    start, end = date(year, 1, 1), date(year + 1, 1, 1)
    cutoff = end if as_of is None else max(start, min(as_of + timedelta(days=1), end))
    return start, cutoff, (cutoff - start).days


async def annual_report(
    conn: Conn,
    year: int,
    *,
    editions: Sequence[int] | None = None,
    as_of: date | None = None,
) -> dict[str, Any]:
    """Statistics of every region, county and air station, per edition, with rankings."""
    eds = [check_edition(e) for e in editions] if editions else editions_of_year(year)
    start, cutoff, elapsed = year_window(year, as_of)
    units = await load_units(conn)
    days: dict[UnitKind, dict[str, list[Day]]] = {
        "region": await load_region_days(conn, start, cutoff),
        "county": await load_county_days(conn, start, cutoff),
        "station": await load_station_days(conn, start, cutoff),
    }
    by_edition: dict[str, Any] = {}
    for ed in eds:
        groups: dict[UnitKind, list[dict[str, Any]]] = {"region": [], "county": [], "station": []}
        for u in units:
            st = annual_statistics(
                days[u.kind].get(u.id, []), year=year, edition=ed, days_elapsed=elapsed
            )
            groups[u.kind].append(
                {
                    "kind": u.kind,
                    "id": u.id,
                    "name": u.name,
                    "city": u.city,
                    "county": u.county,
                    "assessed": u.assessed,
                    **st,
                }
            )
        ranked_kinds: tuple[UnitKind, ...] = ("county", "station")
        for kind in ranked_kinds:
            ranks = rank(
                [(g["id"], g["comprehensive_index"]) for g in groups[kind] if g["assessed"]]
            )
            for g in groups[kind]:
                g["rank"] = ranks.get(g["id"])
        by_edition[str(ed)] = {
            "regions": groups["region"],
            "counties": groups["county"],
            "stations": groups["station"],
        }
    return {
        "year": year,
        "from": start.isoformat(),
        "to": (cutoff - timedelta(days=1)).isoformat(),
        "days_elapsed": elapsed,
        "editions": eds,
        "dust_rule": "PM10/PM2.5 statistics and the comprehensive index are dust-deducted; "
        "the good-day ratio keeps dust days (CNEMC convention)",
        "by_edition": by_edition,
    }
