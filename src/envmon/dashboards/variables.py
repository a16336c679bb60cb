"""Template variables of the dashboards: custom lists, SQL queries, the region choice."""

from __future__ import annotations

from collections.abc import Sequence

from envmon.dashboards._sdk import dash, dm
from envmon.dashboards.sql import datasource_ref
from envmon.evaluate.regions import REGION_NAMES


def _custom_values(options: dict[str, str]) -> str:
    """A custom variable's ``query``: ``text : value`` pairs (Grafana's key-value syntax)."""
    return ", ".join(f"{text} : {value}" for value, text in options.items())


def custom_var(
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


def query_var(
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


def region_var() -> dash.CustomVariable:
    return custom_var("region", "区域", dict(REGION_NAMES), default=["zone"])
