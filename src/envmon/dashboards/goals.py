"""The zone's targets (``config/targets.yaml``) baked into panel SQL, and the
three target stat panels the overview and the targets dashboard share.

A numeric baseline stays a number, ``baseline: from_data`` becomes a
sub-query over the baseline year's ``region_day`` rows computed exactly as
``envmon evaluate`` does (dust-deducted PM2.5 mean, share of 优/良 days). So the
dashboards need no extra table kept in sync with the YAML, ``grafana_reader``
needs no extra grant, and editing the targets makes ``envmon dashboards build
--check`` fail until the dashboards are rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

from envmon.dashboards._sdk import common, dash, dm
from envmon.dashboards.panels import (
    DAY_TO,
    STATUS_COLOURS,
    UG,
    YEAR_TO,
    Board,
    Query,
    mappings_prop,
    not_dust,
    prop,
    sql_list,
    stat_panel,
    table_query,
    text_mappings,
)
from envmon.evaluate.regions import CITY_REGION
from envmon.evaluate.targets import Target


def _num(x: float | int | None, sql_type: str) -> str:
    return f"NULL::{sql_type}" if x is None else f"{x!r}::{sql_type}"


def targets_cte(targets: Sequence[Target]) -> str:
    """``cfg(metric, region, baseline_year, baseline, change, target, target_year)`` rows."""
    if not targets:
        rows = ["(NULL::text, NULL::text, NULL::int, NULL::float8, NULL::float8, NULL::float8,"
                " NULL::int)"]  # fmt: skip
    else:
        rows = []
        for t in targets:
            baseline = None if t.baseline in (None, "from_data") else float(cast(float, t.baseline))
            rows.append(
                f"({sql_list([t.metric])}::text, {sql_list([t.region])}::text,"
                f" {_num(t.baseline_year, 'int')}, {_num(baseline, 'float8')},"
                f" {_num(t.change, 'float8')}, {_num(t.target, 'float8')},"
                f" {_num(t.target_year, 'int')})"
            )
    return (
        "cfg(metric, region, baseline_year, baseline, change, target, target_year) AS (VALUES\n    "
        + ",\n    ".join(rows)
        + ")"
    )


_FROM_DATA: Final[dict[str, str]] = {
    "pm25_annual_mean": (
        "SELECT avg(d.pm25) FROM region_day d WHERE d.region = '$region'"
        " AND d.day >= make_date(p.baseline_year, 1, 1)"
        " AND d.day < make_date(p.baseline_year + 1, 1, 1)"
        f" AND d.pm25 IS NOT NULL AND {not_dust('d')}"
    ),
    "good_day_ratio": (
        "SELECT (count(*) FILTER (WHERE d.category <= 2))::float8 / nullif(count(*), 0)"
        " FROM region_day d WHERE d.region = '$region'"
        " AND d.day >= make_date(p.baseline_year, 1, 1)"
        " AND d.day < make_date(p.baseline_year + 1, 1, 1) AND d.aqi IS NOT NULL"
    ),
    "water_good_ratio": "SELECT NULL::float8",
}
_GOAL: Final[dict[str, str]] = {
    "pm25_annual_mean": "coalesce(p.target, b.base * (1 + p.change))",
    "good_day_ratio": "coalesce(p.target, least(b.base + p.change, 1.0))",
    "water_good_ratio": "p.target",
}


def goal_ctes(metric: str, targets: Sequence[Target], years: str) -> str:
    """CTEs ending in ``goal(year, baseline_year, target_year, base, goal, milestone)``.

    ``years`` is a SQL expression list of the years wanted (``SELECT … AS year``).
    The target in force for a year is the next one (``envmon.evaluate.targets.find``);
    ``milestone`` is that year's point on the straight path from the baseline to
    the target.
    """
    return f"""{targets_cte(targets)},
years(year) AS ({years}),
pick AS (
    SELECT y.year, c.baseline_year, c.baseline, c.change, c.target, c.target_year
    FROM years y CROSS JOIN LATERAL (
        SELECT * FROM cfg c WHERE c.metric = '{metric}' AND c.region = '$region'
        ORDER BY (c.target_year < y.year),
                 CASE WHEN c.target_year >= y.year THEN c.target_year ELSE -c.target_year END
        LIMIT 1) c
),
goal AS (
    SELECT p.year, p.baseline_year, p.target_year, b.base, {_GOAL[metric]} AS goal
    FROM pick p CROSS JOIN LATERAL (SELECT coalesce(p.baseline, ({_FROM_DATA[metric]})) AS base) b
),
path AS (
    SELECT g.*, CASE
        WHEN g.goal IS NULL OR g.base IS NULL OR g.baseline_year IS NULL
             OR g.year >= g.target_year THEN g.goal
        WHEN g.year <= g.baseline_year THEN g.base
        ELSE g.base + (g.goal - g.base) * (g.year - g.baseline_year)::float8
                      / (g.target_year - g.baseline_year)
    END AS milestone
    FROM goal g
)"""


def region_cities() -> str:
    pairs = ", ".join(f"({sql_list([c])}, {sql_list([r])})" for c, r in CITY_REGION.items())
    return (
        f"(SELECT r.city FROM (VALUES {pairs}) AS r(city, region)"
        " WHERE '$region' IN ('zone', r.region))"
    )


def _pm25_stat_query(targets: Sequence[Target]) -> Query:
    return table_query(f"""
