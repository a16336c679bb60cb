"""Issue 19, as an operator meets it: restarts with open, acknowledged and silenced
alerts; a water section's class after a start; one alert number in the log and the
message; values with units; `alerts silence list`; planning alerts in a digest.

Each restart is a new ``AlertService`` on the same database (what Ctrl-C and
``make run`` do), fed what the data loggers send again after a start.
"""

from __future__ import annotations

import argparse
import logging
import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from envmon.alerts import cli, commands
from envmon.alerts.rules import AlertConfig
from envmon.alerts.tracker import next_digest
from envmon.app import App
from envmon.timeutil import BEIJING

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

# 陈家营 (牧马河), target class Ⅲ (the catalog placeholder: targets are not public).
# TP 0.334 mg/L is class Ⅴ
# (GB 3838-2002 Table 1, rivers: Ⅳ ≤ 0.3, Ⅴ ≤ 0.4).
CHENJIAYING = "water-muma-chenjiaying"
WATER_RULE: dict[str, Any] = {
    "id": "water-class",
    "name": "水质劣于断面目标类别",
    "kind": "threshold",
    "metric": "water_class",
    "stations": {"ids": [CHENJIAYING]},
}
# DO 7.0 (Ⅱ ≥ 6), NH3-N 0.5 (Ⅱ ≤ 0.5), CODMn 3.0 (Ⅱ ≤ 4); TP decides.
GOOD = {"do": 7.0, "nh3n": 0.5, "codmn": 3.0}

_EVENTS = (
    "SELECT id, rule, subject, state, acked_by, silenced, notified, flapping, last_value,"
    " escalated_at FROM alert_event ORDER BY id"
)


def _cfg(receiver: Receiver) -> AlertConfig:
    return config(
        [PM25_RULE, WATER_RULE],
        channels={"duty": hook(receiver, "/duty"), "leaders": hook(receiver, "/leaders")},
        routes=[
            {
                "name": "duty",
                "channels": ["duty"],
                "escalate_after": "30m",
                "escalate_to": "leaders",
            },
            {"name": "leaders", "escalation_only": True, "channels": ["leaders"]},
            {"name": "default", "channels": ["duty"]},
        ],
    )


def _water(at: Any, **values: float) -> list[tuple[str, str, Any, float]]:
    return [(CHENJIAYING, p, at, v) for p, v in values.items()]


def _digest(receiver: Receiver, match: dict[str, Any], hour: str) -> AlertConfig:
    """PM2.5 alerts to a digest route at ``hour``; nothing else configured."""
    return config(
        [PM25_RULE],
        channels={"hook": hook(receiver)},
        routes=[
            {"name": "digest", "match": match, "channels": ["hook"], "digest": hour},
            {"name": "default", "channels": ["hook"]},
        ],
    )


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="envmon")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["alerts", *argv])


