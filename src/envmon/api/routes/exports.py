"""Exports of derived values for analysts: AQI, HJ 663 statistics, water classes.

* ``/api/v1/export/aqi`` — daily AQI per air station or per region (city, zone),
  or hourly AQI per station: IAQI per pollutant, AQI, category, primary pollutant
  and the concentrations behind them.
* ``/api/v1/export/statistics`` — HJ 663 statistics per station and region:
  ``period=daily`` (the valid daily values), ``monthly`` or ``annual`` (means,
  CO P95, O3 MDA8 P90, comprehensive index, good days).
* ``/api/v1/export/water`` — GB 3838 class per section and month with each
  parameter's monthly mean.

All take ``format=csv|xlsx|parquet`` and ``lang=zh|en`` and stream (see
:mod:`envmon.api.tables`). Stations and regions go by id, pinyin or Chinese name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, timedelta
from typing import Any, Final

from aiohttp import web

from envmon.api.auth import requires
from envmon.api.export import FORMATS, Format
from envmon.api.keys import SETTINGS
from envmon.api.params import Query
from envmon.api.problems import too_large
from envmon.api.routes.common import (
    Conn,
    aqi_scope,
    check_days,
    check_order,
    connection,
    export_slot,
    known_stations,
    station_names,
    stations_of_kind,
)
from envmon.api.routes.evaluation import normalised_query, run_normalised
from envmon.api.tables import LANGS, Column, Lang, Row, Table, stream_table
from envmon.catalog.model import CONTROL_LEVEL_NAMES
from envmon.catalog.names import REGION_NAMES, REGIONS
from envmon.evaluate import annual as annual_stats
from envmon.evaluate.derive import hourly_mapping
from envmon.parameters import BY_CODE, PUBLISHED_DECIMALS
from envmon.standards import aqi as aqi_std
from envmon.standards import water as water_std

CHUNK_ROWS: Final = 5000
POLLUTANT_LABELS: Final = {
    "so2": "SO2",
    "no2": "NO2",
    "pm10": "PM10",
    "pm25": "PM2.5",
    "co": "CO",
    "o3": "O3",
}
_IAQI_KEYS: Final = ("so2", "no2", "pm10", "co", "o3_1h", "o3_8h", "pm25")
_IAQI_LABELS: Final = {
    "so2": "SO2",
    "no2": "NO2",
    "pm10": "PM10",
    "co": "CO",
    "o3_1h": "O3 1h",
    "o3_8h": "O3 8h",
    "pm25": "PM2.5",
}


def conc(code: str, zh: str | None = None, en: str | None = None, key: str | None = None) -> Column:
    """A concentration column of parameter ``code`` with its unit and published precision."""
    p = BY_CODE[code]
    label = POLLUTANT_LABELS.get(code, p.name)
    return Column(
        key or code,
        zh or (label if code in POLLUTANT_LABELS else p.name),
        en or label,
        "float",
        None if p.unit == "1" else p.unit,
        PUBLISHED_DECIMALS[code],
    )


def iaqi_columns() -> tuple[Column, ...]:
    return tuple(
        Column(f"iaqi_{k}", f"{_IAQI_LABELS[k]}分指数", f"IAQI {_IAQI_LABELS[k]}", "int")
        for k in _IAQI_KEYS
    )


def _iaqi_by_pollutant(iaqi: dict[str, Any]) -> list[int | None]:
    """IAQI keys of either edition and resolution (``pm25_24h``, ``pm25_1h``) → the columns."""
    out: dict[str, int] = {}
    for key, value in iaqi.items():
        col = key if key.startswith("o3") else key.split("_", 1)[0]
        out[col] = int(value)
    return [out.get(k) for k in _IAQI_KEYS]


def _primary(primary: Sequence[str] | None) -> str | None:
    return ",".join(POLLUTANT_LABELS.get(p, p) for p in primary) if primary else None


def _category(cat: int | None) -> tuple[str | None, str | None]:
    if cat is None:
        return None, None
    c = aqi_std.CATEGORIES[cat - 1]
    return c.grade, c.level


STATION = (
    Column("station", "站点编号", "station id", "text", width=28),
    Column("station_name", "站点名称", "station name", "text", width=12),
    Column("city", "城市", "city", "text"),
    Column("county", "区县", "county", "text"),
)
REGION = (
    Column("region", "区域编号", "region id", "text"),
    Column("region_name", "区域名称", "region name", "text", width=12),
)
DAY = Column("day", "日期", "date", "date", width=12)
AQI = (
    Column("aqi", "AQI", "AQI", "int"),
    Column("category", "级别", "category", "text"),
    Column("quality", "类别", "quality", "text"),
    Column("primary", "首要污染物", "primary pollutant", "text", width=14),
)
DAILY_CONC = (
    conc("so2"),
    conc("no2"),
    conc("pm10"),
    conc("co"),
    conc("pm25"),
    conc("o3", "O3日最大1小时", "O3 max 1-h", "o3_1h_max"),
    conc("o3", "O3日最大8小时滑动平均", "O3 MDA8", "o3_8h_max"),
)
TAIL = (
    Column("complete", "六项齐全", "all six pollutants", "bool"),
    Column("edition", "HJ 633版本", "HJ 633 edition", "int"),
)


def _filename(what: str, start: date, end: date, scope: str) -> str:
    return f"{what}_{scope}_{start:%Y%m%d}-{end:%Y%m%d}"


async def _chunks(
    conn: Conn, query: str, args: Sequence[Any], convert: Any
) -> AsyncIterator[list[Row]]:
    async with conn.cursor(name="envmon_table") as cur:
        await cur.execute(query, args)
        while rows := await cur.fetchmany(CHUNK_ROWS):
            yield [convert(r) for r in rows]


_DAILY_SELECT = (
    "d.day, d.aqi, d.category, d.primary_pollutants, d.iaqi,"
    " d.so2, d.no2, d.pm10, d.co, d.pm25, d.o3_1h_max, d.o3_8h_max, d.complete, d.edition"
)


def _daily_row(head: Sequence[Any], r: Sequence[Any]) -> Row:
    day, aqi, cat, primary, iaqi, *values = r
    grade, level = _category(cat)
    return (
        *head,
        day,
        *_iaqi_by_pollutant(iaqi or {}),
        aqi,
        grade,
        level,
        _primary(primary),
        *values,
    )


def aqi_daily_station_table(lang: Lang, filename: str) -> Table:
    cols = (*STATION, DAY, *iaqi_columns(), *AQI, *DAILY_CONC, *TAIL)
    return Table(cols, filename, lang)


def aqi_daily_region_table(lang: Lang, filename: str) -> Table:
    n = Column("n_stations", "参与统计点位数", "stations averaged", "int")
    return Table((*REGION, DAY, *iaqi_columns(), *AQI, *DAILY_CONC, *TAIL, n), filename, lang)


HOURLY_CONC = (
    conc("so2"),
    conc("no2"),
    conc("co"),
    conc("o3"),
    conc("pm10"),
    conc("pm25"),
    conc("o3", "O3 8小时滑动平均", "O3 8-h mean", "o3_8h"),
    conc("pm10", "PM10 24小时滑动平均", "PM10 24-h mean", "pm10_24h"),
    conc("pm25", "PM2.5 24小时滑动平均", "PM2.5 24-h mean", "pm25_24h"),
)


def aqi_hourly_table(lang: Lang, filename: str) -> Table:
    time = Column("time", "时间", "time", "time", width=22)
    ed = Column("edition", "HJ 633版本", "HJ 633 edition", "int")
    return Table((*STATION, time, *iaqi_columns(), *AQI, *HOURLY_CONC, ed), filename, lang)


def _hourly_row(r: Sequence[Any]) -> Row:
    sid, name, city, county, ts, so2, no2, co, o3, pm10, pm25, o3_8h, pm10_24h, pm25_24h = r[:14]
    so2_24h, aqi, cat, primary, edition = r[14:]
    mapping = hourly_mapping(
        (so2, no2, co, o3, pm10, pm25, o3_8h, pm10_24h, pm25_24h, so2_24h), edition
    )
    iaqi = aqi_std.hourly_aqi(mapping, edition=edition).iaqi
    grade, level = _category(cat)
    return (
        sid,
        name,
        city,
        county,
        ts,
        *_iaqi_by_pollutant(iaqi),
        aqi,
        grade,
        level,
        _primary(primary),
        so2,
        no2,
        co,
        o3,
        pm10,
        pm25,
        o3_8h,
        pm10_24h,
        pm25_24h,
        edition,
    )


def _common(q: Query) -> tuple[Format, Lang]:
    fmt = q.string("format", choices=FORMATS, default="csv")
    lang = q.string("lang", choices=LANGS, default="zh")
    return fmt, lang  # type: ignore[return-value]


def _check_station_days(request: web.Request, n_units: int, days: float) -> None:
    limit = request.app[SETTINGS].max_station_days
    if n_units * days > limit:
        raise too_large(
            f"{n_units} station(s) × {days:,.0f} days = {n_units * days:,.0f} station-days; "
            f"an export may hold at most {limit:,} — split it by station or by period"
        )


_STATION_JOIN = "JOIN station s ON s.id = d.station_id"
_STATION_COLS = "d.station_id, s.name, s.city, s.county"


@requires("read")
async def export_aqi(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    q = Query(request.query, ("resolution", "station", "region", "from", "to", "format", "lang"))
    resolution, stations, region, start, end = aqi_scope(q, station_names(request))
    fmt, lang = _common(q)
    q.done()
    assert start is not None and end is not None
    check_order(start, end)
    days = (end - start).total_seconds() / 86400
    check_days(days, settings.max_range_days)
    async with export_slot(request), connection(request, limited=False) as conn:
        if region:
            fname = _filename("aqi", start.date(), end.date(), region)
            table = aqi_daily_region_table(lang, fname)
            name = REGION_NAMES[region]
            query = (
                f"SELECT {_DAILY_SELECT}, d.n_stations FROM region_day d"
                " WHERE d.region = %s AND d.day >= %s AND d.day < %s ORDER BY d.day"
            )
            args: list[Any] = [region, start.date(), end.date()]

            def convert(r: Sequence[Any]) -> Row:
                return (*_daily_row((region, name), r[:-1]), r[-1])

        else:
            units = await known_stations(conn, stations, "air") or await stations_of_kind(
                conn, "air"
            )
            _check_station_days(request, len(units), days)
            scope = units[0] if len(units) == 1 else "stations"
            fname = _filename("aqi", start.date(), end.date(), scope)
            if resolution == "daily":
                table = aqi_daily_station_table(lang, fname)
                query = (
                    f"SELECT {_STATION_COLS}, {_DAILY_SELECT} FROM air_day d {_STATION_JOIN}"
                    " WHERE d.station_id = ANY(%s) AND d.day >= %s AND d.day < %s"
                    " ORDER BY d.station_id, d.day"
                )
                args = [units, start.date(), end.date()]

                def convert(r: Sequence[Any]) -> Row:
                    return _daily_row(r[:4], r[4:])

            else:
                table = aqi_hourly_table(lang, fname)
                query = (
                    f"SELECT {_STATION_COLS}, d.ts, d.so2, d.no2, d.co, d.o3, d.pm10, d.pm25,"
                    " d.o3_8h, d.pm10_24h, d.pm25_24h, d.so2_24h, d.aqi, d.category,"
                    f" d.primary_pollutants, d.edition FROM air_hour d {_STATION_JOIN}"
                    " WHERE d.station_id = ANY(%s) AND d.ts >= %s AND d.ts < %s"
                    " ORDER BY d.station_id, d.ts"
                )
                args = [units, start, end]
                convert = _hourly_row
        return await stream_table(request, table, fmt, _chunks(conn, query, args, convert))


# --- HJ 663 statistics ---------------------------------------------------------------

STAT_PERIODS: Final = ("daily", "monthly", "annual")
UNIT: Final = (
    Column("kind", "类型", "kind", "text"),
    Column("id", "编号", "id", "text", width=28),
    Column("name", "名称", "name", "text", width=12),
    Column("city", "城市", "city", "text"),
)


def _stat_columns(period: str) -> tuple[Column, ...]:
    when = (
        Column("month", "月份", "month", "month")
        if period == "monthly"
        else Column("year", "年份", "year", "int")
    )
    return (
        *UNIT,
        when,
        Column("edition", "HJ 663/633版本", "edition", "int"),
        Column("days", "统计天数", "days in period", "int"),
        conc("so2", "SO2平均浓度", "SO2 mean", "so2_mean"),
        conc("no2", "NO2平均浓度", "NO2 mean", "no2_mean"),
        conc("pm10", "PM10平均浓度（扣沙）", "PM10 mean (dust deducted)", "pm10_mean"),
        conc("pm25", "PM2.5平均浓度（扣沙）", "PM2.5 mean (dust deducted)", "pm25_mean"),
        conc("pm10", "PM10平均浓度（实况）", "PM10 mean (as measured)", "pm10_measured"),
        conc("pm25", "PM2.5平均浓度（实况）", "PM2.5 mean (as measured)", "pm25_measured"),
        conc("co", "CO日均值第95百分位数", "CO daily mean P95", "co_p95"),
        conc("o3", "O3日最大8小时第90百分位数", "O3 MDA8 P90", "o3_p90"),
        Column("pm25_days", "PM2.5有效天数", "PM2.5 valid days", "int"),
        Column("index", "综合指数", "comprehensive index", "float", decimals=2),
        Column("good_days", "优良天数", "good days", "int"),
        Column("valid_days", "有效天数", "valid days", "int"),
        Column("good_ratio", "优良天数比例", "good-day ratio", "float", "%", 1),
        Column("heavy_days", "重度及以上污染天数", "heavy or worse days", "int"),
        Column("dust_days", "沙尘天数", "dust days", "int"),
        Column("attains", "六项达标", "attains all six", "bool"),
    )


def _stat_row(unit: annual_stats.Unit, when: Any, days: int, st: dict[str, Any]) -> Row:
    p = st["pollutants"]
    gd = st["good_days"]
    return (
        unit.kind,
        unit.id,
        unit.name,
        unit.city,
        when,
        st["edition"],
        days,
        p["so2"]["mean"],
        p["no2"]["mean"],
        p["pm10"]["mean"],
        p["pm25"]["mean"],
        p["pm10"]["mean_measured"],
        p["pm25"]["mean_measured"],
        p["co"]["p95"],
        p["o3"]["p90"],
        p["pm25"]["valid_days"],
        st["comprehensive_index"],
        gd["good"],
        gd["valid"],
        None if gd["ratio"] is None else gd["ratio"] * 100,
        gd["heavy_or_worse"],
        st["dust_days"],
        st["attains"],
    )


def _periods(start: date, end: date, period: str) -> list[tuple[Any, date, date]]:
    """(label, first day, day after) of each month or year in [start, end)."""
    out: list[tuple[Any, date, date]] = []
    cur = start.replace(day=1) if period == "monthly" else start.replace(month=1, day=1)
    while cur < end:
        if period == "monthly":
            nxt = (cur + timedelta(days=32)).replace(day=1)
            out.append((cur, max(cur, start), min(nxt, end)))
        else:
            nxt = cur.replace(year=cur.year + 1)
            out.append((cur.year, max(cur, start), min(nxt, end)))
        cur = nxt
    return out


async def _stat_rows(
    conn: Conn,
    units: list[annual_stats.Unit],
    start: date,
    end: date,
    period: str,
    edition: int | None,
) -> AsyncIterator[list[Row]]:
    days: dict[str, dict[str, list[annual_stats.Day]]] = {
        "region": await annual_stats.load_region_days(conn, start, end),
        "station": await annual_stats.load_station_days(conn, start, end),
    }
    for label, lo, hi in _periods(start, end, period):
        ed = edition or aqi_std.edition_for(hi - timedelta(days=1))
        year = lo.year
        rows: list[Row] = []
        for u in units:
            of_unit = [d for d in days[u.kind].get(u.id, []) if lo <= d.day < hi]
            n = (hi - lo).days
            st = annual_stats.annual_statistics(of_unit, year=year, edition=ed, days_elapsed=n)
            rows.append(_stat_row(u, label, n, st))
        yield rows


def _daily_stat_table(lang: Lang, filename: str) -> Table:
    cols = (
        *UNIT,
        DAY,
        *DAILY_CONC,
        *AQI,
        Column("complete", "六项齐全", "all six pollutants", "bool"),
        Column("n", "有效小时数/点位数", "valid hours (PM2.5) / stations", "int"),
    )
    return Table(cols, filename, lang)


@requires("read")
async def export_statistics(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    q = Query(
        request.query, ("period", "station", "region", "from", "to", "edition", "format", "lang")
    )
    period = q.string("period", choices=STAT_PERIODS, default="annual")
    stations = q.stations("station", station_names(request), ("air",))
    region = q.region("region")
    d0, d1 = q.day("from", required=True), q.day("to", required=True)
    edition = q.integer("edition", low=2012, high=2026)
    if edition is not None and edition not in (2012, 2026):
        q.error("edition", "2012 or 2026")
    fmt, lang = _common(q)
    q.done()
    assert d0 is not None and d1 is not None and period is not None
    check_order(d0, d1)
    check_days((d1 - d0).days, settings.max_range_days)
    async with export_slot(request), connection(request, limited=False) as conn:
        await known_stations(conn, stations, "air")
        all_units = await annual_stats.load_units(conn)
        want_regions = [region] if region else ([] if stations else list(REGIONS))
        units = [u for u in all_units if u.kind == "region" and u.id in want_regions] + [
            u
            for u in all_units
            if u.kind == "station" and (u.id in stations if stations else not region)
        ]
        _check_station_days(request, len(units), (d1 - d0).days)
        scope = region or (stations[0] if len(stations) == 1 else "all")
        fname = _filename(f"statistics-{period}", d0, d1, scope)
        if period == "daily":
            table = _daily_stat_table(lang, fname)
            return await stream_table(request, table, fmt, _daily_stat_rows(conn, units, d0, d1))
        table = Table(_stat_columns(period), fname, lang)
        return await stream_table(
            request, table, fmt, _stat_rows(conn, units, d0, d1, period, edition)
        )


async def _daily_stat_rows(
    conn: Conn, units: list[annual_stats.Unit], start: date, end: date
) -> AsyncIterator[list[Row]]:
    regions = [u.id for u in units if u.kind == "region"]
    stations = [u.id for u in units if u.kind == "station"]
    names: dict[tuple[str, str], tuple[str, str | None]] = {
        (u.kind, u.id): (u.name, u.city) for u in units
    }
    values = "d.so2, d.no2, d.pm10, d.co, d.pm25, d.o3_1h_max, d.o3_8h_max"
    parts = [
        (
            "region",
            f"SELECT d.region, d.day, {values}, d.aqi, d.category, d.primary_pollutants,"
            " d.complete, d.n_stations FROM region_day d WHERE d.region = ANY(%s)"
            " AND d.day >= %s AND d.day < %s ORDER BY d.region, d.day",
            regions,
        ),
        (
            "station",
            f"SELECT d.station_id, d.day, {values}, d.aqi, d.category, d.primary_pollutants,"
            " d.complete, d.n_pm25 FROM air_day d WHERE d.station_id = ANY(%s)"
            " AND d.day >= %s AND d.day < %s ORDER BY d.station_id, d.day",
            stations,
        ),
    ]
    for kind, query, ids in parts:
        if not ids:
            continue

        def convert(r: Sequence[Any], kind: str = kind) -> Row:
            name, city = names[(kind, r[0])]
            grade, level = _category(r[10])
            return (
                kind,
                r[0],
                name,
                city,
                r[1],
                *r[2:9],
                r[9],
                grade,
                level,
                _primary(r[11]),
                r[12],
                r[13],
            )

        async for chunk in _chunks(conn, query, [ids, start, end], convert):
            yield chunk


# --- water ---------------------------------------------------------------------------

WATER_PARAMS: Final = tuple(p.code for p in BY_CODE.values() if p.kind == "water")
_WATER_EN: Final = {
    "ph": "pH",
    "do": "DO",
    "codmn": "CODMn",
    "cod": "COD",
    "bod5": "BOD5",
    "nh3n": "NH3-N",
    "tp": "TP",
    "tn": "TN",
    "temp": "water temperature",
}


def _water_table(lang: Lang, filename: str) -> Table:
    cols = (
        Column("station", "断面编号", "section id", "text", width=28),
        Column("name", "断面名称", "section name", "text", width=12),
        Column("river", "河流", "river", "text"),
        Column("basin", "流域", "basin", "text"),
        Column("city", "城市", "city", "text"),
        Column("county", "区县", "county", "text"),
        Column("control", "控制级别", "control level", "text"),
        Column("month", "月份", "month", "month"),
        Column("class", "水质类别", "class", "text"),
        Column("target", "目标类别", "target class", "text"),
        Column("meets", "达标", "meets target", "bool"),
        Column("main", "主要污染指标", "main pollutants", "text", width=16),
        *(conc(p, BY_CODE[p].name, _WATER_EN.get(p, p)) for p in WATER_PARAMS),
    )
    return Table(cols, filename, lang)


@requires("read")
async def export_water(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    q = Query(request.query, ("station", "from", "to", "format", "lang"))
    stations = q.stations("station", station_names(request), ("water",))
    start, end = q.month("from", required=True), q.month("to", required=True)
    fmt, lang = _common(q)
    q.done()
    assert start is not None and end is not None
    check_order(start, end)
    check_days((end - start).days, settings.max_range_days)
    index = {p: i for i, p in enumerate(WATER_PARAMS)}
    async with export_slot(request), connection(request, limited=False) as conn:
        await known_stations(conn, stations, "water")
        query = (
            "SELECT w.station_id, s.name, s.river, s.basin, s.city, s.county, s.control_level,"
            " w.month, w.class, w.target_class, w.meets_target, w.main_pollutants,"
            " (SELECT coalesce(json_object_agg(m.parameter, m.value), '{}') FROM water_month m"
            "  WHERE m.station_id = w.station_id AND m.month = w.month)"
            " FROM water_section_month w JOIN station s ON s.id = w.station_id"
            " WHERE w.month >= %s AND w.month < %s"
            " AND (cardinality(%s::text[]) = 0 OR w.station_id = ANY(%s))"
            " ORDER BY w.station_id, w.month"
        )

        def convert(r: Sequence[Any]) -> Row:
            values: list[Any] = [None] * len(WATER_PARAMS)
            for p, v in (r[12] or {}).items():
                if p in index:
                    values[index[p]] = v
            main = ",".join(BY_CODE[p].name if p in BY_CODE else p for p in r[11] or ())
            return (
                *r[:6],
                CONTROL_LEVEL_NAMES.get(r[6], r[6]) if lang == "zh" else r[6],
                r[7],
                water_std.roman(r[8]),
                None if r[9] is None else water_std.roman(r[9]),
                r[10],
                main or None,
                *values,
            )

        fname = _filename("water", start, end, stations[0] if len(stations) == 1 else "sections")
        return await stream_table(
            request,
            _water_table(lang, fname),
            fmt,
            _chunks(conn, query, [start, end, stations, stations], convert),
        )


# --- weather-normalised PM2.5 -------------------------------------------------------


@requires("read")
async def export_normalised(request: web.Request) -> web.StreamResponse:
    q, args = normalised_query(request, "format", "lang")
    fmt, lang = _common(q)
    q.done()
    res = await run_normalised(request, args)
    unit = args["station"] or args["region"] or "zone"
    table = Table(
        (
            Column("id", "编号", "id", "text", width=28),
            Column("month", "月份", "month", "month"),
            conc("pm25", "PM2.5观测月均值", "PM2.5 observed", "observed"),
            conc("pm25", "PM2.5气象归一化月均值", "PM2.5 weather-normalised", "normalised"),
        ),
        f"pm25-normalised_{unit}_{args['baseline_year']}-{args['year']}",
        lang,
    )

    async def rows() -> AsyncIterator[list[Row]]:
        yield [(unit, m["month"], m["observed"], m["normalised"]) for m in res.monthly()]

    return await stream_table(request, table, fmt, rows())


ROUTES = [
    web.get("/api/v1/export/normalised", export_normalised, name="export_normalised"),
    web.get("/api/v1/export/aqi", export_aqi, name="export_aqi"),
    web.get("/api/v1/export/statistics", export_statistics, name="export_statistics"),
    web.get("/api/v1/export/water", export_water, name="export_water"),
]
