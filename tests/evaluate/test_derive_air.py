"""Derived air values against hand-computed expectations (GB 3095 validity, HJ 633 AQI)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import psycopg

from envmon.evaluate.derive import process_dirty
from envmon.timeutil import BEIJING

from .conftest import Feed

D = datetime(2025, 1, 10, tzinfo=BEIJING)
LOW = {"so2": 10.0, "no2": 20.0, "co": 0.5, "o3": 40.0, "pm10": 40.0}


def day_of(
    station: str, start: datetime, pm25: float, hours: range = range(24), **over: float
) -> list[tuple[str, str, datetime, float]]:
    vals = {**LOW, "pm25": pm25, **over}
    return [(station, p, start + timedelta(hours=h), v) for h in hours for p, v in vals.items()]


async def fetch(
    conn: psycopg.AsyncConnection[tuple[object, ...]], q: str, *a: object
) -> list[tuple[object, ...]]:
    return await (await conn.execute(q, a)).fetchall()


async def test_daily_values_and_aqi(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    # PM2.5 75 all day → 24-h mean 75 → HJ 633-2012 IAQI 100 (a breakpoint): 良, primary PM2.5.
    await feed(day_of("air-ty-1", D, 75.0))
    stats = await process_dirty(conn)
    assert stats.station_days == 1
    assert stats.air_hours == 24 and stats.air_days == 1
    (row,) = await fetch(
        conn,
        "SELECT pm25, n_pm25, aqi, category, primary_pollutants, edition,"
        " complete FROM air_day WHERE station_id = 'air-ty-1'",
    )
    assert row == (75.0, 24, 100, 2, ["pm25"], 2012, True)
    # A corrected hour changes the mean: 23 × 75 + 99 = 1824 / 24 = 76 → IAQI 102 (101.25 ↑).
    await feed([("air-ty-1", "pm25", D + timedelta(hours=5), 99.0)])
    stats = await process_dirty(conn)
    assert stats.station_days == 1
    (row,) = await fetch(conn, "SELECT pm25, aqi FROM air_day WHERE station_id = 'air-ty-1'")
    assert row == (76.0, 102)
    # Nothing queued: nothing recomputed.
    assert (await process_dirty(conn)).station_days == 0


async def test_validity_20_hours_and_invalid_flags(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await feed(day_of("air-ty-1", D, 50.0, range(20)))  # exactly 20 h: valid
    await feed(day_of("air-ty-2", D, 50.0, range(19)))  # 19 h: invalid
    # 21 hours, but two flagged M (maintenance) → 19 valid hours → invalid day.
    rows = day_of("air-xz-1", D, 50.0, range(21))
    await feed(rows)
    await feed([("air-xz-1", "pm25", D + timedelta(hours=h), 50.0, "M", "1h") for h in (3, 4)])
    await process_dirty(conn)
    got = dict(await fetch(conn, "SELECT station_id, pm25 FROM air_day"))  # type: ignore[arg-type]
    assert got == {"air-ty-1": 50.0, "air-ty-2": None, "air-xz-1": None}


async def test_minute_data_needs_45_minutes(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    h0 = D + timedelta(hours=8)
    h1 = D + timedelta(hours=9)
    await feed(
        [
            ("air-ty-1", "no2", h0 + timedelta(minutes=m), 40.0 + m % 2, "N", "1min")
            for m in range(45)
        ]
    )
    await feed(
        [("air-ty-1", "no2", h1 + timedelta(minutes=m), 40.0, "N", "1min") for m in range(44)]
    )
    await process_dirty(conn)
    got = dict(await fetch(conn, "SELECT ts, no2 FROM air_hour"))  # type: ignore[arg-type]
    assert got == {h0: (23 * 40.0 + 22 * 41.0) / 45}  # the 44-minute hour is not an hour


async def test_an_hourly_reading_wins_over_the_minutes_of_its_hour(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    """A valid hourly value is the hour's value; the 1-min data (>= 45) stand in
    only where it is missing, flagged invalid or invalidated by a review."""
    h = [D + timedelta(hours=k) for k in range(8, 12)]
    minutes = [
        ("air-ty-1", "no2", hour + timedelta(minutes=m), 30.0, "N", "1min")
        for hour in h
        for m in range(45)
    ]
    await feed(minutes)
    await feed(
        [
            ("air-ty-1", "no2", h[0], 20.0, "N", "1h"),  # valid: wins (below the minutes)
            ("air-ty-1", "no2", h[1], 60.0, "M", "1h"),  # maintenance: the minutes
            ("air-ty-1", "no2", h[2], 70.0, "N", "1h"),  # invalidated below: the minutes
        ]
    )
    (action,) = await (
        await conn.execute(
            "INSERT INTO review_action (action, station_id, parameter, ts_from, ts_to, reason,"
            " by_name, readings) VALUES ('invalidate', 'air-ty-1', 'no2', %s, %s, 'test',"
            " 'test', 1) RETURNING id",
            (h[2], h[3]),
        )
    ).fetchone() or (None,)
    await conn.execute(
        "INSERT INTO review_mark (station_id, parameter, period, ts, invalidated_by,"
        " invalidated_at) VALUES ('air-ty-1', 'no2', '1h', %s, %s, now())",
        (h[2], action),
    )
    await conn.commit()
    await process_dirty(conn)
    got = dict(await fetch(conn, "SELECT ts, no2 FROM air_hour"))  # type: ignore[arg-type]
    assert got == {h[0]: 20.0, h[1]: 30.0, h[2]: 30.0, h[3]: 30.0}


async def test_o3_8h_and_mda8(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    # O3 = 100 except 200 from 12:00 to 19:00 (8 hours): the window ending 20:00 is 200.
    rows = [
        ("air-ty-1", "o3", D + timedelta(hours=h), 200.0 if 12 <= h <= 19 else 100.0)
        for h in range(24)
    ]
    await feed(rows)
    await process_dirty(conn)
    (mda8, n) = (await fetch(conn, "SELECT o3_8h_max, n_o3_8h FROM air_day"))[0]
    assert (mda8, n) == (200.0, 17)
    # Hour 05: window 22:00(prev)…05:00 holds only 6 hours of this day → still valid (>= 6).
    got = dict(await fetch(conn, "SELECT ts, o3_8h FROM air_hour"))  # type: ignore[arg-type]
    assert got[D + timedelta(hours=5)] == 100.0
    assert got[D + timedelta(hours=4)] is None  # 5 of 8: invalid


async def test_city_and_zone_exclude_clean_control_points(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await feed(day_of("air-ty-1", D, 60.0))
    await feed(day_of("air-ty-2", D, 80.0))
    await feed(day_of("air-ty-clean", D, 10.0))  # 上兰-like: not assessed
    await feed(day_of("air-xz-1", D, 40.0))
    await process_dirty(conn)
    got = {
        r[0]: r[1:]
        for r in await fetch(
            conn, "SELECT region, pm25, n_stations, aqi FROM region_day ORDER BY region"
        )
    }
    # 太原 = (60 + 80) / 2 = 70 → IAQI 2012: 50 + 50/40 × 35 = 93.75 → 94.
    assert got["taiyuan"] == (70.0, 2, 94)
    assert got["xinzhou"] == (40.0, 1, 57)  # 50 + 50/40 × 5 = 56.25 → 57
    assert got["zone"] == (60.0, 3, 82)  # (60 + 80 + 40) / 3 = 60 → 81.25 → 82


async def test_edition_switch_on_2026_03_01(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    before = datetime(2026, 2, 28, tzinfo=BEIJING)
    after = datetime(2026, 3, 1, tzinfo=BEIJING)
    await feed(day_of("air-ty-1", before, 75.0) + day_of("air-ty-1", after, 75.0))
    await process_dirty(conn)
    got = {
        r[0]: r[1:] for r in await fetch(conn, "SELECT day, aqi, edition FROM air_day ORDER BY day")
    }
    # PM2.5 75: HJ 633-2012 → 100; HJ 633-2026 (IAQI-100 point at 60) → 113.64 → 114.
    assert got[date(2026, 2, 28)] == (100, 2012)
    assert got[date(2026, 3, 1)] == (114, 2026)
    # Hourly 2026 report: PM 1-h against daily breakpoints; 2012: 24-h moving (>= 20 h).
    hours = dict(await fetch(conn, "SELECT ts, aqi FROM air_hour"))  # type: ignore[arg-type]
    assert hours[after + timedelta(hours=0)] == 114
    assert hours[before + timedelta(hours=18)] is None or hours[before + timedelta(hours=18)] <= 100
    assert hours[before + timedelta(hours=23)] == 100


async def test_so2_above_800_falls_back_to_24h_in_2012(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    rows = day_of("air-ty-1", D, 20.0)
    rows = [r for r in rows if r[1] != "so2"]
    rows += [
        ("air-ty-1", "so2", D + timedelta(hours=h), 900.0 if h == 23 else 100.0) for h in range(24)
    ]
    await feed(rows)
    await process_dirty(conn)
    (aqi, primary, so2_24h) = (
        await fetch(
            conn,
            "SELECT aqi, primary_pollutants, so2_24h FROM air_hour WHERE ts = %s",
            D + timedelta(hours=23),
        )
    )[0]
    # HJ 633-2012 Table 1 note 2: no 1-h IAQI above 800; the 24-h mean
    # (23 × 100 + 900) / 24 = 133.3 gives 50 + 50/100 × 83.3 = 91.7 → 92.
    assert so2_24h == (23 * 100 + 900) / 24
    assert (aqi, primary) == (92, ["so2"])
