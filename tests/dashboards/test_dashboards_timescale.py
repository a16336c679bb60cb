"""The same panel SQL on TimescaleDB (hypertable, TimescaleDB's own time_bucket).

Skipped, with the reason, where the test server has no timescaledb extension
(the ``timescale`` fixture of tests/conftest.py); CI's TimescaleDB job runs it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import psycopg

from envmon.dashboards.boards import UIDS, all_boards
from envmon.dashboards.macros import TimeRange
from envmon.dashboards.runner import panel_queries, resolve_variables
from envmon.evaluate.targets import load_targets

from .conftest import BASELINE_START, REPO, START, arrange_health_rows, load_simulation
from .test_dashboards_panels import _check_geomap, _check_stat, _check_time_series


async def test_every_panel_runs_on_timescaledb(timescale: str, tmp_path: Path) -> None:
    # Three days: the rejects arrange_health_rows places on the third day are inside.
    end = START + timedelta(days=3)
    await load_simulation(
        timescale,
        tmp_path,
        [
            (START, end, ("air", "water", "weather")),
            (BASELINE_START, BASELINE_START + timedelta(days=2), ("air", "water")),
        ],
    )
    arrange_health_rows(timescale)
    with psycopg.connect(timescale) as conn:
        row = conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'reading'"
        ).fetchone()
        assert row == (1,)
    specs = {
        (p.dashboard_uid, p.panel_id): p
        for b in all_boards(load_targets(REPO / "config" / "targets.yaml"))
        for p in b.panels
    }
    tr = TimeRange(START, end)
    ran = 0
    for uid in UIDS:
        with (REPO / "deploy" / "grafana" / "dashboards" / f"{uid}.json").open() as f:
            dashboard = json.load(f)
        async with await psycopg.AsyncConnection.connect(timescale) as conn:
            await conn.execute("SET ROLE grafana_reader")
            variables = await resolve_variables(conn, dashboard, tr)
            await conn.commit()
            await conn.set_read_only(True)
            for q in panel_queries(dashboard, variables, tr, timescaledb=True, repeat_limit=2):
                spec = specs[(uid, q.panel_id)]
                query = next(x for x in spec.queries if x.ref_id == q.ref_id)
                cur = await conn.execute(q.sql.encode())
                cols = [c.name for c in cur.description or []]
                rows = await cur.fetchall()
                ran += 1
                if not rows:
                    assert query.may_be_empty, f"{q.label}: no rows on TimescaleDB"
                elif q.format == "time_series":
                    _check_time_series(q, cols, rows)
                elif spec.type == "geomap":
                    _check_geomap(q, cols, rows)
                elif spec.type == "stat":
                    _check_stat(q, cols, rows)
    assert ran >= sum(len(p.queries) for p in specs.values())
