"""Dashboard 4, ``envmon-weather``: temperature, humidity, wind, precipitation and
the latest observation per station.
"""

from __future__ import annotations

from envmon.dashboards._sdk import common, dash, dm, table_b
from envmon.dashboards.panels import (
    EXPECTED,
    VALID,
    Board,
    fixed_colour,
    prop,
    sql_list,
    table_query,
    timeseries_panel,
    ts_query,
    ts_window,
)
from envmon.dashboards.variables import query_var


def dashboard() -> Board:
    board = Board.create(
        "envmon-weather",
        "气象观测",
        description="气温、相对湿度、风速风向、降水量，按站点或区县（所选站点的平均）。",
        time_from="now-7d",
        tags=["weather"],
    )
    board.variable(
        "county",
        query_var(
            "county",
            "区县",
            "SELECT DISTINCT county FROM station WHERE kind = 'weather' AND active ORDER BY 1",
            multi=False,
            include_all=False,
        ),
    )
    board.variable(
        "station",
        query_var(
            "station",
            "站点",
            "SELECT name AS __text, id AS __value FROM station"
            " WHERE kind = 'weather' AND active AND county = '$county'"
            " ORDER BY station_no NULLS LAST, name",
            multi=True,
            include_all=True,
        ),
    )
    base = (
        "FROM reading r WHERE r.station_id IN ($station) AND r.period = '1h'"
        f" AND r.flag IN {VALID} AND $__timeFilter(r.ts)"
    )
    temp = ts_query(
        f"""
SELECT $__timeGroupAlias(r.ts, $__interval), avg(r.value) AS "平均气温",
       min(r.value) AS "最低气温", max(r.value) AS "最高气温"
{base} AND r.parameter = 'air_temp'
GROUP BY 1
ORDER BY 1"""
    )
    board.add(
        "气温",
        "timeseries",
        timeseries_panel("celsius")
        .override_by_name("最高气温", [fixed_colour("#E02020")])
        .override_by_name("最低气温", [fixed_colour("#1F60C4")])
        .override_by_name("平均气温", [fixed_colour("#FF8C00"), prop("custom.lineWidth", 2)]),
        [temp],
        w=12,
        h=8,
        description="所选站点逐时气温的平均、最低与最高。",
    )
    rh = ts_query(
        f"""
SELECT $__timeGroupAlias(r.ts, $__interval), avg(r.value) AS "相对湿度"
{base} AND r.parameter = 'rh'
GROUP BY 1
ORDER BY 1"""
    )
    board.add(
        "相对湿度",
        "timeseries",
        timeseries_panel("humidity").min(0).max(100).fill_opacity(10),
        [rh],
        w=12,
        h=8,
    )
    wind = ts_query(
        f"""
WITH w AS (
    SELECT r.station_id, r.ts,
           max(r.value) FILTER (WHERE r.parameter = 'wind_speed') AS spd,
           max(r.value) FILTER (WHERE r.parameter = 'wind_dir') AS dir
    {base} AND r.parameter IN ('wind_speed', 'wind_dir')
    GROUP BY 1, 2
), v AS (
    SELECT $__timeGroupAlias(w.ts, $__interval), avg(w.spd) AS spd,
           avg(w.spd * sin(radians(w.dir))) AS u, avg(w.spd * cos(radians(w.dir))) AS v
    FROM w GROUP BY 1
)
SELECT v.time, v.spd AS "平均风速",
       CASE WHEN v.u IS NULL OR (v.u = 0 AND v.v = 0) THEN NULL
            ELSE mod((degrees(atan2(v.u, v.v)) + 360)::numeric, 360)::float8 END
           AS "矢量平均风向"
FROM v
ORDER BY 1"""
    )
    board.add(
        "风速与风向",
        "timeseries",
        timeseries_panel("velocityms").override_by_name(
            "矢量平均风向",
            [
                prop("unit", "degree"),
                prop("custom.axisPlacement", "right"),
                prop("custom.drawStyle", "points"),
                prop("custom.pointSize", 4),
                prop("min", 0),
                prop("max", 360),
            ],
        ),
        [wind],
        w=12,
        h=8,
        description="风向为风速加权的矢量平均（0° 北风、90° 东风），右轴。",
    )
    precip = ts_query(
        f"""
SELECT x.time, avg(x.total) AS "降水量（站均）"
FROM (
    SELECT $__timeGroupAlias(r.ts, $__interval), r.station_id, sum(r.value) AS total
    {base} AND r.parameter = 'precip'
    GROUP BY 1, 2
) x
GROUP BY 1
ORDER BY 1"""
    )
    board.add(
        "降水量",
        "timeseries",
        timeseries_panel("lengthmm")
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("#1F60C4")),
        [precip],
        w=12,
        h=8,
        description="每个时间段内各站累计降水量的站点平均。",
    )
    latest = table_query(
        f"""
SELECT s.name AS "站点", s.station_no AS "区站号", l.ts AS "观测时间",
       max(r.value) FILTER (WHERE r.parameter = 'air_temp') AS "气温",
       max(r.value) FILTER (WHERE r.parameter = 'rh') AS "相对湿度",
       max(r.value) FILTER (WHERE r.parameter = 'wind_speed') AS "风速",
       max(r.value) FILTER (WHERE r.parameter = 'wind_dir') AS "风向",
       max(r.value) FILTER (WHERE r.parameter = 'precip') AS "小时降水",
       max(r.value) FILTER (WHERE r.parameter = 'pressure') AS "气压",
       max(r.value) FILTER (WHERE r.parameter = 'visibility') AS "能见度"
FROM station s
CROSS JOIN LATERAL (
    SELECT max(r0.ts) AS ts FROM reading r0
    WHERE r0.station_id = s.id AND r0.parameter = 'air_temp' AND r0.period = '1h'
      AND {ts_window("r0.ts")}) l
LEFT JOIN LATERAL (
    SELECT r.parameter, r.value FROM reading r
    WHERE r.station_id = s.id AND r.period = '1h' AND r.ts = l.ts AND {ts_window("r.ts")}
      AND r.parameter IN ({sql_list(EXPECTED["weather"])})) r ON true
WHERE s.kind = 'weather' AND s.id IN ($station)
GROUP BY s.name, s.station_no, l.ts
ORDER BY s.name"""
    )
    board.add(
        "各站最新观测",
        "table",
        table_b.Panel()
        .override_by_name("气温", [prop("unit", "celsius")])
        .override_by_name("相对湿度", [prop("unit", "humidity")])
        .override_by_name("风速", [prop("unit", "velocityms")])
        .override_by_name("风向", [prop("unit", "degree")])
        .override_by_name("小时降水", [prop("unit", "lengthmm")])
        .override_by_name("气压", [prop("unit", "pressurehpa")])
        .override_by_name("能见度", [prop("unit", "lengthm")]),
        [latest],
        w=24,
        h=9,
        description="各站不晚于所选时间范围终点的最近一次逐时观测（7 天内；没有则为空）。",
    )
    return board
