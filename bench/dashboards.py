"""Benchmark (issue 7): every dashboard panel query over a year of data for all 207 stations.

A year (2025) of simulated readings for every station — about 12 million — plus
the 2020 baseline year for the air and water stations goes through the real
pipeline (``simulate`` → ``Validator.validate_frame`` → ``Writer.write`` →
``process_dirty``) into a cluster with the embedded database's durable
settings, then ``ANALYZE``. Each panel target of the six committed dashboards
is expanded as Grafana would (``envmon.dashboards.runner``) for the dashboard's
default time range ending at the end of the simulated year, once with the
default variable selection and once with "All" everywhere, and run as
``grafana_reader`` ``BENCH_RUNS`` times after a warm-up. Goal on the 2-core
machine: p95 < 300 ms for every query. Prints every query's p50/p95, the
slowest five, and the time the data took to load.

On TimescaleDB (the embedded cluster preloads it wherever the server has it) the
compression policy is then run (``CALL run_job``): every chunk older than 30 days
is compressed, i.e. nearly all of the data, as in production. Before the panels,
a continuous aggregate of daily per-station counts and means is measured against
the derived tables and the raw readings it would replace (issue 12: keep the
derived tables or use continuous aggregates — decided by these figures).

``BENCH_DASH_DIR=/some/dir`` keeps the loaded cluster there and reuses it on the
next run (loading takes several minutes); ``BENCH_DASH_DAYS`` shortens the year.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.common import REPO, Timer, figure
from envmon.catalog import load_catalog
from envmon.dashboards.macros import TimeRange
from envmon.dashboards.runner import PanelQuery, panel_queries, resolve_variables
from envmon.db import migrate
from envmon.db.catalog_sync import sync_catalog
from envmon.db.connection import open_pool
from envmon.db.embedded import EmbeddedCluster, free_port
from envmon.db.spool import Spool
from envmon.db.writer import Writer
from envmon.errors import DatabaseError
from envmon.evaluate.derive import process_dirty
from envmon.ingest.sink import Sink
from envmon.schemas.readings import Validator
from envmon.settings import Settings
from envmon.simulate import simulate
from envmon.timeutil import BEIJING

DAYS = int(os.environ.get("BENCH_DASH_DAYS", 365))
RUNS = int(os.environ.get("BENCH_RUNS", 15))
GOAL_MS = 300.0
START = datetime(2025, 1, 1, tzinfo=BEIJING)
END = START + timedelta(days=DAYS)
BASELINE = (datetime(2020, 1, 1, tzinfo=BEIJING), datetime(2021, 1, 1, tzinfo=BEIJING))
MARKER = "envmon-bench-dashboards.loaded"


async def load(url: str, data_dir: Path) -> tuple[int, float]:
    catalog = load_catalog(REPO / "config" / "stations.yaml")
    n = 0
    t0 = time.perf_counter()
    async with open_pool(Settings(data_dir=data_dir), url=url) as pool:
        async with pool.connection() as conn:
            await sync_catalog(conn, catalog)
        validator = Validator(
            {s.id: s.kind for s in catalog.stations},
            clock=lambda: datetime(2030, 1, 1, tzinfo=BEIJING),
        )
        sink = Sink(Writer(pool), Spool(data_dir / "spool"))
        spans = [(START, END, ("air", "water", "weather")), (*BASELINE, ("air", "water"))]
        for start, end, kinds in spans:
            for frame in simulate(catalog.stations, start, end, seed=2025, kinds=kinds):
                result = validator.validate_frame(frame, "simulator")
                await sink.store(result, history=True)
                n += len(result.batch)
                async with pool.connection() as conn:
                    await process_dirty(conn)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return n, time.perf_counter() - t0


_RELATIVE = re.compile(r"^now(?:-(\d+)([hdwy]))?(?:/([dwMy]))?$")


def time_range(raw: dict[str, str], now: datetime) -> TimeRange:
    """A dashboard's default range (now-7d, now-24h, now/y …) with ``now`` fixed."""

    def point(text: str) -> datetime:
        m = _RELATIVE.match(text)
        if m is None:
            raise ValueError(f"unsupported time {text!r}")
        t = now.astimezone(BEIJING)
        if m.group(1):
            k, unit = int(m.group(1)), m.group(2)
            days = {"h": 0, "d": k, "w": 7 * k, "y": 365 * k}[unit]
            t -= timedelta(days=days, hours=k if unit == "h" else 0)
        if m.group(3) == "y":
            t = t.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        elif m.group(3) == "d":
            t = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return t

    return TimeRange(point(raw["from"]), point(raw["to"]))


