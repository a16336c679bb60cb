"""Building blocks of the dashboards: colours, thresholds, SQL fragments, panel builders
and the panel registry.

Every panel query is a :class:`Query` (its SQL as Grafana stores it, with
macros and variables unexpanded). A :class:`Board` adds panels to an SDK
dashboard builder and records each panel's queries, so that the tests and the
benchmark can run exactly the SQL that ends up in the JSON.

SQL conventions (every query must run unchanged on PostgreSQL and TimescaleDB,
as ``grafana_reader``, whatever the session's time zone):

* time columns are ``timestamptz``; Beijing days/months become instants with
  ``day::timestamp AT TIME ZONE 'Asia/Shanghai'`` (:func:`bj`), never through a
  session-dependent ``date → timestamptz`` cast;
* the dashboard's range reaches date columns through :data:`DAY_FROM` /
  :data:`DAY_TO` (the Beijing dates of ``$__timeFrom()``/``$__timeTo()``);
* multi-value variables are always used as ``IN ($var)`` (Grafana quotes each
  value, doubling embedded quotes); single-value ones as ``'$var'``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from envmon.catalog.model import CONTROL_LEVEL_NAMES
from envmon.dashboards._sdk import cogbuilder, common, common_b, dash, dm, stat_b, timeseries_b
from envmon.dashboards.sql import Format, SqlQuery
from envmon.evaluate.derive import AIR, VALID_FLAGS
from envmon.parameters import PARAMETERS
from envmon.standards import aqi as aqi_std
from envmon.standards import water as water_std
from envmon.timeutil import BEIJING_TZ_NAME

TZ: Final = BEIJING_TZ_NAME
DAY_FROM: Final = f"($__timeFrom()::timestamptz AT TIME ZONE '{TZ}')::date"
DAY_TO: Final = f"($__timeTo()::timestamptz AT TIME ZONE '{TZ}')::date"
YEAR_TO: Final = f"extract(year FROM {DAY_TO})::int"
VALID: Final = "(" + ", ".join(f"'{f}'" for f in VALID_FLAGS) + ")"
UG: Final = "suffix:µg/m³"
MG: Final = "suffix:mg/m³"
MGL: Final = "suffix:mg/L"
ALERT_TABLE: Final = "alert_event"  # migration 0004 (alert engine)
SOURCE_HEALTH_TABLE: Final = "source_health"  # migration 0003 (HTTP pull sources)

# What each kind of station is expected to send, for completeness and "last
# seen": air — the six GB 3095 basic items, hourly; water — the nine basic
# indicators of the national automatic stations ("9 + X", standards.md §6.7),
# every 4 hours; weather — the CMA surface elements envmon stores, hourly.
WATER_AUTOMATIC: Final = (
    "temp", "ph", "do", "conductivity", "turbidity", "codmn", "nh3n", "tp", "tn",
)  # fmt: skip
EXPECTED: Final[dict[str, tuple[str, ...]]] = {
    "air": tuple(AIR),
    "water": WATER_AUTOMATIC,
    "weather": tuple(p.code for p in PARAMETERS if p.kind == "weather"),
}
PERIOD: Final[dict[str, str]] = {"air": "1h", "water": "4h", "weather": "1h"}
SLOTS_PER_DAY: Final[dict[str, int]] = {"air": 24, "water": 6, "weather": 24}

KIND_NAMES: Final[dict[str, str]] = {"air": "空气", "water": "地表水", "weather": "气象"}
LEVEL_NAMES: Final[dict[str, str]] = dict(CONTROL_LEVEL_NAMES)

# GB 3838 class colours: standards.md §6.2 gives I–II blue, III green, IV yellow,
# V orange, worse than V red (all but red marked UNCERTAIN there).
WATER_CLASS_COLOURS: Final[dict[int, str]] = {
    1: "#1F5FD6",
    2: "#5B9BFF",
    3: "#2EAD4B",
    4: "#FFD400",
    5: "#FF8C00",
    6: "#E02020",
}
NO_DATA_COLOUR: Final = "#8E8E8E"
OK_COLOUR: Final = "#2EAD4B"
WARN_COLOUR: Final = "#FFB000"
BAD_COLOUR: Final = "#E02020"


def bj(expr: str) -> str:
    """A Beijing date (``date`` expression) as the instant its day starts."""
    return f"({expr}::timestamp AT TIME ZONE '{TZ}')"


def sql_list(values: Iterable[str]) -> str:
    """A literal list for ``IN (…)``/``ARRAY[…]`` from build-time constants (never user input)."""
    out = []
    for v in values:
        if "'" in v:
            raise ValueError(f"not a plain constant: {v!r}")
        out.append(f"'{v}'")
    return ", ".join(out)


def kind_case(mapping: dict[str, str], column: str = "s.kind") -> str:
    """``CASE s.kind WHEN 'air' THEN … END`` from a per-kind mapping of SQL expressions."""
    whens = " ".join(f"WHEN '{k}' THEN {v}" for k, v in mapping.items())
    return f"CASE {column} {whens} END"


def expected_params_sql(column: str = "s.kind") -> str:
    return kind_case({k: f"ARRAY[{sql_list(v)}]::text[]" for k, v in EXPECTED.items()}, column)


def period_sql(column: str = "s.kind") -> str:
    return kind_case({k: f"'{v}'" for k, v in PERIOD.items()}, column)


def slots_sql(column: str = "s.kind") -> str:
    return kind_case({k: str(v) for k, v in SLOTS_PER_DAY.items()}, column)


def not_dust(alias: str = "d") -> str:
    """A ``region_day`` row outside every audited dust period (standards.md §4).

    The same test as ``envmon.evaluate.assessment.region_days``: a dust period of
    the region or of the whole zone overlapping the Beijing day.
    """
    return (
        f"NOT EXISTS (SELECT 1 FROM dust_period p WHERE p.region IN ({alias}.region, 'zone')"
        f" AND p.starts_at < {bj(f'({alias}.day + 1)')}"
        f" AND p.ends_at > {bj(f'{alias}.day')})"
    )


def month_start(expr: str) -> str:
    """First day of the month of a ``date`` expression (no time-zone dependent cast)."""
    return f"({expr} - extract(day FROM {expr})::int + 1)"


# -- "latest value" panels: a fixed window before the end of the range -----------------------------
# Every query reads a bounded time window (issue 12; tests/dashboards/
# test_dashboards_time_bounds.py): a panel showing the latest value looks this far
# back from the range's end, so that it never scans older (compressed) chunks. A
# station silent for longer shows "no data" there.

LATEST_WINDOW: Final = "7 days"
LATEST_MONTHS: Final = "1 year"  # monthly water classes


def ts_window(column: str, window: str = LATEST_WINDOW) -> str:
    """A ``timestamptz`` column within ``window`` before the end of the dashboard's range."""
    return f"{column} <= $__timeTo() AND {column} > $__timeTo()::timestamptz - interval '{window}'"


