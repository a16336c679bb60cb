"""What the in-stream rules compute: hourly and city AQI (HJ 633), water class against
the section's target (GB 3838), dissolved oxygen, spikes, weather extremes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from envmon.app import App
from envmon.standards import aqi as aqi_std
from envmon.timeutil import BEIJING

from .conftest import (
    AIR,
    AIR2,
    WATER,
    WEATHER,
    Clock,
    Receiver,
    base_hour,
    config,
    feed,
    hook,
    service,
)

LOW = {"so2": 10.0, "no2": 20.0, "co": 0.5, "o3": 40.0, "pm10": 40.0}


def _cfg(receiver: Receiver, *rules: dict[str, Any]) -> Any:
    return config(
        list(rules),
        channels={"hook": hook(receiver)},
        routes=[{"name": "default", "channels": ["hook"]}],
    )


async def test_hourly_aqi_over_200(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    rule = {"id": "aqi-heavy", "kind": "threshold", "metric": "aqi", "window": "1h",
            "threshold": 200, "clear": 150, "severity": "critical",
            "stations": {"kind": "air"}}  # fmt: skip
    assert aqi_std.edition_for(h0) == 2026  # readings of the last hours: HJ 633-2026
    async with service(app, _cfg(receiver, rule), clock) as svc:
        hour = [(AIR, p, h0, v) for p, v in LOW.items()]
        await feed(app, [*hour, (AIR, "pm25", h0, 100.0)])  # AQI well under 200
        await svc.wait_delivered()
        assert receiver.requests == []
        h1 = h0 + timedelta(hours=1)
        # Real-time report: PM2.5 1-h 160 µg/m³ → IAQI 200 + 10 = 210 (重度污染).
        await feed(app, [*[(AIR, p, h1, v) for p, v in LOW.items()], (AIR, "pm25", h1, 160.0)])
        await receiver.wait_for(1)
    doc = receiver.requests[0].json
    assert doc["value"] == 210.0 and doc["rule"] == "aqi-heavy"
    assert "重度污染（五级），首要污染物 PM2.5" in doc["text"]
    assert "HJ 633-2026" in doc["text"]


async def test_city_rolling_daily_aqi(app: App, receiver: Receiver) -> None:
    h0 = base_hour(30)
    clock = Clock(h0 + timedelta(hours=24, minutes=5))
    rule = {"id": "city-aqi", "kind": "threshold", "metric": "aqi", "window": "24h",
            "scope": "city", "min_stations": 2, "threshold": 200, "clear": 150,
            "severity": "critical", "stations": {"kind": "air", "city": "太原市"}}  # fmt: skip
    async with service(app, _cfg(receiver, rule), clock) as svc:
        data = [
            (sid, "pm25", h0 + timedelta(hours=h), v)
            for h in range(24)
            for sid, v in ((AIR, 280.0), (AIR2, 320.0))
        ]
        await feed(app, data)
        await receiver.wait_for(1)
        await svc.wait_delivered()
    assert len(receiver.requests) == 1
    doc = receiver.requests[0].json
    # City value = mean of the stations' 24-h means = 300 µg/m³ → IAQI 350 (严重污染).
    assert doc["subject"] == "city:太原市" and doc["station_id"] is None
    assert doc["value"] == 350.0 and doc["city"] == "太原市"
    assert "城市" in doc["text"] and "参与站点：2 个" in doc["text"]


async def test_water_worse_than_target_class(app: App, receiver: Receiver) -> None:
    h0 = base_hour(16)
    clock = Clock(h0 + timedelta(hours=4, minutes=5))
    rule = {"id": "water-class", "kind": "threshold", "metric": "water_class", "for": "4h",
            "stations": {"kind": "water"}}  # fmt: skip
    async with service(app, _cfg(receiver, rule), clock) as svc:
        # 氨氮 1.8 mg/L is class V (GB 3838: IV ≤ 1.5, V ≤ 2.0); the section's target is III.
        await feed(app, [(WATER, "nh3n", h0, 1.8), (WATER, "do", h0, 7.0)], period="4h")
        await svc.wait_delivered()
        assert receiver.requests == []  # for: 4h — one 4-hourly value is not enough
        clock.advance(hours=4)
        await feed(app, [(WATER, "nh3n", h0 + timedelta(hours=4), 1.7)], period="4h")
        await receiver.wait_for(1)
        clock.advance(hours=4)
        # Resolved only on a complete set (issue 19): 氨氮 alone cannot say the section is
        # back to Ⅲ — its 溶解氧 (last reported at h0) must be fresh too.
        await feed(app, [(WATER, "nh3n", h0 + timedelta(hours=8), 0.8)], period="4h")
        await svc.wait_delivered()
        assert len(receiver.requests) == 1
        await feed(app, [(WATER, "do", h0 + timedelta(hours=8), 7.0)], period="4h")
        await receiver.wait_for(2)
    fired, resolved = (r.json for r in receiver.requests)
    assert fired["station_id"] == WATER and fired["value"] == 5.0 and fired["threshold"] == 3.0
    assert "Ⅴ类" in fired["text"] and "目标 Ⅲ类" in fired["text"]
    assert "氨氮 1.7 mg/L（Ⅴ类）" in fired["text"] and "envmon-water" in fired["url"]
    assert resolved["kind"] == "resolved" and resolved["last_value"] == 3.0


async def test_dissolved_oxygen_low_with_hysteresis(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    rule = {"id": "do-low", "kind": "threshold", "parameter": "do", "op": "<", "threshold": 3,
            "clear": 3.5, "severity": "critical", "stations": {"kind": "water"}}  # fmt: skip
    async with service(app, _cfg(receiver, rule), clock) as svc:
        for i, v in enumerate([2.5, 3.2, 3.4, 3.6]):
            await feed(app, [(WATER, "do", h0 + timedelta(hours=i), v)])
            await svc.wait_delivered()
            if i == 0:
                assert len(receiver.requests) == 1
            elif i < 3:
                assert len(receiver.requests) == 1  # between 3 and 3.5: still on
        await receiver.wait_for(2)
    assert [r.json["kind"] for r in receiver.requests] == ["firing", "resolved"]
    assert "溶解氧" in receiver.requests[0].json["text"]
    assert "低于 3 mg/L" in receiver.requests[0].json["text"]


async def test_spike(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    rule = {"id": "pm25-spike", "kind": "spike", "parameter": "pm25", "rise": 100, "over": "2h",
            "stations": {"kind": "air"}}  # fmt: skip
    async with service(app, _cfg(receiver, rule), clock) as svc:
        await feed(app, [(AIR, "pm25", h0, 30.0), (AIR2, "pm25", h0, 30.0)])
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=1), 140.0)])  # +110 in an hour
        await feed(app, [(AIR2, "pm25", h0 + timedelta(hours=1), 110.0)])  # +80: no
        await receiver.wait_for(1)
        await svc.wait_delivered()
    assert len(receiver.requests) == 1
    doc = receiver.requests[0].json
    assert doc["station_id"] == AIR and doc["value"] == 110.0
    assert "2小时内上升" in doc["text"] and "30 → " in doc["text"]


async def test_weather_extremes(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(h0 + timedelta(minutes=65))
    rules = [
        {"id": "gale", "kind": "threshold", "parameter": "wind_speed", "op": ">=",
         "threshold": 17.2, "clear": 13.9, "stations": {"kind": "weather"}},
        {"id": "rain", "kind": "threshold", "parameter": "precip", "op": ">=", "threshold": 20,
         "stations": {"kind": "weather"}},
    ]  # fmt: skip
    async with service(app, _cfg(receiver, *rules), clock) as svc:
        await feed(app, [(WEATHER, "wind_speed", h0, 17.2), (WEATHER, "precip", h0, 19.9)])
        await receiver.wait_for(1)
        await svc.wait_delivered()
    assert [(r.json["rule"], r.json["value"]) for r in receiver.requests] == [("gale", 17.2)]
    assert "envmon-weather" in receiver.requests[0].json["url"]


async def test_hourly_aqi_2012_uses_the_1h_pm(app: App, receiver: Receiver) -> None:
    """Before 2026-03-01 too the real-time PM IAQI is the 1-h value against the 24-h
    breakpoints, as the national platform publishes it (issue 15)."""
    h0 = datetime(2025, 1, 10, tzinfo=BEIJING)
    clock = Clock(h0 + timedelta(hours=24, minutes=5))
    rule = {"id": "aqi-heavy", "kind": "threshold", "metric": "aqi", "window": "1h",
            "threshold": 200, "stations": {"ids": [AIR, AIR2]}}  # fmt: skip
    async with service(app, _cfg(receiver, rule), clock) as svc:
        # AIR: 160 µg/m³ all day → IAQI 210 every hour.
        # AIR2: clean all day, 400 µg/m³ in the last hour → 400 + 100/150 × 50 = 433.3 → 434
        # (the 24-h moving mean, 36.5, would have stayed far below 200).
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=h), 160.0) for h in range(24)])
        await feed(
            app,
            [
                (AIR2, "pm25", h0 + timedelta(hours=h), 400.0 if h == 23 else 20.0)
                for h in range(24)
            ],
        )
        await receiver.wait_for(2)
        await svc.wait_delivered()
    assert sorted((r.json["station_id"], r.json["value"]) for r in receiver.requests) == [
        (AIR, 210.0),
        (AIR2, 434.0),
    ]
    assert "HJ 633-2012" in receiver.requests[0].json["text"]
