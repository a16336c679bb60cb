"""Pull-source tests: real aiohttp platforms on 127.0.0.1:0, a real database, fake time only.

* :class:`FakePlatform` — a real ``aiohttp.web`` server answering each path
  from a script of replies (fixtures, 500s, 429s, hangs, slow or truncated
  pages) and recording every request.
* ``app`` — the service's real :class:`~envmon.app.App` (validator, sink,
  pool) over a fresh migrated database, with the shipped catalog loaded.
* :class:`FakeClock` / :class:`FakeSleep` — injected into pollers so that
  backoff and Retry-After are observed without waiting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web

from envmon.app import App, open_app
from envmon.catalog import load_catalog
from envmon.ingest.sources import REGISTRY, Http, Source
from envmon.ingest.sources_config import SourceConfig, SourcesConfig
from envmon.settings import Settings
from envmon.simulate.platforms import SimData
from envmon.timeutil import BEIJING

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CATALOG = load_catalog(REPO / "config" / "stations.yaml")
KINDS_OF = {s.id: s.kind for s in CATALOG.stations}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Reply:
    body: bytes | str | Any = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # a slow answer (seconds of real time; keep small)
    hang: bool = False  # never answer (until the platform stops)
    content_type: str = "application/json"


Script = Reply | list[Reply] | Callable[[web.Request], Reply]


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class FakePlatform:
    """A real HTTP server whose answers are scripted per path."""

    def __init__(self) -> None:
        self.routes: dict[str, Script] = {}
        self.requests: list[Seen] = []
        self.release = asyncio.Event()
        self.base_url = ""
        self.in_flight = 0
        self.peak = 0  # most requests in the handler at once

    def on(self, path: str, *replies: Reply | Callable[[web.Request], Reply]) -> None:
        """Answer ``path`` with these replies in turn (the last one sticks), or a function."""
        if len(replies) == 1 and callable(replies[0]) and not isinstance(replies[0], Reply):
            self.routes[path] = replies[0]
        else:
            self.routes[path] = [r for r in replies if isinstance(r, Reply)]

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Seen(request.path, dict(request.query), dict(request.headers)))
        script = self.routes.get(request.path)
        if script is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        if isinstance(script, list):
            reply = script.pop(0) if len(script) > 1 else script[0]
        elif isinstance(script, Reply):
            reply = script
        else:
            reply = script(request)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if reply.hang:
                await self.release.wait()
            elif reply.delay:
                await asyncio.sleep(reply.delay)
        finally:
            self.in_flight -= 1
        body = reply.body
        if not isinstance(body, bytes | str):
            body = json.dumps(body, ensure_ascii=False)
        data = body.encode() if isinstance(body, str) else body
        return web.Response(
            body=data, status=reply.status, headers=reply.headers, content_type=reply.content_type
        )


@pytest.fixture
async def platform() -> AsyncIterator[FakePlatform]:
    p = FakePlatform()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", p.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    p.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield p
    finally:
        p.release.set()
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def app(db_url: str, tmp_path: Path) -> AsyncIterator[App]:
    settings = Settings(
        data_dir=tmp_path, config_dir=REPO / "config", pool_min_size=0, pool_max_size=6
    )
    async with open_app(settings, url=db_url) as a:
        await a.load_stations()
        yield a


@pytest.fixture(scope="session")
def sim_data() -> SimData:
    """Simulated blocks shared by every simulator server in the session (built once)."""
    return SimData(CATALOG, 2025)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class FakeSleep:
    """Records the delays asked for; returns at once (a real loop turn, no real wait)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds=seconds)
        await asyncio.sleep(0)


def source_config(kind: str, base_url: str, **over: Any) -> SourceConfig:
    data: dict[str, Any] = {
        "name": f"t-{kind.replace('_', '-')}",
        "kind": kind,
        "base_url": base_url,
    }
    data.update(over)
    return SourceConfig.model_validate(data)


def make_source(
    cfg: SourceConfig, session: aiohttp.ClientSession, *, secret: str | None = None
) -> Source:
    http = Http(
        session,
        source=cfg.name,
        base_url=cfg.base_url or "",
        timeout=cfg.timeout.total_seconds(),
        concurrency=cfg.concurrency,
        rate_limit=cfg.rate_limit,
    )
    return REGISTRY[cfg.kind](cfg, CATALOG, http, secret=secret)


def config_of(*sources: SourceConfig) -> SourcesConfig:
    return SourcesConfig(sources=list(sources))


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Beijing time."""
    return datetime(year, month, day, hour, minute, tzinfo=BEIJING)


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (loop turns, no deadline: pytest's timeout is the limit) until ``condition`` holds."""
    while not condition():  # noqa: ASYNC110 - the state belongs to other tasks; no event to await
        await asyncio.sleep(0.01)


async def query(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await (await conn.execute(sql, params)).fetchall()
