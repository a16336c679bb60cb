"""Scheduled rules: offline (stations and sources, grace, maintenance hold), flatline,
the share of rejected readings, and the year's target risk (envmon evaluate)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from envmon.alerts.service import AlertService
from envmon.app import App
from envmon.timeutil import BEIJING

from .conftest import (
    AIR,
    AIR2,
    AIR_XZ,
    Clock,
    Receiver,
    base_hour,
    config,
    feed,
    hook,
    quick,
    rows,
    service,
)


def _cfg(receiver: Receiver, *rules: dict[str, Any]) -> Any:
    return config(
        list(rules),
        channels={"hook": hook(receiver)},
        routes=[{"name": "default", "channels": ["hook"]}],
    )


async def test_offline_stations_and_sources(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    # Offline is about when data arrive (received_at is the database's clock): real time.
    clock = Clock(datetime.now(BEIJING))
    rules: list[dict[str, Any]] = [
        {"id": "offline", "kind": "offline", "after": "90m", "grace": "15m",
         "stations": {"ids": [AIR, AIR2, AIR_XZ]}},
        {"id": "offline-hj212", "kind": "offline", "after": "30m", "grace": "15m",
         "sources": ["hj212"], "severity": "critical"},
    ]  # fmt: skip
    async with service(app, _cfg(receiver, *rules), clock) as svc:
        await svc.run_scheduled()
        await feed(app, [(AIR, "pm25", h0, 30.0)])
        await feed(app, [(AIR_XZ, "pm25", h0, 30.0, "M")])  # a maintenance visit begins
        clock.advance(minutes=40)
        await svc.run_scheduled()
        await receiver.wait_for(1)  # no HJ 212 batch for 40 min (> 30 min, grace passed)
        assert receiver.requests[0].json["subject"] == "source:hj212"
        clock.advance(minutes=60)  # 100 min after start
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=1), 30.0)])
        await svc.run_scheduled()
        await receiver.wait_for(2)
        await svc.wait_delivered()
        # AIR2 never sent anything; AIR reported; AIR_XZ is in its maintenance hold (2 h).
        second = receiver.requests[1].json
        assert second["station_id"] == AIR2 and second["kind"] == "firing"
        assert (
            "启动以来未收到数据" in second["text"] and "超过 1小时30分钟 无数据" in second["text"]
        )
        clock.advance(minutes=30)  # the hold is over; AIR_XZ has been silent for 130 min
        await svc.run_scheduled()
        await receiver.wait_for(3)
        assert receiver.requests[2].json["station_id"] == AIR_XZ
        # Data from AIR2 and an HJ 212 batch end those episodes.
        await feed(app, [(AIR2, "pm25", h0 + timedelta(hours=2), 30.0)])
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=2), 30.0)], source="hj212")
        clock.advance(minutes=1)
        await svc.run_scheduled()
        await receiver.wait_for(5)
        await svc.wait_delivered()
    ends = sorted(r.json["subject"] for r in receiver.requests if r.json["kind"] == "resolved")
    assert ends == [AIR2, "source:hj212"]


async def test_offline_reads_the_database_before_firing(app: App, receiver: Receiver) -> None:
    h0 = base_hour()
    clock = Clock(datetime.now(BEIJING))
    rule = {"id": "offline", "kind": "offline", "after": "90m", "grace": "0s",
            "stations": {"ids": [AIR]}}  # fmt: skip
    async with service(app, _cfg(receiver, rule), clock) as svc:
        clock.advance(minutes=100)
        # Data that reached the database through another process (a file import):
        async with app.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO reading (station_id, parameter, period, ts, value, source,"
                " received_at) VALUES (%s, 'pm25', '1h', %s, 30, 'import', %s)",
                (AIR, h0, clock.now - timedelta(minutes=10)),
            )
        await svc.run_scheduled()
        await svc.wait_delivered()
    assert receiver.requests == []


async def test_flatline(app: App, receiver: Receiver) -> None:
    h0 = base_hour(8)
    clock = Clock(h0 + timedelta(hours=6, minutes=5))
    rule = {"id": "flat", "kind": "flatline", "parameters": ["pm25", "so2"], "span": "6h",
            "min_count": 5, "stations": {"ids": [AIR, AIR2]}}  # fmt: skip
    async with service(app, _cfg(receiver, rule), clock) as svc:
        await feed(
            app,
            [(AIR, "pm25", h0 + timedelta(hours=h), 35.0) for h in range(6)]
            + [(AIR2, "pm25", h0 + timedelta(hours=h), 35.0 + h) for h in range(6)]
            + [(AIR2, "so2", h0 + timedelta(hours=h), 9.0, "C") for h in range(6)],  # calibration
        )
        await svc.run_scheduled()
        await receiver.wait_for(1)
        clock.advance(hours=1)
        await feed(app, [(AIR, "pm25", h0 + timedelta(hours=6), 42.0)])
        await svc.run_scheduled(force=True)
        await receiver.wait_for(2)
    fired, resolved = (r.json for r in receiver.requests)
    assert fired["station_id"] == AIR and "PM2.5 恒为 35 µg/m³（5 个数据）" in fired["text"]
    assert resolved["kind"] == "resolved" and resolved["station_id"] == AIR


async def test_reject_share(app: App, receiver: Receiver) -> None:
    clock = Clock(datetime.now(BEIJING))
    h0 = base_hour(3)
    rules = [
        {"id": "dq", "kind": "data_quality", "max_share": 0.1, "clear": 0.05, "min_total": 10,
         "stations": {"ids": [AIR, AIR2]}},
        {"id": "dq-src", "kind": "data_quality", "max_share": 0.1, "min_total": 10, "by": "source"},
    ]  # fmt: skip
    async with service(app, _cfg(receiver, *rules), clock) as svc:
        params = ("pm25", "so2", "no2")
        good = [(AIR, p, h0 + timedelta(hours=h), 20.0) for p in params for h in range(3)]
        bad = [(AIR, "pm25", h0 + timedelta(minutes=m), -5.0) for m in (5, 10, 15)]
        await feed(app, [*good, *bad], source="poller-x")  # 3 of 12 rejected: 25 %
        await feed(app, [(AIR2, "pm25", h0 + timedelta(hours=h), 20.0) for h in range(3)] * 4)
        await svc.run_scheduled()
        await receiver.wait_for(2)
        await svc.wait_delivered()
    subjects = sorted(r.json["subject"] for r in receiver.requests)
    assert subjects == [AIR, "source:poller-x"]
    doc = next(r.json for r in receiver.requests if r.json["subject"] == AIR)
    assert "25.0%（拒收 3 / 共 12）" in doc["text"] and "negative concentration" in doc["text"]


async def test_target_risk(app: App, receiver: Receiver, tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "targets:\n"
        "  - {metric: good_day_ratio, region: zone, baseline_year: 2020, baseline: 0.70,"
        " target_year: 2030, change: 0.10}\n"
        "  - {metric: pm25_annual_mean, region: zone, baseline_year: 2020, baseline: 50,"
        " target_year: 2030, change: -0.20}\n",
        encoding="utf-8",
    )
    now = datetime.now(BEIJING)
    year_start = date(now.year, 1, 1)
    days = (now.date() - year_start).days + 1
    # 70 of the days so far were not good; the target allows int(365 × 0.2) = 73.
    async with app.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO region_day (region, day, pm25, n_stations, aqi, category, edition)"
            " SELECT 'zone', d::date, 45, 20, CASE WHEN i <= 70 THEN 120 ELSE 60 END,"
            " CASE WHEN i <= 70 THEN 3 ELSE 2 END, 2026"
            " FROM generate_series(%s::date, %s::date, interval '1 day')"
            " WITH ORDINALITY AS g(d, i)",
            (year_start, now.date()),
        )
    rules = [
        {"id": "good-days", "kind": "target_risk", "regions": ["zone"],
         "measure": "good_day_budget", "below": 10},
        {"id": "pm25-cap", "kind": "target_risk", "regions": ["zone"],
         "measure": "pm25_remaining_max_mean", "below": 35},
    ]  # fmt: skip
    settings = quick(targets_file=targets)
    async with AlertService(
        app.pool, app.catalog, sink=app.sink, settings=settings, config=_cfg(receiver, *rules)
    ) as svc:
        await svc.run_scheduled()
        await receiver.wait_for(2)
        await svc.wait_delivered()
    docs = {r.json["rule"]: r.json for r in receiver.requests}
    budget = docs["good-days"]
    assert budget["subject"] == "region:zone" and budget["value"] == 3.0
    assert "剩余非优良天数额度" in budget["text"] and "太忻经济区" in budget["text"]
    # PM2.5: target 40 µg/m³; 45 so far → the rest of the year must stay far lower.
    cap = docs["pm25-cap"]
    remaining = 365 + (1 if now.year % 4 == 0 else 0) - days
    expected = (40 * (days + remaining) - 45 * days) / remaining
    assert abs(cap["value"] - round(expected, 1)) < 0.06
    assert "µg/m³" in cap["text"]


async def test_offline_episode_survives_a_restart(app: App, receiver: Receiver) -> None:
    clock = Clock(datetime.now(BEIJING))
    rule = {"id": "offline", "kind": "offline", "after": "90m", "grace": "15m",
            "stations": {"ids": [AIR2]}}  # fmt: skip
    cfg = _cfg(receiver, rule)
    async with service(app, cfg, clock) as svc:
        clock.advance(minutes=95)
        await svc.run_scheduled()
        await receiver.wait_for(1)
    clock.advance(minutes=5)
    async with service(app, cfg, clock) as svc:
        clock.advance(minutes=20)  # nothing heard since the restart: still offline
        await svc.run_scheduled()
        await svc.wait_delivered()
        assert len(receiver.requests) == 1
        await feed(app, [(AIR2, "pm25", base_hour(1), 30.0)])
        clock.advance(minutes=1)
        await svc.run_scheduled()
        await receiver.wait_for(2)
    assert [r.json["kind"] for r in receiver.requests] == ["firing", "resolved"]
    assert await rows(app, "SELECT count(*) FROM alert_event") == [(1,)]
