"""The simulator's platforms with the shipped simulator block: all 207 stations flow.

This is what ``envmon run`` does on the embedded default: serve the simulated
platforms on localhost and poll them with the sources of
``config/sources.yaml``'s ``simulator`` block — here with faults switched up
(deterministic by seed), and the clock and sleep faked.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import aiohttp
import psycopg

from envmon.app import App
from envmon.ingest.collectors import Collectors
from envmon.ingest.sources import load_sources
from envmon.ingest.sources_config import SourcesConfig
from envmon.ingest.state import read_health
from envmon.simulate.platforms import SimData, serve_platforms
from envmon.simulate.serve import simulated_platforms

from .conftest import CATALOG, REPO, FakeClock, FakeSleep, bj, eventually, query

SHIPPED = load_sources(REPO / "config" / "sources.yaml")
NO_HANGS = {"500": 1.0, "429": 1.0, "malformed": 1.0, "slow": 1.0}


async def test_all_207_stations_flow_despite_faults(
    app: App, db_url: str, session: aiohttp.ClientSession, sim_data: SimData
) -> None:
    clock = FakeClock(bj(2025, 1, 10, 12, 20))
    sleep = FakeSleep()
    async with serve_platforms(
        CATALOG,
        "127.0.0.1",
        0,
        seed=2025,
        fault_rate=0.1,
        record_fault_rate=0.01,
        fault_mix=NO_HANGS,
        slow_s=0.01,
        clock=clock,
        data=sim_data,
    ) as url:
        sim = SHIPPED.simulator
        assert sim is not None
        sources = [
            s.model_copy(update={"initial_lookback": timedelta(hours=8)}) for s in sim.sources
        ]
        config = SourcesConfig(simulator=sim.model_copy(update={"sources": sources}))
        config = config.bind_simulator(url)
        async with Collectors(
            app.intake, config, session, clock=clock, sleep=sleep, schedule=False
        ) as c:
            for _ in range(6):
                reports = await c.poll_now()
                if all(p.health.state == "ok" for p in c.pollers.values()):
                    break
                clock.advance(minutes=1)
            health = {h["source"]: h for h in c.health()}
        async with session.get(url + "/") as r:
            stats = await r.json()
    assert {h["state"] for h in health.values()} == {"ok"}, health
    assert sum(stats["faults"].values()) > 0  # faults were served…
    assert sum(r.retries for r in reports.values()) + len(sleep.delays) > 0  # …and retried
    by_kind = Counter(
        dict(
            await query(
                db_url,
                "SELECT s.kind, count(DISTINCT r.station_id) FROM reading r"
                " JOIN station s ON s.id = r.station_id GROUP BY s.kind",
            )
        )
    )
    assert by_kind == {"air": 25, "water": 14, "weather": 167}  # every active station
    (rejected,) = await query(db_url, "SELECT count(*) FROM rejected")
    assert rejected[0] > 0  # malformed records were quarantined, the rest kept
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        stored = {h["source"]: h for h in await read_health(conn, now=clock.now)}
    assert set(stored) == {s.name for s in SHIPPED.simulator.sources}  # type: ignore[union-attr]
    assert all(h["stale"] is False for h in stored.values())


async def test_faults_are_deterministic_by_seed(
    session: aiohttp.ClientSession, sim_data: SimData
) -> None:
    clock = FakeClock(bj(2025, 1, 10, 12, 20))

    async def statuses(seed: int) -> list[int]:
        data = sim_data if seed == sim_data.seed else SimData(CATALOG, seed)
        out = []
        async with serve_platforms(
            CATALOG, "127.0.0.1", 0, seed=seed, fault_rate=0.3, fault_mix={"500": 1.0, "429": 1.0},
            clock=clock, data=data,
        ) as url:  # fmt: skip
            for h in range(40):
                tp = f"2025-01-10 {h % 12:02d}:00:00"
                async with session.get(url + "/cnemc/air/hourly", params={"TimePoint": tp}) as r:
                    out.append(r.status)
        return out

    a, b = await statuses(2025), await statuses(2025)
    assert a == b and set(a) == {200, 429, 500}
    assert await statuses(2026) != a


async def test_openaq_simulator_wants_a_key(
    session: aiohttp.ClientSession, sim_data: SimData
) -> None:
    async with serve_platforms(CATALOG, "127.0.0.1", 0, data=sim_data, api_key="k") as url:
        async with session.get(url + "/openaq/v3/locations") as r:
            assert r.status == 401
        async with session.get(url + "/openaq/v3/locations", headers={"X-API-Key": "k"}) as r:
            body = await r.json()
    assert body["meta"]["found"] == 25 and len(body["results"][0]["sensors"]) == 6


async def test_simulated_platforms_and_collectors_are_what_envmon_run_starts(
    app: App, db_url: str, session: aiohttp.ClientSession
) -> None:
    # The shipped block, on the real clock, without faults and with a short first look back.
    sim = SHIPPED.simulator
    assert sim is not None and sim.enabled and sim.port == 0
    sources = [s.model_copy(update={"initial_lookback": s.overlap}) for s in sim.sources]
    config = SourcesConfig(simulator=sim.model_copy(update={"fault_rate": 0.0, "sources": sources}))
    async with (
        simulated_platforms(config, app.catalog) as bound,
        Collectors(app.intake, bound, session) as c,
    ):
        assert c.scheduler is not None and len(c.scheduler.get_jobs()) == 4
        await eventually(lambda: all(p.health.last_success_at for p in c.pollers.values()))
    # Every station reports, but for those the simulator has in a multi-day outage now.
    (n,) = await query(db_url, "SELECT count(DISTINCT station_id) FROM reading")
    assert n[0] > 0.9 * len(CATALOG)
