"""Derived tables, kept up to date incrementally.

The writer queues every (station, Beijing day) whose readings changed in
``derive_dirty``. ``process_dirty`` recomputes exactly what those days touch:

* air: the hourly values of the day and of the next day (whose 8-h and 24-h
  moving windows reach back into it), the station's daily values, and the
  city and zone values of the day;
* water: the section's daily means of the day, the monthly means and classes of
  its month.

Concentration statistics are SQL (set-based, identical on PostgreSQL and
TimescaleDB); AQI and water classes come from ``envmon.standards`` (exact
arithmetic), for the edition in force on each day — an air station's hours and
days for a whole chunk at once (:mod:`envmon.evaluate.air_bulk`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from envmon.evaluate import air_bulk
from envmon.log import evaluate_logger as logger
from envmon.parameters import PARAMETERS
from envmon.review import invalid_filter
from envmon.standards import aqi as aqi_std
from envmon.standards import validity
from envmon.standards import water as water_std
from envmon.standards.editions import EDITION_2026_FROM
from envmon.standards.limits import limit
from envmon.standards.rounding import (
    Number,
    round_published,
    to_decimal,
)
from envmon.timeutil import day_start

Conn = AsyncConnection[TupleRow]
Pool = AsyncConnectionPool[Conn]

# HJ 212 data flags that count as valid measurements in statistics: N (normal)
# and T (above the analyser's range: the true value is at least that high).
# F, M, S, D, C, B (stopped, maintenance, manual, fault, calibration, comms
# failure) are excluded (HJ 818 / GB 3095 §6.3: invalid data are not averaged).
VALID_FLAGS = ["N", "T"]
AIR = ("so2", "no2", "co", "o3", "pm10", "pm25")
# GB 3838 classifies the 21 evaluated indicators and TN (a reference indicator
# for rivers, still given its class); temperature and the rest are not classified.
WATER_CLASSIFIED = frozenset(water_std.EVALUATED) | {"tn"}
WATER_SECTION = frozenset(water_std.EVALUATED) | frozenset(water_std.REFERENCE)
CHUNK_DAYS = 31

_HOURS_SQL = """
WITH src AS (
    -- A valid hourly reading is the hour's value (one per key: no DISTINCT, whose
    -- sort was a third of the query)...
    SELECT station_id, parameter, ts AS hour, value::numeric AS value
    FROM reading
    WHERE period = '1h' AND flag = ANY(%(flags)s) AND station_id = ANY(%(stations)s)
      AND parameter = ANY(%(params)s) AND ts >= %(lo)s AND ts < %(hi)s
      AND NOT_INVALID
    UNION ALL
    -- ... else the mean of its 1-min values; GB 3095 Table 4: an hourly mean
    -- needs >= 45 minutes of data.
    SELECT * FROM (
        SELECT station_id, parameter, time_bucket('1 hour', ts) AS hour,
               avg(value::numeric) AS value
        FROM reading
        WHERE period = '1min' AND flag = ANY(%(flags)s) AND station_id = ANY(%(stations)s)
          AND parameter = ANY(%(params)s) AND ts >= %(lo)s AND ts < %(hi)s
          AND NOT_INVALID
        GROUP BY 1, 2, 3
        HAVING count(*) >= 45
    ) m
    WHERE NOT EXISTS (
        SELECT 1 FROM reading
        WHERE reading.station_id = m.station_id AND reading.parameter = m.parameter
          AND reading.period = '1h' AND reading.ts = m.hour AND reading.flag = ANY(%(flags)s)
          AND reading.ts >= %(lo)s AND reading.ts < %(hi)s  -- (the chunks, when planned)
          AND NOT_INVALID
    )
), wide AS (
    SELECT station_id, hour AS ts,
           max(value) FILTER (WHERE parameter = 'so2') AS so2,
           max(value) FILTER (WHERE parameter = 'no2') AS no2,
           max(value) FILTER (WHERE parameter = 'co') AS co,
           max(value) FILTER (WHERE parameter = 'o3') AS o3,
           max(value) FILTER (WHERE parameter = 'pm10') AS pm10,
           max(value) FILTER (WHERE parameter = 'pm25') AS pm25
    FROM src GROUP BY station_id, hour
), moving AS (
    SELECT *,
           -- GB 3095 Table 4: an 8-h mean needs >= 6 hourly values.
           CASE WHEN count(o3) OVER w8 >= 6 THEN avg(o3) OVER w8 END AS o3_8h,
           CASE WHEN count(pm10) OVER w24 >= 20 THEN avg(pm10) OVER w24 END AS pm10_24h,
           CASE WHEN count(pm25) OVER w24 >= 20 THEN avg(pm25) OVER w24 END AS pm25_24h,
           CASE WHEN count(so2) OVER w24 >= 20 THEN avg(so2) OVER w24 END AS so2_24h
    FROM wide
    WINDOW w8 AS (PARTITION BY station_id ORDER BY ts
                  RANGE BETWEEN interval '7 hours' PRECEDING AND CURRENT ROW),
           w24 AS (PARTITION BY station_id ORDER BY ts
                   RANGE BETWEEN interval '23 hours' PRECEDING AND CURRENT ROW)
)
INSERT INTO air_hour_calc
SELECT row_number() OVER (), station_id, ts,
       so2, no2, co, o3, pm10, pm25, o3_8h, pm10_24h, pm25_24h, so2_24h,
       -- The real-time AQI's inputs: GB/T 8170 to the published precision, exact.
       gbt8170(so2, 0), gbt8170(no2, 0), gbt8170(co, 1), gbt8170(o3, 0), gbt8170(pm10, 0),
       gbt8170(pm25, 0), gbt8170(so2_24h, 0),
       CASE WHEN ts >= %(edition_2026)s THEN 2026 ELSE 2012 END