async def test_restarts_send_nothing_and_keep_every_state(
    app: App, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = _cfg(receiver)
    # AIR2 is silenced for two days (by the service clock, which runs in the past here).
    await rows(
        app,
        "INSERT INTO alert_silence (station_id, starts_at, ends_at, created_by)"
        " VALUES (%s, %s, %s, '值班员') RETURNING id",
        AIR2,
        clock.now - timedelta(hours=1),
        clock.now + timedelta(days=2),
    )
    async with service(app, cfg, clock) as svc:
        await feed(
            app,
            [(AIR, "pm25", h0, 150.0), (AIR2, "pm25", h0, 160.0), *_water(h0, tp=0.334, **GOOD)],
        )
        await receiver.wait_for(2, "/duty")
        by_subject = {s: i for i, s in await rows(app, "SELECT id, subject FROM alert_event")}
        assert set(by_subject) == {AIR, AIR2, CHENJIAYING}
        assert await svc.ack(by_subject[AIR], "李四")
        assert await svc.ack(by_subject[CHENJIAYING], "李四")
        clock.advance(hours=1)
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=1), 170.0)])  # still high
        await svc.wait_delivered()
    sent = [(r.path, r.json["kind"], r.json["subject"]) for r in receiver.requests]
    assert sorted(sent) == [("/duty", "firing", AIR), ("/duty", "firing", CHENJIAYING)]
    before = await rows(app, _EVENTS)
    (notices,) = await rows(app, "SELECT count(*) FROM alert_notification")
    # The latest value was written when the service stopped.
    assert [e[8] for e in before if e[2] == AIR] == [170.0]

    for restart in range(2):  # the second restart made it "flapping"
        clock.advance(minutes=20)  # past escalate_after (30 min) of every episode
        async with service(app, cfg, clock) as svc:
            assert svc.engine is not None
            # Restored before the first evaluation.
            restored = {ep.subject: ep for ep in svc.engine.open_episodes()}
            assert {s: ep.id for s, ep in restored.items()} == by_subject
            assert restored[AIR].acked_by == "李四" and restored[AIR].last_value == 170.0
            assert restored[CHENJIAYING].acked_by == "李四"
            assert restored[AIR2].silenced and not restored[AIR2].notified
            await svc.run_scheduled()
            # What the loggers send again after a start: the last hours, the water
            # section's indicators one by one (DO first).
            await feed(app, [(AIR, "pm25", h0 + timedelta(hours=1), 170.0)])
            await feed(app, [(AIR2, "pm25", h0 + timedelta(hours=1), 165.0)])
            await feed(app, _water(h0 + timedelta(hours=1), do=7.2))
            await svc.run_scheduled()
            await svc.wait_delivered()
        assert len(receiver.requests) == 2, f"restart {restart + 1} sent something"
        after = await rows(app, _EVENTS)
        assert [e[:8] + e[9:] for e in after] == [e[:8] + e[9:] for e in before]
        assert all(e[3] == "firing" and not e[7] and e[9] is None for e in after)
        assert await rows(app, "SELECT count(*) FROM alert_notification") == [notices]

    # `alerts silence list` counts the open alerts and shows which one is silenced.
    assert await commands.alerts_silence(app, _parse("silence", "list")) == 0
    out = capsys.readouterr().out
    assert "open alerts: 3" in out and "silences:" in out
    (air2_line,) = [line for line in out.splitlines() if f" {AIR2} " in line]
    assert "[silenced]" in air2_line
    (water_line,) = [line for line in out.splitlines() if CHENJIAYING in line]
    assert "value Ⅴ类" in water_line and "value 5" not in water_line


async def test_water_class_is_not_resolved_on_a_partial_set(app: App, receiver: Receiver) -> None:
    h0 = base_hour(16)
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = config(
        [WATER_RULE],
        channels={"hook": hook(receiver)},
        routes=[{"name": "default", "channels": ["hook"]}],
    )
    async with service(app, cfg, clock) as svc:
        await feed(app, _water(h0, tp=0.334, **GOOD))
        await receiver.wait_for(1)
        fired = receiver.requests[0].json
        assert "Ⅴ类" in fired["text"] and "目标 Ⅲ类" in fired["text"]
        assert "总磷 0.334 mg/L（Ⅴ类）" in fired["text"]
        # Four hours on the TP value is stale (max_age 3h): the other indicators alone,
        # all class Ⅱ, are a partial set.
        clock.advance(hours=4)
        await feed(app, _water(h0 + timedelta(hours=4), **GOOD))
        await svc.wait_delivered()
        assert len(receiver.requests) == 1
    # A restart, and DO first again: still nothing.
    clock.advance(minutes=10)
    async with service(app, cfg, clock) as svc:
        await feed(app, _water(h0 + timedelta(hours=5), do=7.1))
        await svc.run_scheduled()
        await svc.wait_delivered()
        assert len(receiver.requests) == 1
        # TP arrives: the set is complete, the section is class Ⅱ, the alert is over.
        await feed(app, _water(h0 + timedelta(hours=5), tp=0.05))
        await receiver.wait_for(2)
    resolved = receiver.requests[1].json
    assert resolved["kind"] == "resolved" and "最新值：Ⅱ类" in resolved["text"]
    assert resolved["last_value"] == 2.0
    assert await rows(app, "SELECT count(*), count(resolved_at) FROM alert_event") == [(1, 1)]


