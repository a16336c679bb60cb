"""Dashboard 5, ``envmon-targets``: progress towards the 2025 targets (PM2.5 path,
monthly PM2.5, good days and water sections against the baseline year).
"""

from __future__ import annotations

from collections.abc import Sequence

from envmon.dashboards._sdk import common, timeseries_b
from envmon.dashboards.goals import baseline_year, goal_ctes, region_cities, target_stats
from envmon.dashboards.panels import (
    BAD_COLOUR,
    DAY_FROM,
    DAY_TO,
    NO_DATA_COLOUR,
    OK_COLOUR,
    UG,
    YEAR_TO,
    Board,
    bj,
    fixed_colour,
    month_start,
    not_dust,
    prop,
    timeseries_panel,
    ts_query,
)
from envmon.dashboards.variables import region_var
from envmon.evaluate.targets import Target


def _bars_with_baseline(unit: str, baseline_year: int) -> timeseries_b.Panel:
    """Monthly bars of the current period beside the baseline year's same months (grey)."""
    return (
        timeseries_panel(unit)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(70)
        .override_by_name(f"{baseline_year}年同月", [fixed_colour(NO_DATA_COLOUR)])
    )


def dashboard(targets: Sequence[Target]) -> Board:
    board = Board.create(
        "envmon-targets",
        "2025 年目标进度",
        description="PM2.5 年均浓度、优良天数比例、地表水Ⅰ–Ⅲ类断面比例相对 2020 年基准与目标的进度"
        "（目标来自 config/targets.yaml，构建时写入）。",
        time_from="now/y",
        time_to="now",
        refresh="1h",
        tags=["targets"],
    )
    board.variable("region", region_var())
    target_stats(board, targets, w=8, h=5)
    by = baseline_year(targets)

    path = ts_query(
        f"""
WITH {
            goal_ctes(
                "pm25_annual_mean",
                targets,
                f"SELECT generate_series(extract(year FROM {DAY_FROM})::int, {YEAR_TO})",
            )
        },
days AS (
    SELECT d.day, d.pm25 FROM region_day d
    WHERE d.region = '$region'
      AND d.day >= make_date(extract(year FROM {DAY_FROM})::int, 1, 1) AND d.day <= {DAY_TO}
      AND d.pm25 IS NOT NULL AND {not_dust("d")}
),
ytd AS (
    SELECT day, avg(pm25) OVER (PARTITION BY extract(year FROM day) ORDER BY day) AS v
    FROM days
)
SELECT {bj("y.day")} AS time, y.v AS "年初至今均值", p.milestone AS "目标路径",
       p.goal AS "{by}→目标年目标值"
FROM ytd y LEFT JOIN path p ON p.year = extract(year FROM y.day)::int
WHERE y.day >= {DAY_FROM}
ORDER BY 1"""
    )
    board.add(
        "PM2.5 年初至今均值与目标路径",
        "timeseries",
        timeseries_panel(UG)
        .override_by_name("年初至今均值", [fixed_colour("#5B4A9E"), prop("custom.lineWidth", 2)])
        .override_by_name(
            "目标路径",
            [fixed_colour(OK_COLOUR), prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})],
        )
        .override_by_name(
            f"{by}→目标年目标值",
            [fixed_colour(BAD_COLOUR), prop("custom.lineStyle", {"fill": "dot", "dash": [0, 10]})],
        ),
        [path],
        w=24,
        h=9,
        description="区域日均值（扣沙）自 1 月 1 日起的累计平均；目标路径为基准年均值到"
        "目标年目标值的"
        "直线在当年的取值。",
    )

    months = (
        f"SELECT generate_series({month_start(DAY_FROM)}::timestamp,"
        f" {month_start(DAY_TO)}::timestamp, interval '1 month')::date AS month"
    )
    pm_month = ts_query(
        f"""
WITH m AS ({months}),
cur AS (
    SELECT {month_start("d.day")} AS month, avg(d.pm25) AS v FROM region_day d
    WHERE d.region = '$region' AND d.day BETWEEN {month_start(DAY_FROM)} AND {DAY_TO}
      AND d.pm25 IS NOT NULL AND {not_dust("d")}
    GROUP BY 1
),
base AS (
    SELECT extract(month FROM d.day)::int AS mon, avg(d.pm25) AS v FROM region_day d
    WHERE d.region = '$region' AND d.day >= make_date({by}, 1, 1)
      AND d.day < make_date({by + 1}, 1, 1) AND d.pm25 IS NOT NULL AND {not_dust("d")}
    GROUP BY 1
)
SELECT {bj("m.month")} AS time, cur.v AS "当月", base.v AS "{by}年同月"
FROM m LEFT JOIN cur ON cur.month = m.month
LEFT JOIN base ON base.mon = extract(month FROM m.month)::int
ORDER BY 1"""
    )
    board.add(
        f"PM2.5 月均浓度与 {by} 年同期",
        "timeseries",
        _bars_with_baseline(UG, by),
        [pm_month],
        w=8,
        h=9,
    )
    good_month = ts_query(
        f"""
WITH m AS ({months}),
cur AS (
    SELECT {month_start("d.day")} AS month,
           100.0 * count(*) FILTER (WHERE d.category <= 2) / count(*) AS v
    FROM region_day d
    WHERE d.region = '$region' AND d.day BETWEEN {month_start(DAY_FROM)} AND {DAY_TO}
      AND d.aqi IS NOT NULL
    GROUP BY 1
),
base AS (
    SELECT extract(month FROM d.day)::int AS mon,
           100.0 * count(*) FILTER (WHERE d.category <= 2) / count(*) AS v
    FROM region_day d
    WHERE d.region = '$region' AND d.day >= make_date({by}, 1, 1)
      AND d.day < make_date({by + 1}, 1, 1) AND d.aqi IS NOT NULL
    GROUP BY 1
)
SELECT {bj("m.month")} AS time, cur.v::float8 AS "当月", base.v::float8 AS "{by}年同月"
FROM m LEFT JOIN cur ON cur.month = m.month
LEFT JOIN base ON base.mon = extract(month FROM m.month)::int
ORDER BY 1"""
    )
    board.add(
        f"优良天数比例（月度）与 {by} 年同期",
        "timeseries",
        _bars_with_baseline("percent", by).min(0).max(100),
        [good_month],
        w=8,
        h=9,
    )
    water_month = ts_query(
        f"""
WITH {
            goal_ctes(
                "water_good_ratio",
                targets,
                f"SELECT generate_series(extract(year FROM {DAY_FROM})::int, {YEAR_TO})",
            )
        },
m AS ({months}),
sec AS (
    SELECT s.id FROM station s
    WHERE s.kind = 'water' AND s.control_level = 'national' AND s.city IN {region_cities()}
),
cur AS (
    SELECT w.month, 100.0 * count(*) FILTER (WHERE w.class <= 3) / count(*) AS v
    FROM water_section_month w JOIN sec ON sec.id = w.station_id
    WHERE w.month BETWEEN {month_start(DAY_FROM)} AND {DAY_TO}
    GROUP BY 1
),
base AS (
    SELECT extract(month FROM w.month)::int AS mon,
           100.0 * count(*) FILTER (WHERE w.class <= 3) / count(*) AS v
    FROM water_section_month w JOIN sec ON sec.id = w.station_id
    WHERE w.month >= make_date({by}, 1, 1) AND w.month < make_date({by + 1}, 1, 1)
    GROUP BY 1
)
SELECT {bj("m.month")} AS time, cur.v::float8 AS "当月", base.v::float8 AS "{by}年同月",
       (p.goal * 100)::float8 AS "目标"
FROM m LEFT JOIN cur ON cur.month = m.month
LEFT JOIN base ON base.mon = extract(month FROM m.month)::int
LEFT JOIN path p ON p.year = extract(year FROM m.month)::int
ORDER BY 1"""
    )
    board.add(
        f"国考断面Ⅰ–Ⅲ类比例（月度）与 {by} 年同期",
        "timeseries",
        _bars_with_baseline("percent", by)
        .min(0)
        .max(100)
        .override_by_name(
            "目标",
            [
                fixed_colour(BAD_COLOUR),
                prop("custom.drawStyle", "line"),
                prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
            ],
        ),
        [water_month],
        w=8,
        h=9,
    )
    return board