def day_window(column: str, window: str = LATEST_WINDOW) -> str:
    """A ``date`` column (Beijing days) within ``window`` up to the range's last day."""
    return f"{column} <= {DAY_TO} AND {column} > ({DAY_TO} - interval '{window}')::date"


def last_report(params: str, period: str) -> str:
    """``CROSS JOIN LATERAL (…) l`` after ``station s``: ``l.last_ts``, the newest reading
    of any of ``params`` (a ``text[]`` expression) within :data:`LATEST_WINDOW`."""
    return f"""CROSS JOIN LATERAL (
    SELECT max(x.ts) AS last_ts FROM unnest({params}) AS p(code)
    CROSS JOIN LATERAL (
        SELECT max(r.ts) AS ts FROM reading r
        WHERE r.station_id = s.id AND r.parameter = p.code AND r.period = {period}
          AND {ts_window("r.ts")}) x) l"""


def latest_section_month(columns: str) -> str:
    """``LEFT JOIN LATERAL (…) m ON true`` after ``station s``: the section's newest
    ``water_section_month`` row (``columns`` of ``w``) within :data:`LATEST_MONTHS`."""
    return f"""LEFT JOIN LATERAL (
    SELECT {columns} FROM water_section_month w
    WHERE w.station_id = s.id AND {day_window("w.month", LATEST_MONTHS)}
    ORDER BY w.month DESC LIMIT 1) m ON true"""


# -- colours, thresholds, mappings ---------------------------------------------------------------


def thresholds(base: str, steps: Sequence[tuple[float, str]]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=None, color=base)] + [dm.Threshold(v, c) for v, c in steps])
    )


def aqi_thresholds() -> dash.ThresholdsConfig:
    """HJ 633 category colours by AQI value (standards.md §1.5)."""
    cats = aqi_std.CATEGORIES
    return thresholds(cats[0].colour, [(c.aqi_min, c.colour) for c in cats[1:]])