async def test_one_alert_number_and_values_with_units(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = config([PM25_RULE, WATER_RULE])  # the default route: the log channel
    with caplog.at_level(logging.INFO, logger="envmon.alerts"):
        async with service(app, cfg, clock) as svc:
            # A test message first, so that outbox ids and alert numbers differ.
            assert [ok for _, ok, _ in await svc.send_test(["log"])] == [True]
            await feed(app, [(AIR, "pm25", h0, 150.0)])
            await feed(app, _water(h0, tp=0.5, **GOOD))  # TP 0.5 > 0.4: 劣Ⅴ
            await svc.wait_delivered()
    ids = dict(await rows(app, "SELECT subject, id FROM alert_event"))
    outbox = dict(await rows(app, "SELECT event_id, id FROM alert_notification WHERE event_id > 0"))
    assert all(outbox[i] != i for i in ids.values())  # two numbers that could be confused
    messages = [r.getMessage() for r in caplog.records]
    assert not any("notice=" in m for m in messages)
    for subject, value in ((AIR, "150 µg/m³"), (CHENJIAYING, "劣Ⅴ类")):
        n = ids[subject]
        (sent,) = [m for m in messages if m.startswith(f"alert #{n} 【告警")]
        assert f"告警编号：#{n}（确认：envmon alerts ack {n}）" in sent
        assert f"(outbox={outbox[n]})" in sent
        (logged,) = [m for m in messages if m.startswith(f"alert #{n} firing")]
        assert f" value={value}" in logged
    assert not any(re.search(r"value=\d", m) for m in messages if "water-class" in m)


async def test_digest_route_sends_at_its_hour(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    hour = (clock.now + timedelta(minutes=30)).strftime("%H:%M")
    cfg = _digest(receiver, {"rules": ["pm25-*"]}, hour)
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await svc.wait_delivered()
        assert receiver.requests == []  # held for the digest, not sent at once
        ((state, due, claimed),) = await rows(
            app, "SELECT state, next_attempt_at, claimed_until FROM alert_notification"
        )
        assert state == "pending" and claimed is None
        assert due == next_digest(clock.now, hour)
        # The digest hour has come (the service clock runs in the past; the outbox uses
        # the database's): the outbox sweep sends it.
        clock.advance(minutes=30)
        await svc.run_scheduled()
        await receiver.wait_for(1)
        await svc.wait_delivered()
    assert receiver.requests[0].json["kind"] == "firing"
    assert await rows(app, "SELECT state FROM alert_notification") == [("sent",)]


async def test_hourly_aqi_is_not_resolved_on_a_partial_hour(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(hours=1, minutes=5))
    rule = {"id": "aqi-heavy", "kind": "threshold", "metric": "aqi", "window": "1h",
            "threshold": 200, "clear": 150, "stations": {"ids": [AIR]}}  # fmt: skip
    low = {"so2": 10.0, "no2": 20.0, "co": 0.5, "o3": 40.0, "pm10": 40.0}
    cfg = config(
        [rule], channels={"hook": hook(receiver)}, routes=[{"name": "d", "channels": ["hook"]}]
    )
    h1 = h0 + timedelta(hours=1)
    async with service(app, cfg, clock) as svc:
        # PM2.5 160 µg/m³ → IAQI 210 (HJ 633-2026 real-time report): 重度污染.
        await feed(app, [*((AIR, p, h0, v) for p, v in low.items()), (AIR, "pm25", h0, 160.0)])
        await receiver.wait_for(1)
        # The next hour's readings come in two batches; O3 first, at 300 µg/m³ (1-h
        # IAQI 150): that alone says nothing about the hour's AQI.
        await feed(app, [(AIR, "o3", h1, 300.0)])
        await svc.wait_delivered()
        assert len(receiver.requests) == 1
    clock.advance(minutes=10)
    async with service(app, cfg, clock) as svc:  # and a restart between the batches
        await feed(app, [(AIR, "pm25", h1, 30.0)])
        await svc.wait_delivered()
        assert len(receiver.requests) == 1
        rest = [(AIR, p, h1, v) for p, v in low.items() if p != "o3"]
        await feed(app, rest)
        await receiver.wait_for(2)
    resolved = receiver.requests[1].json
    assert resolved["kind"] == "resolved" and resolved["last_value"] == 150.0


async def test_a_restart_before_the_digest_hour_keeps_the_notice_held(
    app: App, receiver: Receiver
) -> None:
    clock = Clock(datetime.now(BEIJING))
    h0 = clock.now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    hour = (clock.now + timedelta(hours=2)).strftime("%H:%M")  # later, by the database too
    cfg = _digest(receiver, {"kind": ["threshold"]}, hour)
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await svc.run_scheduled()
        await svc.wait_delivered()
    async with service(app, cfg, clock) as svc:  # a start tries pending retries at once …
        await svc.run_scheduled()
        await svc.wait_delivered()
    assert receiver.requests == []  # … but not a notice waiting for its digest hour
    ((state, attempts, due),) = await rows(
        app, "SELECT state, attempts, next_attempt_at FROM alert_notification"
    )
    assert (state, attempts, due) == ("pending", 0, next_digest(clock.now, hour))
