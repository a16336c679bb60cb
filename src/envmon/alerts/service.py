"""The alert service: one async context manager owning the engine, the periodic
task and the delivery workers.

::

    async with AlertService(pool, catalog, settings.alerts, sink=sink) as alerts:
        ...   # every batch the sink stores reaches alerts.on_batch; scheduled rules every tick

On entry it loads and validates the rules file (failing with every problem
listed), builds the channels over one HTTP session, loads the open episodes and
pending notifications from the database, listens to the sink's stored
batches and starts the periodic task. On exit it unregisters, stops the
periodic task, delivers what is due (briefly) and closes the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from envmon import timeutil
from envmon.alerts.channels import build_channels
from envmon.alerts.delivery import Dispatcher
from envmon.alerts.engine import AlertEngine, Clock
from envmon.alerts.message import test_message
from envmon.alerts.model import Notice
from envmon.alerts.owner import AlertOwner
from envmon.alerts.rules import AlertConfig, load_config
from envmon.catalog import Catalog
from envmon.errors import ConfigError
from envmon.evaluate.targets import load_targets
from envmon.ingest.sink import Sink
from envmon.schemas.readings import ReadingBatch
from envmon.settings import AlertSettings

logger = logging.getLogger(__name__)
Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]


def load_rules(
    catalog: Catalog, settings: AlertSettings, env: Mapping[str, str] | None = None
) -> AlertConfig:
    if settings.rules_file is None:
        raise ConfigError("no alert rules file (ENVMON_ALERTS__RULES_FILE)")
    return load_config(settings.rules_file, catalog, env=env)


class AlertService:
    """Alerts for one running app (see the module docstring)."""

    def __init__(
        self,
        pool: Pool,
        catalog: Catalog,
        settings: AlertSettings | None = None,
        *,
        sink: Sink | None = None,
        config: AlertConfig | None = None,
        clock: Clock = timeutil.now,
        session: aiohttp.ClientSession | None = None,
        env: Mapping[str, str] | None = None,
        shared: str | None = None,
        instance: str = "",
    ) -> None:
        self.pool = pool
        self.catalog = catalog
        self.settings = settings or AlertSettings()
        self._sink = sink
        self._unlisten: Callable[[], None] | None = None
        self.clock = clock
        self._config = config
        self._env = env
        self._session = session
        self._own_session = session is None
        self._ticker: asyncio.Task[None] | None = None
        self.engine: AlertEngine | None = None
        self.dispatcher: Dispatcher | None = None
        self._targets: list[Any] | None = None
        # Shared by several instances (``shared``: the database's connection string):
        # alerts are judged by the holder of the ``envmon.alerts`` lock only.
        self.owner: AlertOwner | None = (
            AlertOwner(self, shared, instance or "envmon") if shared is not None else None
        )

    @property
    def config(self) -> AlertConfig:
        if self._config is None:
            raise RuntimeError("the alert service is not running")
        return self._config

    async def __aenter__(self) -> AlertService:
        if not self.settings.enabled:
            logger.info("alerts disabled (ENVMON_ALERTS__ENABLED=false)")
            return self
        if self._config is None:
            self._config = load_rules(self.catalog, self.settings, self._env)
        targets = None
        if any(r.kind == "target_risk" for r in self._config.rules):
            try:
                if self.settings.targets_file is None:
                    raise ConfigError("no targets file (ENVMON_TARGETS_FILE)")
                targets = load_targets(self.settings.targets_file)
            except ConfigError as err:
                logger.warning("target-risk rules disabled: %s", err)
        self._targets = targets
        if self._session is None:
            self._session = aiohttp.ClientSession()
        if self.owner is not None:
            # Judged where the lock is: this instance forwards its batches until it owns it.
            await self.owner.start()
        else:
            try:
                await self.start_engine()
            except BaseException:
                await self._close_session()
                raise
        if self._sink is not None:
            self._unlisten = self._sink.listen(self.on_batch)
            if self.owner is not None:  # forwarded with each commit while another owns
                self._sink.writer.announce = self.owner.announce
        return self

    async def start_engine(self) -> None:
        """The engine, the delivery workers and the periodic task (an owner's)."""
        assert self._config is not None and self._session is not None
        channels = build_channels(self._config, self._session, self.settings.http_timeout_s)
        self.dispatcher = Dispatcher(
            self.pool,
            channels,
            self.settings,
            per_minute={n: c.per_minute for n, c in self._config.channels.items()},
        )
        self.engine = AlertEngine(
            self._config,
            self.catalog,
            self.pool,
            settings=self.settings,
            targets=self._targets,
            clock=self.clock,
            on_notices=self.dispatcher.submit,
        )
        try:
            await self.engine.start()
            await self.dispatcher.start()
        except BaseException:
            await self.stop_engine()
            raise
        if self.settings.tick_s > 0:
            self._ticker = asyncio.create_task(self._tick_loop(), name="alerts-scheduled")

    async def stop_engine(self) -> None:
        """Stop judging here: the periodic task, the engine (its values written), delivery."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        engine, dispatcher = self.engine, self.dispatcher
        self.engine = self.dispatcher = None
        if engine is not None:
            await engine.close()
        if dispatcher is not None:
            await dispatcher.stop()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._sink is not None and self.owner is not None:
            self._sink.writer.announce = None
        if self.owner is not None:
            await self.owner.stop()
        await self.stop_engine()
        await self._close_session()

    async def _close_session(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_s)
            try:
                await self.run_scheduled()
            except Exception:  # the periodic task must outlive one bad pass
                logger.exception("alert scheduled pass failed")

    # ------------------------------------------------------------------ the two entry points

    async def on_batch(self, batch: ReadingBatch) -> None:
        """The sink's listener: judge a batch just stored (or forward it to the owner)."""
        if self.owner is not None:
            await self.owner.on_stored(batch)
        elif self.engine is not None:
            await self.engine.on_batch(batch)

    async def run_scheduled(self, now: datetime | None = None, *, force: bool = False) -> None:
        """Scheduled rules, escalation, silences ending; then the outbox sweep."""
        if self.engine is None or self.dispatcher is None:
            return
        await self.engine.run_scheduled(now, force=force)
        await self.dispatcher.sweep(self.settings.tick_s)

    # ------------------------------------------------------------------ operations

    async def ack(self, event_id: int, by: str | None, note: str | None = None) -> bool:
        assert self.engine is not None
        return await self.engine.ack(event_id, by, note)

    async def wait_delivered(self, within: float = 10.0) -> None:
        assert self.dispatcher is not None
        await self.dispatcher.wait_idle(within)

    async def send_test(self, channels: list[str] | None = None) -> list[tuple[str, bool, str]]:
        """One test message per channel, sent now; (channel, ok, status or error)."""
        assert self.dispatcher is not None
        names = channels or sorted(self.config.channels)
        unknown = [c for c in names if c not in self.config.channels]
        if unknown:
            raise ConfigError(
                f"unknown channel(s) {unknown}; defined: {sorted(self.config.channels)}"
            )
        out = []
        now = self.clock()
        for name in names:
            payload = test_message(name, now).as_payload()
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "INSERT INTO alert_notification (kind, channel, payload, claimed_until)"
                    " VALUES ('test', %s, %s, now() + interval '2 minutes') RETURNING id",
                    (name, Jsonb(payload)),
                )
                row = await cur.fetchone()
            assert row is not None
            ok, status = await self.dispatcher.deliver(
                Notice(int(row[0]), name, "test", payload), retry=False
            )
            out.append((name, ok, status))
        return out