FROM moving WHERE ts >= %(out_lo)s
"""
_HOUR_STORE = """
INSERT INTO air_hour (station_id, ts, so2, no2, co, o3, pm10, pm25, o3_8h, pm10_24h,
                      pm25_24h, so2_24h, aqi, category, primary_pollutants, edition)
SELECT c.station_id, c.ts, c.so2, c.no2, c.co, c.o3, c.pm10, c.pm25, c.o3_8h, c.pm10_24h,
       c.pm25_24h, c.so2_24h, nullif(a.aqi, -1), nullif(a.category, -1),
       (%(primary)s::text[])[a.prim + 1]::text[], c.edition
FROM air_hour_calc c JOIN air_hour_aqi a USING (n)
"""
# Reviewed data only: readings a reviewer invalidated (envmon.review) drop out.
_HOURS_SQL_TEMPLATE = _HOURS_SQL
_HOURS_SQL = _HOURS_SQL_TEMPLATE.replace("NOT_INVALID", invalid_filter("reading"))
# The same where no reading of the chunk is invalidated (most of them): the review
# filter is an index probe per reading (~1 µs), a tenth of a one-hour derive's query.
_HOURS_SQL_UNREVIEWED = _HOURS_SQL_TEMPLATE.replace("NOT_INVALID", "true")
_ANY_INVALID = (
    "SELECT EXISTS (SELECT 1 FROM review_mark WHERE restored_at IS NULL"
    " AND station_id = ANY(%s) AND ts >= %s AND ts < %s)"
)

# City and zone values (HJ 663): the exact mean of the evaluation points' published
# daily values (catalog field evaluation_point: clean-control points and
# provincial/municipal points are not city points).
_REGION_SQL = """
SELECT coalesce(r.region, 'zone'), d.day,
       avg(d.so2::numeric), avg(d.no2::numeric), avg(d.co::numeric), avg(d.pm10::numeric),
       avg(d.pm25::numeric), avg(d.o3_1h_max::numeric), avg(d.o3_8h_max::numeric), count(*)
