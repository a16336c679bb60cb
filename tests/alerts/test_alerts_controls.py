"""What people control: escalation and acknowledgement, silences, maintenance (flags
M/C and declared windows), routing by severity and city."""

from __future__ import annotations

from datetime import timedelta

from envmon.alerts.rules import AlertConfig
from envmon.alerts.service import add_maintenance, add_silence, expire_silence
from envmon.app import App

from .conftest import (
    AIR,
    AIR2,
    AIR_XZ,
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


def _escalating(receiver: Receiver) -> AlertConfig:
    return config(
        [PM25_RULE],
        channels={"duty": hook(receiver, "/duty"), "leaders": hook(receiver, "/leaders")},
        routes=[
            {
                "name": "duty",
                "match": {"severity": ["warning", "critical"]},
                "channels": ["duty"],
                "escalate_after": "30m",
                "escalate_to": "leaders",
            },
            {"name": "leaders", "escalation_only": True, "channels": ["leaders"]},
            {"name": "default", "channels": ["duty"]},
        ],
    )


async def test_escalation_unless_acknowledged(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    async with service(app, _escalating(receiver), clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0), (AIR2, "pm25", h0, 150.0)])
        await receiver.wait_for(2, "/duty")
        (a_id,), (b_id,) = await rows(app, "SELECT id FROM alert_event ORDER BY subject")
        # Someone takes the second one (from the CLI, i.e. the database).
        async with app.pool.connection() as conn:
            await conn.execute(
                "UPDATE alert_event SET acked_at = now(), acked_by = '值班员' WHERE subject = %s",
                (AIR2,),
            )
        clock.advance(minutes=29)
        await svc.run_scheduled()
        await svc.wait_delivered()
        assert receiver.on("/leaders") == []
        clock.advance(minutes=2)  # 31 minutes: the unacknowledged one escalates
        await svc.run_scheduled()
        await receiver.wait_for(1, "/leaders")
        await svc.run_scheduled()  # once only
        await svc.wait_delivered()
        esc = receiver.on("/leaders")
        assert len(esc) == 1 and esc[0].json["kind"] == "escalated"
        assert esc[0].json["station_id"] == AIR and "仍未确认" in esc[0].json["text"]
        # The resolution goes to both routes of the escalated episode, one to the other.
        clock.advance(minutes=10)
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=1), 50.0)])
        await feed(app, [(AIR2, "pm25", h0 + timedelta(hours=1), 50.0)])
        await receiver.wait_for(3, "/duty")
        await receiver.wait_for(2, "/leaders")
        await svc.wait_delivered()
    assert [r.json["kind"] for r in receiver.on("/leaders")] == ["escalated", "resolved"]
    assert sorted(r.json["kind"] for r in receiver.on("/duty")) == [
        "firing",
        "firing",
        "resolved",
        "resolved",
    ]
    states = await rows(
        app, "SELECT subject, escalated_at IS NOT NULL, acked_by FROM alert_event ORDER BY subject"
    )
    assert states == [(AIR, True, None), (AIR2, False, "值班员")]
    assert a_id != b_id


async def test_ack_through_the_service(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    async with service(app, _escalating(receiver), clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0)])
        await receiver.wait_for(1, "/duty")
        ((event_id,),) = await rows(app, "SELECT id FROM alert_event")
        assert await svc.ack(event_id, "张三", "已通知站点运维")
        assert not await svc.ack(event_id + 100, "张三")
        clock.advance(hours=2)
        await svc.run_scheduled()
        await svc.wait_delivered()
    assert receiver.on("/leaders") == []
    assert await rows(app, "SELECT acked_by, ack_note, state FROM alert_event") == [
        ("张三", "已通知站点运维", "firing")
    ]


