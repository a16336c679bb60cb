"""The six envmon dashboards, as code.

Fixed UIDs: ``envmon-overview`` (zone overview), ``envmon-air-station``,
``envmon-water``, ``envmon-weather``, ``envmon-targets``, ``envmon-data-health``.
Titles are Chinese, colours are the HJ 633 AQI category colours
(:data:`envmon.standards.aqi.CATEGORIES`), times are Beijing time.

The zone's targets (``config/targets.yaml``) are baked into the SQL at build
time: a numeric baseline stays a number, ``baseline: from_data`` becomes a
sub-query over the baseline year's ``region_day`` rows computed exactly as
``envmon evaluate`` does (dust-deducted PM2.5 mean, share of 优/良 days). So the
dashboards need no extra table kept in sync with the YAML, ``grafana_reader``
needs no extra grant, and editing the targets makes ``envmon dashboards build
--check`` fail until the dashboards are rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Final, cast

from envmon.dashboards._sdk import (
    common,
    common_b,
    dash,
    dm,
    geomap_b,
    geomap_m,
    stat_b,
    statetimeline_b,
    statushistory_b,
    table_b,
    timeseries_b,
)
from envmon.dashboards.panels import (
    BAD_COLOUR,
    DAY_FROM,
    DAY_TO,
    EXPECTED,
    KIND_NAMES,
    LEVEL_NAMES,
    NO_DATA_COLOUR,
    OK_COLOUR,
    STATUS_COLOURS,
    VALID,
    WARN_COLOUR,
    WATER_CLASS_COLOURS,
    YEAR_TO,
    Board,
    Query,
    aqi_category_mappings,
    aqi_category_thresholds,
    aqi_thresholds,
    bj,
    colour_background,
    expected_params_sql,
    fixed_colour,
    kind_case,
    legend_bottom,
    legend_hidden,
    month_start,
    no_data_mapping,
    not_dust,
    period_sql,
    prop,
    slots_sql,
    sql_list,
    table_query,
    text_mappings,
    thresholds,
    tooltip_all,
    ts_query,
    water_class_mappings,
    water_class_thresholds,
)
from envmon.dashboards.sql import datasource_ref
from envmon.evaluate.regions import CITY_REGION, REGION_NAMES
from envmon.evaluate.targets import Target
from envmon.standards import aqi as aqi_std
from envmon.standards import water as water_std
from envmon.standards.limits import limit

UIDS: Final = (
    "envmon-overview",
    "envmon-air-station",
    "envmon-water",
    "envmon-weather",
    "envmon-targets",
    "envmon-data-health",
)
ALERT_TABLE: Final = "alert_event"  # migration 0004 (alert engine)
SOURCE_HEALTH_TABLE: Final = "source_health"  # migration 0003 (HTTP pull sources)
READ_TABLES: Final = (
    "station",
    "reading",
    "rejected",
    "ingest_cursor",
    "air_hour",
    "air_day",
    "region_day",
    "water_day",
    "water_section_month",
    "dust_period",
    SOURCE_HEALTH_TABLE,
    ALERT_TABLE,
)
"""Every table a panel or variable reads: what migration 0006 grants grafana_reader."""
BJ_ORIGIN: Final = "timestamptz '2000-01-01 00:00:00+08'"  # a Beijing midnight
UG: Final = "suffix:µg/m³"
MG: Final = "suffix:mg/m³"
MGL: Final = "suffix:mg/L"
ZONE_CENTRE: Final = (38.55, 112.65)  # lat, lon of the zone's middle (阳曲/忻府 border)

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
WATER_PARAMS: Final[dict[str, str]] = {
    "codmn": "高锰酸盐指数",
    "nh3n": "氨氮",
    "tp": "总磷",
    "do": "溶解氧",
    "cod": "化学需氧量",
    "tn": "总氮",
    "ph": "pH",
}


def _custom_values(options: dict[str, str]) -> str:
    """A custom variable's ``query``: ``text : value`` pairs (Grafana's key-value syntax)."""
    return ", ".join(f"{text} : {value}" for value, text in options.items())


def _custom(
    name: str,
    label: str,
    options: dict[str, str],
    *,
    default: Sequence[str],
    multi: bool = False,
    include_all: bool = False,
) -> dash.CustomVariable:
    """A custom variable; ``options`` maps value → text; ``default`` the selected values."""
    selected = list(default)
    texts = [options[v] for v in selected]
    current = dm.VariableOption(
        selected=True,
        text=texts if multi else texts[0],
        value=selected if multi else selected[0],
    )
    v = (
        dash.CustomVariable(name)
        .label(label)
        .values(_custom_values(options))
        .current(current)
        .options(
            [dm.VariableOption(selected=k in selected, text=t, value=k) for k, t in options.items()]
        )
        .multi(multi)
        .include_all(include_all)
    )
    return v


def _query_var(
    name: str,
    label: str,
    sql: str,
    *,
    multi: bool,
    include_all: bool,
    refresh_on_time: bool = False,
) -> dash.QueryVariable:
    sql = " ".join(sql.split())
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(datasource_ref())
        .query(sql)
        .definition(sql)
        .refresh(
            dm.VariableRefresh.ON_TIME_RANGE_CHANGED
            if refresh_on_time
            else dm.VariableRefresh.ON_DASHBOARD_LOAD
        )
        .sort(dm.VariableSort.DISABLED)
        .multi(multi)
        .include_all(include_all)
    )


def _region_var() -> dash.CustomVariable:
    return _custom("region", "区域", dict(REGION_NAMES), default=["zone"])


def _stat(unit: str | None = None) -> stat_b.Panel:
    p = (
        stat_b.Panel()
        .reduce_options(
            common_b.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields("/.*/")
        )
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .justify_mode(common.BigValueJustifyMode.CENTER)
        .orientation(common.VizOrientation.HORIZONTAL)
    )
    if unit:
        p = p.unit(unit)
    return p


def _timeseries(unit: str | None = None) -> timeseries_b.Panel:
    p = (
        timeseries_b.Panel()
        .legend(legend_bottom())
        .tooltip(tooltip_all())
        .line_width(1)
        .fill_opacity(0)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
    )
    if unit:
        p = p.unit(unit)
    return p


# -- targets baked into SQL -----------------------------------------------------------------------


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


def _region_cities() -> str:
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
    WHERE s.kind = 'water' AND s.control_level = 'national' AND s.city IN {_region_cities()}
      AND w.month >= make_date({YEAR_TO}, 1, 1) AND w.month <= {DAY_TO}
),
share AS (
    SELECT count(*) FILTER (WHERE w.class <= 3) AS good, count(*) AS n
    FROM water_section_month w JOIN station s ON s.id = w.station_id JOIN latest l
      ON w.month = l.month
    WHERE s.kind = 'water' AND s.control_level = 'national' AND s.city IN {_region_cities()}
)
SELECT round((sh.good::numeric / nullif(sh.n, 0)) * 100, 1)::float8 AS "Ⅰ–Ⅲ类比例（最新月）",
       round((g.goal * 100)::numeric, 1)::float8 AS "目标",
       CASE WHEN g.goal IS NULL THEN '无目标' WHEN sh.n = 0 THEN '无数据'
            WHEN sh.good::float8 / sh.n >= g.goal - 1e-12 THEN '达到目标'
            ELSE '未达目标' END AS "状态"
FROM share sh CROSS JOIN path g""")