FROM air_day d
JOIN station s ON s.id = d.station_id
JOIN (VALUES ('太原市', 'taiyuan'), ('忻州市', 'xinzhou')) AS r(city, region) ON r.city = s.city
WHERE s.kind = 'air' AND s.evaluation_point AND d.day = ANY(%(days)s)
GROUP BY GROUPING SETS ((r.region, d.day), (d.day))
"""


@dataclass
class DeriveStats:
    station_days: int = 0
    air_hours: int = 0
    air_days: int = 0
    region_days: int = 0
    water_days: int = 0
    water_months: int = 0

    def __iadd__(self, o: DeriveStats) -> DeriveStats:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(o, k))
        return self


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _dec(v: Any) -> Decimal | None:
    """An exact value from the database (numeric → Decimal; a double via its decimal string)."""
    if v is None:
        return None
    return v if isinstance(v, Decimal) else to_decimal(v)


def published(pollutant: str, v: Any) -> float | None:
    """An exact concentration rounded per GB/T 8170 to its published precision, as stored.

    The float of a value with at most a few decimals reads back as the same
    decimal string, so the stored double is the published number exactly.
    """
    r = round_published(pollutant, _dec(v))
    return None if r is None else float(r)


HOURLY_ROW = ("so2", "no2", "co", "o3", "pm10", "pm25", "o3_8h", "pm10_24h", "pm25_24h", "so2_24h")


_EDITION_2026_START = day_start(EDITION_2026_FROM)


def hourly_mapping(row: Sequence[Any], edition: int) -> dict[str, Decimal | None]:
    """The real-time report's indicators for one hour, as the national platform publishes them.

    Both editions: 1-h SO2/NO2/CO/O3/PM10/PM2.5 rounded to the published precision
    (PM against the 24-h breakpoints, no O3 8-h); 2012 also the SO2 24-h mean,
    read only when SO2 1-h > 800 (HJ 633-2012 Table 1 note 2).
    """
    v = dict(zip(HOURLY_ROW, row, strict=True))
    out: dict[str, Decimal | None] = {
        f"{p}_1h": round_published(p, _dec(v[p]))
        for p in ("so2", "no2", "co", "o3", "pm10", "pm25")
    }
    if edition == 2012:
        out["so2_24h"] = round_published("so2", _dec(v["so2_24h"]))
    return out


def daily_mapping(values: Mapping[str, Number | None]) -> dict[str, Number | None]:
    return {
        "so2_24h": values["so2"],
        "no2_24h": values["no2"],
        "co_24h": values["co"],
        "pm10_24h": values["pm10"],
        "pm25_24h": values["pm25"],
        "o3_1h": values["o3_1h_max"],
        "o3_8h": values["o3_8h_max"],
    }


CityO3 = Literal["city_hourly", "station_mean"]
"""How a city's (and the zone's) O3 daily maximum 8-h value is formed (issue 15).

