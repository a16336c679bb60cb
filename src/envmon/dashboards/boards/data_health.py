"""Dashboard 6, ``envmon-data-health``: data capture per station and day, last report,
source health, ingest cursors, rejected records and alert history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from envmon.dashboards._sdk import common, dash, dm, statushistory_b, table_b
from envmon.dashboards.panels import (
    ALERT_TABLE,
    BAD_COLOUR,
    DAY_FROM,
    DAY_TO,
    KIND_NAMES,
    NO_DATA_COLOUR,
    OK_COLOUR,
    SOURCE_HEALTH_TABLE,
    STATUS_COLOURS,
    WARN_COLOUR,
    Board,
    Query,
    bj,
    colour_background,
    counts_bars,
    expected_params_sql,
    kind_case,
    last_report,
    legend_hidden,
    period_sql,
    slots_sql,
    sql_list,
    status_cells,
    table_query,
    threshold_colours,
    thresholds,
    ts_query,
)
from envmon.dashboards.variables import custom_var

BJ_ORIGIN: Final = "timestamptz '2000-01-01 00:00:00+08'"  # a Beijing midnight


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


def dashboard() -> Board:
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
        custom_var(
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
{last_report(expected_params_sql(), period_sql())}
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
                *threshold_colours(thresholds(OK_COLOUR, [(2, WARN_COLOUR), (6, BAD_COLOUR)])),
            ],
        ),
        [last_seen],
        w=12,
        h=10,
        description="每站各应报参数中最新一条数据的时间（所选时间范围终点前 7 天内；"
        "7 天内无数据的站点时间为空，排在最前）。",
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
            status_cells({**STATUS_COLOURS, "停用": NO_DATA_COLOUR, "启动中": WARN_COLOUR}),
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
            status_cells(),
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
        counts_bars(),
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

    revisions = ts_query(
        """
SELECT $__timeGroupAlias(v.revised_at, '1d'), v.reason AS metric, count(*)::float8 AS "条数"
FROM reading_revision v
WHERE $__timeFilter(v.revised_at)
GROUP BY 1, 2
UNION ALL
SELECT $__timeGroupAlias(a.at, '1d'),
       CASE a.action WHEN 'invalidate' THEN '审核：标为无效' ELSE '审核：恢复有效' END,
       sum(a.readings)::float8
FROM review_action a
WHERE $__timeFilter(a.at)
GROUP BY 1, 2
ORDER BY 1, 2""",
        may_be_empty=True,
    )
    board.add(
        "数据修订与审核（每日）",
        "timeseries",
        counts_bars(),
        [revisions],
        w=24,
        h=8,
        description="reading_revision：被替换的旧版本数，按原因（resend 重发、import 导入、"
        "backfill 补采）；review_action：审核标为无效或恢复的读数数（issue 14）。",
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
