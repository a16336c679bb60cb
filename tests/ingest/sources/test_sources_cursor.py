"""Cursors: a restart after an outage resumes with no gap and no duplicate; backfills; catch-up.

The platforms are the simulator's (real HTTP on 127.0.0.1:0) on a fake
clock; what the database holds is compared with what the simulator itself
generates for the same hours.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import aiohttp
import numpy as np
import pandas as pd
import pytest
from aiohttp import web

from envmon.app import App
from envmon.ingest.backfill import backfill
from envmon.ingest.collectors import Collectors
from envmon.ingest.poller import PollReport, SourcePoller
from envmon.ingest.sources import TransientSourceError, load_sources
from envmon.ingest.sources_config import SourcesConfig
from envmon.simulate import simulate
from envmon.simulate.platforms import SimData, serve_platforms
from envmon.simulate.serve import simulated_platforms

from .conftest import (
    CATALOG,
    REPO,
    FakeClock,
    FakePlatform,
    FakeSleep,
    Reply,
    bj,
    config_of,
    query,
    source_config,
)

SHIPPED = load_sources(REPO / "config" / "sources.yaml")
LIVE = ["sim-cnemc-air", "sim-water-auto", "sim-cma-surface"]


@asynccontextmanager
async def simulator(clock: FakeClock, data: SimData) -> AsyncIterator[SourcesConfig]:
    async with serve_platforms(
        CATALOG, "127.0.0.1", 0, seed=2025, fault_rate=0.0, clock=clock, data=data
    ) as url:
        yield SourcesConfig(simulator=SHIPPED.simulator).bind_simulator(url)


def expected(kind: str, start: datetime, end: datetime) -> pd.DataFrame:
    """What the platforms publish for [start, end): the simulator's valid (flag N) values."""
    stations = [s for s in CATALOG.stations if s.kind == kind and s.active]
    df = pd.concat(list(simulate(stations, start, end, seed=2025, kinds=[kind])))
    df["ts"] = pd.to_datetime(df["time"], format="ISO8601", utc=True).dt.tz_localize(None)
    if kind == "weather":
        # CMA: calm (wind speed under 0.2 m/s) has no direction; a trace of rain is 0.0 mm.
        ws = df[df.parameter == "wind_speed"].set_index(["station", "ts"])["value"]
        calm = set(ws[ws < 0.2].index)
        is_calm = np.array([k in calm for k in zip(df.station, df.ts, strict=True)], dtype=bool)
        df = df[~((df.parameter == "wind_dir").to_numpy() & is_calm)]
        trace = (df.parameter == "precip") & (df.value > 0) & (df.value < 0.1)
        df.loc[trace, "value"] = 0.0
    return df[df.flag == "N"]


async def stored(db_url: str, source: str) -> pd.DataFrame:
    rows = await query(
        db_url, "SELECT station_id, parameter, ts, value FROM reading WHERE source = %s", source
    )
    df = pd.DataFrame(rows, columns=["station", "parameter", "ts", "value"])
    df["ts"] = pd.to_datetime(df["ts"], utc=True).dt.tz_localize(None)
    return df


def keys(df: pd.DataFrame) -> set[tuple[str, str, int]]:
    seconds = df["ts"].to_numpy(dtype="datetime64[s]").astype(np.int64).tolist()
    return set(zip(df["station"].tolist(), df["parameter"].tolist(), seconds, strict=True))


async def test_restart_after_an_outage_resumes_without_gap_or_duplicate(
    app: App, db_url: str, session: aiohttp.ClientSession, sim_data: SimData
) -> None:
    clock = FakeClock(bj(2025, 1, 10, 12, 20))
    first: dict[str, PollReport] = {}
    async with simulator(clock, sim_data) as config:
        async with Collectors(
            app.intake, config, session, clock=clock, sleep=FakeSleep(), schedule=False, only=LIVE
        ) as c:
            first = await c.poll_now()
        # The service stops; a day and 5 hours later it starts again.
        clock.advance(days=1, hours=5)
        async with Collectors(
            app.intake, config, session, clock=clock, sleep=FakeSleep(), schedule=False, only=LIVE
        ) as c:
            assert c.pollers["sim-cnemc-air"].cursor == bj(2025, 1, 10, 13)  # from the database
            second = await c.poll_now()
    assert all(r.error is None for r in [*first.values(), *second.values()])
    # The gap went chunk by chunk (1 day each) from the cursor minus the overlap.
    assert second["sim-cnemc-air"].start == bj(2025, 1, 10, 10)
    assert second["sim-cnemc-air"].chunks == 2
    assert second["sim-cnemc-air"].unchanged > 0  # the overlap, read again, changed nothing
    start = bj(2025, 1, 9, 12)  # first poll: one day back
    end = bj(2025, 1, 11, 17)  # published by 17:20 on the 11th: periods starting before 16:20
    for source, kind in [("sim-cnemc-air", "air"), ("sim-cma-surface", "weather")]:
        got, want = await stored(db_url, source), expected(kind, start, end)
        assert keys(got) == keys(want), source  # no gap
        inserted = first[source].inserted + second[source].inserted
        assert inserted == len(got)  # each reading inserted once, never twice
        n_kind = sum(1 for s in CATALOG.stations if s.kind == kind)
        assert got["station"].nunique() == want["station"].nunique() > 0.9 * n_kind
    air = (await stored(db_url, "sim-cnemc-air")).set_index(["station", "parameter", "ts"])
    want_air = expected("air", start, end).set_index(["station", "parameter", "ts"])
    assert (air["value"].sort_index() == want_air["value"].sort_index()).all()
    water = await stored(db_url, "sim-water-auto")
    assert keys(water) == keys(expected("water", start, end))
    cursors = dict(
        await query(
            db_url, "SELECT source, last_ts FROM ingest_cursor WHERE station_id = '' ORDER BY 1"
        )
    )
    assert cursors == {s: bj(2025, 1, 11, 18) for s in LIVE}