``city_hourly`` (default): the MDA8 of the city-mean hourly O3 series — the city's
hourly value is the mean of its evaluation points (HJ 663), and the 8-h moving means
and their daily maximum are taken of that series, as the national platform's city
values are (UNCERTAIN: HJ 663 text not read). ``station_mean``: the mean of the
evaluation points' own MDA8s. The two differ when the stations peak at different hours.
"""

# The daily values of a station or region, in the order the SQL returns them.
DAY_VALUES = ("so2", "no2", "co", "pm10", "pm25", "o3_1h_max", "o3_8h_max")


def aqi_columns(
    values: Mapping[str, Number | None], day: date, not_monitored: Iterable[str] = ()
) -> tuple[Any, ...]:
    """The stored AQI columns of a day: aqi, category, primary, iaqi, complete, edition
    (of the regions; a station's days are computed in bulk, ``air_bulk``, equal to this)."""
    ed = aqi_std.edition_for(day)
    res = aqi_std.daily_aqi(daily_mapping(values), edition=ed, not_monitored=not_monitored)
    return (res.aqi, res.category, res.primary, json.dumps(res.iaqi), res.complete, ed)


def daily_result(
    values: Mapping[str, Number | None], day: date, edition: int | None = None
) -> aqi_std.AqiResult:
    return aqi_std.daily_aqi(daily_mapping(values), edition=edition or aqi_std.edition_for(day))


# The queue splits into PARTS by station. A deriver holds the transaction-level
# advisory locks of the parts it claims from (all, or one), in order; the regions
# (city and zone values, which read every station's days) are computed under one
# more lock, so that of two parts deriving the same day, the later sees the
# other's committed days.
PARTS = 2
_PART_LOCK = "SELECT pg_advisory_xact_lock(hashtext('envmon.derive'), %s)"
_REGIONS_LOCK = -1
_IN_PART = "(hashtext(d.station_id)::int8 %% {n} + {n}) %% {n} = %s"
# Only what was claimed and is not being marked again: a reading written since the
# claim re-marked its day (a newer marked_at), one being written holds its row lock.
_UNQUEUE = """
DELETE FROM derive_dirty d USING (
    SELECT x.ctid AS row FROM derive_dirty x
    JOIN unnest(%s::text[], %s::date[], %s::timestamptz[]) AS c(station_id, day, marked_at)
      ON x.station_id = c.station_id AND x.day = c.day AND x.marked_at <= c.marked_at
    FOR UPDATE OF x SKIP LOCKED
) claimed
WHERE d.ctid = claimed.row
RETURNING d.station_id, d.day
"""


async def _claim(
    conn: Conn, limit_rows: int, part: int | None = None
) -> list[tuple[str, date, datetime, str]]:
    where = "" if part is None else " WHERE " + _IN_PART.format(n=PARTS)
    cur = await conn.execute(
        "SELECT d.station_id, d.day, d.marked_at, coalesce(s.kind, '') FROM derive_dirty d"
        " LEFT JOIN station s ON s.id = d.station_id" + where + " ORDER BY d.day, d.station_id"
        " LIMIT %s",
        (limit_rows,) if part is None else (part, limit_rows),
    )
    return [(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]


async def process_dirty(
    conn: Conn,
    *,
    max_station_days: int = 100_000,
    city_o3: CityO3 = "city_hourly",
    part: int | None = None,
) -> DeriveStats:
    """Recompute everything the queued station-days touch; returns what was done.

    One deriver at a time per part of the stations (transaction-level advisory
    locks, :data:`PARTS`): two would write the same derived rows. ``part``
    (0 … PARTS-1) claims only that part's stations, so that two derivers can
    share the work; None claims all. A claimed day that a writer is marking
    again right now stays queued (its row is locked: SKIP LOCKED), so the
    deriver never waits for a writer and the two cannot deadlock.
    """
    total = DeriveStats()
    # Claimed and derived in this call but left queued (a writer held them): not again.
    kept: set[tuple[str, date, datetime]] = set()
    while True:
        async with conn.transaction():
            for k in range(PARTS) if part is None else (part,):
                await conn.execute(_PART_LOCK, (k,))
            claimed = [c for c in await _claim(conn, 5000, part) if c[:3] not in kept]
            if claimed:
                await _derive_claimed(conn, claimed, kept, total, city_o3)
        # Committed also when nothing was claimed: the part locks are the
        # transaction's, and a connection already in a transaction (transaction()
        # is then a savepoint) would keep them, idle, from every other deriver.
        await conn.commit()
        if not claimed:
            break
        total.station_days += len(claimed)
        if total.station_days >= max_station_days:
            break
    if total.station_days:
        logger.info(
            "derived station_days=%d air_hours=%d air_days=%d region_days=%d water_months=%d",
            total.station_days,
            total.air_hours,
            total.air_days,
            total.region_days,
            total.water_months,
        )
    return total


async def _derive_claimed(
    conn: Conn,
    claimed: list[tuple[str, date, datetime, str]],
    kept: set[tuple[str, date, datetime]],
    total: DeriveStats,
    city_o3: CityO3,
) -> None:
    """Derive the claimed station-days and unqueue those no writer marked since."""
    by_kind: dict[str, list[tuple[str, date]]] = defaultdict(list)
    for sid, day, _, kind in claimed:
        by_kind[kind].append((sid, day))
    if by_kind.get(""):
        logger.warning(
            "derive: %d station-days of stations not in the station table "
            "(run 'envmon stations load'), e.g. %s",
            len(by_kind[""]),
            by_kind[""][0][0],
        )
    if by_kind.get("air"):
        total += await derive_air(conn, by_kind["air"], city_o3=city_o3)
    if by_kind.get("water"):
        total += await derive_water(conn, by_kind["water"])
    cur = await conn.execute(
        _UNQUEUE,
        ([c[0] for c in claimed], [c[1] for c in claimed], [c[2] for c in claimed]),
    )
    unqueued = {(r[0], r[1]) for r in await cur.fetchall()}
    kept.update(c[:3] for c in claimed if (c[0], c[1]) not in unqueued)


async def derive_alongside(
    pool: Pool, done: asyncio.Event, *, city_o3: CityO3 = "city_hourly", pause: float = 0.2
) -> DeriveStats:
    """Derive what writers queue while they write, until ``done`` is set and the
    queue is empty (``envmon import``: the days of the chunks already written,
    on the cores the import leaves idle; the rest by :data:`PARTS` derivers at
    once). A day written again after it was derived is queued and derived again."""
    total = DeriveStats()
    async with pool.connection() as conn:
        while not done.is_set():
            total += await process_dirty(conn, city_o3=city_o3)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), pause)
    # The writers are done: what is left, by the parts at once (one backend each).
    for stats in await asyncio.gather(*(_process_part(pool, k, city_o3) for k in range(PARTS))):
        total += stats
    return total


