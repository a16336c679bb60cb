"""Every simulated platform in one aiohttp app on localhost, and the command that runs it."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypedDict, Unpack

from aiohttp import web

from envmon import timeutil
from envmon.catalog import Catalog
from envmon.simulate.platforms.base import Faults, Platform, Publisher, SimData
from envmon.simulate.platforms.cma_surface import CmaSurface
from envmon.simulate.platforms.cnemc_air import CnemcAir
from envmon.simulate.platforms.openaq_v3 import OpenAqV3
from envmon.simulate.platforms.water_auto import WaterAuto

logger = logging.getLogger(__name__)


class PlatformOptions(TypedDict, total=False):
    """The keyword arguments of :class:`Platforms` (and :func:`serve_platforms`)."""

    seed: int
    fault_rate: float | Mapping[str, float]
    record_fault_rate: float | None
    fault_mix: Mapping[str, float] | None
    clock: Callable[[], datetime]
    hang_s: float
    slow_s: float
    retry_after_s: int
    api_key: str | None
    data: SimData | None


class Platforms:
    """The aiohttp handlers of every simulated platform.

    ``fault_rate`` is the share of requests that fail (one rate, or one per
    platform: ``cnemc water cma openaq``); ``fault_mix`` weighs the kinds of
    failure (:data:`~envmon.simulate.platforms.base.DEFAULT_MIX`);
    ``record_fault_rate`` (default a quarter of ``fault_rate``) the share of
    malformed records.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        seed: int = 2025,
        fault_rate: float | Mapping[str, float] = 0.0,
        record_fault_rate: float | None = None,
        fault_mix: Mapping[str, float] | None = None,
        clock: Callable[[], datetime] = timeutil.now,
        hang_s: float = 60.0,
        slow_s: float = 1.0,
        retry_after_s: int = 1,
        api_key: str | None = None,
        data: SimData | None = None,
    ) -> None:
        self.data = data if data is not None and data.seed == seed else SimData(catalog, seed)
        if record_fault_rate is None:
            base = fault_rate if isinstance(fault_rate, int | float) else 0.0
            record_fault_rate = base / 4
        self.faults = Faults(seed, fault_rate, record_fault_rate, fault_mix)
        self.publisher = Publisher(
            self.data,
            self.faults,
            clock=clock,
            hang_s=hang_s,
            slow_s=slow_s,
            retry_after_s=retry_after_s,
        )
        self.platforms: list[Platform] = [
            CnemcAir(self.publisher),
            WaterAuto(self.publisher),
            CmaSurface(self.publisher),
            OpenAqV3(self.publisher, api_key=api_key),
        ]

    def app(self) -> web.Application:
        app = web.Application()
        for platform in self.platforms:
            app.router.add_routes(platform.routes())
        app.router.add_get("/", self.index)

        async def stop(_: web.Application) -> None:
            self.publisher.stopping.set()

        app.on_shutdown.append(stop)
        return app

    async def index(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "platforms": [p.source for p in self.platforms],
                "stations": {k: len(v) for k, v in self.data.stations.items()},
                "requests": dict(self.publisher.requests),
                "faults": dict(self.faults.injected),
            }
        )


@asynccontextmanager
async def serve_platforms(
    catalog: Catalog,
    host: str = "127.0.0.1",
    port: int = 0,
    **options: Unpack[PlatformOptions],
) -> AsyncIterator[str]:
    """Serve every simulated platform on ``host:port`` (0 = any free port); yields the base URL.

    ``options`` are :class:`Platforms`'.
    """
    platforms = Platforms(catalog, **options)
    app = platforms.app()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        base_url = f"http://{shown}:{bound}"
        logger.info(
            "simulated platforms at %s (seed=%d, fault rate %s, stations %s)",
            base_url,
            platforms.faults.seed,
            platforms.faults.rate,
            {k: len(v) for k, v in platforms.data.stations.items()},
        )
        yield base_url
    finally:
        platforms.publisher.stopping.set()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the simulated platforms until interrupted (benchmarks, manual testing)."""
    from pathlib import Path

    from envmon.catalog import load_catalog

    p = argparse.ArgumentParser(prog="python -m envmon.simulate.platforms")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18765)
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--stations", default="config/stations.yaml")
    args = p.parse_args(argv)
    catalog = load_catalog(Path(args.stations))

    async def run() -> None:
        async with serve_platforms(
            catalog, args.host, args.port, seed=args.seed, fault_rate=args.fault_rate
        ) as url:
            print(f"serving {url}", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