async def test_backfill_fetches_an_old_range_without_moving_the_cursor(
    app: App, db_url: str, session: aiohttp.ClientSession, sim_data: SimData
) -> None:
    clock = FakeClock(bj(2025, 1, 12, 8, 5))
    async with simulator(clock, sim_data) as config:
        report = await backfill(
            app.intake,
            config,
            session,
            "sim-cnemc-air",
            bj(2025, 1, 8, 0),
            bj(2025, 1, 10, 12),
            sleep=FakeSleep(),
        )
    assert report.error is None and report.chunks == 3
    assert report.completed_until == bj(2025, 1, 10, 12)
    got = await stored(db_url, "sim-cnemc-air")
    assert keys(got) == keys(expected("air", bj(2025, 1, 8, 0), bj(2025, 1, 10, 12)))
    assert report.inserted == len(got) and report.requests == 60  # one per hour
    assert await query(db_url, "SELECT count(*) FROM ingest_cursor WHERE station_id = ''") == [(0,)]
    # The live health is `envmon run`'s; the stations' cursors do move.
    assert await query(db_url, "SELECT count(*) FROM source_health") == [(0,)]
    (n,) = await query(
        db_url, "SELECT count(*) FROM ingest_cursor WHERE last_ts = %s", bj(2025, 1, 10, 11)
    )
    # Every active air point with a valid value in the last hour (机引 stopped in 2019).
    want = expected("air", bj(2025, 1, 10, 11), bj(2025, 1, 10, 12))
    assert n == (want["station"].nunique(),)


async def test_catch_up_is_bounded_and_says_how_to_fetch_the_rest(
    app: App, db_url: str, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    await query(
        db_url,
        "INSERT INTO ingest_cursor (source, station_id, last_ts) VALUES ('sim-cnemc-air', '', %s)"
        " RETURNING 1",
        bj(2025, 1, 1, 0),
    )
    cfg = SHIPPED.simulator.sources[0].model_copy(  # type: ignore[union-attr]
        update={"base_url": "http://127.0.0.1:1"}
    )
    p = SourcePoller(app.intake, cfg, session, clock=FakeClock(bj(2025, 1, 20, 9, 30)))
    await p.load()
    caplog.set_level(logging.WARNING, logger="envmon.ingest.poller")
    start, end = p.window(bj(2025, 1, 20, 9, 30))
    assert end == bj(2025, 1, 20, 10)
    assert start == end - timedelta(days=7)  # max_catchup
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "envmon backfill --source sim-cnemc-air --from 2024-12-31T21:00:00+08:00" in msg
    assert "--to 2025-01-13T10:00:00+08:00" in msg


async def test_backfill_of_a_simulator_source_starts_the_simulator(
    app: App, db_url: str, session: aiohttp.ClientSession
) -> None:
    # What `envmon backfill --source sim-cnemc-air …` does on the embedded default
    # (without the simulator's faults, to compare with its values one for one).
    assert SHIPPED.simulator is not None
    quiet = SHIPPED.model_copy(
        update={"simulator": SHIPPED.simulator.model_copy(update={"fault_rate": 0.0})}
    )
    async with simulated_platforms(quiet, app.catalog, port=0, force=True) as bound:
        report = await backfill(
            app.intake, bound, session, "sim-cnemc-air", bj(2025, 1, 8, 0), bj(2025, 1, 8, 6)
        )
    got = await stored(db_url, "sim-cnemc-air")
    assert keys(got) == keys(expected("air", bj(2025, 1, 8, 0), bj(2025, 1, 8, 6)))
    assert report.inserted == len(got) > 0


async def test_a_failed_backfill_says_how_far_it_got(
    app: App, db_url: str, session: aiohttp.ClientSession, platform: FakePlatform
) -> None:
    def answer(request: web.Request) -> Reply:
        if request.query["TimePoint"] <= "2025-01-09 00:00:00":  # the hours of the 8th
            return Reply([])
        return Reply("no", status=503, content_type="text/plain")

    platform.on("/air", answer)
    cfg = source_config(
        "cnemc_air", platform.base_url, match=["id"], options={"path": "/air"}, enabled=False
    )
    with pytest.raises(TransientSourceError, match=r"stored up to 2025-01-09T00:00:00\+08:00"):
        await backfill(
            app.intake, config_of(cfg), session, cfg.name, bj(2025, 1, 7), bj(2025, 1, 10),
            sleep=FakeSleep(),
        )  # fmt: skip