def _target_stats(
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
    status = [prop("mappings", [m.to_json() for m in text_mappings(STATUS_COLOURS)])]
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
            _stat(unit)
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


# -- 1. zone overview -----------------------------------------------------------------------------


def _overview(targets: Sequence[Target]) -> Board:
    board = Board.create(
        "envmon-overview",
        "太忻经济区环境监测总览",
        description="26 个空气质量监测点、14 个地表水断面、167 个气象站的实时状态与"
        " 2025 年目标进度。",
        time_from="now-24h",
        refresh="5m",
    )
    board.variable("region", _region_var())

    air = table_query(
        """
SELECT s.id, s.name AS "站点", s.county AS "区县", s.lat, s.lon, h.ts AS "时间",
       h.aqi::float8 AS "AQI", h.category::float8 AS "空气质量类别",
       array_to_string(h.primary_pollutants, ',') AS "首要污染物"
FROM station s
LEFT JOIN LATERAL (
    SELECT a.ts, a.aqi, a.category, a.primary_pollutants FROM air_hour a
    WHERE a.station_id = s.id AND a.aqi IS NOT NULL
      AND a.ts <= $__timeTo() AND a.ts > $__timeTo()::timestamptz - interval '6 hours'
    ORDER BY a.ts DESC LIMIT 1) h ON true
WHERE s.kind = 'air' AND s.active
ORDER BY s.id""",
        "A",
    )
    water = table_query(
        f"""
SELECT s.id, s.name AS "断面", s.river AS "河流", s.lat, s.lon,
       to_char(m.month, 'YYYY-MM') AS "月份", m.class::float8 AS "水质类别",
       s.target_class::float8 AS "目标类别"
FROM station s
LEFT JOIN LATERAL (
    SELECT w.month, w.class FROM water_section_month w
    WHERE w.station_id = s.id AND w.month <= {DAY_TO}
    ORDER BY w.month DESC LIMIT 1) m ON true
WHERE s.kind = 'water' AND s.active
ORDER BY s.id""",
        "B",
    )
    weather = table_query(
        f"""
SELECT s.id, s.name AS "气象站", s.county AS "区县", s.lat, s.lon, l.last_ts AS "最后数据",
       round(extract(epoch FROM ($__timeTo()::timestamptz - l.last_ts)) / 60)::float8
           AS "未报时长"
FROM station s
CROSS JOIN LATERAL (
    SELECT max(x.ts) AS last_ts FROM unnest(ARRAY[{sql_list(EXPECTED["weather"])}]) AS p(code)
    CROSS JOIN LATERAL (
        SELECT max(r.ts) AS ts FROM reading r
        WHERE r.station_id = s.id AND r.parameter = p.code AND r.period = '1h'
          AND r.ts <= $__timeTo()) x) l
WHERE s.kind = 'weather' AND s.active
ORDER BY s.id""",
        "C",
    )

    def layer(
        name: str, ref: str, colour_field: str, text_field: str, size: int
    ) -> common_b.MapLayerOptions:
        return (
            common_b.MapLayerOptions()
            .type("markers")
            .name(name)
            .location(
                common_b.FrameGeometrySource()
                .mode(common.FrameGeometrySourceMode.COORDS)
                .latitude("lat")
                .longitude("lon")
            )
            .filter_data({"id": "byRefId", "options": ref})
            .tooltip(True)
            .config(
                {
                    "showLegend": True,
                    "style": {
                        "color": {"field": colour_field, "fixed": NO_DATA_COLOUR},
                        "opacity": 0.9,
                        "size": {"fixed": size, "min": 2, "max": 15},
                        "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                        "text": {"field": text_field, "fixed": "", "mode": "field"},
                        "textConfig": {"fontSize": 10, "offsetY": -12, "textAlign": "center"},
                    },
                }
            )
        )

    geo = (
        geomap_b.Panel()
        .view(
            geomap_b.MapViewConfig()
            .id("coords")
            # The SDK types lat/lon as int; Grafana stores degrees as floats.
            .lat(cast(int, ZONE_CENTRE[0]))
            .lon(cast(int, ZONE_CENTRE[1]))
            .zoom(8)
        )
        .controls(
            geomap_b.ControlsOptions()
            .show_zoom(True)
            .mouse_wheel_zoom(True)
            .show_scale(True)
            .show_attribution(True)
        )
        .basemap(common_b.MapLayerOptions().type("osm-standard").name("底图"))
        .layers(
            [
                layer("气象站（未报时长）", "C", "未报时长", "气象站", 5),
                layer("地表水断面（水质类别）", "B", "水质类别", "断面", 9),
                layer("空气站（AQI 类别）", "A", "空气质量类别", "站点", 10),
            ]
        )
        .tooltip(geomap_b.TooltipOptions().mode(geomap_m.TooltipMode.DETAILS))
        .override_by_name(
            "空气质量类别",
            [
                prop("thresholds", aqi_category_thresholds().build().to_json()),
                prop("mappings", [m.to_json() for m in aqi_category_mappings()]),
                prop("color", {"mode": "thresholds"}),
            ],
        )
        .override_by_name(
            "水质类别",
            [
                prop("thresholds", water_class_thresholds().build().to_json()),
                prop("mappings", [m.to_json() for m in water_class_mappings()]),
                prop("color", {"mode": "thresholds"}),
            ],
        )
        .override_by_name(
            "未报时长",
            [
                prop(
                    "thresholds",
                    thresholds(OK_COLOUR, [(90, WARN_COLOUR), (360, BAD_COLOUR)]).build().to_json(),
                ),
                prop("color", {"mode": "thresholds"}),
                prop("unit", "m"),
            ],
        )
        .override_by_name("AQI", [prop("thresholds", aqi_thresholds().build().to_json())])
    )
    board.add(
        "站点分布与实时状态",
        "geomap",
        geo,
        [air, water, weather],
        w=14,
        h=20,
        at=(0, 0),
        description="空气站按最近一小时 AQI 类别着色（HJ 633 颜色），地表水断面按最新月份水质类别，"
        "气象站按未报时长（≤90 分钟绿，≤6 小时黄，其余红；灰色为无数据）。",
    )

    region_aqi = table_query(
        f"""
SELECT CASE r.region WHEN 'zone' THEN '太忻经济区' WHEN 'taiyuan' THEN '太原市'
                     ELSE '忻州市' END AS "区域",
       r.aqi::float8 AS "AQI"
FROM (VALUES ('zone', 1), ('taiyuan', 2), ('xinzhou', 3)) AS o(region, pos)
LEFT JOIN LATERAL (
    SELECT d.region, d.aqi FROM region_day d
    WHERE d.region = o.region AND d.day <= {DAY_TO} AND d.aqi IS NOT NULL
    ORDER BY d.day DESC LIMIT 1) r ON true
WHERE r.region IS NOT NULL
ORDER BY o.pos""",
    )
    board.add(
        "区域日 AQI（最近一日）",
        "stat",
        _stat()
        .reduce_options(
            common_b.ReduceDataOptions().values(True).calcs(["lastNotNull"]).fields("/^AQI$/")
        )
        .thresholds(aqi_thresholds())
        .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME),
        [region_aqi],
        w=10,
        h=5,
        at=(14, 0),
        description="城市与经济区的日 AQI（HJ 663：各评价点日均值先平均，再计算 AQI）。",
    )
    _target_stats(board, targets, w=10, h=5, column_at=(14, 5))

    alerts = table_query(
        f"""
SELECT e.started_at AS "开始时间", e.severity AS "级别", e.rule AS "规则",
       coalesce(s.name, e.station_id, e.subject) AS "对象", e.message AS "说明",
       e.value::float8 AS "数值", e.threshold::float8 AS "阈值",
       CASE e.state WHEN 'escalated' THEN '已升级' ELSE '告警中' END AS "状态",
       CASE WHEN e.acked_at IS NOT NULL THEN '已确认' ELSE '' END AS "确认"
FROM {ALERT_TABLE} e LEFT JOIN station s ON s.id = e.station_id
WHERE e.resolved_at IS NULL AND e.started_at <= $__timeTo()
ORDER BY CASE e.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
         e.started_at DESC
LIMIT 200""",
        may_be_empty=True,
        requires=[ALERT_TABLE],
    )
    board.add(
        "当前告警",
        "table",
        table_b.Panel()
        .sort_by([common_b.TableSortByFieldState().display_name("开始时间").desc(True)])
        .override_by_name(
            "级别",
            [
                colour_background(),
                prop(
                    "mappings",
                    [
                        m.to_json()
                        for m in text_mappings(
                            {"critical": BAD_COLOUR, "warning": WARN_COLOUR, "info": OK_COLOUR}
                        )
                    ],
                ),
            ],
        ),
        [alerts],
        w=24,
        h=8,
        at=(0, 20),
        description="告警引擎（alert_event）中尚未恢复的告警。",
    )
    return board