# ------------------------------------------------------------------ silences, maintenance


async def add_silence(
    pool: Pool,
    catalog: Catalog,
    *,
    ends_at: datetime,
    rule: str | None = None,
    station_id: str | None = None,
    city: str | None = None,
    starts_at: datetime | None = None,
    created_by: str | None = None,
    comment: str | None = None,
) -> int:
    if rule is None and station_id is None and city is None:
        raise ConfigError("a silence needs a rule, a station or a city (not everything at once)")
    if station_id is not None and station_id not in catalog.by_id:
        raise ConfigError(f"unknown station '{station_id}'")
    async with pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO alert_silence (rule, station_id, city, starts_at, ends_at, created_by,"
            " comment) VALUES (%s, %s, %s, coalesce(%s, now()), %s, %s, %s) RETURNING id",
            (rule, station_id, city, starts_at, ends_at, created_by, comment),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def expire_silence(pool: Pool, silence_id: int, at: datetime | None = None) -> bool:
    """End a silence now (``at``: the service clock's now)."""
    at = at or timeutil.now()
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE alert_silence SET ends_at = greatest(starts_at + interval '1 microsecond', %s)"
            " WHERE id = %s AND ends_at > %s RETURNING id",
            (at, silence_id, at),
        )
        return await cur.fetchone() is not None


