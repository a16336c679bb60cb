"""Run a dashboard's queries the way Grafana would, without Grafana.

Given a dashboard's JSON and a time range, :func:`resolve_variables` runs the
template variables' own queries (in order, each seeing the ones before it, as
Grafana refreshes them) and :func:`panel_queries` expands every panel target —
one per value of a repeated panel's variable — through
:func:`envmon.dashboards.macros.expand`. The tests and ``bench/dashboards.py``
execute the result as ``grafana_reader``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from envmon.dashboards.macros import (
    ALL_VALUE,
    TimeRange,
    Variable,
    VarValue,
    calculate_interval,
    expand,
)

DEFAULT_WIDTH_PX = 1000
"""Panel width in pixels assumed for ``$__interval`` (Grafana uses the real width)."""


@dataclass(frozen=True)
class PanelQuery:
    """One panel target, expanded and ready to run."""

    dashboard_uid: str
    panel_id: int
    panel_title: str
    panel_type: str
    ref_id: str
    format: str
    raw_sql: str
    sql: str
    scoped: Mapping[str, VarValue] = field(default_factory=dict)
    panel: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.scoped.items())
        return f"{self.dashboard_uid}#{self.panel_id} {self.panel_title} [{self.ref_id}]{extra}"


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, including those inside rows."""
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


def _custom_options(var: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    values = [str(o["value"]) for o in var.get("options", []) if o.get("value") != ALL_VALUE]
    texts = [str(o["text"]) for o in var.get("options", []) if o.get("value") != ALL_VALUE]
    return values, texts


async def resolve_variables(
    conn: AsyncConnection[Any],
    dashboard: Mapping[str, Any],
    time_range: TimeRange,
    *,
    select_all: bool = False,
    timescaledb: bool = True,
) -> dict[str, Variable]:
    """The dashboard's variables with their options, and a selection.

    Default selection: a custom variable's saved ``current``, a query variable's
    first option (what Grafana selects when nothing is saved). With
    ``select_all``: "All" wherever a variable offers it, every option of the
    other multi-value variables.
    """
    out: dict[str, Variable] = {}
    interval = calculate_interval(time_range, DEFAULT_WIDTH_PX, "1h")
    for var in dashboard.get("templating", {}).get("list", []):
        name = var["name"]
        multi = bool(var.get("multi"))
        include_all = bool(var.get("includeAll"))
        all_value = var.get("allValue") or None
        if var["type"] == "custom":
            values, texts = _custom_options(var)
        elif var["type"] == "query":
            sql = expand(
                var["query"],
                time_range=time_range,
                interval_ns=interval,
                variables=out,
                timescaledb=timescaledb,
            )
            cur = await conn.execute(sql.encode())
            cols = [c.name for c in cur.description or []]
            rows = await cur.fetchall()
            if "__value" in cols:
                vi, ti = cols.index("__value"), cols.index("__text") if "__text" in cols else None
                values = [str(r[vi]) for r in rows]
                texts = [str(r[ti]) if ti is not None else str(r[vi]) for r in rows]
            else:
                values = texts = [str(r[0]) for r in rows]
        else:
            raise ValueError(f"variable type {var['type']!r} is not supported here")
        if not values:
            raise ValueError(f"variable {name!r} has no options")
        current: VarValue
        text: VarValue
        if select_all and include_all:
            current, text = ALL_VALUE, "All"
        elif select_all and multi:
            current, text = list(values), list(texts)
        elif var["type"] == "custom" and "current" in var:
            current = var["current"]["value"]
            text = var["current"]["text"]
            if current == [ALL_VALUE] or current == ALL_VALUE:
                current = ALL_VALUE
        else:
            current = [values[0]] if multi else values[0]
            text = [texts[0]] if multi else texts[0]
        out[name] = Variable(
            name,
            current,
            multi=multi,
            include_all=include_all,
            all_value=all_value,
            options=tuple(values),
            text=text,
        )
    return out


def _selected(var: Variable) -> list[str]:
    cur = var.current
    if cur == ALL_VALUE or (isinstance(cur, list) and cur[:1] == [ALL_VALUE]):
        return list(var.options)
    return [cur] if isinstance(cur, str) else list(cur)


def panel_queries(
    dashboard: Mapping[str, Any],
    variables: Mapping[str, Variable],
    time_range: TimeRange,
    *,
    width_px: int = DEFAULT_WIDTH_PX,
    min_interval: str = "1h",
    timescaledb: bool = True,
    repeat_limit: int | None = None,
) -> list[PanelQuery]:
    """Every target of every panel, expanded; a repeated panel once per selected value."""
    out: list[PanelQuery] = []
    for panel in iter_panels(dashboard):
        repeat = panel.get("repeat")
        scopes: list[dict[str, VarValue]] = [{}]
        if repeat:
            values = _selected(variables[repeat])
            if repeat_limit is not None:
                values = values[:repeat_limit]
            scopes = [{repeat: v} for v in values]
        interval = calculate_interval(time_range, width_px, panel.get("interval") or min_interval)
        for scoped in scopes:
            for target in panel.get("targets", []):
                raw = target.get("rawSql", "")
                sql = expand(
                    raw,
                    time_range=time_range,
                    interval_ns=interval,
                    variables=variables,
                    scoped=scoped,
                    timescaledb=timescaledb,
                )
                out.append(
                    PanelQuery(
                        dashboard_uid=dashboard["uid"],
                        panel_id=int(panel["id"]),
                        panel_title=str(panel.get("title", "")),
                        panel_type=str(panel["type"]),
                        ref_id=str(target.get("refId", "A")),
                        format=str(target.get("format", "time_series")),
                        raw_sql=raw,
                        sql=sql,
                        scoped=scoped,
                        panel=panel,
                    )
                )
    return out
