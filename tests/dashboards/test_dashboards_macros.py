"""The macro port against Grafana's own test cases.

Ported tables: ``pkg/tsdb/grafana-postgresql-datasource/macros_test.go``
(TestMacroEngine), ``…/sqleng/sql_engine_test.go`` (``$__interval`` and
``$__unixEpochFrom/To``), and grafana-plugin-sdk-go ``backend/gtime/gtime_test.go``
(FormatInterval, ParseInterval, RoundInterval). Then the browser side:
template variables in the SQL data sources' default format and the named
formats of ``formatRegistry.ts``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from envmon.dashboards.macros import (
    ALL_VALUE,
    DAY,
    HOUR,
    MINUTE,
    MS,
    SECOND,
    MacroEngine,
    MacroError,
    QueryModel,
    TimeRange,
    Variable,
    calculate_interval,
    expand,
    format_interval,
    go_float,
    interpolate_global,
    interpolate_variables,
    parse_go_duration,
    parse_interval,
    rfc3339nano,
    round_interval_ms,
)

FROM = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
TO = FROM + timedelta(minutes=5)
TR = TimeRange(FROM, TO)
ENGINE = MacroEngine(timescaledb=False)
ENGINE_TS = MacroEngine(timescaledb=True)
UNIX_FROM, UNIX_TO = 1523556000, 1523556300  # FROM.Unix(), TO.Unix()

# macros_test.go, "Given a time range between 2018-04-12 00:00 and 2018-04-12 00:05"
MACRO_CASES = [
    (ENGINE, "select $__time(time_column)", 'select time_column AS "time"'),
    (ENGINE, "select min($__time(time_column))", 'select min(time_column AS "time")'),
    (
        ENGINE,
        "WHERE $__timeFilter(time_column)",
        "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'",
    ),
    (ENGINE, "select $__timeFrom()", "select '2018-04-12T18:00:00Z'"),
    (ENGINE, "select $__timeTo()", "select '2018-04-12T18:05:00Z'"),
    # pre 5.3 compatibility: a comma right after $__timeGroup adds the alias
    (
        ENGINE,
        "SELECT $__timeGroup(time_column,'5m'), value",
        'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value',
    ),
    (
        ENGINE,
        "SELECT $__timeGroup(time_column,'5m') as time, value",
        "SELECT floor(extract(epoch from time_column)/300)*300 as time, value",
    ),
    (
        ENGINE,
        "SELECT $__timeGroup(time_column,'5m')",
        "SELECT floor(extract(epoch from time_column)/300)*300",
    ),
    (
        ENGINE,
        "SELECT $__timeGroupAlias(time_column,'5m')",
        'SELECT floor(extract(epoch from time_column)/300)*300 AS "time"',
    ),
    (
        ENGINE,
        "$__timeGroup(time_column , '5m')",
        "floor(extract(epoch from time_column)/300)*300",
    ),
    (
        ENGINE,
        "$__timeGroupAlias(time_column , '5m')",
        'floor(extract(epoch from time_column)/300)*300 AS "time"',
    ),
    (
        ENGINE_TS,
        "GROUP BY $__timeGroup(time_column,'5m')",
        "GROUP BY time_bucket('300.000s',time_column)",
    ),
    (
        ENGINE_TS,
        "GROUP BY $__timeGroup(time_column , '5m')",
        "GROUP BY time_bucket('300.000s',time_column)",
    ),
    (
        ENGINE_TS,
        "GROUP BY $__timeGroup(time_column , '12d')",
        "GROUP BY time_bucket('1036800.000s',time_column)",
    ),
    (
        ENGINE_TS,
        "GROUP BY $__timeGroup(time_column , '20ms')",
        "GROUP BY time_bucket('0.020s',time_column)",
    ),
    (
        ENGINE,
        "select $__unixEpochFilter(time)",
        f"select time >= {UNIX_FROM} AND time <= {UNIX_TO}",
    ),
    (
        ENGINE,
        "select $__unixEpochNanoFilter(time)",
        f"select time >= {UNIX_FROM}000000000 AND time <= {UNIX_TO}000000000",
    ),
    (ENGINE, "select $__unixEpochNanoFrom()", f"select {UNIX_FROM}000000000"),
    (ENGINE, "select $__unixEpochNanoTo()", f"select {UNIX_TO}000000000"),
    (
        ENGINE,
        "SELECT $__unixEpochGroup(time_column+time_adjustment,'5m')",
        "SELECT floor((time_column+time_adjustment)/300)*300",
    ),
    (
        ENGINE,
        "SELECT $__unixEpochGroupAlias(time_column+time_adjustment,'5m')",
        'SELECT floor((time_column+time_adjustment)/300)*300 AS "time"',
    ),
]


@pytest.mark.parametrize(("engine", "sql", "expected"), MACRO_CASES)
def test_grafana_macro_cases(engine: MacroEngine, sql: str, expected: str) -> None:
    assert engine.interpolate(sql, TR) == expected


@pytest.mark.parametrize(
    ("start", "end", "start_text", "end_text", "start_unix", "end_unix"),
    [
        # "Given a time range between 1960-02-01 07:00 and 1965-02-03 08:00"
        (
            datetime(1960, 2, 1, 7, tzinfo=UTC),
            datetime(1965, 2, 3, 8, tzinfo=UTC),
            "1960-02-01T07:00:00Z",
            "1965-02-03T08:00:00Z",
            -312915600,
            -154886400,
        ),
        # "Given a time range between 1960-02-01 07:00 and 1980-02-03 08:00"
        (
            datetime(1960, 2, 1, 7, tzinfo=UTC),
            datetime(1980, 2, 3, 8, tzinfo=UTC),
            "1960-02-01T07:00:00Z",
            "1980-02-03T08:00:00Z",
            -312915600,
            318412800,
        ),
    ],
)
def test_grafana_macro_cases_before_1970(
    start: datetime,
    end: datetime,
    start_text: str,
    end_text: str,
    start_unix: int,
    end_unix: int,
) -> None:
    tr = TimeRange(start, end)
    assert int(start.timestamp()) == start_unix and int(end.timestamp()) == end_unix
    assert ENGINE.interpolate("WHERE $__timeFilter(time_column)", tr) == (
        f"WHERE time_column BETWEEN '{start_text}' AND '{end_text}'"
    )
    assert ENGINE.interpolate("select $__unixEpochFilter(time)", tr) == (
        f"select time >= {start_unix} AND time <= {end_unix}"
    )
    assert ENGINE.interpolate("select $__unixEpochNanoFilter(time)", tr) == (
        f"select time >= {start_unix * SECOND} AND time <= {end_unix * SECOND}"
    )


def test_grafana_macro_case_fractional_seconds() -> None:
    # "Given a time range between 1960-02-01 07:00:00.5 and 1980-02-03 08:00:00.5"
    tr = TimeRange(
        datetime(1960, 2, 1, 7, 0, 0, 500000, tzinfo=UTC),
        datetime(1980, 2, 3, 8, 0, 0, 500000, tzinfo=UTC),
    )
    assert rfc3339nano(tr.start) == "1960-02-01T07:00:00.5Z"
    assert rfc3339nano(tr.end) == "1980-02-03T08:00:00.5Z"
    assert ENGINE.interpolate("WHERE $__timeFilter(time_column)", tr) == (
        "WHERE time_column BETWEEN '1960-02-01T07:00:00.5Z' AND '1980-02-03T08:00:00.5Z'"
    )
    # Go's Unix() floors: half a second before 1970 is second -1.
    half = TimeRange(
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)
    )
    assert ENGINE.interpolate("$__unixEpochFilter(t)", half) == "t >= -1 AND t <= 0"
    assert ENGINE.interpolate("$__unixEpochNanoFrom()", half) == "-500000000"


def test_time_range_in_other_zones_is_written_in_utc() -> None:
    from envmon.timeutil import BEIJING

    tr = TimeRange(datetime(2025, 3, 1, tzinfo=BEIJING), datetime(2025, 3, 8, tzinfo=BEIJING))
    assert ENGINE.interpolate("$__timeFrom() $__timeTo()", tr) == (
        "'2025-02-28T16:00:00Z' '2025-03-07T16:00:00Z'"
    )


# sql_engine_test.go, "Handle interpolating $__interval and $__interval_ms"
@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        (10 * MINUTE, "10m $__timeGroupAlias(time,10m) 600000"),
        (4 * SECOND, "4s $__timeGroupAlias(time,4s) 4000"),
        (200 * MS, "200ms $__timeGroupAlias(time,200ms) 200"),
    ],
)
def test_grafana_interval_cases(interval: int, expected: str) -> None:
    text = "$__interval $__timeGroupAlias(time,$__interval) $__interval_ms"
    assert interpolate_global(text, TR, interval) == expected


def test_grafana_unix_epoch_from_to_cases() -> None:
    assert interpolate_global("select $__unixEpochFrom()", TR, MINUTE) == f"select {UNIX_FROM}"
    assert interpolate_global("select $__unixEpochTo()", TR, MINUTE) == f"select {UNIX_TO}"


def test_interval_then_macro_in_grafana_order() -> None:
    sql = "SELECT $__timeGroupAlias(ts, $__interval), avg(v) FROM t WHERE $__timeFilter(ts)"
    assert expand(sql, time_range=TR, interval_ns=HOUR, timescaledb=True) == (
        "SELECT time_bucket('3600.000s',ts) AS \"time\", avg(v) FROM t WHERE ts BETWEEN"
        " '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'"
    )
    assert expand(sql, time_range=TR, interval_ns=2 * DAY, timescaledb=False).startswith(
        'SELECT floor(extract(epoch from ts)/172800)*172800 AS "time"'
    )


# gtime_test.go: TestFormatInterval, TestParseInterval, TestRoundInterval
@pytest.mark.parametrize(
    ("ns", "text"),
    [(61 * SECOND, "1m"), (30 * MS, "30ms"), (23 * HOUR, "23h"), (24 * HOUR, "1d"),
     (367 * DAY, "1y"), (0, "1ms")],
)  # fmt: skip
def test_format_interval(ns: int, text: str) -> None:
    assert format_interval(ns) == text


def test_parse_interval() -> None:
    now = datetime(2024, 1, 31, 12, tzinfo=UTC)  # Go's AddDate normalises Feb 31 → Mar 2
    assert parse_interval("1d", now=now) == DAY
    assert parse_interval("1w", now=now) == 7 * DAY
    assert parse_interval("2w", now=now) == 14 * DAY
    assert parse_interval("1M", now=now) == 31 * DAY  # 2024-01-31 → 2024-03-02
    assert parse_interval("1y", now=now) == 366 * DAY  # 2024 is a leap year
    assert parse_interval("1M", now=datetime(2023, 2, 10, tzinfo=UTC)) == 28 * DAY
    assert parse_interval("5m") == 5 * MINUTE
    assert parse_interval("1h30m") == 90 * MINUTE
    assert parse_interval("1.5h") == 90 * MINUTE
    assert parse_interval("300ms") == 300 * MS
    assert parse_go_duration("-1m30s") == -90 * SECOND
    with pytest.raises(MacroError, match=r'^time: invalid duration "invalid-duration"$'):
        parse_interval("invalid-duration")
    with pytest.raises(MacroError, match=r'^time: unknown unit "a" in duration "5a3d"$'):
        parse_interval("5a3d")
    with pytest.raises(MacroError, match=r'^time: missing unit in duration "10"$'):
        parse_go_duration("10")


@pytest.mark.parametrize(
    ("raw_ms", "nice_ms"),
    [(9, 1), (14, 10), (34, 20), (74, 50), (140, 100), (320, 200), (740, 500), (1400, 1000),
     (3200, 2000), (7400, 5000), (12400, 10000), (17250, 15000), (23000, 20000),
     (42000, 30000), (85000, 60000), (200000, 120000), (420000, 300000), (720000, 600000),
     (1000000, 900000), (1250000, 1200000), (2500000, 1800000), (5200000, 3600000),
     (8500000, 7200000), (15000000, 10800000), (30000000, 21600000), (85000000, 43200000),
     (150000000, 86400000), (600000000, 86400000), (1500000000, 604800000),
     (3500000000, 2592000000), (40000000000, 31536000000)],
)  # fmt: skip
def test_round_interval(raw_ms: int, nice_ms: int) -> None:
    assert round_interval_ms(raw_ms) == nice_ms


def test_panel_interval_respects_the_data_source_minimum() -> None:
    week = TimeRange(FROM, FROM + timedelta(days=7))
    # 604800 s / 1000 px = 604.8 s → 10m, below the data source's 1h.
    assert calculate_interval(week, 1000, "1h") == HOUR
    assert calculate_interval(week, 1000) == 10 * MINUTE
    assert calculate_interval(week, 100, "1h") == 2 * HOUR  # 6048 s → 2h
    year = TimeRange(FROM, FROM + timedelta(days=365))
    assert calculate_interval(year, 1000, "1h") == 6 * HOUR  # 31536 s → 6h


@pytest.mark.parametrize(
    ("x", "text"),
    [(300.0, "300"), (0.02, "0.02"), (86400.0, "86400"), (604800.0, "604800"),
     (1036800.0, "1.0368e+06"), (2592000.0, "2.592e+06"), (1e-05, "1e-05"), (0.5, "0.5")],
)  # fmt: skip
def test_go_float_formatting(x: float, text: str) -> None:
    assert go_float(x) == text


def test_macro_errors_are_grafanas() -> None:
    with pytest.raises(MacroError, match=r'^unknown macro "__nope"$'):
        ENGINE.interpolate("SELECT $__nope(x)", TR)
    with pytest.raises(
        MacroError, match=r"^macro __timeGroup needs time column and interval and optional fill"
    ):
        ENGINE.interpolate("SELECT $__timeGroup(ts)", TR)
    with pytest.raises(MacroError, match=r"^error parsing interval '5x'$"):
        ENGINE.interpolate("SELECT $__timeGroup(ts, '5x')", TR)
    with pytest.raises(MacroError, match=r"^error parsing fill value nothing$"):
        ENGINE.interpolate("SELECT $__timeGroup(ts, '5m', nothing)", TR)


@pytest.mark.parametrize(
    ("fill", "mode", "value"),
    [("NULL", "null", 0.0), ("previous", "previous", 0.0), ("0", "value", 0.0),
     ("2.5", "value", 2.5)],
)  # fmt: skip
def test_time_group_fill_mode(fill: str, mode: str, value: float) -> None:
    q = QueryModel()
    out = ENGINE.interpolate(f"SELECT $__timeGroupAlias(ts, '1h', {fill})", TR, q)
    assert out == 'SELECT floor(extract(epoch from ts)/3600)*3600 AS "time"'
    assert (q.fill, q.fill_interval_s, q.fill_mode, q.fill_value) == (True, 3600.0, mode, value)


# -- template variables (browser) ----------------------------------------------------------------


def v(name: str, current: str | list[str], **kw: object) -> Variable:
    return Variable(name, current, **kw)  # type: ignore[arg-type]


def test_single_value_variable_is_inserted_bare_with_quotes_doubled() -> None:
    variables = {"region": v("region", "zone"), "name": v("name", "O'Brien")}
    assert interpolate_variables("WHERE region = '$region'", variables) == ("WHERE region = 'zone'")
    assert interpolate_variables("'${name}' [[name]]", variables) == "'O''Brien' O''Brien"


def test_multi_value_variable_becomes_a_quoted_list() -> None:
    variables = {"station": v("station", ["a-1", "b'2"], multi=True)}
    assert interpolate_variables("IN ($station)", variables) == "IN ('a-1','b''2')"
    one = {"station": v("station", ["a-1"], multi=True)}
    assert interpolate_variables("IN ($station)", one) == "IN ('a-1')"
    # a repeated panel's own single value is still quoted: the variable is multi
    assert interpolate_variables("IN ($station)", one, scoped={"station": "c-3"}) == "IN ('c-3')"


def test_all_selects_every_option_or_the_custom_all_value() -> None:
    city = v("city", ALL_VALUE, multi=True, include_all=True, options=("太原市", "忻州市"))
    assert interpolate_variables("IN ($city)", {"city": city}) == "IN ('太原市','忻州市')"
    custom = v("city", [ALL_VALUE], include_all=True, all_value="%", options=("a",))
    assert interpolate_variables("LIKE '$city'", {"city": custom}) == "LIKE '%'"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${k:singlequote}", "'air','wa\\'ter'"),
        ("${k:sqlstring}", "'air','wa''ter'"),
        ("${k:doublequote}", '"air","wa\'ter"'),
        ("${k:csv}", "air,wa'ter"),
        ("${k:pipe}", "air|wa'ter"),
        ("${k:raw}", "air,wa'ter"),
        ("${k:json}", '["air","wa\'ter"]'),
        ("${k:regex}", "(air|wa'ter)"),
        ("${k}", "'air','wa''ter'"),
        ("${k:glob}", "{air,wa'ter}"),
        ("${k:text}", "空气 + 水"),
        ("${k:queryparam}", "var-k=air&var-k=wa%27ter"),
    ],
)
def test_named_formats(template: str, expected: str) -> None:
    k = v("k", ["air", "wa'ter"], multi=True, text=["空气", "水"])
    assert interpolate_variables(template, {"k": k}) == expected


def test_unknown_names_and_backend_macros_are_left_alone() -> None:
    sql = "SELECT $__timeGroupAlias(ts, $__interval) WHERE $__timeFilter(ts) AND x = '$nope'"
    out = interpolate_variables(sql, {}, time_range=TR, interval_ns=HOUR)
    assert out == "SELECT $__timeGroupAlias(ts, 1h) WHERE $__timeFilter(ts) AND x = '$nope'"
    assert interpolate_variables("$__interval_ms $__from $__to $__range_s", {}, time_range=TR,
                                 interval_ns=HOUR) == (
        f"3600000 {UNIX_FROM}000 {UNIX_TO}000 300"
    )  # fmt: skip
