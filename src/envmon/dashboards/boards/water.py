"""Dashboard 3, ``envmon-water``: section classes against their targets, monthly
classes, daily means against the GB 3838-2002 class limits.
"""

from __future__ import annotations

from typing import Final

from envmon.dashboards._sdk import common, dash, dm, statushistory_b, table_b
from envmon.dashboards.panels import (
    DAY_FROM,
    DAY_TO,
    LEVEL_NAMES,
    MGL,
    NO_DATA_COLOUR,
    WATER_CLASS_COLOURS,
    Board,
    bj,
    colour_background,
    fixed_colour,
    kind_case,
    latest_section_month,
    legend_hidden,
    mappings_prop,
    month_start,
    prop,
    status_cells,
    table_query,
    threshold_colours,
    timeseries_panel,
    ts_query,
    water_class_mappings,
    water_class_thresholds,
)
from envmon.dashboards.variables import custom_var, query_var
from envmon.standards import water as water_std

WATER_PARAMS: Final[dict[str, str]] = {
    "codmn": "高锰酸盐指数",
    "nh3n": "氨氮",
    "tp": "总磷",
    "do": "溶解氧",
    "cod": "化学需氧量",
    "tn": "总氮",
    "ph": "pH",
}


def _water_limits_cte() -> str:
    """Class limits per parameter (GB 3838-2002 Table 1, river column), as SQL rows."""
    rows = []
    for code in WATER_PARAMS:
        if code == "ph":
            rows.append("('ph', 'pH 下限 6', 6.0::float8)")
            rows.append("('ph', 'pH 上限 9', 9.0::float8)")
            continue
        # Table 1 lives in envmon.standards.water; _limits is its accessor.
        lims = water_std._limits(code, "river")
        for cls in (2, 3, 4, 5):
            rows.append(f"('{code}', '{water_std.roman(cls)}类限值', {float(lims[cls - 1])!r})")
    return "lim(parameter, label, value) AS (VALUES " + ", ".join(rows) + ")"


def dashboard() -> Board:
    board = Board.create(
        "envmon-water",
        "地表水断面水质",
        description="断面水质类别与目标类别、监测指标与 GB 3838-2002 类别限值、月度类别。",
        time_from="now-1y",
        refresh="1h",
        tags=["water"],
    )
    board.variable(
        "section",
        query_var(
            "section",
            "断面",
            "SELECT name || '（' || coalesce(river, '') || '）' AS __text, id AS __value"
            " FROM station WHERE kind = 'water' AND active ORDER BY basin, river, name",
            multi=True,
            include_all=True,
        ),
    )
    board.variable(
        "wparam",
        custom_var(
            "wparam",
            "指标",
            WATER_PARAMS,
            default=["codmn", "nh3n", "tp", "do"],
            multi=True,
            include_all=False,
        ),
    )
    level_case = kind_case({k: f"'{v}'" for k, v in LEVEL_NAMES.items()}, "s.control_level")
    classes = table_query(
        f"""
SELECT s.name AS "断面", s.river AS "河流", s.county AS "区县", {level_case} AS "级别",
       to_char(m.month, 'YYYY-MM') AS "月份", m.class::float8 AS "水质类别",
       s.target_class::float8 AS "目标类别",
       CASE WHEN m.class IS NULL THEN '无数据' WHEN m.meets_target THEN '达标'
            ELSE '不达标' END AS "是否达标",
       array_to_string(m.main_pollutants, '、') AS "主要污染指标"
FROM station s
{latest_section_month("w.month, w.class, w.meets_target, w.main_pollutants")}
WHERE s.kind = 'water' AND s.id IN ($section)
ORDER BY s.basin, s.river, s.name"""
    )
    cls_props = [
        colour_background(),
        mappings_prop(water_class_mappings()),
        *threshold_colours(water_class_thresholds()),
    ]
    board.add(
        "断面水质类别与目标类别",
        "table",
        table_b.Panel()
        .override_by_name("水质类别", cls_props)
        .override_by_name("目标类别", cls_props)
        .override_by_name(
            "是否达标",
            status_cells(),
        ),
        [classes],
        w=24,
        h=10,
        description="近一年内最新月份的断面水质类别（GB 3838-2002，单因子评价，环办〔2011〕22号），"
        "主要污染指标带超Ⅲ类倍数。",
    )

    monthly = ts_query(
        f"""
SELECT {bj("w.month")} AS time, s.name AS metric, w.class::float8 AS "水质类别"
FROM water_section_month w JOIN station s ON s.id = w.station_id
WHERE w.station_id IN ($section)
  AND w.month BETWEEN {month_start(DAY_FROM)} AND {DAY_TO}
ORDER BY 1, 2"""
    )
    board.add(
        "月度水质类别",
        "status-history",
        statushistory_b.Panel()
        .mappings(water_class_mappings())
        .thresholds(water_class_thresholds())
        .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .show_value(common.VisibilityMode.AUTO)
        .legend(legend_hidden()),
        [monthly],
        w=24,
        h=10,
    )

    series = ts_query(
        f"""
WITH {_water_limits_cte()},
span AS (SELECT {DAY_FROM} AS day UNION ALL SELECT {DAY_TO})
SELECT time, metric, value FROM (
    SELECT {bj("w.day")} AS time, s.name AS metric, w.value
    FROM water_day w JOIN station s ON s.id = w.station_id
    WHERE w.station_id IN ($section) AND w.parameter IN ($wparam)
      AND w.day BETWEEN {DAY_FROM} AND {DAY_TO}
    UNION ALL
    SELECT {bj("sp.day")}, l.label, l.value
    FROM lim l CROSS JOIN span sp
    WHERE l.parameter IN ($wparam)
) x
ORDER BY 1, 2"""
    )
    p = (
        timeseries_panel(MGL)
        .override_by_regexp(
            ".*(类限值|pH 上限|pH 下限).*",
            [
                prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
                prop("custom.lineWidth", 1),
                fixed_colour(NO_DATA_COLOUR),
            ],
        )
        .show_points(common.VisibilityMode.AUTO)
    )
    for cls in (2, 3, 4, 5):
        p = p.override_by_name(
            f"{water_std.roman(cls)}类限值", [fixed_colour(WATER_CLASS_COLOURS[cls])]
        )
    board.add(
        "${wparam:text}：日均值与类别限值",
        "timeseries",
        p,
        [series],
        w=12,
        h=9,
        repeat="wparam",
        description="自动站日均值（mg/L，pH 无量纲）；虚线为 GB 3838-2002 表 1 河流Ⅱ–Ⅴ类限值"
        "（溶解氧为下限）。",
    )
    return board
