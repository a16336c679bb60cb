"""Two full ``envmon run`` processes over one database (issue 16, docs/scaling.md).

Both run everything a deployment behind a load balancer runs — the HJ 212
receiver, the HTTP pollers of one sources file, the alert service — against
one throwaway PostgreSQL. A real aiohttp platform on 127.0.0.1 is polled; real
HJ 212 loggers (:class:`~envmon.ingest.hj212.device.Hj212Device`) upload to
one instance, then reconnect to the other and send again; a webhook receiver
counts the alerts. Then the alert owner is killed with SIGKILL. Proven:

* every reading is stored once (frames resent through the other instance
  change nothing: no second row, no revision);
* the source is polled once per interval, not once per instance, and still
  polled after the kill;
* an exceedance sent through both instances is announced once;
* after the kill the other instance owns the alerts: a new exceedance is
  announced once, the episode open before the kill is not announced again;
* all this with one instance's receiver in three processes (``--workers 3``):
  a logger served by one of its workers is judged through the forwarding, and
  a kill of that instance stops its workers too.

No timing is asserted: every wait polls with a generous deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from aiohttp import web

from envmon.catalog import load_catalog
from envmon.ingest.hj212.device import Hj212Device
from envmon.ingest.hj212.workers import home_of
from envmon.timeutil import BEIJING

REPO = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(REPO / "config" / "stations.yaml")
INTERVAL_S = 4.0  # the polled source's interval
PM25, PM10, NO2 = "a34004", "a34002", "a21004"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _loggers() -> list[Any]:
    """Air stations with an MN and the default HJ 212 profile (config/hj212.yaml)."""
    profiled = yaml.safe_load((REPO / "config" / "hj212.yaml").read_text())["stations"]
    return [s for s in CATALOG.stations if s.kind == "air" and s.mn and s.id not in profiled][:4]


@dataclass
class Platform:
    """A JSON platform (generic_json, wide) that records when it was asked."""

    stations: list[str]
    url: str = ""
    asked: list[float] = field(default_factory=list)
    served: set[tuple[str, datetime]] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        self.asked.append(time.monotonic())
        fmt = "%Y-%m-%d %H:%M:%S"
        start = datetime.strptime(request.query["from"], fmt).replace(tzinfo=BEIJING)
        end = datetime.strptime(request.query["to"], fmt).replace(tzinfo=BEIJING)
        now = datetime.now(BEIJING)
        hour = start.replace(minute=0, second=0, microsecond=0)
        records = []
        while hour <= end:
            closes = hour + timedelta(hours=1)
            if hour >= start and closes <= now:
                for sid in self.stations:
                    self.served.add((sid, hour))
                    records.append(
                        {
                            "siteCode": sid,
                            "monitorTime": closes.strftime(fmt),
                            "pm25": 20 + hour.hour,  # the same answer to every instance
                            "pm10": 50 + hour.hour,
                        }
                    )
            hour = closes
        return web.json_response({"data": {"list": records}})


@dataclass
class Hooks:
    """The on-call webhook: every alert notice it received."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.json_response({"ok": True})

    def firing(self) -> list[str]:
        return [n["subject"] for n in self.received if n["kind"] == "firing"]