def aqi_category_mappings() -> list[dm.ValueMapping]:
    """Category number 1–6 → 优 … 严重污染 in the HJ 633 colours."""
    return [
        dm.ValueMap(
            options={
                str(c.number): dm.ValueMappingResult(text=c.level, color=c.colour, index=i)
                for i, c in enumerate(aqi_std.CATEGORIES)
            }
        ),
        no_data_mapping(len(aqi_std.CATEGORIES)),
    ]


def aqi_category_thresholds() -> dash.ThresholdsConfig:
    cats = aqi_std.CATEGORIES
    return thresholds(cats[0].colour, [(c.number, c.colour) for c in cats[1:]])


def water_class_mappings() -> list[dm.ValueMapping]:
    """GB 3838 class 1–6 → Ⅰ … 劣Ⅴ."""
    return [
        dm.ValueMap(
            options={
                str(n): dm.ValueMappingResult(text=water_std.roman(n), color=colour, index=n - 1)
                for n, colour in WATER_CLASS_COLOURS.items()
            }
        ),
        no_data_mapping(len(WATER_CLASS_COLOURS)),
    ]


def water_class_thresholds() -> dash.ThresholdsConfig:
    items = sorted(WATER_CLASS_COLOURS.items())
    return thresholds(items[0][1], [(float(n), c) for n, c in items[1:]])


def no_data_mapping(index: int, text: str = "无数据") -> dm.SpecialValueMap:
    return dm.SpecialValueMap(
        options=dm.DashboardSpecialValueMapOptions(
            match=dm.SpecialValueMatch.NULL,
            result=dm.ValueMappingResult(text=text, color=NO_DATA_COLOUR, index=index),
        )
    )


def text_mappings(colours: dict[str, str]) -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                text: dm.ValueMappingResult(color=colour, index=i)
                for i, (text, colour) in enumerate(colours.items())
            }
        )
    ]


STATUS_COLOURS: Final[dict[str, str]] = {
    "达到目标": OK_COLOUR,
    "有风险": WARN_COLOUR,
    "未达目标": BAD_COLOUR,
    "无目标": NO_DATA_COLOUR,
    "无数据": NO_DATA_COLOUR,
    "正常": OK_COLOUR,
    "停滞": WARN_COLOUR,
    "故障": BAD_COLOUR,
    "达标": OK_COLOUR,
    "不达标": BAD_COLOUR,
}


def prop(id_val: str, value: object) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=id_val, value=value)


def colour_background() -> dm.DynamicConfigValue:
    return prop("custom.cellOptions", {"type": "color-background", "mode": "basic"})


def fixed_colour(colour: str) -> dm.DynamicConfigValue:
    return prop("color", {"mode": "fixed", "fixedColor": colour})


def mappings_prop(mappings: Sequence[dm.ValueMapping]) -> dm.DynamicConfigValue:
    return prop("mappings", [m.to_json() for m in mappings])


def status_cells(colours: dict[str, str] = STATUS_COLOURS) -> list[dm.DynamicConfigValue]:
    """A table column of status texts, each cell's background in its text's colour."""
    return [colour_background(), mappings_prop(text_mappings(colours))]


def threshold_colours(
    steps: dash.ThresholdsConfig, mappings: Sequence[dm.ValueMapping] = ()
) -> list[dm.DynamicConfigValue]:
    """A field coloured by ``steps`` (and shown through ``mappings``): a column, a map layer."""
    out = [prop("thresholds", steps.build().to_json())]
    if mappings:
        out.append(mappings_prop(mappings))
    return [*out, prop("color", {"mode": "thresholds"})]


def legend_bottom() -> common_b.VizLegendOptions:
    return (
        common_b.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def legend_hidden() -> common_b.VizLegendOptions:
    return (
        common_b.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.HIDDEN)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(False)
    )


def tooltip_all() -> common_b.VizTooltipOptions:
    return (
        common_b.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )


def stat_panel(unit: str | None = None) -> stat_b.Panel:
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


def counts_bars(unit: str = "short") -> timeseries_b.Panel:
    """Counts per period as filled bars (rejects, revisions, invalidated hours)."""
    return timeseries_panel(unit).draw_style(common.GraphDrawStyle.BARS).fill_opacity(70)


def timeseries_panel(unit: str | None = None) -> timeseries_b.Panel:
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


