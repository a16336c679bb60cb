"""Episodes end to end: app.sink.store → engine → outbox → a real webhook receiver.

One message when an episode fires, none while it goes on, one when it is over —
across a restart of the service in the middle of the episode.
"""

from __future__ import annotations

from datetime import timedelta

from envmon.alerts.channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from envmon.alerts.rules import AlertConfig
from envmon.app import App
from envmon.settings import AlertSettings

from .conftest import (
    AIR,
    AIR2,
    PM25_RULE,
    SECRET_ENV,
    Clock,
    Receiver,
    base_hour,
    config,
    feed,
    hook,
    rows,
    service,
)


def _cfg(receiver: Receiver, **rule: object) -> AlertConfig:
    return config(
        [{**PM25_RULE, **rule}],
        channels={"hook": hook(receiver)},
        routes=[{"name": "default", "channels": ["hook"]}],
    )


async def test_one_message_per_episode_across_a_restart(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = _cfg(receiver)
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0), (AIR2, "pm25", h0, 40.0)])
        await receiver.wait_for(1)
        clock.advance(hours=1)
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=1), 160.0)])  # still high
        await svc.wait_delivered()
    assert len(receiver.requests) == 1
    fired = receiver.requests[0]
    # Signed: HMAC-SHA256 over "<timestamp>.<body>" with the secret from the environment.
    assert verify(
        SECRET_ENV["TEST_HOOK_SECRET"],
        fired.headers[TIMESTAMP_HEADER],
        fired.body,
        fired.headers[SIGNATURE_HEADER],
    )
    doc = fired.json
    assert doc["kind"] == "firing" and doc["station_id"] == AIR and doc["value"] == 150.0
    assert doc["threshold"] == 115.0 and doc["city"] == "太原市"
    assert "尖草坪" in doc["title"] and "PM2.5" in doc["text"]
    assert "150 µg/m³" in doc["text"] and "115 µg/m³" in doc["text"]
    assert "北京时间" in doc["text"] and h0.strftime("%Y-%m-%d %H:%M") in doc["text"]
    assert doc["url"].startswith("http://grafana.test/d/envmon-air-station?var-station=" + AIR)
    fields = {f["name"]: f["value"] for f in doc["fields"]}
    assert fields["类别"].startswith("中度污染")  # IAQI of 150 µg/m³ PM2.5 (151–200)

    # A new service on the same database: the open episode is picked up, not repeated.
    clock.advance(hours=1)
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=2), 170.0)])
        await svc.wait_delivered()
        assert len(receiver.requests) == 1
        clock.advance(hours=1)
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=3), 80.0)])
        await receiver.wait_for(2)
        await svc.wait_delivered()
    resolved = receiver.requests[1].json
    assert resolved["kind"] == "resolved" and resolved["station_id"] == AIR
    assert resolved["last_value"] == 80.0 and resolved["value"] == 150.0
    assert "恢复" in resolved["title"] and "持续3小时" in resolved["text"]
    events = await rows(app, "SELECT rule, subject, state, value, last_value FROM alert_event")
    assert events == [("pm25-high", AIR, "resolved", 150.0, 80.0)]
    notes = await rows(
        app, "SELECT kind, channel, state, attempts FROM alert_notification ORDER BY id"
    )
    assert notes == [("firing", "hook", "sent", 1), ("resolved", "hook", "sent", 1)]
    log = await rows(app, "SELECT ok, attempt, status FROM alert_delivery ORDER BY id")
    assert log == [(True, 1, "HTTP 200"), (True, 1, "HTTP 200")]


async def test_undelivered_notice_survives_a_restart(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = _cfg(receiver)
    receiver.default = (503, {"error": "maintenance"})
    slow_retry = {"backoff_initial_s": 60, "backoff_max_s": 60, "max_attempts": 5}
    async with service(app, cfg, clock, **slow_retry):
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await receiver.wait_for(1)
    # Stopped while the retry waited: the notice is still pending in the outbox.
    (pending,) = await rows(app, "SELECT state, attempts, claimed_until FROM alert_notification")
    assert pending[0] == "pending" and pending[1] == 1 and pending[2] is None
    receiver.default = (200, {"ok": True})
    async with service(app, cfg, clock) as svc:
        await receiver.wait_for(2)
        await svc.wait_delivered()
    assert [r.json["kind"] for r in receiver.requests] == ["firing", "firing"]
    assert receiver.requests[0].json["id"] == receiver.requests[1].json["id"]  # same notice
    (state,) = await rows(app, "SELECT state, attempts FROM alert_notification")
    assert state == ("sent", 2)


async def test_for_duration_and_hysteresis(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    # Three hourly values above 115 (for: 2h); the alert ends only below 100.
    cfg = _cfg(receiver, **{"for": "2h"})
    async with service(app, cfg, clock) as svc:
        for i, v in enumerate([150.0, 150.0]):
            await feed(app, [(AIR, "pm25", h0 + timedelta(hours=i), v)])
        await svc.wait_delivered()
        assert receiver.requests == []
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=2), 120.0)])
        await receiver.wait_for(1)
        assert receiver.requests[0].json["first_ts"].startswith(h0.isoformat()[:16])
        # 110 and 101: under the threshold, above the clear level — still on.
        for i, v in ((3, 110.0), (4, 101.0)):
            await feed(app, [(AIR, "pm25", h0 + timedelta(hours=i), v)])
        await svc.wait_delivered()
        assert len(receiver.requests) == 1
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=5), 99.0)])
        await receiver.wait_for(2)
    assert receiver.requests[1].json["kind"] == "resolved"
    # A run interrupted below the threshold starts counting again.
    (n,) = await rows(app, "SELECT count(*) FROM alert_event")
    assert n == (1,)