async def collect(url: str) -> list[PanelQuery]:
    now = END - timedelta(seconds=1)
    out: list[PanelQuery] = []
    for path in sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json")):
        dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        tr = time_range(dashboard["time"], now)
        for select_all in (False, True):
            async with await psycopg.AsyncConnection.connect(url) as conn:
                await conn.execute("SET ROLE grafana_reader")
                variables = await resolve_variables(conn, dashboard, tr, select_all=select_all)
            for q in panel_queries(dashboard, variables, tr, repeat_limit=1):
                out.append(q if not select_all else _tag(q, "all"))
    return out


def _tag(q: PanelQuery, tag: str) -> PanelQuery:
    return PanelQuery(
        q.dashboard_uid,
        q.panel_id,
        f"{q.panel_title} ({tag})",
        q.panel_type,
        q.ref_id,
        q.format,
        q.raw_sql,
        q.sql,
        q.scoped,
        q.panel,
    )


def time_queries(url: str, queries: list[PanelQuery]) -> list[tuple[float, float, PanelQuery, int]]:
    out = []
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE grafana_reader")
        conn.commit()
        conn.read_only = True
        for q in queries:
            sql = q.sql.encode()
            rows = len(conn.execute(sql).fetchall())  # warm-up
            conn.commit()
            times = []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                conn.execute(sql).fetchall()
                times.append((time.perf_counter() - t0) * 1000)
                conn.commit()
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            out.append((statistics.median(times), p95, q, rows))
    return out


def compress(url: str) -> bool:
    """Run the compression policy; False on plain PostgreSQL."""
    with psycopg.connect(url, autocommit=True) as conn:
        if not migrate.timescale_installed(conn):
            print("  plain PostgreSQL: no compression")
            return False
        row = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE hypertable_name = 'reading' AND proc_name = 'policy_compression'"
        ).fetchone()
        before = _size(conn)
        with Timer() as t:
            try:
                if row is not None:
                    conn.execute("CALL run_job(%s)", (row[0],))
            except psycopg.Error as err:
                # E.g. the scheduler running the same policy at the same moment: the
                # chunks the policy would take, one by one.
                print(
                    f"  compression policy: {str(err).splitlines()[0]}; compressing chunk by chunk"
                )
                conn.execute(
                    "SELECT compress_chunk(c, if_not_compressed => true)"
                    " FROM show_chunks('reading', older_than => interval '30 days') c"
                )
        chunks = conn.execute(
            "SELECT count(*) FILTER (WHERE is_compressed), count(*)"
            " FROM timescaledb_information.chunks WHERE hypertable_name = 'reading'"
        ).fetchone() or (0, 0)
        conn.execute("ANALYZE reading")
        figure("compression policy run", t.seconds, "s")
        figure("reading chunks compressed", chunks[0], "chunks", f"of {chunks[1]}")
        figure(
            "reading size before / after", before / 2**20, "MiB", f"/ {_size(conn) / 2**20:,.0f}"
        )
    return True


