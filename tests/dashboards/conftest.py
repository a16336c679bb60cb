"""A database filled by the simulator for the dashboard tests, and helpers to run panels.

One database per session (cloned from the migrated template): a week of
simulated readings for all 207 stations in March 2025, and the same week of
2020 for the air and water stations (the targets' baseline year), all through
the real validator, writer and ``process_dirty``. Some rejected readings, three
ingest cursors and one dust period complete what the data-health and target
panels show.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from envmon.catalog import Catalog, load_catalog
from envmon.dashboards.macros import TimeRange
from envmon.db.catalog_sync import sync_catalog
from envmon.db.connection import open_pool
from envmon.db.spool import Spool
from envmon.db.writer import Writer
from envmon.evaluate.derive import process_dirty
from envmon.ingest.sink import Sink
from envmon.schemas.readings import RawReading, Validator
from envmon.settings import Settings
from envmon.simulate import simulate
from envmon.timeutil import BEIJING

REPO = Path(__file__).resolve().parents[2]
START = datetime(2025, 3, 1, tzinfo=BEIJING)
END = datetime(2025, 3, 8, tzinfo=BEIJING)
BASELINE_START = datetime(2020, 3, 1, tzinfo=BEIJING)
BASELINE_END = datetime(2020, 3, 8, tzinfo=BEIJING)
RANGE = TimeRange(START, END)
_counter = itertools.count(1)


@dataclass(frozen=True)
class SimDb:
    url: str
    catalog: Catalog
    time_range: TimeRange


async def load_simulation(
    url: str,
    data_dir: Path,
    spans: Sequence[tuple[datetime, datetime, tuple[str, ...]]],
    *,
    seed: int = 7,
) -> Catalog:
    """Simulated readings for ``spans`` (start, end, kinds) through the real pipeline."""
    catalog = load_catalog(REPO / "config" / "stations.yaml")
    async with open_pool(Settings(data_dir=data_dir), url=url) as pool:
        async with pool.connection() as conn:
            await sync_catalog(conn, catalog)
        validator = Validator(
            {s.id: s.kind for s in catalog.stations},
            clock=lambda: datetime(2030, 1, 1, tzinfo=BEIJING),
        )
        sink = Sink(Writer(pool), Spool(data_dir / "spool"))
        for start, end, kinds in spans:
            for frame in simulate(catalog.stations, start, end, seed=seed, kinds=kinds):
                result = validator.validate_frame(frame, "simulator")
                await sink.store(result, history=True)
        # What a data logger sends that cannot be stored: kept with the reason.
        bad = validator.validate(
            [
                RawReading("air-unknown-point", "pm25", START + timedelta(hours=30), 35.0),
                RawReading("air-taiyuan-jiancaoping", "pm25", START + timedelta(hours=31), 9e9),
                RawReading("air-taiyuan-jiancaoping", "pm25", START + timedelta(hours=32), "n/a"),
                RawReading("wx-53677", "rh", START + timedelta(hours=33), 140.0),
            ],
            "hj212",
        )
        assert len(bad.rejected) == 4, bad.rejected
        await sink.store(bad, history=True)
        async with pool.connection() as conn:
            await process_dirty(conn)
    return catalog


def arrange_health_rows(url: str) -> None:
    """Rows the ingest side writes in production, placed inside the test's time range."""
    with psycopg.connect(url) as conn:
        # The writer stamps rejects with the server clock; the panels filter on it.
        conn.execute(
            "UPDATE rejected SET received_at = %s + (id %% 5) * interval '1 hour'",
            (START + timedelta(days=2),),
        )
        conn.execute(
            "INSERT INTO ingest_cursor (source, station_id, last_ts, last_success_at,"
            " last_error_at, last_error) VALUES"
            " ('hj212', 'air-taiyuan-jiancaoping', %s, %s, NULL, NULL),"
            " ('hj212', 'water-hutuo-qiaoergou', %s, %s, %s, 'CRC mismatch'),"
            " ('cma-api', '', %s, %s, NULL, NULL)",
            (
                END - timedelta(hours=1),
                END - timedelta(minutes=5),
                END - timedelta(hours=8),
                END - timedelta(hours=8),
                END - timedelta(hours=1),
                END - timedelta(hours=5),
                END - timedelta(hours=5),
            ),
        )
        conn.execute(
            "INSERT INTO dust_period (region, starts_at, ends_at, note) VALUES"
            " ('taiyuan', %s, %s, 'test: audited dust day')",
            (START + timedelta(days=2), START + timedelta(days=3)),
        )
        # Tables of other issues (0003 HTTP sources, 0004 alerts), where they exist.
        if conn.execute("SELECT to_regclass('source_health')").fetchone() != (None,):
            conn.execute(
                "INSERT INTO source_health (source, kind, state, state_since, failures,"
                " last_success_at, last_error_at, last_error, stale_after) VALUES"
                " ('cma-api', 'http', 'ok', %s, 0, %s, NULL, NULL, interval '2 hours'),"
                " ('province-air', 'http', 'down', %s, 4, %s, %s, 'HTTP 503', interval '2 hours')",
                (
                    START,
                    END - timedelta(minutes=20),
                    END - timedelta(hours=3),
                    END - timedelta(hours=4),
                    END - timedelta(minutes=10),
                ),
            )
        if conn.execute("SELECT to_regclass('alert_event')").fetchone() != (None,):
            conn.execute(
                "INSERT INTO alert_event (rule, subject, station_id, severity, state, route,"
                " started_at, resolved_at, value, threshold, message) VALUES"
                " ('pm25-hour', 'air-taiyuan-jiancaoping', 'air-taiyuan-jiancaoping', 'warning',"
                "  'firing', 'duty', %s, NULL, 160.0, 115.0, 'PM2.5 hourly above 115 µg/m³'),"
                " ('station-silent', 'wx-53677', 'wx-53677', 'info', 'resolved', 'duty',"
                "  %s, %s, NULL, NULL, 'no data for 3 hours')",
                (
                    END - timedelta(hours=2),
                    START + timedelta(days=1),
                    START + timedelta(days=1, hours=4),
                ),
            )


def _create_db(admin_dsn: str, template: str) -> tuple[str, str]:
    name = f"envmon_dash_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return name, psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)


def _drop_db(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
async def sim(
    admin_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SimDb]:
    name, url = _create_db(admin_dsn, template_db)
    try:
        catalog = await load_simulation(
            url,
            tmp_path_factory.mktemp("dash-sim"),
            [
                (START, END, ("air", "water", "weather")),
                (BASELINE_START, BASELINE_END, ("air", "water")),
            ],
        )
        arrange_health_rows(url)
        yield SimDb(url, catalog, RANGE)
    finally:
        _drop_db(admin_dsn, name)


@pytest.fixture
def reader(sim: SimDb) -> Iterator[Any]:
    """Run SQL as grafana_reader (SET ROLE), in read-only transactions."""
    with psycopg.connect(sim.url) as conn:
        conn.execute("SET ROLE grafana_reader")
        conn.commit()
        conn.read_only = True
        yield conn


def table_exists(url: str, table: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])