async def add_maintenance(
    pool: Pool,
    catalog: Catalog,
    *,
    starts_at: datetime,
    ends_at: datetime,
    station_id: str | None = None,
    city: str | None = None,
    note: str | None = None,
    created_by: str | None = None,
) -> int:
    if station_id is not None and station_id not in catalog.by_id:
        raise ConfigError(f"unknown station '{station_id}'")
    if ends_at <= starts_at:
        raise ConfigError("a maintenance window must end after it starts")
    async with pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO alert_maintenance (station_id, city, starts_at, ends_at, note, created_by)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (station_id, city, starts_at, ends_at, note, created_by),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


# ------------------------------------------------------------------ status


async def alert_status(pool: Pool) -> dict[str, Any]:
    """Open episodes, the outbox, dead letters, silences (for ``envmon status``)."""
    out: dict[str, Any] = {}
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT severity, state, count(*) FROM alert_event WHERE resolved_at IS NULL"
                " GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ).fetchall()
        out["open"] = [{"severity": s, "state": st, "count": n} for s, st, n in rows]
        row = await (
            await conn.execute(
                "SELECT count(*) FILTER (WHERE state = 'pending'),"
                " count(*) FILTER (WHERE state = 'sent' AND sent_at > now() - interval '1 day'),"
                " count(*) FILTER (WHERE state = 'dead') FROM alert_notification"
            )
        ).fetchone()
        pending, sent, dead = row or (0, 0, 0)
        out["notifications"] = {"pending": pending, "sent_24h": sent, "dead": dead}
        rows = await (
            await conn.execute(
                "SELECT d.notification_id, d.channel, d.kind, d.attempts, d.last_error,"
                " d.created_at, d.payload->>'title' FROM alert_dead_letter d"
                " WHERE d.requeued_at IS NULL ORDER BY d.created_at DESC LIMIT 20"
            )
        ).fetchall()
        out["dead_letters"] = [
            {
                "notification_id": r[0],
                "channel": r[1],
                "kind": r[2],
                "attempts": r[3],
                "error": r[4],
                "at": r[5].isoformat(),
                "title": r[6],
            }
            for r in rows
        ]
        row = await (
            await conn.execute(
                "SELECT count(*) FROM alert_silence WHERE starts_at <= now() AND ends_at > now()"
            )
        ).fetchone()
        out["active_silences"] = row[0] if row else 0
        rows = await (
            await conn.execute(
                "SELECT channel, count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok)"
                " FROM alert_delivery WHERE at > now() - interval '1 day' GROUP BY 1 ORDER BY 1"
            )
        ).fetchall()
        out["deliveries_24h"] = {c: {"ok": a, "failed": b} for c, a, b in rows}
        row = await (
            await conn.execute("SELECT instance, judged_until FROM alert_owner")
        ).fetchone()
        if row is not None:
            out["owner"] = {"instance": row[0], "judged_until": row[1].isoformat()}
    return out
