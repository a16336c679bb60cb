"""The simulated HTTP platforms, served beside the collectors that poll them (the demo).

Kept out of ``envmon.ingest``: the collectors know only URLs; whoever
assembles the service (``envmon run``, ``envmon backfill``) decides to serve
the simulated platforms and binds the simulator's sources to them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from envmon.catalog import Catalog
from envmon.ingest.sources_config import SourcesConfig
from envmon.simulate.platforms import serve_platforms


@asynccontextmanager
async def simulated_platforms(
    config: SourcesConfig,
    catalog: Catalog,
    *,
    port: int | None = None,
    force: bool = False,
) -> AsyncIterator[SourcesConfig]:
    """``config`` with the simulator's sources bound to platforms served for the block.

    Only when the file's simulator is enabled (or ``force``: a one-off backfill
    of a simulator source); otherwise ``config`` unchanged. ``port`` overrides
    the file's (0: any free port).
    """
    sim = config.simulator
    if sim is None or not (sim.enabled or force):
        yield config
        return
    async with serve_platforms(
        catalog,
        sim.host,
        sim.port if port is None else port,
        seed=sim.seed,
        fault_rate=sim.fault_rate,
    ) as url:
        yield config.bind_simulator(url)
