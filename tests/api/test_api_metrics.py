"""``/metrics``: Prometheus text with ingest counters, lag per source, rejects and the API's own."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from envmon.api.app import ApiServer
from envmon.schemas.readings import RawReading, Validator
from envmon.timeutil import now

from .conftest import AIR, Api, api_settings

SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})?"
    r" (?P<value>[-+0-9.eE]+|NaN|\+Inf|-Inf)$"
)


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    families: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in families, f"{name} declared twice"
            families.add(name)
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not an exposition line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m["labels"] or ""))
        out[m["name"], labels] = float(m["value"])
    return out


async def test_metrics(fresh_api: Api) -> None:
    app = fresh_api.app
    t0 = now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    validator = Validator({s.id: s.kind for s in app.catalog.stations})
    raws = [RawReading(AIR[0], "pm25", t0 + timedelta(hours=h), 30.0 + h) for h in range(3)]
    raws += [RawReading(AIR[0], "no2", t0, "bad", raw="no2=bad")]
    await app.sink.store(validator.validate(raws, "hj212"))
    async with app.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO ingest_cursor (source, station_id, last_ts, last_success_at,"
            " last_error_at, last_error) VALUES ('cnemc', %s, %s, %s, %s, 'timeout')",
            (AIR[1], t0, t0 + timedelta(minutes=5), t0 + timedelta(minutes=30)),
        )
        # The alert engine's tables (migration 0004): one open episode, two attempts.
        await conn.execute(
            "INSERT INTO alert_event (rule, subject, severity, state, route, started_at, message)"
            " VALUES ('offline', 'source:cnemc', 'critical', 'firing', 'default', now(), 'x')"
        )
        row = await (
            await conn.execute(
                "INSERT INTO alert_notification (kind, channel, payload, state)"
                " VALUES ('test', 'webhook', '{}', 'sent') RETURNING id"
            )
        ).fetchone()
        assert row is not None
        await conn.execute(
            "INSERT INTO alert_delivery (notification_id, channel, attempt, ok)"
            " VALUES (%s, 'webhook', 1, false), (%s, 'webhook', 2, true)",
            (row[0], row[0]),
        )
    await fresh_api.get("/api/v1/stations")
    status, body, resp = await fresh_api.get("/api/v1/metrics")
    assert status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    m = parse(body.decode())  # type: ignore[union-attr]
    assert m["envmon_ingest_readings_total", frozenset({("source", "hj212")})] == 3
    assert m["envmon_ingest_batches_total", frozenset({("source", "hj212")})] == 1
    lag = m["envmon_ingest_lag_seconds", frozenset({("source", "cnemc"), ("station", AIR[1])})]
    assert 3 * 3600 - 60 < lag < 4 * 3600 + 600  # t0 is 3–4 hours ago
    assert m["envmon_ingest_failing", frozenset({("source", "cnemc"), ("station", AIR[1])})] == 1
    assert m["envmon_rejected_readings", frozenset({("source", "hj212"), ("window", "1h")})] == 1
    assert m["envmon_derive_queue_station_days", frozenset()] >= 1
    assert m["envmon_database_up", frozenset()] == 1
    webhook = {("channel", "webhook")}
    assert m["envmon_alert_deliveries_total", frozenset({*webhook, ("result", "ok")})] == 1
    assert m["envmon_alert_deliveries_total", frozenset({*webhook, ("result", "failed")})] == 1
    assert m["envmon_alert_notifications", frozenset({("state", "sent")})] == 1
    crit = frozenset({("severity", "critical"), ("state", "firing")})
    assert m["envmon_alerts_open", crit] == 1
    ok = frozenset({("route", "/api/v1/stations"), ("method", "GET"), ("status", "200")})
    assert m["envmon_api_requests_total", ok] == 1
    assert (
        m["envmon_api_request_duration_seconds_count", frozenset({("route", "/api/v1/stations")})]
        == 1
    )
    assert fresh_api.server.metrics.on_batch in app.sink.listeners


async def test_metrics_listener_removed_on_exit(fresh_api: Api, tmp_path: Path) -> None:
    n = len(fresh_api.app.sink.listeners)
    async with ApiServer(
        fresh_api.app.pool, fresh_api.app.catalog, api_settings(tmp_path), sink=fresh_api.app.sink
    ) as server:
        assert len(fresh_api.app.sink.listeners) == n + 1 and server.port > 0
    assert len(fresh_api.app.sink.listeners) == n
