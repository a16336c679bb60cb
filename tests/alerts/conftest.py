"""Alert tests: the real app on a fresh database, real HTTP receivers, a settable clock.

* ``app`` — ``open_app`` over the shipped catalog (loaded into the database);
  readings go in through the real validator and ``app.store``, so the alert
  engine sees exactly what it sees in production.
* ``receiver`` — an aiohttp server on 127.0.0.1:0 that records every request and
  answers what the test tells it to (``receiver.answers``).
* ``Clock`` — the service clock: starts at a whole hour in the recent past (the
  validator refuses future readings) and is moved by hand.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import web
from psycopg import sql

from envmon.alerts.rules import AlertConfig, parse_config
from envmon.alerts.service import AlertService
from envmon.alerts.settings import AlertSettings
from envmon.app import App, open_app
from envmon.catalog import load_catalog
from envmon.db.catalog_sync import sync_catalog
from envmon.schemas.readings import RawReading
from envmon.settings import Settings
from envmon.timeutil import BEIJING

REPO = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(REPO / "config" / "stations.yaml")
AIR = "air-taiyuan-jiancaoping"  # 尖草坪, 太原市
AIR2 = "air-taiyuan-nanzhai"
AIR_XZ = "air-xinzhou-kaifaqu"
WATER = "water-hutuo-bifengcun"  # target class III
WEATHER = "wx-53677"
_counter = itertools.count(1)
SECRET_ENV = {"TEST_HOOK_SECRET": "s3cret-hook", "TEST_WECOM_KEY": "wk-123"}


class Clock:
    """The service clock, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, at: datetime) -> datetime:
        self.now = at
        return at

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


def base_hour(hours_back: int = 12) -> datetime:
    """A whole Beijing hour ``hours_back`` before now: room for a run of hourly readings."""
    now = datetime.now(BEIJING).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours_back)


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records requests; answers with ``answers`` in turn (then ``default``)."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    answers: list[tuple[int, Any]] = field(default_factory=list)
    answers_for: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)  # by path
    default: tuple[int, Any] = (200, {"errcode": 0, "errmsg": "ok"})
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            Request(
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.read(),
            )
        )
        self._changed.set()
        queue = self.answers_for.get(request.path) or self.answers
        status, body = queue.pop(0) if queue else self.default
        return web.json_response(body, status=status)

    def on(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, n: int, path: str | None = None, within: float = 10.0) -> None:
        """Until ``n`` requests (to ``path``) have arrived."""
        async with asyncio.timeout(within):
            while len(self.on(path) if path else self.requests) < n:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    web_app = web.Application()
    web_app.router.add_route("POST", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


@pytest.fixture(scope="session")
def alerts_template(admin_dsn: str, template_db: str) -> str:
    """The migrated template plus the shipped catalog's stations, made once."""
    name = f"envmon_alerts_template_{os.getpid()}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )

    async def load() -> None:
        url = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await sync_catalog(conn, CATALOG)
            await conn.commit()

    asyncio.run(load())
    # No session may stay on a template (TimescaleDB's scheduler would): close it.
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.05)
    return name


@pytest.fixture
def db_url(admin_dsn: str, alerts_template: str) -> Iterator[str]:
    """A fresh database with the stations loaded (overrides the suite's ``db_url``)."""
    name = f"envmon_alerts_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(alerts_template)
            )
        )
    yield psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
async def app(db_url: str, tmp_path: Path) -> AsyncIterator[App]:
    settings = Settings(
        data_dir=tmp_path, config_dir=REPO / "config", pool_min_size=0, pool_max_size=4
    )
    async with open_app(settings, url=db_url) as a:
        yield a


async def feed(
    app: App,
    rows: Sequence[tuple[str, str, datetime, float] | tuple[str, str, datetime, float, str]],
    *,
    period: str = "1h",
    source: str = "test",
) -> None:
    """Readings through the real validator and ``app.store`` (which calls the listeners)."""
    raws = [RawReading(r[0], r[1], r[2], r[3], r[4] if len(r) > 4 else "N", period) for r in rows]
    await app.store(app.validator.validate(raws, source))


def config(
    rules: list[dict[str, Any]],
    *,
    channels: dict[str, Any] | None = None,
    routes: list[dict[str, Any]] | None = None,
    defaults: dict[str, Any] | None = None,
    maintenance: list[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
) -> AlertConfig:
    data: dict[str, Any] = {"rules": rules}
    if channels is not None:
        data["channels"] = channels
    if routes is not None:
        data["routes"] = routes
    if defaults is not None:
        data["defaults"] = defaults
    if maintenance is not None:
        data["maintenance"] = maintenance
    return parse_config(data, CATALOG, env={**SECRET_ENV, **(env or {})})


def hook(receiver: Receiver, path: str = "/hook", **extra: Any) -> dict[str, Any]:
    return {
        "type": "webhook",
        "url": receiver.url + path,
        "secret_env": "TEST_HOOK_SECRET",
        **extra,
    }


PM25_RULE: dict[str, Any] = {
    "id": "pm25-high",
    "name": "PM2.5 小时浓度超过 115 µg/m³",
    "kind": "threshold",
    "parameter": "pm25",
    "op": ">",
    "threshold": 115,
    "clear": 100,
    "severity": "warning",
    "stations": {"kind": "air"},
}


def quick(**over: Any) -> AlertSettings:
    """Settings for tests: no periodic task (the test calls run_scheduled), fast retries."""
    base: dict[str, Any] = {
        "tick_s": 0,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "max_attempts": 3,
        "grafana_url": "http://grafana.test",
        "http_timeout_s": 5,
    }
    return AlertSettings(**{**base, **over})


@asynccontextmanager
async def service(
    app: App, cfg: AlertConfig, clock: Clock, **settings: Any
) -> AsyncIterator[AlertService]:
    async with AlertService(app, quick(**settings), config=cfg, clock=clock) as svc:
        yield svc


async def rows(app: App, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with app.pool.connection() as conn:
        cur = await conn.execute(query, params or None)
        return await cur.fetchall()
