"""Benchmark (issue 5): the pull collectors over the simulated platforms, all 207 stations.

* A 30-day backfill of hourly data of every station through the four simulator
  sources of ``config/sources.yaml`` (CNEMC air, surface-water automatic
  stations, CMA surface, OpenAQ) into a fresh database — goal < 60 s.
* One poll cycle over all 207 stations (every source polled once, concurrently,
  in steady state: the overlap window re-read, values unchanged) — goals
  < 2 s wall and < 0.5 s CPU of the collecting process. Also shown: the first
  poll after a start (one day back for every station).

The platforms run in their own process (``python -m envmon.simulate.platforms``)
so that the CPU figure is the collectors' alone; the database is a throwaway
cluster with the embedded default's durable settings. No faults are injected.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import REPO, bench_cluster, figure
from envmon.app import open_app
from envmon.db.embedded import free_port
from envmon.ingest.backfill import backfill
from envmon.ingest.collectors import Collectors, client_session
from envmon.ingest.poller import PollReport
from envmon.ingest.sources import load_sources
from envmon.ingest.sources_config import SourcesConfig
from envmon.settings import Settings
from envmon.timeutil import now

DAYS = int(os.environ.get("BENCH_BACKFILL_DAYS", 30))
CYCLES = 5


def start_platforms() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "envmon.simulate.platforms",
            "--port",
            str(port),
            "--stations",
            str(REPO / "config" / "stations.yaml"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("serving"):
        proc.kill()
        raise RuntimeError(f"simulated platforms did not start: {line!r}")
    return proc, line.split()[1]


def totals(reports: list[PollReport]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reports:
        for k, v in r.counts().items():
            out[k] = out.get(k, 0) + v
    return out


async def run(url: str, base_url: str, data_dir: Path) -> None:
    shipped = load_sources(REPO / "config" / "sources.yaml")
    assert shipped.simulator is not None
    config = SourcesConfig(simulator=shipped.simulator).bind_simulator(base_url)
    names = [s.name for s in config.active()]
    settings = Settings(data_dir=data_dir, config_dir=REPO / "config")
    async with open_app(settings, url=url) as app, client_session() as session:
        await app.load_stations()
        end = now().replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(days=DAYS)

        print(
            f"  backfill of {DAYS} days, {len(app.catalog)} stations, sources: {', '.join(names)}"
        )
        reports = []
        t0 = time.perf_counter()
        for name in names:
            t = time.perf_counter()
            r = await backfill(app.intake, config, session, name, start, end)
            reports.append(r)
            figure(
                f"  {name}: {r.inserted:,} new + {r.unchanged:,} known, {r.requests} req",
                time.perf_counter() - t,
                "s",
            )
        wall = time.perf_counter() - t0
        n = totals(reports)
        figure(f"backfill {DAYS} d, all stations (sequential)", wall, "s", "goal < 60 s")
        figure("backfill readings stored", n["inserted"], "readings")
        figure("backfill rate", n["inserted"] / wall, "readings/s")

        async with Collectors(app.intake, config, session, schedule=False) as c:
            cpu, t = time.process_time(), time.perf_counter()
            first = await c.poll_now()
            figure(
                "first poll after start (1 d back, 207 stations), wall",
                time.perf_counter() - t,
                "s",
            )
            figure("first poll after start, CPU", time.process_time() - cpu, "s")
            walls, cpus, cycle = [], [], {}
            for _ in range(CYCLES):
                cpu, t = time.process_time(), time.perf_counter()
                cycle = await c.poll_now()
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - cpu)
            errors = [r.error for r in [*first.values(), *cycle.values()] if r.error]
            n = totals(list(cycle.values()))
            stations = {s for p in c.pollers.values() for s in p.health.stations}
        figure(
            f"poll cycle, {len(stations)} stations, median of {CYCLES}: wall",
            statistics.median(walls),
            "s",
            "goal < 2 s",
        )
        figure("poll cycle: CPU of the collecting process", statistics.median(cpus), "s",
               "goal < 0.5 s")  # fmt: skip
        figure("poll cycle: requests", n["requests"], "")
        figure("poll cycle: readings re-read (unchanged)", n["unchanged"], "")
        if errors:
            print(f"  errors: {errors}")


def main() -> None:
    proc, base_url = start_platforms()
    try:
        with bench_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(cluster.url(), base_url, Path(tmp)))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
