"""The AQI of a chunk's derived air hours and station-days, computed in bulk.

The derive (:mod:`envmon.evaluate.derive`) puts a chunk's hours in the temp table
``air_hour_calc`` (SQL: the means, moving means and published concentrations);
:func:`derive_station_days` puts its station-days in ``air_day_calc`` (SQL: the daily
values, GB 3095 validity, GB/T 8170 rounding). The published values of all rows come
out packed into one ``bytea`` (a COPY out would be one message, and one Python call,
a row) and are read by numpy; :mod:`envmon.standards.aqi_bulk` computes the reports of
all rows at once; the AQI, category and primary-pollutant mask (of a day also
``complete`` and each IAQI) go back by binary COPY, joined to the rows by their
number ``n``. The numbers are those of the scalar :func:`~envmon.standards.aqi.hourly_aqi`
and :func:`~envmon.standards.aqi.daily_aqi` (tests/evaluate: every stored hour and day
is compared with them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

from envmon.db.copy_binary import HEADER, TRAILER
from envmon.standards import validity
from envmon.standards.aqi import POLLUTANTS
from envmon.standards.aqi_bulk import (
    DAILY_KEYS,
    NA,
    PRIMARY_LISTS,
    daily_aqi_bulk,
    hourly_aqi_bulk,
)
from envmon.standards.editions import EDITION_2026_FROM
from envmon.standards.limits import limit
from envmon.standards.rounding import published_places
from envmon.timeutil import day_start

Conn = AsyncConnection[TupleRow]
Array = npt.NDArray[Any]

# The rows of a chunk before their AQI, numbered (n) to join the AQI back; the AQI of
# the hours and of the days (NA = -1; air_day_aqi: one IAQI column per daily indicator).
# Emptied for each chunk of a transaction: the hours' (~20,000 rows a month of 26
# stations) by TRUNCATE, the few days' by DELETE, which costs less than a TRUNCATE's
# new files (~0.5 ms a table: a one-hour derive is ~60 ms).
CALC_DDL: Final = """
CREATE TEMP TABLE IF NOT EXISTS air_hour_calc (
    n int4, station_id text, ts timestamptz,
    so2 float8, no2 float8, co float8, o3 float8, pm10 float8, pm25 float8,
    o3_8h float8, pm10_24h float8, pm25_24h float8, so2_24h float8,
    p_so2 float8, p_no2 float8, p_co float8, p_o3 float8, p_pm10 float8, p_pm25 float8,
    p_so2_24h float8, edition int2
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS air_hour_aqi (
    n int4, aqi int2, category int2, prim int2
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS air_day_calc (
    n int4, station_id text, day date,
    so2 float8, no2 float8, co float8, pm10 float8, pm25 float8, o3_1h_max float8,
    o3_8h_max float8, n_so2 int2, n_no2 int2, n_co int2, n_o3 int2, n_pm10 int2,
    n_pm25 int2, n_o3_8h int2, edition int2
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS air_day_aqi (
    n int4, aqi int2, category int2, prim int2, complete bool, IAQI_COLUMNS
) ON COMMIT DELETE ROWS;
TRUNCATE air_hour_calc, air_hour_aqi;
DELETE FROM air_day_calc;
DELETE FROM air_day_aqi
""".replace("IAQI_COLUMNS", ", ".join(f"{k} int2" for k in DAILY_KEYS))

# The primary-pollutant mask as a text[] literal, by mask (standards.aqi_bulk.PRIMARY_LISTS).
PRIMARY_TEXT: Final = ["{" + ",".join(p) + "}" for p in PRIMARY_LISTS]

Packed = Literal["int4", "bool", "float8", "date"]
# Each type's send function (the binary COPY format of one value) and its numpy type;
# a date is the days since 2000-01-01.
_SEND: Final[Mapping[Packed, tuple[str, str]]] = {
    "int4": ("int4send({})", ">i4"),
    "bool": ("boolsend({})", "?"),
    "float8": ("float8send(coalesce({}, 'NaN'))", ">f8"),  # NaN = missing
    "date": ("date_send({})", ">i4"),
}
_PG_EPOCH_DAY: Final = date(2000, 1, 1).toordinal()


class _PackedQuery:
    """One query packing chosen columns of every row of a table, in row-number order,
    into one ``bytea``, and the numpy record that reads it back."""

    def __init__(self, table: str, fields: Sequence[tuple[str, Packed, str]]) -> None:
        packed = " || ".join(_SEND[kind][0].format(expr) for _, kind, expr in fields)
        self.query = sql.SQL("SELECT string_agg({}, ''::bytea ORDER BY n) FROM {}").format(
            sql.SQL(packed), sql.Identifier(table)
        )
        self.dtype = np.dtype([(name, _SEND[kind][1]) for name, kind, _ in fields])
        self.table = table

    async def rows(self, conn: Conn, params: Mapping[str, Any], count: int) -> Array:
        """The ``count`` rows of the table (as the statement that filled it said)."""
        cur = conn.cursor(binary=True)
        await cur.execute(self.query, params)
        row = await cur.fetchone()
        data = (row[0] if row else None) or b""
        if len(data) != count * self.dtype.itemsize:  # pragma: no cover
            raise AssertionError(f"{self.table}: {len(data)} bytes packed for {count} rows")
        return np.frombuffer(data, dtype=self.dtype)


async def _copy_in(conn: Conn, table: str, columns: Mapping[str, tuple[str, Array]]) -> None:
    """A binary COPY of equal-length columns (name → (numpy type, values)) into ``table``."""
    record = np.dtype(
        [("nf", ">i2")]
        + [x for name, (kind, _) in columns.items() for x in ((f"l_{name}", ">i4"), (name, kind))]
    )
    n = len(next(iter(columns.values()))[1])
    out = np.empty(n, dtype=record)
    out["nf"] = len(columns)
    for name, (_, values) in columns.items():
        out[f"l_{name}"] = record[name].itemsize
        out[name] = values
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    async with conn.cursor().copy(statement) as copy:
        await copy.write(HEADER + out.tobytes() + TRAILER)


def _report_inputs(
    rows: Array, keys: Sequence[str], not_monitored: Mapping[int, Sequence[str]]
) -> tuple[dict[str, Array], Array, dict[str, Array]]:
    """The arguments of ``aqi_bulk``'s reports for packed rows with the fields ``s``
    (station position), ``e`` (edition 2026) and ``keys`` (published values)."""
    nm = {p: np.zeros(len(rows), dtype=bool) for p in POLLUTANTS}
    for position, pollutants in not_monitored.items():
        at = rows["s"] == position
        for p in pollutants:
            nm[p] |= at
    return {k: rows[k].astype(np.float64) for k in keys}, rows["e"].astype(bool), nm


def _aqi_columns(aqi: Array, category: Array, mask: Array) -> dict[str, tuple[str, Array]]:
    """The columns of a report's AQI for :func:`_copy_in`, rows numbered from 1 (NA = -1)."""
    return {
        "n": (">i4", np.arange(1, len(aqi) + 1)),
        "aqi": (">i2", aqi),
        "category": (">i2", category),
        "prim": (">i2", mask),
    }


_STATION: Final = ("s", "int4", "array_position(%(stations)s::text[], station_id)")
_HOUR_INPUT_KEYS: Final = ("so2_1h", "no2_1h", "co_1h", "o3_1h", "pm10_1h", "pm25_1h", "so2_24h")
# What the AQI needs of each hour: its station's position, edition, published values.
_HOUR_INPUTS: Final = _PackedQuery(
    "air_hour_calc",
    [
        _STATION,
        ("e", "bool", "edition = 2026"),
        *((k, "float8", "p_" + k.removesuffix("_1h")) for k in _HOUR_INPUT_KEYS),
    ],
)


async def hour_aqi(
    conn: Conn, stations: Sequence[str], not_monitored: Mapping[int, Sequence[str]], count: int
) -> None:
    """The AQI, category and primary pollutants of the ``count`` hours of ``air_hour_calc``
    into ``air_hour_aqi``: those of :func:`~envmon.evaluate.derive.hourly_mapping` and
    ``aqi.hourly_aqi``. ``not_monitored`` maps a station's position in ``stations``
    (from 1) to the pollutants outside its programme."""
    rows = await _HOUR_INPUTS.rows(conn, {"stations": stations}, count)
    res = hourly_aqi_bulk(*_report_inputs(rows, _HOUR_INPUT_KEYS, not_monitored))
    await _copy_in(conn, "air_hour_aqi", _aqi_columns(res.aqi, res.category, res.primary_mask))


# The station-days of a chunk, published as stored: GB 3095 Table 4 validity (an invalid
# value is NULL, never 0), then the exact (numeric) mean rounded per GB/T 8170.
_DAY_CALC_SQL: Final = """
INSERT INTO air_day_calc
SELECT row_number() OVER (), d.station_id, day,
       CASE WHEN n_so2 >= {day_min} THEN gbt8170(so2, {so2}) END,
       CASE WHEN n_no2 >= {day_min} THEN gbt8170(no2, {no2}) END,
       CASE WHEN n_co >= {day_min} THEN gbt8170(co, {co}) END,
       CASE WHEN n_pm10 >= {day_min} THEN gbt8170(pm10, {pm10}) END,
       CASE WHEN n_pm25 >= {day_min} THEN gbt8170(pm25, {pm25}) END,
       CASE WHEN n_o3 >= {day_min} THEN gbt8170(o3_max, {o3}) END,
       -- HJ 663 §6.1.2: MDA8 needs >= 14 valid 8-h values, unless it exceeds the limit.
       CASE WHEN n_o3_8h >= {mda8_min} OR mda8 > l.o3_limit THEN gbt8170(mda8, {o3}) END,
       n_so2, n_no2, n_co, n_o3, n_pm10, n_pm25, n_o3_8h,
       CASE WHEN day >= %(edition_2026)s THEN 2026 ELSE 2012 END
FROM (
    SELECT station_id, bj_day(ts) AS day,
           -- numeric: exact decimal means (a float mean of 0.1, 0.2, 0.3 is not 0.2).
           avg(so2::numeric) AS so2, avg(no2::numeric) AS no2, avg(co::numeric) AS co,
           avg(pm10::numeric) AS pm10, avg(pm25::numeric) AS pm25, max(o3::numeric) AS o3_max,
           -- MDA8 windows of a natural day: those ending 08:00 … 24:00, i.e. the
           -- trailing 8-h means stamped 07:00 … 23:00 (17 windows, all inside the day).
           max(o3_8h::numeric) FILTER (WHERE extract(hour FROM bj_time(ts)) >= 7) AS mda8,
           count(so2) AS n_so2, count(no2) AS n_no2, count(co) AS n_co, count(o3) AS n_o3,
           count(pm10) AS n_pm10, count(pm25) AS n_pm25,
           count(o3_8h) FILTER (WHERE extract(hour FROM bj_time(ts)) >= 7) AS n_o3_8h
    FROM air_hour
    WHERE station_id = ANY(%(stations)s) AND ts >= %(lo)s AND ts < %(hi)s
    GROUP BY 1, 2
) d
JOIN unnest(%(days)s::date[], %(o3_limits)s::numeric[]) AS l(day, o3_limit) USING (day)
""".format(
    day_min=validity.DAY_MIN_HOURS,
    mda8_min=validity.MDA8_MIN_WINDOWS,
    **{p: published_places(p) for p in ("so2", "no2", "co", "pm10", "pm25", "o3")},
)
# The daily report's indicators and the air_day_calc column of each.
_DAY_COLUMNS: Final = dict(
    zip(DAILY_KEYS, ("so2", "no2", "pm10", "pm25", "co", "o3_1h_max", "o3_8h_max"), strict=True)
)
assert all(_DAY_COLUMNS[k].startswith(k.split("_", 1)[0]) for k in DAILY_KEYS)
# What the AQI needs of each station-day: its station's position, day, edition, values.
_DAY_INPUTS: Final = _PackedQuery(
    "air_day_calc",
    [
        _STATION,
        ("d", "date", "day"),
        ("e", "bool", "edition = 2026"),
        *((k, "float8", column) for k, column in _DAY_COLUMNS.items()),
    ],
)
_DAY_STORE: Final = """
INSERT INTO air_day (station_id, day, so2, no2, co, pm10, pm25, o3_1h_max, o3_8h_max,
                     n_so2, n_no2, n_co, n_o3, n_pm10, n_pm25, n_o3_8h, aqi, category,
                     primary_pollutants, iaqi, complete, edition)
SELECT c.station_id, c.day, c.so2, c.no2, c.co, c.pm10, c.pm25, c.o3_1h_max, c.o3_8h_max,
       c.n_so2, c.n_no2, c.n_co, c.n_o3, c.n_pm10, c.n_pm25, c.n_o3_8h,
       nullif(a.aqi, -1), nullif(a.category, -1), (%(primary)s::text[])[a.prim + 1]::text[],
       jsonb_strip_nulls(jsonb_build_object(IAQI_PAIRS)), a.complete, c.edition
FROM air_day_calc c JOIN air_day_aqi a USING (n)
""".replace("IAQI_PAIRS", ", ".join(f"'{k}', nullif(a.{k}, {NA})" for k in DAILY_KEYS))


async def derive_station_days(
    conn: Conn,
    stations: Sequence[str],
    first: date,
    last: date,
    not_monitored: Mapping[int, Sequence[str]],
) -> tuple[int, list[date]]:
    """Store the daily values and AQI of ``stations`` for the days first … last (their
    hours are stored already); returns how many station-days, and their days.

    ``not_monitored`` as for :func:`hour_aqi`. The values and the AQI are those of
    :func:`~envmon.evaluate.derive.station_day_values` and
    :func:`~envmon.evaluate.derive.aqi_columns` (the scalar reference), computed for all
    the station-days at once.
    """
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    cur = await conn.execute(
        _DAY_CALC_SQL,
        {
            "stations": stations,
            "lo": day_start(first),
            "hi": day_start(last + timedelta(days=1)),
            "days": days,
            # The exact limit, as validity.mda8_valid compares it (a float's decimal string).
            "o3_limits": [Decimal(repr(limit("o3_8h", d))) for d in days],
            "edition_2026": EDITION_2026_FROM,
        },
    )
    rows = await _DAY_INPUTS.rows(conn, {"stations": stations}, cur.rowcount)
    res = daily_aqi_bulk(*_report_inputs(rows, DAILY_KEYS, not_monitored))
    await _copy_in(
        conn,
        "air_day_aqi",
        {
            **_aqi_columns(res.aqi, res.category, res.primary_mask),
            "complete": ("?", res.complete),
            **{k: (">i2", res.iaqi[k]) for k in DAILY_KEYS},
        },
    )
    await conn.execute(
        "DELETE FROM air_day WHERE station_id = ANY(%s) AND day >= %s AND day <= %s",
        (stations, first, last),
    )
    await conn.execute(_DAY_STORE, {"primary": PRIMARY_TEXT})
    return len(rows), [date.fromordinal(_PG_EPOCH_DAY + int(d)) for d in np.unique(rows["d"])]
