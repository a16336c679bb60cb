"""Benchmark (issue 16): an alert across instances — stored by one, judged by the owner.

Two apps in this process (two pools, two sinks, two ``AlertService`` in the
shared mode ``envmon run`` uses) over one throwaway cluster: the holder of
the ``envmon.alerts`` lock judges, the other forwards what it stores
(``NOTIFY envmon_alerts``, :mod:`envmon.alerts.relay`). Background: 1,000
readings/s through the *non-owner's* sink (all forwarded). Probes: PM2.5
150 µg/m³ then 60 µg/m³ at one of the 26 air stations, stored by the
non-owner; t0 just before validation, t1 when the webhook (aiohttp on
127.0.0.1, same clock) has the notification. Also: the forwarding's cost per
reading (encoding the notifications, in the non-owner) and the takeover's
catch-up time after the owner stops.

Goal: reading → webhook p99 within a second across instances (issue 16's
on-call goal is < 250 ms on one instance: ``bench/alerts.py``).
Tuning: BENCH_ALERTS_PROBES (default 120), BENCH_ALERTS_RATE (default 1000).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from bench.alerts import PROBES, RATE, Hook, background, bench_config, probe_store, report
from bench.common import REPO, bench_cluster, figure
from envmon.alerts.relay import encode
from envmon.alerts.service import AlertService
from envmon.app import App, open_app
from envmon.schemas.readings import RawReading
from envmon.settings import AlertSettings, Settings
from envmon.timeutil import BEIJING


def encode_cost(app: App, hours: list[datetime]) -> float:
    """Microseconds per reading to encode a 100-reading batch for forwarding."""
    raws = [RawReading(s.id, "pm10", h, 60.0) for s in app.catalog.of_kind("air") for h in hours][
        :100
    ]
    batch = app.validator.validate(raws, "bench").batch
    now_s = time.time()
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        encode(batch, "bench", now_s)
    return (time.perf_counter() - t) / (n * len(batch)) * 1e6


async def run(url: str, data_dir: Path) -> None:
    hook = Hook()
    web_app = web.Application()
    web_app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    now = datetime.now(BEIJING).replace(minute=0, second=0, microsecond=0)
    hour = now - timedelta(hours=1)
    hours = [now - timedelta(hours=h) for h in (3, 2, 1)]
    alert_settings = AlertSettings(tick_s=15.0, claim_s=0.2)
    try:
        async with (
            open_app(Settings(data_dir=data_dir / "a", config_dir=REPO / "config"), url=url) as a,
            open_app(Settings(data_dir=data_dir / "b", config_dir=REPO / "config"), url=url) as b,
        ):
            await a.load_stations()
            air = [s.id for s in a.catalog.of_kind("air") if s.active]
            cfg = bench_config(a, hook_url)
            apps = {"a": a, "b": b}
            svc = {
                name: AlertService(
                    app.pool,
                    app.catalog,
                    settings=alert_settings,
                    sink=app.sink,
                    config=cfg,
                    shared=url,
                    instance=name,
                )
                for name, app in apps.items()
            }
            async with svc["a"], svc["b"]:
                while not any(s.owner and s.owner.running for s in svc.values()):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                owner = next(n for n, s in svc.items() if s.owner and s.owner.running)
                other = "b" if owner == "a" else "a"
                stop = asyncio.Event()
                sent = [0]
                t_start = time.perf_counter()
                load = asyncio.create_task(background(apps[other], stop, hours, sent))
                await asyncio.sleep(2.0)
                latencies = await probe_store(apps[other], hook, air, hour, {})
                stop.set()
                await load
                elapsed = time.perf_counter() - t_start
                heir = svc[other].owner
                assert heir is not None
                forwarded = heir.forwarded
                # The owner stops: the other takes over, catching up from the watermark.
                t_stop = time.perf_counter()
                await svc[owner].aclose()
                while not heir.running:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                takeover = time.perf_counter() - t_stop
                caught_up = heir.caught_up
            cost = encode_cost(apps[other], hours)
    finally:
        await runner.cleanup()
    figure(
        "background load achieved (non-owner)", sent[0] / elapsed, "readings/s", f"target {RATE}"
    )
    figure("notifications forwarded to the owner", forwarded, "")
    figure("forwarding: encoding per reading", cost, "µs")
    report("stored by the non-owner", latencies)
    figure("takeover after the owner stops (claim 0.2 s)", takeover * 1000, "ms")
    figure("readings judged by the takeover's catch-up", caught_up, "")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("envmon.alerts").setLevel(logging.ERROR)
    print(
        f"alerts across two instances: {PROBES} probes, background {RATE} readings/s"
        f" ({os.cpu_count()} CPUs)"
    )
    with bench_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(cluster.url(), Path(tmp)))


if __name__ == "__main__":
    main()