async def _process_part(pool: Pool, part: int, city_o3: CityO3) -> DeriveStats:
    async with pool.connection() as conn:
        return await process_dirty(conn, city_o3=city_o3, part=part)


def _chunks(pairs: Iterable[tuple[str, date]]) -> Iterable[tuple[list[str], date, date]]:
    """Group station-days into ranges of at most CHUNK_DAYS days (set-based SQL)."""
    by_day: dict[date, set[str]] = defaultdict(set)
    for sid, day in pairs:
        by_day[day].add(sid)
    days = sorted(by_day)
    i = 0
    while i < len(days):
        first = days[i]
        j = i
        stations: set[str] = set()
        while j < len(days) and (days[j] - first).days < CHUNK_DAYS:
            stations |= by_day[days[j]]
            j += 1
        yield sorted(stations), first, days[j - 1]
        i = j


async def _not_monitored(conn: Conn, stations: Sequence[str]) -> dict[str, list[str]]:
    """Each station's pollutants outside its programme (catalog ``not_monitored``)."""
    cur = await conn.execute(
        "SELECT id, not_monitored FROM station WHERE id = ANY(%s) AND not_monitored <> '{}'",
        (list(stations),),
    )
    return {r[0]: list(r[1]) for r in await cur.fetchall()}


async def derive_air(
    conn: Conn, pairs: Sequence[tuple[str, date]], *, city_o3: CityO3 = "city_hourly"
) -> DeriveStats:
    stats = DeriveStats()
    touched_days: set[date] = set()
    for stations, first, last in _chunks(pairs):
        out_lo = day_start(first)
        out_hi = day_start(last + timedelta(days=2))  # the next day's moving windows too
        await conn.execute(air_bulk.CALC_DDL)
        lo = out_lo - timedelta(hours=23)
        invalid = await (await conn.execute(_ANY_INVALID, (stations, lo, out_hi))).fetchone()
        cur = await conn.execute(
            _HOURS_SQL if invalid and invalid[0] else _HOURS_SQL_UNREVIEWED,
            {
                "flags": VALID_FLAGS,
                "stations": stations,
                "params": list(AIR),
                "lo": lo,
                "hi": out_hi,
                "out_lo": out_lo,
                "edition_2026": _EDITION_2026_START,
            },
        )
        n_hours = cur.rowcount
        not_monitored = await _not_monitored(conn, stations)
        positions = {stations.index(sid) + 1: nm for sid, nm in not_monitored.items()}
        await air_bulk.hour_aqi(conn, stations, positions, n_hours)
        await conn.execute(
            "DELETE FROM air_hour WHERE station_id = ANY(%s) AND ts >= %s AND ts < %s",
            (stations, out_lo, out_hi),
        )
        await conn.execute(_HOUR_STORE, {"primary": air_bulk.PRIMARY_TEXT})
        stats.air_hours += n_hours

        n_days, days = await air_bulk.derive_station_days(conn, stations, first, last, positions)
        touched_days.update(days)
        stats.air_days += n_days
    await conn.execute(_PART_LOCK, (_REGIONS_LOCK,))
    stats.region_days += await derive_regions(
        conn, sorted(touched_days | {d for _, d in pairs}), city_o3=city_o3
    )
    return stats


