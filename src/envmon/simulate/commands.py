"""``envmon simulate --from T1 --to T2 [--kinds …] [--hj212 HOST:PORT]``: the demo's data
stored through the sink, or pushed to an HJ 212 receiver by the catalog's simulated loggers."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from envmon.settings import Settings


async def _simulate_over_hj212(
    args: argparse.Namespace, settings: Settings, start: Any, end: Any
) -> int:
    """The catalog's air and water stations as HJ 212 loggers uploading [start, end)."""
    from datetime import timedelta

    from envmon.catalog import load_catalog
    from envmon.ingest.hj212.auth import load_keys, load_secrets
    from envmon.ingest.hj212.profile import load_config
    from envmon.simulate.loggers import SimulatedLoggers

    host, _, port = args.hj212.rpartition(":")
    catalog = load_catalog(settings.stations_path)
    secrets = load_secrets(settings.hj212_secrets_path, settings.hj212.passwords)
    loggers = SimulatedLoggers(
        catalog.stations,
        host or "127.0.0.1",
        int(port),
        secrets,
        seed=args.seed,
        interval_s=3600.0,
        run_loop=False,
        config=load_config(settings.hj212_config_path),
        keys=load_keys(settings.hj212_secrets_path),
    )
    t0 = time.monotonic()
    async with loggers:
        print(f"{len(loggers.devices)} loggers connected to {args.hj212}")
        hour = start.replace(minute=0, second=0, microsecond=0)
        while hour < end:
            await loggers.send_hour(hour)
            hour += timedelta(hours=1)
    print(
        f"{loggers.sent:,} uploads answered (9014), {loggers.failures} failures, "
        f"in {time.monotonic() - t0:.1f} s"
    )
    return 0 if loggers.failures == 0 else 1


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime

    from envmon.app import ensure_database, open_app
    from envmon.evaluate.derive import process_dirty
    from envmon.simulate.feed import backfill
    from envmon.timeutil import to_beijing

    start = to_beijing(datetime.fromisoformat(args.start))
    end = to_beijing(datetime.fromisoformat(args.end))
    kinds = tuple(k.strip() for k in args.kinds.split(","))

    if args.hj212:
        return asyncio.run(_simulate_over_hj212(args, settings, start, end))

    async def run() -> int:
        url = ensure_database(settings)
        async with open_app(settings, url=url) as app:
            await app.load_stations()
            t0 = time.monotonic()
            res = await backfill(app.intake, start, end, kinds=kinds, seed=args.seed)
            print(
                f"simulated {res.readings:,} readings ({res.rejected:,} rejected) for "
                f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} in "
                f"{time.monotonic() - t0:.1f} s"
            )
            if not args.no_derive:
                async with app.pool.connection() as conn:
                    st = await process_dirty(conn, city_o3=settings.evaluate.city_o3)
                print(f"derived values updated for {st.station_days:,} station-days")
        return 0

    return asyncio.run(run())
