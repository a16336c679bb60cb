"""The poller around a source: backoff, down/up logging, fatal errors, quarantine, isolation.

Real database, real HTTP platform; only time is fake (the clock and sleep
injected into the poller), so backoff delays are observed, not waited for.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web

from envmon.app import App
from envmon.ingest.collectors import Collectors
from envmon.ingest.poller import SourcePoller
from envmon.ingest.sources import Http
from envmon.ingest.sources_config import RateLimit, SourceConfig
from envmon.ingest.state import read_health
from envmon.retry import Backoff

from .conftest import (
    FakeClock,
    FakePlatform,
    FakeSleep,
    Reply,
    bj,
    config_of,
    eventually,
    fixture,
    query,
    source_config,
)

AIR_CODES = {
    "1081A": "air-taiyuan-jiancaoping",
    "1082A": "air-taiyuan-nanzhai",
    "1083A": "air-taiyuan-julun",
    "1084A": "air-taiyuan-jianhe",
}
NOW = bj(2025, 1, 10, 9, 30)  # polls ask for the 08:00 and 09:00 hours (TimePoints 09:00, 10:00)


def cnemc(base_url: str, **over: Any) -> SourceConfig:
    opts = {
        "stations": AIR_CODES,
        "options": {"path": "/air"},
        "initial_lookback": "1h",
        "interval": "10m",
        "retries": 3,
    }
    return source_config("cnemc_air", base_url, **{**opts, **over})


def by_hour(*later: Reply) -> Any:
    """TimePoint 09:00 → the fixture; TimePoint 10:00 → ``later`` in turn (last one sticks)."""
    queue = list(later)

    def answer(request: web.Request) -> Reply:
        if request.query.get("TimePoint") == "2025-01-10 09:00:00":
            return Reply(fixture("cnemc_air_2025011009.json"))
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return answer


def poller(app: App, cfg: SourceConfig, session: aiohttp.ClientSession, clock: FakeClock,
           sleep: FakeSleep) -> SourcePoller:  # fmt: skip
    return SourcePoller(app.intake, cfg, session, clock=clock, sleep=sleep, rng=random.Random(7))


def test_backoff_doubles_with_jitter_caps_and_honours_retry_after() -> None:
    b = Backoff(2.0, 60.0, random.Random(1))
    for failures, step in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (20, 60.0)]:
        delays = [b.delay(failures) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len({round(d, 6) for d in delays}) > 150  # jittered, not in lock-step
    assert b.delay(1, retry_after=30.0) == 30.0  # the platform's Retry-After is a floor
    assert 30.0 <= b.delay(7, retry_after=30.0) <= 60.0
    again = Backoff(2.0, 60.0, random.Random(1))
    first = Backoff(2.0, 60.0, random.Random(1))
    assert [again.delay(3) for _ in range(5)] == [first.delay(3) for _ in range(5)]


async def test_retries_back_off_honour_retry_after_then_store(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on(
        "/air",
        by_hour(
            Reply("oops", status=500, content_type="text/plain"),
            Reply({"detail": "slow down"}, status=429, headers={"Retry-After": "7"}),
            Reply([]),
        ),
    )
    clock, sleep = FakeClock(NOW), FakeSleep()
    p = poller(app, cnemc(platform.base_url), session, clock, sleep)
    report = await p.poll()
    assert report.error is None and report.retries == 2
    assert 1.0 <= sleep.delays[0] <= 2.0  # first retry: 2 s step, jittered
    assert sleep.delays[1] == 7.0  # Retry-After from the 429
    assert (report.inserted, report.rejected) == (12, 4)
    rows = await query(
        db_url,
        "SELECT station_id, parameter, ts, value, source FROM reading"
        " WHERE station_id = 'air-taiyuan-jiancaoping' ORDER BY parameter",
    )
    assert [(r[1], r[3]) for r in rows] == [
        ("co", 1.6),
        ("no2", 57.0),
        ("o3", 8.0),
        ("pm10", 131.0),
        ("pm25", 88.0),
        ("so2", 21.0),
    ]
    assert {r[2] for r in rows} == {bj(2025, 1, 10, 8)} and {r[4] for r in rows} == {"t-cnemc-air"}
    rejected = await query(db_url, "SELECT reason, raw, station_id FROM rejected ORDER BY reason")
    assert [r[0] for r in rejected] == [
        "negative concentration -4",
        "record without StationCode",
        "unreadable TimePoint '2025-01-10 9点'",
        "value '1.2.3' is not a number",
    ]
    # The raw form of a validator reject is the platform's whole record.
    assert '"PositionName": "小店"' in rejected[0][1] and rejected[0][2] == "air-taiyuan-julun"
    cursors = dict(
        await query(
            db_url, "SELECT station_id, last_ts FROM ingest_cursor WHERE source = %s", "t-cnemc-air"
        )
    )
    assert cursors[""] == bj(2025, 1, 10, 10)  # fetched up to the end of the window
    assert cursors["air-taiyuan-jiancaoping"] == bj(2025, 1, 10, 8)
    assert await query(db_url, "SELECT state, failures FROM source_health") == [("ok", 0)]


async def test_down_logged_once_backs_off_and_recovery_logged_once(
    app: App,
    platform: FakePlatform,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = Reply("Bad Gateway", status=502, content_type="text/plain")
    platform.on("/air", by_hour(failing))
    clock, sleep = FakeClock(NOW), FakeSleep()
    p = poller(app, cnemc(platform.base_url, retries=1), session, clock, sleep)
    caplog.set_level(logging.INFO, logger="envmon.ingest.poller")

    def said(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records)

    for _ in range(4):
        r = await p.poll()
        assert r.error and "HTTP 502" in r.error
        assert p.health.next_attempt_at is not None
        # Before the next attempt is due, a scheduled poll does nothing.
        skipped = await p.poll()
        assert skipped.skipped and skipped.skipped.startswith("backing off")
        clock.now = p.health.next_attempt_at
    assert p.health.state == "down" and p.health.failures == 4
    assert said("unavailable") == 1
    assert p.health.last_error and "HTTP 502" in p.health.last_error
    platform.on("/air", by_hour(Reply([])))
    r = await p.poll()
    assert r.error is None and p.health.state == "ok" and p.health.failures == 0
    assert said("recovered") == 1
    await p.poll(force=True)
    assert said("unavailable") == 1 and said("recovered") == 1


async def test_backoff_between_polls_grows(
    app: App, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/air", Reply("down", status=503, content_type="text/plain"))
    clock, sleep = FakeClock(NOW), FakeSleep()
    cfg = cnemc(
        platform.base_url, retries=1, request_retries=0, backoff_base="10s", backoff_max="10m"
    )
    p = poller(app, cfg, session, clock, sleep)
    gaps = []
    for _ in range(8):
        await p.poll()
        assert p.health.next_attempt_at is not None
        gaps.append((p.health.next_attempt_at - clock.now).total_seconds())
        clock.now = p.health.next_attempt_at
    assert all(5 <= g <= 600 for g in gaps)
    assert gaps[0] <= 10 < gaps[2] and gaps[-1] >= 300  # doubling, up to the cap
    assert sleep.delays == []  # no retry inside a poll with retries=1


async def test_fatal_error_disables_the_source_and_says_why(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/air", Reply({"detail": "invalid key"}, status=401))
    clock, sleep = FakeClock(NOW), FakeSleep()
    p = poller(app, cnemc(platform.base_url), session, clock, sleep)
    report = await p.poll()
    assert report.error and "HTTP 401" in report.error
    assert p.disabled and sleep.delays == []  # no retry of a 401
    asked = len(platform.requests)
    again = await p.poll(force=True)
    assert again.skipped and "HTTP 401" in again.skipped
    assert len(platform.requests) == asked
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        (h,) = await read_health(conn, now=NOW)
    assert h["state"] == "disabled" and h["stale"] is True
    assert "HTTP 401" in h["last_error"] and "credentials" in h["last_error"]


async def test_bad_config_disables_only_that_source(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/air", by_hour(Reply([])))
    good = cnemc(platform.base_url)
    bad = cnemc(platform.base_url, name="t-bad", stations={"X": "air-nowhere"})
    clock = FakeClock(NOW)
    async with Collectors(
        app.intake, config_of(good, bad), session, clock=clock, sleep=FakeSleep(), schedule=False
    ) as c:
        reports = await c.poll_now()
        health = {h["source"]: h for h in c.health()}
    assert reports["t-cnemc-air"].inserted == 12
    assert reports["t-bad"].skipped and "air-nowhere" in reports["t-bad"].skipped
    assert health["t-bad"]["state"] == "disabled"
    assert "unknown catalog station 'air-nowhere'" in health["t-bad"]["last_error"]
    assert health["t-cnemc-air"]["state"] == "ok"


async def test_unreadable_page_is_retried_then_quarantined_without_blocking_the_cursor(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    body = fixture("cnemc_air_2025011009.json")
    platform.on("/air", by_hour(Reply(body[:300])))  # 10:00 is always cut short
    clock, sleep = FakeClock(NOW), FakeSleep()
    p = poller(app, cnemc(platform.base_url, retries=2, payload_retries=2), session, clock, sleep)
    first = await p.poll()
    assert first.error and "unreadable JSON" in first.error
    assert p.cursor is None and p.health.state == "down"
    clock.now = p.health.next_attempt_at or clock.now
    second = await p.poll()
    assert second.error is None and second.quarantined_pages == 1
    assert p.cursor == bj(2025, 1, 10, 10)  # moved on
    assert second.inserted == 12  # the readable hour is kept
    (q,) = await query(
        db_url, "SELECT reason, raw, ts FROM rejected WHERE reason LIKE 'unreadable page%%'"
    )
    assert "quarantined after repeated attempts" in q[0]
    assert q[1].startswith('[\n  {"Area": "太原市"') and len(q[1]) <= 300  # the page as sent
    assert q[2] == bj(2025, 1, 10, 9)


async def test_one_failing_source_never_delays_the_others(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/hang", Reply(hang=True))
    platform.on("/air", by_hour(Reply([])))
    stuck = cnemc(platform.base_url, name="t-stuck", options={"path": "/hang"}, timeout="1h")
    healthy = cnemc(platform.base_url, interval="30s")
    async with Collectors(
        app.intake, config_of(stuck, healthy), session, clock=FakeClock(NOW), sleep=FakeSleep()
    ) as c:
        assert c.scheduler is not None
        jobs = {j.id: j for j in c.scheduler.get_jobs()}
        assert set(jobs) == {"t-stuck", "t-cnemc-air"}
        for job, cfg in ((jobs["t-stuck"], stuck), (jobs["t-cnemc-air"], healthy)):
            # Explicit: APScheduler's 1-second default grace would drop late runs.
            assert job.misfire_grace_time == int(cfg.interval.total_seconds())
            assert job.coalesce is True and job.max_instances == 1
        # Both polls start at once; the healthy one finishes while the other hangs.
        await eventually(
            lambda: (
                c.pollers["t-cnemc-air"].health.last_success_at is not None
                and platform.in_flight == 2
            )
        )
        assert platform.in_flight == 2  # both hours of the stuck source still waiting
        assert c.pollers["t-stuck"].health.last_attempt_at is not None
        assert c.pollers["t-stuck"].health.last_success_at is None
        (n,) = await query(db_url, "SELECT count(*) FROM reading WHERE source = 't-cnemc-air'")
        assert n == (12,)
    # Leaving cancels the stuck poll (no waiting for its hour-long timeout).
    assert c.scheduler is None


async def test_health_shows_lag_and_stale_stations(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/air", by_hour(Reply([])))
    clock = FakeClock(NOW)
    p = poller(app, cnemc(platform.base_url, stale_after="3h"), session, clock, FakeSleep())
    await p.poll()
    h = p.health.as_dict(clock.now)
    assert h["state"] == "ok" and h["stale"] is False
    assert h["lag_s"] == 30 * 60  # newest period 08:00–09:00, now 09:30
    assert h["stations"]["mapped"] == 4 and h["stations"]["reporting"] == 3
    assert h["stations"]["stale"] == ["air-taiyuan-jianhe"]  # its record had a bad time
    clock.advance(hours=4)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        (later,) = await read_health(conn, now=clock.now)
    assert later["stale"] is True and later["stations"]["reporting"] == 0
    assert later["fetched_until"] == "2025-01-10T10:00:00+08:00"
    assert later["last_poll"]["inserted"] == 12


async def test_station_errors_are_kept_per_station(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/v3/locations/8118", Reply(fixture("openaq_location.json")))
    platform.on("/v3/sensors/3917/hours", Reply(fixture("openaq_hours_pm25_p2.json")))
    platform.on("/v3/sensors/3918/hours", Reply(fixture("openaq_hours_co.json")))
    platform.on("/v3/sensors/3919/hours", Reply(fixture("openaq_hours_no2.json")))
    cfg = source_config(
        "openaq_v3",
        platform.base_url,
        stations={"8118": "air-taiyuan-jiancaoping", "404": "air-taiyuan-nanzhai"},
        api_key="k",
        initial_lookback="12h",
    )
    clock = FakeClock(bj(2025, 1, 10, 14))
    p = poller(app, cfg, session, clock, FakeSleep())
    report = await p.poll()
    assert report.error is None and report.inserted == 2  # CO and NO2; PM2.5 was flagged
    rows = dict(
        await query(
            db_url, "SELECT station_id, last_error FROM ingest_cursor WHERE source = %s", cfg.name
        )
    )
    assert "404" in rows["air-taiyuan-nanzhai"]
    assert rows["air-taiyuan-jiancaoping"] is None
    assert p.health.as_dict(clock.now)["stations"]["errors"].keys() == {"air-taiyuan-nanzhai"}


async def test_rejects_seen_again_in_the_overlap_are_not_stored_twice(
    app: App, db_url: str, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/air", by_hour(Reply([])))
    clock = FakeClock(NOW)
    p = poller(app, cnemc(platform.base_url), session, clock, FakeSleep())
    await p.poll()
    clock.advance(minutes=10)
    second = await p.poll()  # the overlap asks for 08:00 again
    assert second.unchanged == 12 and second.inserted == 0
    (n,) = await query(db_url, "SELECT count(*) FROM rejected")
    assert n == (4,)


async def test_rate_limit_spaces_requests_and_remaining_zero_pauses(
    platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/a", Reply([]))
    platform.on("/b", Reply([], headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"}))
    sleep = FakeSleep()
    http = Http(
        session,
        source="t",
        base_url=platform.base_url,
        timeout=5,
        rate_limit=RateLimit(requests=2, per=timedelta(seconds=1)),
        sleep=sleep,
    )
    for _ in range(3):
        await http.get_json("/a")
    # 2 per second: the 2nd request waits ~0.5 s for its slot, the 3rd ~1 s.
    assert len(sleep.delays) == 2
    assert sleep.delays[0] == pytest.approx(0.5, abs=0.1)
    assert sleep.delays[1] == pytest.approx(1.0, abs=0.1)
    unlimited = Http(session, source="u", base_url=platform.base_url, timeout=5, sleep=sleep)
    await unlimited.get_json("/b")  # the platform says: none left for 30 s
    await unlimited.get_json("/a")
    assert sleep.delays[2] == pytest.approx(30.0, abs=0.5)


async def test_concurrency_per_source_is_bounded(
    app: App, platform: FakePlatform, session: aiohttp.ClientSession
) -> None:
    platform.on("/air", Reply([], delay=0.02))
    cfg = cnemc(platform.base_url, concurrency=2, initial_lookback="10h")
    report = await poller(app, cfg, session, FakeClock(NOW), FakeSleep()).poll()
    assert report.requests == 11 and report.error is None  # one per hour
    assert platform.peak == 2