def station_day_values(
    raw: Sequence[Any], counts: dict[str, int], day: date
) -> dict[str, float | None]:
    """Published daily values: GB 3095 Table 4 validity (invalid → None, never 0), then
    the exact mean rounded per GB/T 8170 (integers µg/m³, CO 0.1 mg/m³).

    One station-day at a time: the reference that ``air_bulk.derive_station_days``
    (SQL, all station-days of a chunk at once) is tested against."""
    so2, no2, co, pm10, pm25, o3_max, mda8 = (_dec(x) for x in raw)
    ok = validity.day_valid
    o3_limit = limit("o3_8h", day)
    return {
        "so2": published("so2", so2) if ok(counts["so2"]) else None,
        "no2": published("no2", no2) if ok(counts["no2"]) else None,
        "co": published("co", co) if ok(counts["co"]) else None,
        "pm10": published("pm10", pm10) if ok(counts["pm10"]) else None,
        "pm25": published("pm25", pm25) if ok(counts["pm25"]) else None,
        "o3_1h_max": published("o3", o3_max) if ok(counts["o3"]) else None,
        # HJ 663 §6.1.2: MDA8 needs >= 14 valid 8-h values, unless it exceeds the limit.
        "o3_8h_max": published("o3", mda8)
        if mda8 is not None and validity.mda8_valid(counts["o3_8h"], mda8, o3_limit)
        else None,
    }


_CITY_MDA8_SQL = """
WITH city_hour AS (
    SELECT coalesce(r.region, 'zone') AS region, h.ts, avg(h.o3::numeric) AS o3
    FROM air_hour h
    JOIN station s ON s.id = h.station_id
    JOIN (VALUES ('太原市', 'taiyuan'), ('忻州市', 'xinzhou')) AS r(city, region) ON r.city = s.city
    WHERE s.kind = 'air' AND s.evaluation_point AND h.o3 IS NOT NULL
      AND h.ts >= %(lo)s AND h.ts < %(hi)s
    GROUP BY GROUPING SETS ((r.region, h.ts), (h.ts))
), moving AS (
    -- GB 3095 Table 4: an 8-h mean needs >= 6 hourly values.
    SELECT region, ts,
           CASE WHEN count(o3) OVER w8 >= 6 THEN avg(o3) OVER w8 END AS o3_8h
    FROM city_hour
    WINDOW w8 AS (PARTITION BY region ORDER BY ts
                  RANGE BETWEEN interval '7 hours' PRECEDING AND CURRENT ROW)
)
SELECT region, bj_day(ts) AS day, max(o3_8h), count(o3_8h)
FROM moving
WHERE ts >= %(out_lo)s AND extract(hour FROM bj_time(ts)) >= 7
GROUP BY 1, 2
"""


async def _city_mda8(conn: Conn, days: Sequence[date]) -> dict[tuple[str, date], float | None]:
    """The MDA8 of each region's city-mean hourly O3 series (HJ 663 §6.1.2 validity)."""
    first, last = min(days), max(days)
    cur = await conn.execute(
        _CITY_MDA8_SQL,
        {
            "lo": day_start(first) - timedelta(hours=7),
            "hi": day_start(last + timedelta(days=1)),
            "out_lo": day_start(first),
        },
    )
    wanted = set(days)
    out: dict[tuple[str, date], float | None] = {}
    for region, day, mda8, n in await cur.fetchall():
        if day not in wanted:
            continue
        ok = mda8 is not None and validity.mda8_valid(int(n), mda8, limit("o3_8h", day))
        out[region, day] = published("o3", mda8) if ok else None
    return out