# -- 2. air station -------------------------------------------------------------------------------


def _air_station() -> Board:
    board = Board.create(
        "envmon-air-station",
        "空气质量监测站点",
        description="六项污染物、逐时 AQI 与首要污染物、日 AQI 日历、O₃ 日最大 8 小时平均。",
        time_from="now-7d",
        tags=["air"],
    )
    board.variable(
        "city",
        _query_var(
            "city",
            "城市",
            "SELECT DISTINCT city FROM station WHERE kind = 'air' AND active ORDER BY 1",
            multi=True,
            include_all=True,
        ),
    )
    board.variable(
        "station",
        _query_var(
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
        _custom(
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
        _timeseries(UG)
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
        _timeseries()
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
        _timeseries(UG)
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


# -- 3. water sections ----------------------------------------------------------------------------


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


def _water() -> Board:
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
        _query_var(
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
        _custom(
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
LEFT JOIN LATERAL (
    SELECT w.month, w.class, w.meets_target, w.main_pollutants FROM water_section_month w
    WHERE w.station_id = s.id AND w.month <= {DAY_TO}
    ORDER BY w.month DESC LIMIT 1) m ON true
WHERE s.kind = 'water' AND s.id IN ($section)
ORDER BY s.basin, s.river, s.name"""
    )
    cls_props = [
        colour_background(),
        prop("mappings", [m.to_json() for m in water_class_mappings()]),
        prop("thresholds", water_class_thresholds().build().to_json()),
        prop("color", {"mode": "thresholds"}),
    ]
    board.add(
        "断面水质类别与目标类别",
        "table",
        table_b.Panel()
        .override_by_name("水质类别", cls_props)
        .override_by_name("目标类别", cls_props)
        .override_by_name(
            "是否达标",
            [
                colour_background(),
                prop("mappings", [m.to_json() for m in text_mappings(STATUS_COLOURS)]),
            ],
        ),
        [classes],
        w=24,
        h=10,
        description="最新月份的断面水质类别（GB 3838-2002，单因子评价，环办〔2011〕22号），"
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
        _timeseries(MGL)
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


# -- 4. weather -----------------------------------------------------------------------------------


def _weather() -> Board:
    board = Board.create(
        "envmon-weather",
        "气象观测",
        description="气温、相对湿度、风速风向、降水量，按站点或区县（所选站点的平均）。",
        time_from="now-7d",
        tags=["weather"],
    )
    board.variable(
        "county",
        _query_var(
            "county",
            "区县",
            "SELECT DISTINCT county FROM station WHERE kind = 'weather' AND active ORDER BY 1",
            multi=False,
            include_all=False,
        ),
    )
    board.variable(
        "station",
        _query_var(
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
        _timeseries("celsius")
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
        _timeseries("humidity").min(0).max(100).fill_opacity(10),
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
        _timeseries("velocityms").override_by_name(
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
        _timeseries("lengthmm")
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
      AND r0.ts <= $__timeTo()) l
LEFT JOIN reading r ON r.station_id = s.id AND r.period = '1h' AND r.ts = l.ts
     AND r.parameter IN ({sql_list(EXPECTED["weather"])})
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
    )
    return board


# -- 5. targets -----------------------------------------------------------------------------------


def _baseline_year(targets: Sequence[Target]) -> int:
    years = sorted({t.baseline_year for t in targets if t.baseline_year is not None})
    return years[0] if years else 2020


def _targets(targets: Sequence[Target]) -> Board:
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
    board.variable("region", _region_var())
    _target_stats(board, targets, w=8, h=5)
    by = _baseline_year(targets)

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
        _timeseries(UG)
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
        _timeseries(UG)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(70)
        .override_by_name(f"{by}年同月", [fixed_colour(NO_DATA_COLOUR)]),
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
        _timeseries("percent")
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(70)
        .min(0)
        .max(100)
        .override_by_name(f"{by}年同月", [fixed_colour(NO_DATA_COLOUR)]),
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
    WHERE s.kind = 'water' AND s.control_level = 'national' AND s.city IN {_region_cities()}
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
        _timeseries("percent")
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(70)
        .min(0)
        .max(100)
        .override_by_name(f"{by}年同月", [fixed_colour(NO_DATA_COLOUR)])
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


# -- 6. data health -------------------------------------------------------------------------------


def _capture_query(kinds: Sequence[str]) -> Query:
    """Data capture per station and Beijing day: values received ÷ values expected.

    One index-only range scan of ``reading`` per (station, parameter) — no flag
    test, which would need the heap — binned into Beijing days with ``date_bin``
    from a Beijing midnight (no daylight saving in China since 1991; far cheaper
    per row than ``AT TIME ZONE``, and independent of the session's zone), and
    counted per station inside the lateral sub-query: a few groups each, instead
    of one sort of every reading of the range.
    """
    return ts_query(
        f"""
WITH st AS (
    SELECT s.id, s.county || ' ' || s.name AS label, {expected_params_sql()} AS params,
           {period_sql()} AS period, {slots_sql()} AS slots
    FROM station s WHERE s.active AND s.kind IN ({sql_list(kinds)})
),
days AS (
    SELECT generate_series({bj(DAY_FROM)}, {bj(DAY_TO)}, interval '24 hours') AS time
),
got AS (
    SELECT st.id, g.time, g.n FROM st CROSS JOIN LATERAL (
        SELECT date_bin('24 hours', r.ts, {BJ_ORIGIN}) AS time, count(*) AS n
        FROM unnest(st.params) AS p(code)
        JOIN reading r ON r.station_id = st.id AND r.parameter = p.code
         AND r.period = st.period
         AND r.ts >= {bj(DAY_FROM)} AND r.ts < {bj(f"({DAY_TO} + 1)")}
        GROUP BY 1) g
)
SELECT d.time, st.label AS metric,
       least(100.0, round(100.0 * coalesce(g.n, 0) / (st.slots * cardinality(st.params)), 1))
           ::float8 AS "获取率"
FROM st CROSS JOIN days d LEFT JOIN got g ON g.id = st.id AND g.time = d.time
ORDER BY 1, 2"""
    )


def _capture_panel(board: Board, title: str, kinds: Sequence[str], *, h: int) -> None:
    board.add(
        title,
        "status-history",
        statushistory_b.Panel()
        .unit("percent")
        .decimals(0)
        .thresholds(thresholds(BAD_COLOUR, [(83.3, WARN_COLOUR), (95, OK_COLOUR)]))
        .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .show_value(common.VisibilityMode.AUTO)
        .legend(legend_hidden()),
        [_capture_query(kinds)],
        w=24,
        h=h,
        description=(
            "收到的数据条数 ÷ 应收条数（空气 6 项×24、地表水自动站 9 项×6、"
            "气象 7 项×24，任何 HJ 212 标记；数据是否有效由派生表按标记判定）。"
            "红色低于 20/24（GB 3095 日均值的有效性要求），黄色低于 95%。"
        ),
    )


def _data_health() -> Board:
    board = Board.create(
        "envmon-data-health",
        "数据质量与接入状态",
        description="各站点每日数据完整率、最后上报时间、拒收记录与原因、数据源状态、告警历史。",
        time_from="now-7d",
        refresh="5m",
        tags=["health"],
    )
    board.variable(
        "kind",
        _custom(
            "kind",
            "站点类型",
            KIND_NAMES,
            default=["air", "water"],
            multi=True,
            include_all=True,
        ),
    )
    _capture_panel(board, "空气站与地表水断面日数据获取率", ("air", "water"), h=12)

    last_seen = table_query(
        f"""
SELECT s.name AS "站点", {kind_case({k: f"'{v}'" for k, v in KIND_NAMES.items()})} AS "类型",
       s.county AS "区县", l.last_ts AS "最后数据时间",
       round(extract(epoch FROM ($__timeTo()::timestamptz - l.last_ts)) / 3600.0, 1)::float8
           AS "滞后（小时）"
FROM station s
CROSS JOIN LATERAL (
    SELECT max(x.ts) AS last_ts FROM unnest({expected_params_sql()}) AS p(code)
    CROSS JOIN LATERAL (
        SELECT max(r.ts) AS ts FROM reading r
        WHERE r.station_id = s.id AND r.parameter = p.code AND r.period = {period_sql()}
          AND r.ts <= $__timeTo()) x) l
WHERE s.active AND s.kind IN ($kind)
ORDER BY l.last_ts NULLS FIRST, s.id"""
    )
    board.add(
        "最后上报时间",
        "table",
        table_b.Panel().override_by_name(
            "滞后（小时）",
            [
                colour_background(),
                prop(
                    "thresholds",
                    thresholds(OK_COLOUR, [(2, WARN_COLOUR), (6, BAD_COLOUR)]).build().to_json(),
                ),
                prop("color", {"mode": "thresholds"}),
            ],
        ),
        [last_seen],
        w=12,
        h=10,
        description="每站各应报参数中最新一条数据的时间（不晚于所选时间范围的终点）。",
    )

    health = table_query(
        f"""
SELECT h.source AS "数据源", h.kind AS "类型",
       CASE WHEN h.state = 'ok' AND (h.last_success_at IS NULL
                 OR h.last_success_at < $__timeTo()::timestamptz - h.stale_after) THEN '停滞'
            WHEN h.state = 'ok' THEN '正常' WHEN h.state = 'down' THEN '故障'
            WHEN h.state = 'disabled' THEN '停用' ELSE '启动中' END AS "状态",
       h.state_since AS "状态起始", h.failures::float8 AS "连续失败",
       h.last_success_at AS "最近成功", h.last_error_at AS "最近错误",
       h.last_error AS "错误信息", h.next_attempt_at AS "下次尝试"
FROM {SOURCE_HEALTH_TABLE} h
ORDER BY CASE h.state WHEN 'down' THEN 0 WHEN 'starting' THEN 1 WHEN 'ok' THEN 2 ELSE 3 END,
         h.source""",
        requires=[SOURCE_HEALTH_TABLE],
    )
    board.add(
        "数据源状态",
        "table",
        table_b.Panel().override_by_name(
            "状态",
            [
                colour_background(),
                prop(
                    "mappings",
                    [
                        m.to_json()
                        for m in text_mappings(
                            {**STATUS_COLOURS, "停用": NO_DATA_COLOUR, "启动中": WARN_COLOUR}
                        )
                    ],
                ),
            ],
        ),
        [health],
        w=12,
        h=10,
        description="各数据源（HTTP 平台轮询、HJ 212 接收）的状态：正常、故障（连续失败）、停用；"
        "超过其 stale_after 未成功为停滞。",
    )
    cursors = table_query(
        """
SELECT c.source AS "数据源", coalesce(s.name, nullif(c.station_id, ''), '（平台）') AS "站点",
       c.last_ts AS "最新数据", c.last_success_at AS "最近成功", c.last_error_at AS "最近错误",
       c.last_error AS "错误信息",
       CASE WHEN c.last_error_at IS NOT NULL
                 AND (c.last_success_at IS NULL OR c.last_error_at > c.last_success_at)
            THEN '故障'
            WHEN c.last_success_at < $__timeTo()::timestamptz - interval '2 hours' THEN '停滞'
            ELSE '正常' END AS "状态"
FROM ingest_cursor c LEFT JOIN station s ON s.id = c.station_id
ORDER BY c.source, c.station_id"""
    )
    board.add(
        "数据游标（按数据源、站点）",
        "table",
        table_b.Panel().override_by_name(
            "状态",
            [
                colour_background(),
                prop("mappings", [m.to_json() for m in text_mappings(STATUS_COLOURS)]),
            ],
        ),
        [cursors],
        w=12,
        h=10,
        description="ingest_cursor：每个数据源及站点已收到的最新数据时间、最近一次成功与错误。",
    )

    rejected_series = ts_query(
        """
SELECT $__timeGroupAlias(j.received_at, $__interval),
       left(regexp_replace(j.reason, '[0-9]+(\\.[0-9]+)?', '#', 'g'), 60) AS metric,
       count(*)::float8 AS "记录数"
FROM rejected j
WHERE $__timeFilter(j.received_at)
GROUP BY 1, 2
ORDER BY 1, 2"""
    )
    board.add(
        "拒收记录（按原因）",
        "timeseries",
        _timeseries("short").draw_style(common.GraphDrawStyle.BARS).fill_opacity(70),
        [rejected_series],
        w=12,
        h=9,
        description="未通过校验、保存在 rejected 表中的记录数（原因中的数字归并为 #）。",
    )
    rejected_rows = table_query(
        """
SELECT j.received_at AS "接收时间", j.source AS "来源", j.station_id AS "站点",
       j.parameter AS "参数", j.ts AS "数据时间", j.reason AS "原因", j.raw AS "原始记录"
FROM rejected j
WHERE $__timeFilter(j.received_at)
ORDER BY j.received_at DESC, j.id DESC
LIMIT 200"""
    )
    board.add(
        "拒收记录明细（最近 200 条）",
        "table",
        table_b.Panel(),
        [rejected_rows],
        w=12,
        h=9,
    )

    history = table_query(
        f"""
SELECT e.started_at AS "开始时间", e.resolved_at AS "恢复时间", e.rule AS "规则",
       e.severity AS "级别", coalesce(s.name, e.station_id, e.subject) AS "对象",
       e.message AS "说明",
       CASE e.state WHEN 'resolved' THEN '已恢复' WHEN 'escalated' THEN '已升级'
                    ELSE '告警中' END AS "状态",
       e.value::float8 AS "数值", e.threshold::float8 AS "阈值",
       round(extract(epoch FROM (coalesce(e.resolved_at, $__timeTo()::timestamptz)
                                 - e.started_at)) / 60)::float8 AS "持续（分钟）"
FROM {ALERT_TABLE} e LEFT JOIN station s ON s.id = e.station_id
WHERE e.started_at <= $__timeTo()
  AND (e.resolved_at IS NULL OR e.resolved_at >= $__timeFrom())
ORDER BY e.started_at DESC
LIMIT 500""",
        may_be_empty=True,
        requires=[ALERT_TABLE],
    )
    board.add(
        "告警历史",
        "table",
        table_b.Panel(),
        [history],
        w=24,
        h=9,
        description="所选时间范围内开始或仍在持续的告警（alert_event）。",
    )
    _capture_panel(board, "气象站日数据获取率", ("weather",), h=24)
    return board


def all_boards(targets: Sequence[Target]) -> list[Board]:
    """The six dashboards, in a fixed order (overview first)."""
    boards = [
        _overview(targets),
        _air_station(),
        _water(),
        _weather(),
        _targets(targets),
        _data_health(),
    ]
    assert tuple(b.uid for b in boards) == UIDS
    return boards