async def test_silence_holds_the_message_until_it_ends(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = config(
        [PM25_RULE], channels={"hook": hook(receiver)}, routes=[{"name": "d", "channels": ["hook"]}]
    )
    start = clock.now - timedelta(minutes=1)
    end = clock.now + timedelta(hours=1)
    await add_silence(
        app.pool, app.catalog, starts_at=start, ends_at=end, station_id=AIR, comment="校准"
    )
    end = clock.now + timedelta(hours=5)
    await add_silence(
        app.pool, app.catalog, starts_at=start, ends_at=end, rule="pm25-*", city="忻州市"
    )
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 150.0), (AIR_XZ, "pm25", h0, 150.0)])
        await feed(app, [(AIR2, "pm25", h0, 150.0)])  # not silenced
        await receiver.wait_for(1)
        await svc.wait_delivered()
        assert [r.json["station_id"] for r in receiver.requests] == [AIR2]
        silenced = await rows(
            app, "SELECT subject, silenced, notified FROM alert_event ORDER BY subject"
        )
        assert silenced == [(AIR, True, False), (AIR2, False, True), (AIR_XZ, True, False)]
        # The station's silence ends while the episode is still on: now it is announced.
        clock.advance(hours=1, minutes=1)
        await svc.run_scheduled()
        await receiver.wait_for(2)
        assert receiver.requests[1].json["station_id"] == AIR
        assert receiver.requests[1].json["kind"] == "firing"
        # The city's silence is ended by hand; its episode ends before anyone was told,
        # so nothing is sent about it at all.
        await feed(app, [(AIR_XZ, "pm25", h0 + timedelta(hours=1), 20.0)])
        ((sil_id,),) = await rows(app, "SELECT id FROM alert_silence WHERE city = '忻州市'")
        assert await expire_silence(app.pool, sil_id, clock.now)
        await svc.run_scheduled()
        await svc.wait_delivered()
    assert len(receiver.requests) == 2
    assert await rows(app, "SELECT state FROM alert_event WHERE subject = %s", AIR_XZ) == [
        ("resolved",)
    ]


async def test_maintenance_flags_and_windows_suppress(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    rule = {**PM25_RULE, "for": "1h"}  # two hourly values in a row
    cfg = config(
        [rule], channels={"hook": hook(receiver)}, routes=[{"name": "d", "channels": ["hook"]}]
    )
    await add_maintenance(
        app.pool,
        app.catalog,
        station_id=AIR2,
        starts_at=h0 - timedelta(hours=1),
        ends_at=h0 + timedelta(hours=3),
        note="季度校准",
    )
    async with service(app, cfg, clock) as svc:
        # M and C readings are not judged at all, however high.
        await feed(
            app, [(AIR, "pm25", h0, 400.0, "M"), (AIR, "pm25", h0 + timedelta(hours=1), 400.0, "C")]
        )
        # A valid high value, then a maintenance one, then a valid one: the run was
        # broken, so two valid values in a row are still needed.
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=2), 150.0)])
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=3), 150.0, "M")])
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=4), 150.0)])
        # Inside the declared window: nothing, even two in a row.
        await feed(app, [(AIR2, "pm25", h0 + timedelta(hours=i), 150.0) for i in (1, 2)])
        await svc.wait_delivered()
        assert receiver.requests == []
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=5), 150.0)])
        # After the window: it counts again.
        await feed(app, [(AIR2, "pm25", h0 + timedelta(hours=i), 150.0) for i in (3, 4)])
        await receiver.wait_for(2)
        await svc.wait_delivered()
    fired = sorted((r.json["station_id"], r.json["first_ts"][:13]) for r in receiver.requests)
    assert fired == [
        (AIR, (h0 + timedelta(hours=4)).isoformat()[:13]),
        (AIR2, (h0 + timedelta(hours=3)).isoformat()[:13]),
    ]


async def test_routing_by_severity_and_city(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    cfg = config(
        [PM25_RULE, {**PM25_RULE, "id": "pm25-extreme", "threshold": 250, "clear": 200,
                     "severity": "critical"}],
        channels={
            "ty": hook(receiver, "/taiyuan"),
            "xz": hook(receiver, "/xinzhou"),
            "all": hook(receiver, "/all"),
        },
        routes=[
            {"name": "ty-critical", "match": {"severity": "critical", "city": "太原市"},
             "channels": ["ty", "all"]},
            {"name": "xz", "match": {"city": ["忻州市"]}, "channels": ["xz"]},
            {"name": "default", "channels": ["all"]},
        ],
    )  # fmt: skip
    async with service(app, cfg, clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 300.0), (AIR_XZ, "pm25", h0, 300.0)])
        await receiver.wait_for(5)
        await svc.wait_delivered()
    got = sorted((r.path, r.json["rule"], r.json["station_id"]) for r in receiver.requests)
    assert got == [
        ("/all", "pm25-extreme", AIR),
        ("/all", "pm25-high", AIR),
        ("/taiyuan", "pm25-extreme", AIR),
        ("/xinzhou", "pm25-extreme", AIR_XZ),
        ("/xinzhou", "pm25-high", AIR_XZ),
    ]
