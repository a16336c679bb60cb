"""Dashboard 1, ``envmon-overview``: the zone at a glance — map of every station,
regional AQI, the target stats, current alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

from envmon.dashboards._sdk import common, common_b, dash, dm, geomap_b, geomap_m, table_b
from envmon.dashboards.goals import target_stats
from envmon.dashboards.panels import (
    ALERT_TABLE,
    BAD_COLOUR,
    EXPECTED,
    NO_DATA_COLOUR,
    OK_COLOUR,
    WARN_COLOUR,
    Board,
    aqi_category_mappings,
    aqi_category_thresholds,
    aqi_thresholds,
    day_window,
    last_report,
    latest_section_month,
    prop,
    sql_list,
    stat_panel,
    status_cells,
    table_query,
    threshold_colours,
    thresholds,
    ts_window,
    water_class_mappings,
    water_class_thresholds,
)
from envmon.dashboards.variables import region_var
from envmon.evaluate.targets import Target

ZONE_CENTRE: Final = (38.55, 112.65)  # lat, lon of the zone's middle (阳曲/忻府 border)


def dashboard(targets: Sequence[Target]) -> Board:
    board = Board.create(
        "envmon-overview",
        "太忻经济区环境监测总览",
        description="26 个空气质量监测点、14 个地表水断面、167 个气象站的实时状态与"
        " 2025 年目标进度。",
        time_from="now-24h",
        refresh="5m",
    )
    board.variable("region", region_var())

    air = table_query(
        f"""
SELECT s.id, s.name AS "站点", s.county AS "区县", s.lat, s.lon, h.ts AS "时间",
       h.aqi::float8 AS "AQI", h.category::float8 AS "空气质量类别",
       array_to_string(h.primary_pollutants, ',') AS "首要污染物"
FROM station s
LEFT JOIN LATERAL (
    SELECT a.ts, a.aqi, a.category, a.primary_pollutants FROM air_hour a
    WHERE a.station_id = s.id AND a.aqi IS NOT NULL
      AND {ts_window("a.ts", "6 hours")}
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
{latest_section_month("w.month, w.class")}
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
{last_report(f"ARRAY[{sql_list(EXPECTED['weather'])}]", "'1h'")}
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
            threshold_colours(aqi_category_thresholds(), aqi_category_mappings()),
        )
        .override_by_name(
            "水质类别",
            threshold_colours(water_class_thresholds(), water_class_mappings()),
        )
        .override_by_name(
            "未报时长",
            [
                *threshold_colours(thresholds(OK_COLOUR, [(90, WARN_COLOUR), (360, BAD_COLOUR)])),
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
        description="空气站按最近一小时 AQI 类别着色（HJ 633 颜色），地表水断面按近一年内最新月份"
        "水质类别，气象站按未报时长（≤90 分钟绿，≤6 小时黄，其余红；灰色为 7 天内无数据）。",
    )

    region_aqi = table_query(
        f"""
SELECT CASE r.region WHEN 'zone' THEN '太忻经济区' WHEN 'taiyuan' THEN '太原市'
                     ELSE '忻州市' END AS "区域",
       r.aqi::float8 AS "AQI"
FROM (VALUES ('zone', 1), ('taiyuan', 2), ('xinzhou', 3)) AS o(region, pos)
LEFT JOIN LATERAL (
    SELECT d.region, d.aqi FROM region_day d
    WHERE d.region = o.region AND {day_window("d.day")} AND d.aqi IS NOT NULL
    ORDER BY d.day DESC LIMIT 1) r ON true
WHERE r.region IS NOT NULL
ORDER BY o.pos""",
    )
    board.add(
        "区域日 AQI（最近一日）",
        "stat",
        stat_panel()
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
        description="城市与经济区最近一日（7 天内）的日 AQI（HJ 663：各评价点日均值先平均，"
        "再计算 AQI）。",
    )
    target_stats(board, targets, w=10, h=5, column_at=(14, 5))

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
            status_cells({"critical": BAD_COLOUR, "warning": WARN_COLOUR, "info": OK_COLOUR}),
        ),
        [alerts],
        w=24,
        h=8,
        at=(0, 20),
        description="告警引擎（alert_event）中尚未恢复的告警。",
    )
    return board
