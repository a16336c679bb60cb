"""Delivery: retries with back-off, the delivery log, dead letters (visible in the
status), sending them again, per-channel rate limits, test messages."""

from __future__ import annotations

from datetime import timedelta

from envmon.alerts.delivery import RateLimiter, requeue_dead
from envmon.alerts.rules import AlertConfig
from envmon.alerts.service import alert_status
from envmon.app import App

from .conftest import (
    AIR,
    AIR2,
    PM25_RULE,
    Clock,
    Receiver,
    base_hour,
    config,
    feed,
    hook,
    rows,
    service,
)


def _cfg(receiver: Receiver) -> AlertConfig:
    return config(
        [PM25_RULE],
        channels={"hook": hook(receiver), "good": hook(receiver, "/good")},
        routes=[{"name": "default", "channels": ["hook", "good"]}],
    )


async def test_failing_channel_retries_then_dead_letter(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    receiver.answers_for["/hook"] = [(500, {"error": "boom"})] * 3  # its three attempts
    async with service(app, _cfg(receiver), clock, max_attempts=3) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await receiver.wait_for(3, "/hook")
        await svc.wait_delivered()
    assert len(receiver.on("/good")) == 1  # one bad channel does not hold up the others
    log = await rows(
        app,
        "SELECT d.channel, d.attempt, d.ok, d.error FROM alert_delivery d"
        " WHERE channel = 'hook' ORDER BY d.id",
    )
    assert log == [("hook", i, False, 'HTTP 500: {"error": "boom"}') for i in (1, 2, 3)]
    status = await alert_status(app.pool)
    assert status["notifications"]["dead"] == 1
    (dead,) = status["dead_letters"]
    assert dead["channel"] == "hook" and dead["attempts"] == 3 and dead["kind"] == "firing"
    assert dead["title"].startswith("【告警·警告】") and "HTTP 500" in dead["error"]

    # The channel is fixed; the dead letter is sent again by the next service pass.
    assert await requeue_dead(app.pool) == 1
    async with service(app, _cfg(receiver), clock) as svc:
        await svc.run_scheduled()
        await receiver.wait_for(4, "/hook")
        await svc.wait_delivered()
    assert receiver.on("/hook")[-1].json["kind"] == "firing"
    status = await alert_status(app.pool)
    assert status["notifications"] == {"pending": 0, "sent_24h": 2, "dead": 0}
    assert status["dead_letters"] == []


async def test_client_error_is_not_retried(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    receiver.answers = [(404, {"error": "no such hook"})]
    cfg = config(
        [PM25_RULE], channels={"hook": hook(receiver)}, routes=[{"name": "d", "channels": ["hook"]}]
    )
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await svc.wait_delivered()
    assert len(receiver.requests) == 1
    assert await rows(app, "SELECT attempts, state FROM alert_notification") == [(1, "dead")]


async def test_unreachable_channel(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    closed = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}  # discard port: refused
    cfg = config(
        [PM25_RULE], channels={"hook": closed}, routes=[{"name": "d", "channels": ["hook"]}]
    )
    async with service(app, cfg, clock, max_attempts=2) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await svc.wait_delivered()
    ((attempts, error),) = await rows(app, "SELECT attempts, last_error FROM alert_dead_letter")
    assert attempts == 2 and "ClientConnectorError" in error


async def test_rate_limited_robot_waits_instead_of_failing(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    robot = {"type": "wecom", "url": receiver.url + "/robot", "key_env": "TEST_WECOM_KEY",
             "per_minute": 120}  # fmt: skip
    cfg = config(
        [PM25_RULE], channels={"robot": robot}, routes=[{"name": "d", "channels": ["robot"]}]
    )
    async with service(app, cfg, clock) as svc:
        assert svc.dispatcher is not None
        limiter = svc.dispatcher.limiters["robot"]
        limiter.tokens = 1  # one message left in this minute's budget
        await feed(app, [(AIR, "pm25", h0, 150.0), (AIR2, "pm25", h0, 150.0)])
        await receiver.wait_for(2)
        await svc.wait_delivered()
    # Both sent, the second after waiting for a token (2 a second at 120 a minute).
    assert await rows(app, "SELECT count(*) FROM alert_delivery WHERE ok") == [(2,)]
    assert limiter.tokens < 1


async def test_rate_limiter_budget() -> None:
    limiter = RateLimiter(20)
    for _ in range(20):
        await limiter.acquire()  # a burst of the whole minute's budget goes at once
    assert limiter.tokens < 1


async def test_send_test_message(app: App, receiver: Receiver) -> None:
    cfg = config(
        [PM25_RULE],
        channels={
            "hook": hook(receiver),
            "broken": {"type": "webhook", "url": receiver.url + "/x"},
        },
        routes=[{"name": "d", "channels": ["hook"]}],
    )
    receiver.answers = [(200, {}), (502, {"error": "bad gateway"})]
    async with service(app, cfg, Clock(base_hour())) as svc:
        results = await svc.send_test(["hook", "broken"])
    assert results == [
        ("hook", True, "HTTP 200"),
        ("broken", False, 'HTTP 502: {"error": "bad gateway"}'),
    ]
    assert receiver.requests[0].json["kind"] == "test"
    assert "测试" in receiver.requests[0].json["title"]
    # A failed test is not retried and is no dead letter.
    assert await rows(app, "SELECT state FROM alert_notification ORDER BY id") == [
        ("sent",),
        ("dead",),
    ]
    assert await rows(app, "SELECT count(*) FROM alert_dead_letter") == [(0,)]