async def _serve(handler: Callable[[web.Request], Any], method: str) -> AsyncGenerator[str]:
    app = web.Application()
    app.router.add_route(method, "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _write_config(tmp: Path, platform: Platform, hooks: Hooks) -> dict[str, str]:
    sources = {
        "sources": [
            {
                "name": "t-county-air",
                "kind": "generic_json",
                "base_url": platform.url,
                "interval": f"{INTERVAL_S:g}s",
                "initial_lookback": "3h",
                "overlap": "1h",
                "chunk": "1d",
                "retries": 1,
                "match": ["id"],
                "options": {
                    "path": "/api/air/hourly",
                    "params": {"from": "{start}", "to": "{end}"},
                    "request_time_format": "%Y-%m-%d %H:%M:%S",
                    "records": "data.list",
                    "layout": "wide",
                    "station": "siteCode",
                    "time": "monitorTime",
                    "time_label": "end",
                    "columns": {"pm25": "pm25", "pm10": "pm10"},
                    "kinds": ["air"],
                },
            }
        ]
    }
    alerts = {
        "channels": {"duty": {"type": "webhook", "url": hooks.url + "/hook"}},
        "routes": [{"name": "default", "channels": ["duty"]}],
        "rules": [
            {
                "id": "pm25-high",
                "name": "PM2.5 小时浓度超过 115 µg/m³",
                "kind": "threshold",
                "parameter": "pm25",
                "op": ">",
                "threshold": 115,
                "clear": 100,
                "for": "1h",  # two hourly values over the line
                "severity": "warning",
                "stations": {"kind": "air"},
            }
        ],
    }
    (tmp / "sources.yaml").write_text(yaml.safe_dump(sources, allow_unicode=True))
    (tmp / "alerts.yaml").write_text(yaml.safe_dump(alerts, allow_unicode=True))
    passwords = {s.mn: f"{i:06d}" for i, s in enumerate(_loggers(), start=200000)}
    return {
        "ENVMON_CONFIG_DIR": str(REPO / "config"),
        "ENVMON_SIMULATOR__ENABLED": "false",
        "ENVMON_API__ENABLED": "false",
        "ENVMON_COLLECT__ENABLED": "true",
        "ENVMON_COLLECT__SOURCES_FILE": str(tmp / "sources.yaml"),
        "ENVMON_ALERTS__ENABLED": "true",
        "ENVMON_ALERTS__RULES_FILE": str(tmp / "alerts.yaml"),
        "ENVMON_ALERTS__TICK_S": "1",
        "ENVMON_ALERTS__CLAIM_S": "0.5",
        "ENVMON_HJ212__ENABLED": "true",
        "ENVMON_HJ212__HOST": "127.0.0.1",
        "ENVMON_HJ212__GAP_RECOVERY": "false",
        "ENVMON_HJ212__PASSWORDS": json.dumps(passwords),
    }


@dataclass
class Instance:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


def _start(name: str, db_url: str, tmp: Path, env: dict[str, str]) -> Instance:
    port = _free_port()
    log = tmp / f"{name}.log"
    full = {
        **os.environ,
        **env,
        "ENVMON_DATABASE_URL": db_url,
        "ENVMON_DATA_DIR": str(tmp / f"var-{name}"),
        "ENVMON_HJ212__PORT": str(port),
        "ENVMON_LOG_LEVEL": "INFO",
    }
    cli = Path(sys.executable).with_name("envmon")
    with log.open("ab") as out:
        proc = subprocess.Popen([str(cli), "run"], env=full, stdout=out, stderr=out)
    return Instance(name, port, proc, log)


async def _until(check: Callable[[], Any], what: str, within: float = 60.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something true."""
    deadline = time.monotonic() + within
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _listening(inst: Instance) -> bool:
    assert inst.proc.poll() is None, f"{inst.name} ended:\n{inst.log.read_text()[-3000:]}"
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", inst.port)
    except OSError:
        return False
    writer.close()
    return True


async def _one(db_url: str, query: str, *params: Any) -> Any:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        row = await (await conn.execute(query, params or None)).fetchone()
        return None if row is None else row[0]


async def _send(
    port: int, station: Any, password: str, frames: list[tuple[datetime, float]]
) -> None:
    """Hourly uploads from one logger over one connection, each acknowledged (9014)."""
    dev = Hj212Device("127.0.0.1", port, station.mn, password, timeout=10.0, retries=2)
    await dev.connect()
    try:
        for hour, pm25 in frames:
            reply = await dev.send_hourly(hour, _values(hour, pm25))
            assert reply.cn == "9014", reply
    finally:
        await dev.close()


def _values(hour: datetime, pm25: float) -> dict[str, tuple[float, str]]:
    return {PM25: (pm25, "N"), PM10: (60.0 + hour.hour, "N"), NO2: (20.0 + hour.hour, "N")}


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_two_run_processes_store_poll_and_alert_once_and_survive_a_kill(
    db_url: str, tmp_path: Path
) -> None:
    loggers = _loggers()
    polled = [s.id for s in CATALOG.stations if s.kind == "air" and s.active and s not in loggers][
        :2
    ]
    platform = Platform(polled)
    hooks = Hooks()
    plat_serve = _serve(platform.handle, "GET")
    hook_serve = _serve(hooks.handle, "POST")
    platform.url = await anext(plat_serve)
    hooks.url = await anext(hook_serve)
    env = _write_config(tmp_path, platform, hooks)
    passwords: dict[str, str] = json.loads(env["ENVMON_HJ212__PASSWORDS"])
    # A serves HJ 212 in three processes (envmon run --workers 3): X's and the
    # quiet logger's home there is worker 2, which forwards their batches to the
    # alert owner like another instance.
    a = _start("a", db_url, tmp_path, {**env, "ENVMON_HJ212__WORKERS": "3"})
    b = _start("b", db_url, tmp_path, env)
    assert [home_of(s.mn or "", 3) for s in loggers] == [2, 0, 0, 2]
    started = time.monotonic()
    try:
        for inst in (a, b):
            await _until(lambda inst=inst: _listening(inst), f"{inst.name} listening", 90)
        owner_of = await _until(
            lambda: _one(db_url, "SELECT instance FROM alert_owner"), "an alert owner", 60
        )
        now = datetime.now(BEIJING).replace(minute=0, second=0, microsecond=0)
        h3, h2, h1 = now - timedelta(hours=3), now - timedelta(hours=2), now - timedelta(hours=1)
        x, y, z = loggers[:3]

        # Every logger: two hours to A, then it reconnects to B and sends the next.
        # X's exceedance is a series split between the instances — h2 stored by A,
        # h1 by B: only a judge that sees both raises it (`for: 1h`). Z's is sent
        # whole through both (its loggers lost the acknowledgements, say): raised
        # once. Y's begins at h1, through B. The quiet one resends h2 to B.
        async def upload(st: Any) -> None:
            pw = passwords[st.mn]
            if st is x:
                await _send(a.port, st, pw, [(h3, 40.0), (h2, 300.0)])
                await _send(b.port, st, pw, [(h1, 310.0)])
            elif st is z:
                await _send(a.port, st, pw, [(h3, 40.0), (h2, 300.0), (h1, 310.0)])
                await _send(b.port, st, pw, [(h2, 300.0), (h1, 310.0)])
            elif st is y:
                await _send(a.port, st, pw, [(h3, 40.0), (h2, 45.0)])
                await _send(b.port, st, pw, [(h1, 300.0)])
            else:
                await _send(a.port, st, pw, [(h3, 40.0), (h2, 45.0)])
                await _send(b.port, st, pw, [(h2, 45.0), (h1, 50.0)])

        await asyncio.gather(*(upload(st) for st in loggers))
        await _until(lambda: len(hooks.firing()) >= 2, "X's and Z's alerts", 30)
        await asyncio.sleep(3.0)  # time for a second notice, if there were one
        assert sorted(hooks.firing()) == sorted([x.id, z.id])

        # kill -9 of the alert owner ("host:pid"): the other takes over.
        pid = int(str(owner_of).rsplit(":", 1)[1])
        dead, alive = (a, b) if pid == a.proc.pid else (b, a)
        assert pid == dead.proc.pid
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(dead.proc.wait)
        # Y's second hour over the line, stored by the survivor (whether or not it
        # owns the alerts yet: its h1 is judged by the catch-up or was forwarded);
        # X is still over: its episode is open, not news.
        await _send(alive.port, y, passwords[y.mn], [(now, 260.0)])
        await _send(alive.port, x, passwords[x.mn], [(now, 280.0)])
        await _send(alive.port, z, passwords[z.mn], [(now, 290.0)])
        await _until(lambda: len(hooks.firing()) >= 3, "Y's alert", 60)
        await _until(
            lambda: _one(
                db_url,
                "SELECT instance LIKE %s FROM alert_owner",
                f"%:{alive.proc.pid}",
            ),
            "the survivor owning the alerts",
            60,
        )
        await _until(lambda: [t for t in platform.asked if t > killed_at + 1], "a poll", 60)
        await asyncio.sleep(3.0)
        assert sorted(hooks.firing()[:2]) == sorted([x.id, z.id])
        assert hooks.firing()[2:] == [y.id]
        elapsed = time.monotonic() - started
    finally:
        for inst in (a, b):
            if inst.proc.poll() is None:
                inst.proc.send_signal(signal.SIGTERM)
        for inst in (a, b):
            try:
                await asyncio.to_thread(inst.proc.wait, 30)
            except subprocess.TimeoutExpired:
                inst.proc.kill()
        await plat_serve.aclose()
        await hook_serve.aclose()

    # A's worker 2 served X and the quiet logger (its own raw-frame archive).
    archived = "".join(
        p.read_text(encoding="utf-8") for p in (tmp_path / "var-a/workers/2/archive").glob("*.log")
    )
    assert f"MN={loggers[0].mn};" in archived and f"MN={loggers[3].mn};" in archived
    assert f"MN={loggers[1].mn};" not in archived

    # Every reading once: each logger's (hour, parameter), the platform's station-hours.
    ids = [s.id for s in loggers]
    sent = 3 * (3 * len(loggers) + 3)  # three hours each, X's Y's Z's fourth; three values
    assert (
        await _one(db_url, "SELECT count(*) FROM reading WHERE station_id = ANY(%s)", ids) == sent
    )
    n = await _one(db_url, "SELECT count(*) FROM reading WHERE source = 't-county-air'")
    assert n == 2 * len(platform.served)
    revised = await _one(
        db_url,
        "SELECT json_agg(json_build_array(station_id, parameter, ts, value, flag, source,"
        " new_source, reason)) FROM reading_revision",
    )
    assert revised is None  # no resend changed anything
    # One poll per interval (the first asks 3 h back in one request): two pollers
    # would ask about twice as often.
    assert len(platform.asked) <= elapsed / INTERVAL_S + 3, (len(platform.asked), elapsed)
    # One episode each, still open, announced once.
    assert await _one(db_url, "SELECT count(*) FROM alert_event WHERE resolved_at IS NULL") == 3
    assert await _one(db_url, "SELECT count(*) FROM alert_event") == 3
    assert await _one(db_url, "SELECT count(*) FROM alert_notification WHERE kind = 'firing'") == 3