# -- queries and the registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One panel target.

    ``may_be_empty``: an empty result is normal (no alert firing); ``requires``:
    tables another part of envmon creates, without which the query cannot run yet.
    """

    ref_id: str
    sql: str
    format: Format
    may_be_empty: bool = False
    requires: frozenset[str] = frozenset()

    def target(self) -> SqlQuery:
        return SqlQuery(self.ref_id).sql(self.sql).format(self.format)


def ts_query(
    sql: str, ref_id: str = "A", *, may_be_empty: bool = False, requires: Iterable[str] = ()
) -> Query:
    return Query(ref_id, sql.strip(), Format.TIME_SERIES, may_be_empty, frozenset(requires))


def table_query(
    sql: str, ref_id: str = "A", *, may_be_empty: bool = False, requires: Iterable[str] = ()
) -> Query:
    return Query(ref_id, sql.strip(), Format.TABLE, may_be_empty, frozenset(requires))


PanelType = Literal[
    "timeseries", "stat", "table", "geomap", "state-timeline", "status-history", "row"
]


@dataclass(frozen=True)
class PanelSpec:
    """What a dashboard's panel runs: its title, type, repeat variable and queries."""

    dashboard_uid: str
    panel_id: int
    title: str
    type: str
    queries: tuple[Query, ...]
    repeat: str | None = None


@dataclass
class Board:
    """An SDK dashboard builder plus the registry of the panels added to it."""

    uid: str
    title: str
    builder: dash.Dashboard
    panels: list[PanelSpec] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    _next_id: int = 1
    _x: int = 0
    _y: int = 0
    _row_h: int = 0

    @classmethod
    def create(
        cls,
        uid: str,
        title: str,
        *,
        description: str,
        time_from: str,
        time_to: str = "now",
        refresh: str = "5m",
        tags: Sequence[str] = (),
    ) -> Board:
        b = (
            dash.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(["envmon", *tags])
            .timezone(TZ)
            .week_start("monday")
            .time(time_from, time_to)
            .refresh(refresh)
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .readonly()
            .timepicker(
                dash.TimePicker().refresh_intervals(["1m", "5m", "15m", "30m", "1h", "6h", "1d"])
            )
            .annotation(
                # Grafana's built-in annotations and alerts (what the UI adds itself).
                dash.AnnotationQuery()
                .name("Annotations & Alerts")
                .datasource(common.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                .enable(True)
                .hide(True)
                .icon_color("rgba(0, 211, 255, 1)")
                .type("dashboard")
                .built_in(1)
            )
            .link(
                dash.DashboardLink("环境监测看板")
                .type(dm.DashboardLinkType.DASHBOARDS)
                .tags(["envmon"])
                .as_dropdown(True)
                .include_vars(False)
                .keep_time(True)
            )
        )
        return cls(uid, title, b)

    def variable(self, name: str, variable: cogbuilder.Builder[dm.VariableModel]) -> None:
        self.variables.append(name)
        self.builder.with_variable(variable)

    def _take_id(self) -> int:
        n = self._next_id
        self._next_id += 1
        return n

    def add(
        self,
        title: str,
        panel_type: PanelType,
        panel: cogbuilder.Builder[dm.Panel],
        queries: Sequence[Query],
        *,
        w: int,
        h: int,
        description: str = "",
        repeat: str | None = None,
        at: tuple[int, int] | None = None,
    ) -> None:
        """Add a panel ``w`` columns wide, ``h`` rows high: after the previous one,
        wrapping at 24 columns, or at ``at`` = (x, y)."""
        built = panel.build()
        pid = self._take_id()
        built.id_val = pid
        built.title = title
        built.type_val = panel_type
        if description:
            built.description = description
        if at is not None:
            self._x, self._y = at
            self._row_h = 0
        elif self._x + w > 24:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        built.grid_pos = dm.GridPos(h=h, w=w, x=self._x, y=self._y)
        self._x += w
        self._row_h = max(self._row_h, h)
        built.datasource = queries[0].target().build().datasource if queries else None
        built.targets = [q.target().build() for q in queries]
        if repeat:
            built.repeat = repeat
            built.repeat_direction = "h"
            built.max_per_row = 2
        self.builder.with_panel(_Built(built))
        self.panels.append(PanelSpec(self.uid, pid, title, panel_type, tuple(queries), repeat))


class _Built(cogbuilder.Builder[dm.Panel]):
    """Wraps an already built panel so that the dashboard builder can lay it out."""

    def __init__(self, panel: dm.Panel) -> None:
        self._panel = panel

    def build(self) -> dm.Panel:
        return self._panel