def _size(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT hypertable_size('reading')").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


# Daily per-station statistics three ways: the continuous aggregate, the raw
# readings (what it would spare), and the derived table the panels read now.
_CAGG = """
CREATE MATERIALIZED VIEW bench_reading_day WITH (timescaledb.continuous) AS
SELECT station_id, parameter, time_bucket('1 day', ts, 'Asia/Shanghai') AS day,
       count(*) AS n, avg(value) AS mean
FROM reading WHERE period = '1h' GROUP BY 1, 2, 3 WITH NO DATA
"""
_DAILY = {
    "weather capture, 30 days, from raw readings": (
        "SELECT station_id, time_bucket('1 day', ts, 'Asia/Shanghai'), count(*) FROM reading"
        " WHERE period = '1h' AND parameter = 'air_temp' AND ts >= %(t0)s AND ts < %(t1)s"
        " GROUP BY 1, 2"
    ),
    "weather capture, 30 days, from the continuous aggregate": (
        "SELECT station_id, day, n FROM bench_reading_day"
        " WHERE parameter = 'air_temp' AND day >= %(t0)s AND day < %(t1)s"
    ),
    "daily PM2.5, a year, from the continuous aggregate": (
        "SELECT station_id, day, mean FROM bench_reading_day"
        " WHERE parameter = 'pm25' AND day >= %(y0)s AND day < %(t1)s"
    ),
    "daily PM2.5, a year, from the derived air_day": (
        "SELECT station_id, day, pm25 FROM air_day WHERE day >= %(y0)s::date AND day < %(t1)s::date"
    ),
}


def continuous_aggregates(url: str) -> None:
    params = {"t0": END - timedelta(days=30), "t1": END, "y0": END - timedelta(days=365)}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP MATERIALIZED VIEW IF EXISTS bench_reading_day")
        conn.execute(_CAGG)
        with Timer() as t:
            conn.execute("CALL refresh_continuous_aggregate('bench_reading_day', NULL, NULL)")
        figure("continuous aggregate: first refresh (all history)", t.seconds, "s")
        with Timer() as t:
            conn.execute(
                "CALL refresh_continuous_aggregate('bench_reading_day', %s::timestamptz,"
                " %s::timestamptz)",
                (END - timedelta(days=1), END),
            )
        figure("continuous aggregate: refresh of one day", t.seconds * 1000, "ms")
        for name, query in _DAILY.items():
            times = []
            for _ in range(max(RUNS, 3)):
                with Timer() as t:
                    conn.execute(query, params).fetchall()
                times.append(t.seconds * 1000)
            figure(name, statistics.median(times), "ms p50")
        conn.execute("DROP MATERIALIZED VIEW bench_reading_day")


def main() -> None:
    keep = os.environ.get("BENCH_DASH_DIR")
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="envmon-bench-dash-"))
    root.mkdir(parents=True, exist_ok=True)
    cluster = EmbeddedCluster(root / "cluster", free_port())
    cluster.start()
    try:
        url = cluster.url()
        try:
            migrate.migrate(url)
        except DatabaseError as err:
            if (root / MARKER).exists():
                raise SystemExit(
                    f"{err}: the data kept in {root} predate a schema change; delete it to reload"
                ) from err
            raise
        if (root / MARKER).exists():
            print(f"  reusing the data loaded in {root}")
        else:
            n, seconds = asyncio.run(load(url, root))
            (root / MARKER).write_text(f"{n}\n", encoding="utf-8")
            figure("readings loaded (simulate → validate → write → derive)", n, "readings")
            figure("load time", seconds, "s")
            figure("load rate", n / seconds, "readings/s")
        with psycopg.connect(url) as conn:
            (total,) = conn.execute("SELECT count(*) FROM reading").fetchone() or (0,)
        figure("readings in the database", total, "readings")
        if compress(url):
            continuous_aggregates(url)
        with Timer() as t:
            queries = asyncio.run(collect(url))
        figure("panel queries expanded (default + All selections)", len(queries), "queries")
        figure("variable resolution and expansion", t.seconds * 1000, "ms")
        load_before = os.getloadavg()[0]
        results = time_queries(url, queries)
        figure(
            "load average (1 min) before / after timing",
            load_before,
            "",
            f"/ {os.getloadavg()[0]:.2f}",
        )
        print(f"  {'p50 ms':>8} {'p95 ms':>8} {'rows':>7}  query")
        for p50, p95, q, rows in results:
            flag = "  > goal" if p95 > GOAL_MS else ""
            print(f"  {p50:8.1f} {p95:8.1f} {rows:7d}  {q.label}{flag}")
        print("  slowest five (p95):")
        for p50, p95, q, rows in sorted(results, key=lambda r: -r[1])[:5]:
            print(f"  {p95:8.1f} ms  (p50 {p50:.1f}, {rows} rows)  {q.label}")
        over = sum(1 for r in results if r[1] > GOAL_MS)
        figure("queries with p95 over the goal", over, "queries", f"goal 0 (p95 < {GOAL_MS:g} ms)")
    finally:
        cluster.stop("fast")
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