async def derive_regions(
    conn: Conn, days: Sequence[date], *, city_o3: CityO3 = "city_hourly"
) -> int:
    if not days:
        return 0
    cur = await conn.execute(_REGION_SQL, {"days": list(days)})
    rows = await cur.fetchall()
    city_mda8 = await _city_mda8(conn, days) if city_o3 == "city_hourly" else None
    await conn.execute("DELETE FROM region_day WHERE day = ANY(%s)", (list(days),))
    async with conn.cursor().copy(
        "COPY region_day (region, day, so2, no2, co, pm10, pm25, o3_1h_max, o3_8h_max,"
        " n_stations, aqi, category, primary_pollutants, iaqi, complete, edition) FROM STDIN"
    ) as copy:
        for r in rows:
            region, day = r[0], r[1]
            values = {k: published(k, x) for k, x in zip(DAY_VALUES, r[2:9], strict=True)}
            if city_mda8 is not None:
                values["o3_8h_max"] = city_mda8.get((region, day))
            await copy.write_row(
                (region, day, *values.values(), int(r[9]), *aqi_columns(values, day))
            )
    return len(rows)


# -- water ------------------------------------------------------------------------------

# Daily means of a set of sections over a range of days. The parameter and
# period lists make the unique index (station_id, parameter, period, ts) serve
# the time range directly; the result is kept only for the queued station-days.
_WATER_DAY_SQL = """
INSERT INTO water_day (station_id, day, parameter, value, n)
SELECT x.station_id, x.day, x.parameter, x.value, x.n
FROM (
    SELECT r.station_id, bj_day(r.ts) AS day, r.parameter,
           avg(r.value::numeric) AS value, count(*) AS n
    FROM reading r
    WHERE r.station_id = ANY(%(stations)s) AND r.parameter = ANY(%(params)s)
      AND r.period = ANY(%(periods)s) AND r.ts >= %(lo)s AND r.ts < %(hi)s
      AND r.flag = ANY(%(flags)s) AND NOT_INVALID_R
    GROUP BY 1, 2, 3
) x
JOIN unnest(%(pair_stations)s::text[], %(pair_days)s::date[]) AS d(station_id, day)
  ON d.station_id = x.station_id AND d.day = x.day
"""
# Reviewed data only: readings a reviewer invalidated (envmon.review) drop out.
_WATER_DAY_SQL = _WATER_DAY_SQL.replace("NOT_INVALID_R", invalid_filter("r"))
WATER_PARAMETERS = [p.code for p in PARAMETERS if p.kind == "water"]
WATER_PERIODS = ["1h", "4h", "1d"]

_WATER_MONTH_SQL = """
SELECT w.station_id, date_trunc('month', w.day)::date, w.parameter, avg(w.value::numeric),
       count(*)
FROM water_day w
JOIN unnest(%(stations)s::text[], %(months)s::date[]) AS m(station_id, month)
  ON m.station_id = w.station_id AND w.day >= m.month AND w.day < (m.month + interval '1 month')
GROUP BY 1, 2, 3
"""


def classify_or_none(parameter: str, value: Number, waterbody: str) -> int | None:
    if parameter not in WATER_CLASSIFIED:
        return None
    return water_std.classify(parameter, value, waterbody=waterbody)


