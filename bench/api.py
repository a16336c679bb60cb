"""Benchmark (issue 8): the analysts' API on a throwaway cluster.

* ``/api/v1/aqi`` daily for all 26 air stations over a year (9,490 values, one
  JSON document): latency p50/p95 over repeated requests — goal p95 < 200 ms;
* exports of ten years of hourly data for one station (6 pollutants ≈ 525,000
  rows) as CSV, Parquet and XLSX: wall time and rows/s — goal < 5 s each.

The year of air data goes through the real pipeline (simulator → validator →
writer → derive), so ``air_day`` holds what the service would hold. The client
runs in the same process and reads bodies without parsing them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from bench.common import REPO, Timer, bench_cluster, figure
from envmon.api.app import ApiServer
from envmon.app import open_app
from envmon.evaluate.derive import process_dirty
from envmon.schemas.readings import Validator
from envmon.settings import ApiSettings, Settings
from envmon.simulate import simulate
from envmon.timeutil import BEIJING

TOKEN = "bench-read-token"
EXPORT_STATION = "air-taiyuan-jiancaoping"
YEARS = int(os.environ.get("BENCH_EXPORT_YEARS", 10))
AQI_REQUESTS = int(os.environ.get("BENCH_AQI_REQUESTS", 60))


def _t(y: int, m: int = 1, d: int = 1) -> datetime:
    return datetime(y, m, d, tzinfo=BEIJING)


async def _load(url: str, tmp: Path) -> tuple[int, int]:
    settings = Settings(
        data_dir=tmp, config_dir=REPO / "config", stations_file=REPO / "config" / "stations.yaml"
    )
    async with open_app(settings, url=url) as app:
        await app.load_stations()
        # A fixed clock: every simulated year is "in the past" whatever today is.
        validator = Validator({s.id: s.kind for s in app.catalog.stations}, clock=lambda: _t(2030))
        air = list(app.catalog.of_kind("air"))
        n_year = 0
        with Timer() as t_load:
            for frame in simulate(air, _t(2025), _t(2026), seed=8):
                v = validator.validate_frame(frame, "bench")
                n_year += len(v.batch)
                await app.sink.store(v)
        figure("load: 26 air stations × 1 year (readings)", n_year, "rows")
        figure("load: write rate", n_year / t_load.seconds, "rows/s")
        with Timer() as t_derive:
            async with app.pool.connection() as conn:
                await process_dirty(conn)
        figure("load: derive one year of 26 stations", t_derive.seconds, "s")
        station = app.catalog.by_id[EXPORT_STATION]
        n_export = 0
        for frame in simulate([station], _t(2026 - YEARS), _t(2025), seed=9):
            v = validator.validate_frame(frame, "bench")
            n_export += len(v.batch)
            await app.sink.store(v)
        async with app.pool.connection() as conn:
            # The export reads readings only; the derive queue of the older years is dropped.
            await conn.execute("DELETE FROM derive_dirty")
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM reading WHERE station_id = %s AND period = '1h'"
                    " AND ts >= %s AND ts < %s",
                    (EXPORT_STATION, _t(2026 - YEARS), _t(2026)),
                )
            ).fetchone()
            await conn.commit()
            await conn.set_autocommit(True)
            await conn.execute("VACUUM ANALYZE")
            await conn.set_autocommit(False)
        return n_year, int(row[0]) if row else 0


async def _run(url: str, tmp: Path) -> None:
    _, n_export = await _load(url, tmp)
    settings = Settings(
        data_dir=tmp, config_dir=REPO / "config", stations_file=REPO / "config" / "stations.yaml"
    )
    api_settings = ApiSettings(host="127.0.0.1", port=0, read_token=SecretStr(TOKEN))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        open_app(settings, url=url) as app,
        ApiServer(app.pool, app.catalog, api_settings, sink=app.sink) as server,
        aiohttp.ClientSession(headers=headers) as http,
    ):
        aqi_url = f"{server.url}/api/v1/aqi?resolution=daily&from=2025-01-01&to=2026-01-01"
        latencies = []
        size = 0
        for i in range(AQI_REQUESTS + 3):
            t0 = time.perf_counter()
            async with http.get(aqi_url) as r:
                body = await r.read()
                assert r.status == 200, body[:300]
            if i >= 3:  # warm-up: pool connections, plans, caches
                latencies.append(time.perf_counter() - t0)
            size = len(body)
        latencies.sort()
        p95 = latencies[round(0.95 * (len(latencies) - 1))]
        figure("/aqi daily, 26 stations × 365 days: response size", size / 1e6, "MB")
        figure("/aqi daily, 26 stations × 365 days: p50", statistics.median(latencies) * 1e3, "ms")
        figure(
            "/aqi daily, 26 stations × 365 days: p95",
            p95 * 1e3,
            "ms",
            "goal < 200 ms " + ("OK" if p95 < 0.2 else "MISSED"),
        )
        for fmt in ("csv", "parquet", "xlsx"):
            export_url = (
                f"{server.url}/api/v1/export/readings?station={EXPORT_STATION}"
                f"&from={2026 - YEARS}-01-01&to=2026-01-01&format={fmt}"
            )
            with Timer() as t:
                async with http.get(export_url) as r:
                    n = 0
                    async for chunk in r.content.iter_chunked(1 << 20):
                        n += len(chunk)
                    assert r.status == 200
            label = f"export {fmt}, {YEARS} years hourly, 1 station"
            figure(
                f"{label}: wall time",
                t.seconds,
                "s",
                "goal < 5 s " + ("OK" if t.seconds < 5 else "MISSED"),
            )
            figure(f"{label}: rows/s", n_export / t.seconds, "rows/s")
            figure(f"{label}: size", n / 1e6, "MB")
        figure("export rows (readings, 1h)", n_export, "rows")


def main() -> None:
    with bench_cluster() as cluster, tempfile.TemporaryDirectory(prefix="envmon-bench-api-") as tmp:
        asyncio.run(_run(cluster.url(), Path(tmp)))


if __name__ == "__main__":
    main()
