"""Dashboard 2, ``envmon-air-station``: pollutants, hourly AQI, primary pollutant,
daily AQI calendar and O₃ MDA8 of the selected air stations.
"""

from __future__ import annotations

from datetime import date
from typing import Final

from envmon.dashboards._sdk import common, common_b, dash, dm, statetimeline_b, statushistory_b
from envmon.dashboards.panels import (
    BAD_COLOUR,
    DAY_FROM,
    DAY_TO,
    MG,
    UG,
    Board,
    aqi_thresholds,
    bj,
    counts_bars,
    fixed_colour,
    legend_hidden,
    no_data_mapping,
    prop,
    sql_list,
    thresholds,
    timeseries_panel,
    ts_query,
)
from envmon.dashboards.variables import custom_var, query_var
from envmon.standards import aqi as aqi_std
from envmon.standards.limits import limit

# Pollutant codes in the order of HJ 633 (POLLUTANTS), with their display names;
# the primary pollutant is shown by its 1-based index in this order (0 = none).
POLLUTANT_LABELS: Final[dict[str, str]] = {
    "so2": "SO₂",
    "no2": "NO₂",
    "pm10": "PM10",
    "pm25": "PM2.5",
    "co": "CO",
    "o3": "O₃",
}
POLLUTANT_COLOURS: Final[dict[str, str]] = {
    "so2": "#8F3BB8",
    "no2": "#FF7383",
    "pm10": "#B8860B",
    "pm25": "#5B4A9E",
    "co": "#1F60C4",
    "o3": "#37872D",
}