async def derive_water(conn: Conn, pairs: Sequence[tuple[str, date]]) -> DeriveStats:
    stats = DeriveStats()
    stations = [p[0] for p in pairs]
    days = [p[1] for p in pairs]
    await conn.execute(
        "DELETE FROM water_day w USING unnest(%s::text[], %s::date[]) AS d(station_id, day)"
        " WHERE w.station_id = d.station_id AND w.day = d.day",
        (stations, days),
    )
    for chunk_stations, first, last in _chunks(pairs):
        in_chunk = [(s, d) for s, d in pairs if first <= d <= last]
        cur = await conn.execute(
            _WATER_DAY_SQL,
            {
                "stations": chunk_stations,
                "params": WATER_PARAMETERS,
                "periods": WATER_PERIODS,
                "flags": VALID_FLAGS,
                "lo": day_start(first),
                "hi": day_start(last + timedelta(days=1)),
                "pair_stations": [p[0] for p in in_chunk],
                "pair_days": [p[1] for p in in_chunk],
            },
        )
        stats.water_days += cur.rowcount
    months = sorted({(s, d.replace(day=1)) for s, d in pairs})
    m_st = [m[0] for m in months]
    m_mo = [m[1] for m in months]
    info = {
        r[0]: (r[1] or "river", r[2])
        for r in await (
            await conn.execute(
                "SELECT id, waterbody, target_class FROM station WHERE id = ANY(%s)", (m_st,)
            )
        ).fetchall()
    }
    rows = await (
        await conn.execute(_WATER_MONTH_SQL, {"stations": m_st, "months": m_mo})
    ).fetchall()
    await conn.execute(
        "DELETE FROM water_month w USING unnest(%s::text[], %s::date[]) AS m(station_id, month)"
        " WHERE w.station_id = m.station_id AND w.month = m.month",
        (m_st, m_mo),
    )
    await conn.execute(
        "DELETE FROM water_section_month w"
        " USING unnest(%s::text[], %s::date[]) AS m(station_id, month)"
        " WHERE w.station_id = m.station_id AND w.month = m.month",
        (m_st, m_mo),
    )
    per_section: dict[tuple[str, date], dict[str, Decimal]] = defaultdict(dict)
    async with conn.cursor().copy(
        "COPY water_month (station_id, month, parameter, value, n_days, class) FROM STDIN"
    ) as copy:
        for sid, month, param, value, n in rows:
            waterbody = info.get(sid, ("river", None))[0]
            # The exact mean (numeric), rounded per GB/T 8170 to the reported precision,
            # is what is stored, classified and compared: a mean of 0.1, 0.2 and 0.3
            # mg/L TP is 0.2 = class III, not 0.20000000000000004 = class IV.
            exact = water_std.round_reported(param, value)
            cls = classify_or_none(param, exact, waterbody)
            await copy.write_row((sid, month, param, float(exact), int(n), cls))
            per_section[sid, month][param] = exact
    async with conn.cursor().copy(
        "COPY water_section_month (station_id, month, class, target_class, meets_target,"
        " main_pollutants, exceedance) FROM STDIN"
    ) as copy:
        for (sid, month), mapping in per_section.items():
            waterbody, target = info.get(sid, ("river", None))
            evaluated = {k: v for k, v in mapping.items() if k in WATER_SECTION}
            if not evaluated:
                continue
            res = water_std.section_class(evaluated, waterbody=waterbody, target_class=target)
            await copy.write_row(
                (
                    sid,
                    month,
                    res.cls,
                    target,
                    res.meets_target,
                    [m.parameter for m in res.main_pollutants],
                    json.dumps({k: round(v, 3) for k, v in res.exceedance.items()}),
                )
            )
            stats.water_months += 1
    return stats


async def mark_range(
    conn: Conn, start: date, end: date, stations: Sequence[str] | None = None
) -> int:
    """Queue every station-day with readings in [start, end) (a rebuild)."""
    cur = await conn.execute(
        "INSERT INTO derive_dirty (station_id, day)"
        " SELECT DISTINCT station_id, bj_day(ts) FROM reading"
        " WHERE ts >= %s AND ts < %s AND (%s::text[] IS NULL OR station_id = ANY(%s))"
        " ON CONFLICT (station_id, day) DO UPDATE SET marked_at = now()",
        (day_start(start), day_start(end), stations, stations),
    )
    return cur.rowcount
