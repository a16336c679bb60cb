"""Benchmark (issue 13): weather-normalised PM2.5 of the zone for a year — goal < 60 s.

What an annual report asks: the zone's daily PM2.5 of 2020 and of the year with the
daily weather of its national stations, the boosted-tree fit and the resampled
normalisation (``envmon.evaluate.normalise``), and the same for every air station.

The data go through the real pipeline (simulator → validator → writer → derive) on
a throwaway cluster: the 26 air stations and the 10 national weather stations for
2020 and 2025 (a few minutes of loading, not timed). ``BENCH_NORMALISE_URL`` points
the benchmark at a database that already holds them (e.g. the one of ``make run``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import datetime
from pathlib import Path

import psycopg

from bench.common import REPO, Timer, bench_cluster, figure
from envmon.app import open_app
from envmon.evaluate.derive import process_dirty
from envmon.evaluate.normalise import normalised_trend
from envmon.schemas.readings import Validator
from envmon.settings import Settings
from envmon.simulate import simulate
from envmon.timeutil import BEIJING

YEAR = 2025


def _t(y: int) -> datetime:
    return datetime(y, 1, 1, tzinfo=BEIJING)


async def _load(url: str, tmp: Path) -> None:
    settings = Settings(
        data_dir=tmp, config_dir=REPO / "config", stations_file=REPO / "config" / "stations.yaml"
    )
    async with open_app(settings, url=url) as app:
        await app.load_stations()
        validator = Validator({s.id: s.kind for s in app.catalog.stations}, clock=lambda: _t(2030))
        stations = list(app.catalog.of_kind("air")) + [
            s for s in app.catalog.of_kind("weather") if s.control_level == "national"
        ]
        for year in (2020, YEAR):
            for frame in simulate(stations, _t(year), _t(year + 1), seed=13):
                await app.sink.store(validator.validate_frame(frame, "bench"))
        async with app.pool.connection() as conn:
            await process_dirty(conn)


async def _run(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        with Timer() as t:
            res = await normalised_trend(conn, YEAR, region="zone")
        s = res.summary()
        figure(f"zone {YEAR} vs 2020: query + fit + normalise", t.seconds, "s", "goal < 60 s")
        figure("  days modelled", len(res.days), "days")
        if s["status"] == "ok":
            figure("  observed change of the annual mean", s["observed"]["change"], "µg/m³")
            figure("  weather-normalised change", s["normalised"]["change"], "µg/m³")
            figure("  share of the observed change", 100 * s["share_of_observed_change"], "%")
        cur = await conn.execute("SELECT id FROM station WHERE kind = 'air' ORDER BY id")
        stations = [r[0] for r in await cur.fetchall()]
        with Timer() as t_all:
            for sid in stations:
                await normalised_trend(conn, YEAR, station=sid)
        figure(f"all {len(stations)} air stations, one after the other", t_all.seconds, "s")


def main() -> None:
    url = os.environ.get("BENCH_NORMALISE_URL")
    if url:
        asyncio.run(_run(url))
        return
    with bench_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        url = cluster.url()
        asyncio.run(_load(url, Path(tmp)))
        asyncio.run(_run(url))


if __name__ == "__main__":
    main()