WITH {goal_ctes("pm25_annual_mean", targets, f"SELECT {YEAR_TO}")},
ytd AS (
    SELECT avg(d.pm25) AS v FROM region_day d
    WHERE d.region = '$region' AND d.day >= make_date({YEAR_TO}, 1, 1) AND d.day <= {DAY_TO}
      AND d.pm25 IS NOT NULL AND {not_dust("d")}
)
SELECT round(ytd.v::numeric, 1)::float8 AS "年初至今",
       round(g.goal::numeric, 1)::float8 AS "目标",
       CASE WHEN g.goal IS NULL THEN '无目标' WHEN ytd.v IS NULL THEN '无数据'
            WHEN round(ytd.v::numeric, 1) <= round(g.goal::numeric, 1) THEN '达到目标'
            ELSE '未达目标' END AS "状态"
FROM ytd CROSS JOIN path g""")


def _good_stat_query(targets: Sequence[Target]) -> Query:
    return table_query(f"""
WITH {goal_ctes("good_day_ratio", targets, f"SELECT {YEAR_TO}")},
ytd AS (
    SELECT count(*) FILTER (WHERE d.category <= 2) AS good, count(*) AS valid
    FROM region_day d
    WHERE d.region = '$region' AND d.day >= make_date({YEAR_TO}, 1, 1) AND d.day <= {DAY_TO}
      AND d.aqi IS NOT NULL
),
budget AS (
    SELECT floor((make_date(g.year + 1, 1, 1) - make_date(g.year, 1, 1)) * (1 - g.goal)
                 + 1e-9)::int AS allowed
    FROM path g
)
SELECT round((y.good::numeric / nullif(y.valid, 0)) * 100, 1)::float8 AS "优良天数比例",
       round((g.goal * 100)::numeric, 1)::float8 AS "目标",
       (b.allowed - (y.valid - y.good))::float8 AS "剩余非优良天数额度",
       CASE WHEN g.goal IS NULL THEN '无目标' WHEN y.valid = 0 THEN '无数据'
            WHEN b.allowed - (y.valid - y.good) < 0 THEN '未达目标'
            WHEN y.good::float8 / y.valid >= g.goal - 1e-12 THEN '达到目标'
            ELSE '有风险' END AS "状态"
FROM ytd y CROSS JOIN path g CROSS JOIN budget b""")


def _water_stat_query(targets: Sequence[Target]) -> Query:
    return table_query(f"""
WITH {goal_ctes("water_good_ratio", targets, f"SELECT {YEAR_TO}")},
latest AS (
    SELECT max(w.month) AS month FROM water_section_month w JOIN station s ON s.id = w.station_id
    WHERE s.kind = 'water' AND s.control_level = 'national' AND s.city IN {region_cities()}
      AND w.month >= make_date({YEAR_TO}, 1, 1) AND w.month <= {DAY_TO}
),
share AS (
    SELECT count(*) FILTER (WHERE w.class <= 3) AS good, count(*) AS n
    FROM water_section_month w JOIN station s ON s.id = w.station_id
    WHERE w.month = (SELECT l.month FROM latest l)
      AND s.kind = 'water' AND s.control_level = 'national' AND s.city IN {region_cities()}
)
SELECT round((sh.good::numeric / nullif(sh.n, 0)) * 100, 1)::float8 AS "Ⅰ–Ⅲ类比例（最新月）",
       round((g.goal * 100)::numeric, 1)::float8 AS "目标",
       CASE WHEN g.goal IS NULL THEN '无目标' WHEN sh.n = 0 THEN '无数据'
            WHEN sh.good::float8 / sh.n >= g.goal - 1e-12 THEN '达到目标'
            ELSE '未达目标' END AS "状态"
FROM share sh CROSS JOIN path g""")


def target_stats(
    board: Board,
    targets: Sequence[Target],
    *,
    w: int,
    h: int,
    column_at: tuple[int, int] | None = None,
) -> None:
    """The three 2025 targets as stat panels: value to date, target, status.

    Side by side, or stacked in a column starting at ``column_at`` = (x, y).
    """
    status = [mappings_prop(text_mappings(STATUS_COLOURS))]
    for title, query, unit, desc in (
        (
            "PM2.5 年均浓度（年初至今）",
            _pm25_stat_query(targets),
            UG,
            "区域日均值（扣除沙尘）的年初至今平均，与 config/targets.yaml 的目标（基准年"
            "−20%）比较；年终判定与全年预测见 envmon evaluate。",
        ),
        (
            "优良天数比例（年初至今）",
            _good_stat_query(targets),
            "percent",
            "AQI ≤ 100 的有效天数占比；剩余额度 = 全年允许的非优良天数 − 已发生的非优良天数。",
        ),
        (
            "地表水Ⅰ–Ⅲ类断面比例",
            _water_stat_query(targets),
            "percent",
            "国考断面最新月份水质类别（GB 3838-2002，单因子评价）Ⅰ–Ⅲ类占比；"
            "年度评价见 envmon evaluate。",
        ),
    ):
        p = (
            stat_panel(unit)
            .decimals(1)
            .color_mode(common.BigValueColorMode.VALUE)
            .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("text"))
            .override_by_name("状态", status)
        )
        if "剩余非优良天数额度" in query.sql:
            p = p.override_by_name("剩余非优良天数额度", [prop("unit", "d"), prop("decimals", 0)])
        at = None
        if column_at is not None:
            at = column_at
            column_at = (column_at[0], column_at[1] + h)
        board.add(title, "stat", p, [query], w=w, h=h, description=desc, at=at)


def baseline_year(targets: Sequence[Target]) -> int:
    years = sorted({t.baseline_year for t in targets if t.baseline_year is not None})
    return years[0] if years else 2020
