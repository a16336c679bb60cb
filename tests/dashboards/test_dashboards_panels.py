"""Every panel's SQL, as committed in deploy/grafana/dashboards/, run on the real schema.

Each target is expanded the way Grafana does it (variables, global macros, the
PostgreSQL macro engine), executed as ``grafana_reader`` in a read-only
transaction on a database the simulator filled, and its result checked for the
shape the panel needs. Two selections per panel: the dashboard's defaults, and
"All"/every value of every multi-value variable with a coarser ``$__interval``
and the macro engine's non-TimescaleDB ``$__timeGroup``. Each query also runs
under two session time zones and must give the same rows: Grafana does not
set one, so nothing may depend on it.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from envmon.dashboards.boards import UIDS, all_boards
from envmon.dashboards.panels import PanelSpec
from envmon.dashboards.runner import PanelQuery, panel_queries, resolve_variables
from envmon.evaluate.targets import load_targets
from envmon.timeutil import BEIJING

from .conftest import REPO, SimDb, table_exists

DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
NUMERIC = (int, float, Decimal)
TIME_SERIES_PANELS = {"timeseries", "state-timeline", "status-history"}


def _load(uid: str) -> dict[str, Any]:
    path: Path = DASHBOARDS / f"{uid}.json"
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _specs() -> dict[tuple[str, int], PanelSpec]:
    targets = load_targets(REPO / "config" / "targets.yaml")
    return {(p.dashboard_uid, p.panel_id): p for b in all_boards(targets) for p in b.panels}


SPECS = _specs()
CASES = sorted(SPECS)


def _check_time_series(q: PanelQuery, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    assert cols[0] == "time", f"{q.label}: the first column must be 'time', not {cols[0]!r}"
    times = [r[0] for r in rows]
    assert all(isinstance(t, datetime | int | float | Decimal) for t in times), q.label
    assert times == sorted(times), f"{q.label}: rows are not sorted by time"
    for i, name in enumerate(cols[1:], start=1):
        kinds = {type(r[i]) for r in rows if r[i] is not None}
        if name == "metric":
            assert kinds <= {str}, f"{q.label}: metric column holds {kinds}"
        else:
            assert all(issubclass(k, NUMERIC) for k in kinds), (
                f"{q.label}: value column {name!r} holds {kinds}; Grafana would take it for a label"
            )
    values = [v for r in rows for v in r[1:] if isinstance(v, NUMERIC)]
    assert values, f"{q.label}: no numeric value at all"


def _check_geomap(q: PanelQuery, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    layers = q.panel["options"]["layers"]
    layer = next(lay for lay in layers if lay["filterData"]["options"] == q.ref_id)
    lat, lon = layer["location"]["latitude"], layer["location"]["longitude"]
    assert lat in cols and lon in cols, q.label
    for r in rows:
        la, lo = r[cols.index(lat)], r[cols.index(lon)]
        assert 37.0 < la < 40.0 and 111.0 < lo < 114.5, f"{q.label}: {la}, {lo} outside the zone"
    colour_field = layer["config"]["style"]["color"]["field"]
    assert colour_field in cols, f"{q.label}: colour field {colour_field!r} missing"
    coloured = [r[cols.index(colour_field)] for r in rows]
    assert any(isinstance(c, NUMERIC) for c in coloured), f"{q.label}: nothing to colour by"


def _check_stat(q: PanelQuery, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    numeric = [v for r in rows for v in r if isinstance(v, NUMERIC)]
    assert numeric, f"{q.label}: a stat panel needs a number"


async def _run(url: str, sql: str, tz: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute("SET ROLE grafana_reader")
        await conn.execute(f"SET TIME ZONE '{tz}'")
        await conn.commit()
        await conn.set_read_only(True)
        cur = await conn.execute(sql.encode())
        cols = [c.name for c in cur.description or []]
        return cols, await cur.fetchall()


@pytest.mark.parametrize("scenario", ["default", "all"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}#{c[1]}")
async def test_panel_sql_runs_on_the_real_schema(
    sim: SimDb, case: tuple[str, int], scenario: str
) -> None:
    uid, panel_id = case
    spec = SPECS[case]
    missing = [t for q in spec.queries for t in q.requires if not table_exists(sim.url, t)]
    assert not missing, f"panel {spec.title!r} reads {', '.join(missing)}: not in the schema"
    dashboard = _load(uid)
    select_all = scenario == "all"
    async with await psycopg.AsyncConnection.connect(sim.url) as conn:
        await conn.execute("SET ROLE grafana_reader")
        variables = await resolve_variables(
            conn, dashboard, sim.time_range, select_all=select_all, timescaledb=not select_all
        )
    queries = [
        q
        for q in panel_queries(
            dashboard,
            variables,
            sim.time_range,
            width_px=100 if select_all else 1000,
            timescaledb=not select_all,
            repeat_limit=3,
        )
        if q.panel_id == panel_id
    ]
    # The committed JSON holds exactly the SQL the code defines.
    assert sorted({(q.ref_id, q.raw_sql) for q in queries}) == sorted(
        (x.ref_id, x.sql) for x in spec.queries
    )
    assert {q.panel_type for q in queries} == {spec.type}
    for q in queries:
        x = next(x for x in spec.queries if x.ref_id == q.ref_id)
        assert q.format == x.format
        cols, rows = await _run(sim.url, q.sql, "UTC")
        _, rows_ny = await _run(sim.url, q.sql, "America/New_York")
        assert rows == rows_ny, f"{q.label}: result depends on the session time zone"
        assert len(set(cols)) == len(cols), f"{q.label}: duplicate column names {cols}"
        if not rows:
            assert x.may_be_empty, f"{q.label}: no rows although the data exist\n{q.sql}"
            continue
        if q.format == "time_series":
            assert spec.type in TIME_SERIES_PANELS, q.label
            _check_time_series(q, cols, rows)
        elif spec.type == "geomap":
            _check_geomap(q, cols, rows)
        elif spec.type == "stat":
            _check_stat(q, cols, rows)


def test_every_dashboard_has_its_fixed_uid_and_panels() -> None:
    for uid in UIDS:
        dashboard = _load(uid)
        assert dashboard["uid"] == uid
        assert dashboard["timezone"] == "Asia/Shanghai"
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), uid
        assert sorted(ids) == sorted(pid for u, pid in CASES if u == uid), uid


async def test_panels_show_the_simulated_data(sim: SimDb) -> None:
    """Spot checks of values, beyond the shape: the map shows every station, the
    calendar a week of AQI, the completeness of a simulated day is high."""
    dashboard = _load("envmon-overview")
    async with await psycopg.AsyncConnection.connect(sim.url) as conn:
        await conn.execute("SET ROLE grafana_reader")
        variables = await resolve_variables(conn, dashboard, sim.time_range)
    geo = [
        q for q in panel_queries(dashboard, variables, sim.time_range) if q.panel_type == "geomap"
    ]
    counts = {}
    for q in geo:
        cols, rows = await _run(sim.url, q.sql, "UTC")
        counts[q.ref_id] = len(rows)
        if q.ref_id == "A":  # air: every station has a category in the last hours
            cat = cols.index("空气质量类别")
            assert all(1 <= r[cat] <= 6 for r in rows)
        if q.ref_id == "C":  # weather: the last hour was reported
            late = cols.index("未报时长")
            assert sorted(r[late] for r in rows)[len(rows) // 2] <= 90
    # Every active station (机引, stopped in 2019, is not simulated).
    kinds = {k: sum(s.active for s in sim.catalog.of_kind(k)) for k in ("air", "water", "weather")}
    assert counts == {"A": kinds["air"], "B": kinds["water"], "C": kinds["weather"]}

    health = _load("envmon-data-health")
    async with await psycopg.AsyncConnection.connect(sim.url) as conn:
        await conn.execute("SET ROLE grafana_reader")
        variables = await resolve_variables(conn, health, sim.time_range)
    (q,) = [x for x in panel_queries(health, variables, sim.time_range) if x.panel_id == 1]
    cols, rows = await _run(sim.url, q.sql, "UTC")
    full_day = [r[2] for r in rows if r[0].astimezone(BEIJING).date() == date(2025, 3, 3)]
    assert full_day and sorted(full_day)[len(full_day) // 2] >= 90
