"""``envmon run``'s wiring (``envmon.service``): every part started on one database,
every route in stores through the one sink and reaches the same listeners, and
the status summary reports what ran.

The whole demo runs for real: the simulated HJ 212 loggers connect to the
receiver over TCP, the simulated HTTP platforms are polled over HTTP, the
simulator feed stores its hours; nothing is patched.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from pydantic import SecretStr

from envmon.app import open_app
from envmon.ingest.importer import import_file
from envmon.ingest.sink import Sink
from envmon.schemas.readings import ReadingBatch
from envmon.service import Counters, service, status, status_summary
from envmon.settings import Settings
from envmon.simulate.feed import backfill
from envmon.timeutil import BEIJING

REPO = Path(__file__).resolve().parents[1]


def demo_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=SecretStr(db_url),
        data_dir=tmp_path / "var",
        config_dir=REPO / "config",
        pool_min_size=0,
        simulator={  # type: ignore[arg-type]
            "enabled": True,
            "recent_days": 0,
            "history_years": [],
            "history_current_year": False,
            "live_interval_s": 3600,
        },
        hj212={"port": 0, "host": "127.0.0.1"},  # type: ignore[arg-type]
        api={"port": 0},  # type: ignore[arg-type]
        alerts={"tick_s": 0},  # type: ignore[arg-type]
    )


async def wait_for(check: Any, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.2)


async def test_every_route_stores_through_the_one_sink(db_url: str, tmp_path: Path) -> None:
    settings = demo_settings(db_url, tmp_path)
    heard: Counter[str] = Counter()

    async def listener(batch: ReadingBatch) -> None:
        heard[batch.source.split(":")[0]] += len(batch)

    async with service(settings) as parts:
        sink: Sink = parts["app"].sink
        assert set(parts) >= {"app", "derive", "alerts", "api", "hj212", "collectors"}
        assert {"simulator", "loggers"} <= set(parts)
        sink.listen(listener)
        # The alert engine, the API's metrics, the live counters and the derive
        # job all listen to the same sink; nothing else is a way in.
        names = {getattr(f, "__qualname__", "") for f in sink.listeners}
        assert {
            "AlertService.on_batch",
            "ApiMetrics.on_batch",
            "Counters.on_batch",
            "DeriveJob.on_batch",
        } <= names
        # HJ 212 (the simulated loggers upload their last hours on connect) and
        # the pollers (the simulated platforms) both arrive at the one listener.
        collectors = parts["collectors"]
        await collectors.poll_now()
        await wait_for(lambda: heard["hj212"] > 0 and any(k.startswith("sim-") for k in heard), 60)
        counters: Counters = parts["counters"]
        assert counters.readings >= sum(heard.values()) > 0
        st = await status(parts)
        assert st["hj212"]["port"] == parts["hj212"].port
        assert st["spool_pending_files"] == 0
        assert st["readings_total"] > 0
        # The API answers on its own port (the health endpoint needs no token).
        async with (
            aiohttp.ClientSession() as http,
            http.get(parts["api"].url + "/api/v1/health") as resp,
        ):
            assert resp.status == 200
    with psycopg.connect(db_url) as conn:
        sources = {s for (s,) in conn.execute("SELECT DISTINCT source FROM reading")}
    assert "hj212" in sources and any(s.startswith("sim-") for s in sources)


async def test_import_and_simulator_routes_store_through_the_sink(
    db_url: str, tmp_path: Path
) -> None:
    """`envmon import` and the simulator feed hand their batches to the same sink
    type; history reaches only the listeners that asked for it."""

    settings = demo_settings(db_url, tmp_path)
    live: list[str] = []
    everything: list[str] = []

    async def on_live(b: ReadingBatch) -> None:
        live.append(b.source)

    async def on_all(b: ReadingBatch) -> None:
        everything.append(b.source)

    csv = tmp_path / "readings.csv"
    csv.write_text(
        "station,parameter,time,value\n"
        "air-taiyuan-jiancaoping,pm25,2025-03-01T08:00:00,41\n"
        "air-taiyuan-jiancaoping,pm25,2025-03-01T09:00:00,43\n",
        encoding="utf-8",
    )
    async with open_app(settings) as app:
        await app.load_stations()
        app.sink.listen(on_live)
        app.sink.listen(on_all, history=True)
        report = await import_file(csv, validator=app.validator, sink=app.sink)
        assert report.result.inserted == 2
        start = datetime(2025, 3, 2, tzinfo=BEIJING)
        res = await backfill(app.intake, start, start.replace(hour=2), kinds=("air",))
        assert res.readings > 0
        await backfill(
            app.intake, start.replace(hour=2), start.replace(hour=3), kinds=("air",), history=False
        )
        summary = await status_summary(app)
    assert everything[0] == "import:readings.csv" and "simulator" in everything
    assert live == ["simulator"]  # only the live feed's batch
    assert summary["readings_total"] > 2 + res.readings  # the import, history and live hour
    assert summary["hj212_noise_1h"] == {
        "crc_mismatch": {"frames": 0, "from": 0},
        "auth_failed": {"frames": 0, "from": 0},
    }
