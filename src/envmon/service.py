"""``envmon run``: the whole service in one asyncio loop.

Start-up: the database (embedded unless an external server is configured),
migrations, the station catalog, the spool. Then the long-running parts, each
an async context manager opened here and closed in reverse order on SIGINT or
SIGTERM: the derived-tables job, and — as they are configured — the HJ 212
receiver, the HTTP pollers, the alert service and the API. With the embedded
database the built-in simulator feeds all of it, so that a newcomer sees the
whole service working from ``make run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from envmon.alerts.service import alert_status
from envmon.app import App, ensure_database, open_app
from envmon.db.migrate import Options
from envmon.db.upkeep import upkeep
from envmon.derive_job import DeriveJob
from envmon.ingest.state import read_health
from envmon.schemas.readings import ReadingBatch
from envmon.settings import Settings
from envmon.timeutil import BEIJING, now

logger = logging.getLogger(__name__)

StatusCallback = Callable[[dict[str, Any]], None]


@dataclass
class Counters:
    """What the live status line shows."""

    started: float = field(default_factory=time.monotonic)
    readings: int = 0
    batches: int = 0
    by_source: dict[str, int] = field(default_factory=dict)

    async def on_batch(self, batch: ReadingBatch) -> None:
        self.readings += len(batch)
        self.batches += 1
        self.by_source[batch.source] = self.by_source.get(batch.source, 0) + len(batch)


async def hj212_noise(conn: Any) -> dict[str, dict[str, int]]:
    """HJ 212 CRC mismatches and authentication failures stored in the last hour:
    frames, and MNs (or stations) they came from."""
    from envmon.ingest.hj212.noise import AUTH_REASONS, CRC_REASONS

    row = await (
        await conn.execute(
            "SELECT coalesce(sum(times) FILTER (WHERE crc), 0), count(DISTINCT who) FILTER"
            " (WHERE crc), coalesce(sum(times) FILTER (WHERE auth), 0),"
            " count(DISTINCT who) FILTER (WHERE auth)"
            " FROM (SELECT times, reason LIKE ANY (%(crc)s) AS crc,"
            "  reason LIKE ANY (%(auth)s) AS auth,"
            "  coalesce(station_id, substring(raw FROM 'MN=([0-9A-Za-z]+)'), '?') AS who"
            "  FROM rejected WHERE source = 'hj212'"
            "  AND received_at > now() - interval '1 hour') r",
            {
                "crc": [f"{r}%" for r in CRC_REASONS],
                "auth": [f"{r}%" for r in AUTH_REASONS],
            },
        )
    ).fetchone()
    crc, crc_from, auth, auth_from = row or (0, 0, 0, 0)
    return {
        "crc_mismatch": {"frames": crc, "from": crc_from},
        "auth_failed": {"frames": auth, "from": auth_from},
    }


async def status_summary(app: App) -> dict[str, Any]:
    """What ``envmon status`` and ``make run`` print."""
    out: dict[str, Any] = {}
    async with app.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT kind, count(*), count(*) FILTER (WHERE active) FROM station"
                " GROUP BY kind ORDER BY kind"
            )
        ).fetchall()
        out["stations"] = {k: {"total": n, "active": a} for k, n, a in rows}
        rows = await (
            await conn.execute(
                "SELECT s.kind, count(r.*), max(r.ts), count(DISTINCT r.station_id)"
                " FROM station s LEFT JOIN reading r ON r.station_id = s.id"
                " WHERE r.ts > now() - interval '2 days' OR r.ts IS NULL GROUP BY s.kind"
            )
        ).fetchall()
        out["recent_readings"] = {
            k: {"readings_48h": n, "latest": t.isoformat() if t else None, "stations_reporting": c}
            for k, n, t, c in rows
        }
        (total,) = await (await conn.execute("SELECT count(*) FROM reading")).fetchone() or (0,)
        out["readings_total"] = total
        rows = await (
            await conn.execute(
                "SELECT reason, count(*) FROM rejected WHERE received_at > now() - interval '1 day'"
                " GROUP BY reason ORDER BY count(*) DESC LIMIT 5"
            )
        ).fetchall()
        out["rejected_24h"] = {r: n for r, n in rows}
        out["hj212_noise_1h"] = await hj212_noise(conn)
        ts_row = await (
            await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        ).fetchone()
        out["timescaledb"] = ts_row[0] if ts_row else None
        ver = await (await conn.execute("SHOW server_version")).fetchone()
        out["postgresql"] = ver[0] if ver else None
        out["sources"] = await read_health(conn)
    out["alerts"] = await alert_status(app.pool)
    out["spool_pending_files"] = len(app.sink.spool.pending())
    out["spool_quarantined_files"] = len(app.sink.spool.quarantined())
    return out


class SimulatorFeed:
    """The embedded demo: recent history at start, whole years in the background,
    and the current hour kept fresh for all 207 stations."""

    def __init__(
        self, app: App, *, live_kinds: tuple[str, ...] = ("air", "water", "weather")
    ) -> None:
        self.app = app
        self.cfg = app.settings.simulator
        self.live_kinds = live_kinds
        self.state = "starting"
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> SimulatorFeed:
        from envmon.simulate.feed import backfill

        end = now().replace(minute=0, second=0, microsecond=0)
        if self.cfg.recent_days:
            self.state = f"loading the last {self.cfg.recent_days} days"
            res = await backfill(
                self.app.intake,
                end - timedelta(days=self.cfg.recent_days),
                end,
                seed=self.cfg.seed,
            )
            logger.info(
                "simulator: %d readings for the last %d days", res.readings, self.cfg.recent_days
            )
        self._tasks.append(asyncio.create_task(self._history(), name="simulator-history"))
        self._tasks.append(asyncio.create_task(self._live(), name="simulator-live"))
        self.state = "live"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _history(self) -> None:
        from envmon.simulate.feed import backfill

        years = list(self.cfg.history_years)
        if self.cfg.history_current_year and now().year not in years:
            years.append(now().year)
        for year in years:
            start = datetime(year, 1, 1, tzinfo=BEIJING)
            # Up to where the recent days loaded at start-up begin.
            recent = now().replace(minute=0, second=0, microsecond=0) - timedelta(
                days=self.cfg.recent_days
            )
            end = min(datetime(year + 1, 1, 1, tzinfo=BEIJING), recent)
            if end <= start:
                continue
            async with self.app.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT count(*) FROM region_day WHERE region = 'zone'"
                    " AND day >= %s AND day < %s",
                    (start.date(), end.date()),
                )
                row = await cur.fetchone()
            if row and row[0] >= (end - start).days - 2:
                continue  # already there
            self.state = f"loading {year} (air and water) in the background"
            try:
                await backfill(
                    self.app.intake, start, end, kinds=("air", "water"), seed=self.cfg.seed
                )
            except Exception:
                logger.exception("simulator: loading %d failed", year)
        self.state = "live"

    async def _live(self) -> None:
        from envmon.simulate.feed import backfill

        while True:
            # The last complete hour (and the one before, in case it was missed):
            # hourly values are published after their hour ends.
            hour = now().replace(minute=0, second=0, microsecond=0)
            if not self.live_kinds:
                return
            try:
                await backfill(
                    self.app.intake,
                    hour - timedelta(hours=2),
                    hour,
                    kinds=self.live_kinds,
                    seed=self.cfg.seed,
                    source="simulator-live",
                    history=False,
                )
            except Exception:
                logger.exception("simulator: live feed failed")
            await asyncio.sleep(self.cfg.live_interval_s)


def demo_api_tokens(settings: Settings) -> Path:
    """The demo's API tokens: random, kept in DATA_DIR/api-tokens.yaml (mode 0600).

    Only with the simulator (the embedded demo); a real deployment sets
    ``ENVMON_API__READ_TOKEN`` and ``ENVMON_API__ADMIN_TOKEN``.
    """
    path = settings.data_dir / "api-tokens.yaml"
    if path.exists():
        tokens = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    else:
        tokens = {"read_token": secrets.token_urlsafe(24), "admin_token": secrets.token_urlsafe(24)}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# Demo tokens of the embedded envmon (never used in production).\n")
            yaml.safe_dump(tokens, f)
    settings.api.read_token = SecretStr(str(tokens["read_token"]))
    settings.api.admin_token = SecretStr(str(tokens["admin_token"]))
    return path


@asynccontextmanager
async def service(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """Open everything ``envmon run`` runs; yields a dict of the running parts."""
    url = await asyncio.to_thread(ensure_database, settings)
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(open_app(settings, url=url))
        sync = await app.load_stations()
        logger.info(
            "stations: %d in catalog (%d new, %d updated)",
            len(app.catalog.stations),
            sync.inserted,
            sync.updated,
        )
        if app.sink.spool.pending():
            replayed = await app.sink.replay_spool()
            logger.info("spool replayed: %d readings", replayed.accepted)
        counters = Counters()
        stack.callback(app.sink.listen(counters.on_batch))
        parts: dict[str, Any] = {"app": app, "url": url, "counters": counters}
        parts["derive"] = await stack.enter_async_context(DeriveJob(app))
        # Daily pruning on plain PostgreSQL; grafana_reader's statement limit.
        await stack.enter_async_context(upkeep(app.pool, Options.from_settings(settings).retention))
        if settings.alerts.enabled:
            from envmon.alerts.service import AlertService

            # Listens to the sink: every source's stored batches are judged — here, or
            # (several instances sharing the database) forwarded to the alert owner.
            # Receiver workers forward theirs too (envmon.receivers).
            shared = settings.alerts.single_owner or settings.hj212.workers > 1
            conninfo = app.pool.conninfo if shared else None
            parts["alerts"] = await stack.enter_async_context(
                AlertService(
                    app.pool,
                    app.catalog,
                    settings.alerts,
                    sink=app.sink,
                    shared=conninfo if isinstance(conninfo, str) else None,
                    instance=f"{socket.gethostname()}:{os.getpid()}",
                )
            )
        if settings.api.enabled:
            from envmon.api.app import ApiServer

            if settings.simulator_enabled and settings.api.read_token is None:
                demo_api_tokens(settings)

            parts["api"] = await stack.enter_async_context(
                ApiServer(app.pool, app.catalog, settings.api, sink=app.sink)
            )
            logger.info(
                "HTTP API on %s (OpenAPI: %s/api/v1/openapi.json)",
                parts["api"].url,
                parts["api"].url,
            )
        if settings.hj212.enabled:
            from envmon.ingest.hj212.auth import generate_secrets, load_secrets
            from envmon.ingest.hj212.server import Hj212Server
            from envmon.ingest.hj212.workers import rehome

            if settings.simulator_enabled:
                # The demo's loggers need passwords: random ones, kept in DATA_DIR.
                generate_secrets(app.catalog, settings.hj212_secrets_path)
            secrets = load_secrets(settings.hj212_secrets_path, settings.hj212.passwords)
            workers = settings.hj212.workers
            # Split packets to their device's home worker; spools of workers gone.
            await asyncio.to_thread(rehome, settings, workers)
            srv = await stack.enter_async_context(
                Hj212Server(settings, app.intake, secrets=secrets)
            )
            parts["hj212"] = srv
            logger.info("HJ 212 receiver listening on %s:%d", settings.hj212.host, srv.port)
            if workers > 1:
                from envmon.receivers import ReceiverWorkers

                parts["hj212_workers"] = await stack.enter_async_context(
                    ReceiverWorkers(settings, srv.port)
                )
        if settings.collect.enabled:
            from envmon.ingest.collectors import Collectors, client_session
            from envmon.ingest.sources import load_sources
            from envmon.simulate.serve import simulated_platforms

            sources = load_sources(settings.sources_path)
            if sources.simulator is not None and not settings.simulator_enabled:
                # The simulated platforms only ever run for the demo.
                sources = sources.model_copy(
                    update={"simulator": sources.simulator.model_copy(update={"enabled": False})}
                )
            session = await stack.enter_async_context(client_session(settings.collect))
            # The demo's platforms are served here, not by the collectors.
            sources = await stack.enter_async_context(simulated_platforms(sources, app.catalog))
            parts["collectors"] = await stack.enter_async_context(
                Collectors(app.intake, sources, session, secrets=settings.collect.secrets)
            )
        if settings.simulator_enabled:
            # Live hours come from the receiver and the collectors when they run;
            # the feed fills in only what neither delivers.
            live: tuple[str, ...] = ("air", "water", "weather")
            if "collectors" in parts:
                live = ()
            elif "hj212" in parts:
                live = ("weather",)
            parts["simulator"] = await stack.enter_async_context(
                SimulatorFeed(app, live_kinds=live)
            )
            if "hj212" in parts:
                from envmon.ingest.hj212.auth import load_keys
                from envmon.ingest.hj212.profile import load_config
                from envmon.simulate.loggers import SimulatedLoggers

                parts["loggers"] = await stack.enter_async_context(
                    SimulatedLoggers(
                        app.catalog.stations,
                        "127.0.0.1",
                        parts["hj212"].port,
                        secrets,
                        seed=settings.simulator.seed,
                        interval_s=settings.simulator.live_interval_s,
                        config=load_config(settings.hj212_config_path),
                        keys=load_keys(settings.hj212_secrets_path),
                    )
                )
        yield parts


async def status(parts: dict[str, Any]) -> dict[str, Any]:
    app: App = parts["app"]
    st = await status_summary(app)
    c: Counters = parts["counters"]
    st["ingested_since_start"] = c.readings
    st["by_source"] = dict(c.by_source)
    st["uptime_s"] = round(time.monotonic() - c.started)
    if "simulator" in parts:
        st["simulator"] = parts["simulator"].state
    if "api" in parts:
        st["api"] = parts["api"].url
        if app.settings.simulator_enabled:
            st["api_tokens_file"] = str(app.settings.data_dir / "api-tokens.yaml")
    if "hj212" in parts:
        srv = parts["hj212"]
        st["hj212"] = {
            "port": srv.port,
            "connections": srv.connections,
            "noise_since_start": dict(srv.noise.totals),  # CRC mismatches, auth failures
            # Split uploads waiting for packets, and their packets in the journal.
            "split_groups_open": srv.split_groups_open,
            "split_packets_journalled": len(srv.journal),
        }
        if "hj212_workers" in parts:
            w = parts["hj212_workers"]
            st["hj212"]["workers"] = {
                "processes": w.workers,
                "workers_running": len(w.running),
                "workers_started": w.started,
                "handed_off_here": srv.stats.handed_off,
            }
    if "loggers" in parts:
        lg = parts["loggers"]
        st["hj212"]["simulated_loggers"] = len(lg.devices)
        st["hj212"]["uploads_sent"] = lg.sent
    if "alerts" in parts and parts["alerts"].owner is not None:
        own = parts["alerts"].owner
        st["alerts"]["this_instance"] = {
            "instance": own.instance,
            "owner": own.running,
            "forwarded": own.forwarded,
            "caught_up": own.caught_up,
        }
    d: DeriveJob = parts["derive"]
    st["derived_at"] = d.last_run.isoformat(timespec="seconds") if d.last_run else None
    return st


async def run_forever(
    settings: Settings,
    on_status: StatusCallback,
    *,
    status_every_s: float = 15.0,
    stop: asyncio.Event | None = None,
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with service(settings) as parts:
        on_status(await status(parts))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), status_every_s)
            try:
                on_status(await status(parts))
            except Exception:
                logger.exception("status failed")
    logger.info("envmon stopped")