async def test_old_readings_are_history(app: App, receiver: Receiver) -> None:
    h0 = base_hour(30)
    clock = Clock(h0 + timedelta(hours=29))
    async with service(app, _cfg(receiver), clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 400.0)])  # a day old: an import, not an alert
        await svc.wait_delivered()
    assert receiver.requests == []
    assert await rows(app, "SELECT count(*) FROM alert_event") == [(0,)]


async def test_flapping_is_damped(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = config(
        [{**PM25_RULE, "clear": None}],
        channels={"hook": hook(receiver)},
        routes=[{"name": "default", "channels": ["hook"]}],
        defaults={"flapping": {"window": "2h", "max_episodes": 3}},
    )
    values = [130.0, 90.0, 130.0, 90.0, 130.0, 90.0, 130.0, 90.0, 130.0]
    async with service(app, cfg, clock) as svc:
        for i, v in enumerate(values):
            clock.advance(minutes=5)
            await feed(app, [(AIR, "pm25", h0 + timedelta(hours=i), v)])
            await svc.wait_delivered()
        kinds = [(r.json["kind"], r.json["flapping"]) for r in receiver.requests]
        # Two ordinary episodes, then the third is flapping: one message, held open
        # through the next swings.
        assert kinds == [
            ("firing", False),
            ("resolved", False),
            ("firing", False),
            ("resolved", False),
            ("firing", True),
        ]
        assert "频繁波动" in receiver.requests[-1].json["title"]
        # Quiet (below the line) for a whole flapping window: now it is over.
        clock.advance(minutes=5)
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=9), 80.0)])
        clock.advance(hours=1)
        await svc.run_scheduled()
        assert len(receiver.requests) == 5
        clock.advance(hours=1, minutes=1)
        await svc.run_scheduled()
        await receiver.wait_for(6)
    assert receiver.requests[-1].json["kind"] == "resolved"
    assert await rows(
        app, "SELECT count(*), count(*) FILTER (WHERE flapping) FROM alert_event"
    ) == [(3, 1)]


async def test_two_engines_on_one_database_announce_once(app: App, receiver: Receiver) -> None:
    """Two services see the same batch (two workers, or a restart racing its predecessor):
    the open-episode key in the database lets only one of them announce it."""
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = _cfg(receiver)
    async with service(app, cfg, clock) as one, service(app, cfg, clock) as two:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await receiver.wait_for(1)
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=1), 50.0)])
        await receiver.wait_for(2)
        await one.wait_delivered()
        await two.wait_delivered()
    assert [r.json["kind"] for r in receiver.requests] == ["firing", "resolved"]
    assert await rows(app, "SELECT count(*), count(resolved_at) FROM alert_event") == [(1, 1)]


async def test_episode_begun_and_ended_in_one_batch(app: App, receiver: Receiver) -> None:
    """A backlog (a logger's gap recovery) can carry a whole episode in one batch."""
    h0 = base_hour()
    clock = Clock(h0 + timedelta(hours=2, minutes=5))
    async with service(app, _cfg(receiver), clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0), (AIR, "pm25", h0 + timedelta(hours=1), 50.0)])
        await receiver.wait_for(2)
        await svc.wait_delivered()
    assert [r.json["kind"] for r in receiver.requests] == ["firing", "resolved"]
    assert await rows(app, "SELECT state, value, last_value FROM alert_event") == [
        ("resolved", 150.0, 50.0)
    ]


async def test_no_link_without_a_grafana_url(app: App, receiver: Receiver) -> None:
    """Unset grafana_url (the default): no link to a localhost:3000 where nothing runs."""
    assert AlertSettings().grafana_url == ""
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    async with service(app, _cfg(receiver), clock, grafana_url="") as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await receiver.wait_for(1)
        await svc.wait_delivered()
    doc = receiver.requests[0].json
    assert doc["url"] is None and "localhost" not in receiver.requests[0].body.decode()
