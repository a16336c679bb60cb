"""``envmon backfill`` and ``envmon sources check``: one-off commands over the pull sources."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp
from pydantic import SecretStr

from envmon.catalog import Catalog
from envmon.errors import ConfigError, EnvmonError
from envmon.ingest.poller import PollReport, SourcePoller
from envmon.ingest.sink import Intake
from envmon.ingest.sources import REGISTRY, StationMap
from envmon.ingest.sources.base import Sleep
from envmon.ingest.sources_config import SourceConfig, SourcesConfig
from envmon.ingest.state import iso
from envmon.timeutil import ceil_hour, floor_hour


async def backfill(
    intake: Intake,
    config: SourcesConfig,
    session: aiohttp.ClientSession,
    source: str,
    start: datetime,
    end: datetime,
    *,
    secrets: Mapping[str, SecretStr] | None = None,
    sleep: Sleep = asyncio.sleep,
) -> PollReport:
    """``envmon backfill --source S --from T1 --to T2``: fetch [T1, T2) of one source.

    The source may be disabled in the file (a platform that is only backfilled
    from). A simulator source needs its platforms served and bound first
    (``envmon.simulate.serve.simulated_platforms``; the CLI does it). Raises on
    a fatal error, or on a transient one that outlasts the retries — the
    message says up to where the range was stored.
    """
    cfg = config.get(source)
    if end <= start:
        raise ConfigError(f"backfill: --to ({iso(end)}) must be after --from ({iso(start)})")
    if not cfg.enabled:
        cfg = cfg.model_copy(update={"enabled": True})
    return await _backfill(intake, cfg, session, start, end, secrets, sleep)


async def _backfill(
    intake: Intake,
    cfg: SourceConfig,
    session: aiohttp.ClientSession,
    start: datetime,
    end: datetime,
    secrets: Mapping[str, SecretStr] | None,
    sleep: Sleep,
) -> PollReport:
    poller = SourcePoller(intake, cfg, session, secrets=secrets, sleep=sleep)
    if poller.source is None:
        raise ConfigError(poller.health.last_error or f"source '{cfg.name}' is not usable")
    # The live health (source_health) belongs to `envmon run`: a backfill leaves it alone;
    # the stations' cursors do move (to the newest period received).
    report = PollReport(cfg.name)
    try:
        await poller.run(floor_hour(start), ceil_hour(end), report, live=False)
    except EnvmonError as err:
        done = iso(report.completed_until) or "nothing"
        raise type(err)(f"backfill of '{cfg.name}' stopped (stored up to {done}): {err}") from err
    return report


def check_sources(
    catalog: Catalog, config: SourcesConfig, secrets: Mapping[str, SecretStr] | None = None
) -> list[dict[str, Any]]:
    """``envmon sources check``: every source's station mapping and options, no network."""
    out: list[dict[str, Any]] = []
    active = {s.name for s in config.active()}
    for cfg in config.all_sources():
        row: dict[str, Any] = {
            "source": cfg.name,
            "kind": cfg.kind,
            "active": cfg.name in active,
            "base_url": cfg.base_url or ("(simulator)" if cfg.name in active else None),
            "stations": 0,
            "problem": None,
        }
        cls = REGISTRY.get(cfg.kind)
        try:
            if cls is None:
                raise ConfigError(f"unknown kind '{cfg.kind}'")
            options = cls.parse_options(cfg)
            row["stations"] = len(StationMap.build(cfg, catalog, cls.feeds_with(options)))
            if cls.needs_secret and cfg.name in active and not cfg.secret(secrets or {}):
                hint = f'ENVMON_COLLECT__SECRETS=\'{{"{cfg.name}": "…"}}\''
                raise ConfigError(f"source '{cfg.name}' needs a key: {hint}")
        except ConfigError as err:
            row["problem"] = str(err)
        out.append(row)
    return out