def dashboard() -> Board:
    board = Board.create(
        "envmon-air-station",
        "空气质量监测站点",
        description="六项污染物、逐时 AQI 与首要污染物、日 AQI 日历、O₃ 日最大 8 小时平均。",
        time_from="now-7d",
        tags=["air"],
    )
    board.variable(
        "city",
        query_var(
            "city",
            "城市",
            "SELECT DISTINCT city FROM station WHERE kind = 'air' AND active ORDER BY 1",
            multi=True,
            include_all=True,
        ),
    )
    board.variable(
        "station",
        query_var(
            "station",
            "站点",
            "SELECT name || '（' || county || '）' AS __text, id AS __value FROM station"
            " WHERE kind = 'air' AND active AND city IN ($city) ORDER BY city, county, name",
            multi=True,
            include_all=False,
        ),
    )
    board.variable(
        "pollutant",
        custom_var(
            "pollutant",
            "污染物",
            {k: POLLUTANT_LABELS[k] for k in ("pm25", "pm10", "so2", "no2", "o3", "co")},
            default=["pm25", "pm10", "so2", "no2", "o3", "co"],
            multi=True,
            include_all=True,
        ),
    )

    values = ", ".join(
        f"({sql_list([k])}, {sql_list([POLLUTANT_LABELS[k]])}, a.{k})" for k in POLLUTANT_LABELS
    )
    conc = ts_query(
        f"""
SELECT $__timeGroupAlias(a.ts, $__interval), s.name || ' ' || v.label AS metric,
       avg(v.value) AS "浓度"
FROM air_hour a
JOIN station s ON s.id = a.station_id
CROSS JOIN LATERAL (VALUES {values}) AS v(code, label, value)
WHERE a.station_id IN ($station) AND $__timeFilter(a.ts) AND v.code IN ($pollutant)
GROUP BY 1, 2
ORDER BY 1, 2"""
    )
    p = (
        timeseries_panel(UG)
        .axis_label("µg/m³")
        .override_by_regexp(".* CO$", [prop("unit", MG), prop("custom.axisPlacement", "right")])
    )
    for code, colour in POLLUTANT_COLOURS.items():
        p = p.override_by_regexp(f".* {POLLUTANT_LABELS[code]}$", [fixed_colour(colour)])
    board.add(
        "污染物浓度（小时值）",
        "timeseries",
        p,
        [conc],
        w=24,
        h=9,
        description="GB 3095 有效小时值（标记 N/T，分钟数据 ≥45 分钟）；时间范围较长时按"
        " $__interval 取平均。CO 为 mg/m³（右轴），其余 µg/m³。",
    )
    invalid = ts_query(
        """
SELECT $__timeGroupAlias(m.ts, '1h'), s.name || ' ' || m.parameter AS metric,
       count(*)::float8 AS "审核无效"
FROM review_mark m
JOIN station s ON s.id = m.station_id
WHERE m.station_id IN ($station) AND $__timeFilter(m.ts) AND m.parameter IN ($pollutant)
  AND m.restored_at IS NULL
GROUP BY 1, 2
ORDER BY 1, 2""",
        may_be_empty=True,
    )
    board.add(
        "审核标为无效的小时",
        "timeseries",
        counts_bars(),
        [invalid],
        w=24,
        h=5,
        description="envmon review invalidate 标为无效、尚未恢复的小时（不计入日均值与评价）。",
    )

    aqi = ts_query(
        """
SELECT $__timeGroupAlias(a.ts, $__interval), s.name AS metric, max(a.aqi)::float8 AS "AQI"
FROM air_hour a JOIN station s ON s.id = a.station_id
WHERE a.station_id IN ($station) AND $__timeFilter(a.ts) AND a.aqi IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2"""
    )
    board.add(
        "逐时 AQI",
        "timeseries",
        timeseries_panel()
        .thresholds(aqi_thresholds())
        .thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.AREA)
        )
        .min(0),
        [aqi],
        w=12,
        h=8,
        description="HJ 633 实时报 AQI（2012 版：SO₂/NO₂/CO/O₃ 1 小时值、O₃ 8 小时滑动、PM 24 小时"
        "滑动；2026-03-01 起按 HJ 633-2026）。背景色为 HJ 633 类别颜色。",
    )

    whens = " ".join(
        f"WHEN '{code}' THEN {i}" for i, code in enumerate(aqi_std.POLLUTANTS, start=1)
    )
    primary = ts_query(
        f"""
SELECT $__timeGroupAlias(a.ts, $__interval), s.name AS metric,
       (array_agg(CASE a.primary_pollutants[1] {whens} ELSE 0 END
                  ORDER BY a.aqi DESC, a.ts))[1]::float8 AS "首要污染物"
FROM air_hour a JOIN station s ON s.id = a.station_id
WHERE a.station_id IN ($station) AND $__timeFilter(a.ts) AND a.aqi IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2"""
    )
    mapping = dm.ValueMap(
        options={
            "0": dm.ValueMappingResult(
                text="无（AQI ≤ 50）", color=aqi_std.CATEGORIES[0].colour, index=0
            ),
            **{
                str(i): dm.ValueMappingResult(
                    text=POLLUTANT_LABELS[code], color=POLLUTANT_COLOURS[code], index=i
                )
                for i, code in enumerate(aqi_std.POLLUTANTS, start=1)
            },
        }
    )
    board.add(
        "首要污染物",
        "state-timeline",
        statetimeline_b.Panel()
        .mappings([mapping])
        .merge_values(True)
        .show_value(common.VisibilityMode.AUTO)
        .legend(legend_hidden())
        .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("text")),
        [primary],
        w=12,
        h=8,
        description="AQI > 50 时 IAQI 最大的污染物（HJ 633 §6）；时间段内取 AQI 最高的小时。",
    )

    calendar = ts_query(
        f"""
WITH d AS (
    SELECT a.day, a.aqi, extract(isodow FROM a.day)::int AS dow,
           a.day - (extract(isodow FROM a.day)::int - 1) AS monday
    FROM air_day a
    WHERE a.station_id IN ($station) AND a.day BETWEEN {DAY_FROM} AND {DAY_TO}
)
SELECT {bj("d.monday")} AS time,
       max(d.aqi) FILTER (WHERE d.dow = 1)::float8 AS "周一",
       max(d.aqi) FILTER (WHERE d.dow = 2)::float8 AS "周二",
       max(d.aqi) FILTER (WHERE d.dow = 3)::float8 AS "周三",
       max(d.aqi) FILTER (WHERE d.dow = 4)::float8 AS "周四",
       max(d.aqi) FILTER (WHERE d.dow = 5)::float8 AS "周五",
       max(d.aqi) FILTER (WHERE d.dow = 6)::float8 AS "周六",
       max(d.aqi) FILTER (WHERE d.dow = 7)::float8 AS "周日"
FROM d
GROUP BY d.monday
ORDER BY 1"""
    )
    board.add(
        "日 AQI 日历 ${station:text}",
        "status-history",
        statushistory_b.Panel()
        .thresholds(aqi_thresholds())
        .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .show_value(common.VisibilityMode.AUTO)
        .row_height(0.9)
        .legend(legend_hidden())
        .mappings([no_data_mapping(0, "")]),
        [calendar],
        w=12,
        h=9,
        repeat="station",
        description="日报 AQI（HJ 633 日报：24 小时平均、O₃ 日最大 8 小时平均），每列一周、每行一个"
        "星期几，按 HJ 633 类别着色：一张按周排列的日历热力图。",
    )

    o3_limit = limit("o3_8h", date(2026, 3, 1))  # GB 3095-2012 and -2026 class II: 160 µg/m³
    mda8 = ts_query(
        f"""
SELECT {bj("d.day")} AS time, s.name AS metric, d.o3_8h_max AS "O₃ 日最大8小时平均"
FROM air_day d JOIN station s ON s.id = d.station_id
WHERE d.station_id IN ($station) AND d.day BETWEEN {DAY_FROM} AND {DAY_TO}
  AND d.o3_8h_max IS NOT NULL
ORDER BY 1, 2"""
    )
    board.add(
        "O₃ 日最大 8 小时平均（MDA8）",
        "timeseries",
        timeseries_panel(UG)
        .draw_style(common.GraphDrawStyle.LINE)
        .show_points(common.VisibilityMode.ALWAYS)
        .thresholds(thresholds("transparent", [(o3_limit, BAD_COLOUR)]))
        .thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        ),
        [mda8],
        w=24,
        h=8,
        description=f"17 个滑动 8 小时窗口（08:00–24:00 结束）的最大值；虚线为 GB 3095 二级标准"
        f" {o3_limit:g} µg/m³。",
    )
    return board
