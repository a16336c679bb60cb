"""The stored hourly AQI (computed in bulk) equals the scalar hourly_aqi of every stored hour."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import psycopg

from envmon.evaluate.derive import HOURLY_ROW, hourly_mapping, process_dirty
from envmon.standards import aqi as aqi_std
from envmon.timeutil import BEIJING

from .conftest import Feed

# Across the edition switch (the hour starting 2026-03-01 00:00 Beijing is the first 2026 hour).
START = datetime(2026, 2, 27, tzinfo=BEIJING)


async def test_every_stored_hour_matches_the_scalar_report(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    rng = random.Random(1616)
    # air-ty-2 does not monitor SO2 or CO ("/" in its feed): neither an IAQI nor missing.
    await conn.execute("UPDATE station SET not_monitored = '{so2,co}' WHERE id = 'air-ty-2'")
    await conn.commit()
    readings = []
    for sid in ("air-ty-1", "air-ty-2"):
        for h in range(4 * 24):
            ts = START + timedelta(hours=h)
            for p, top in (("so2", 1200), ("no2", 400), ("o3", 400), ("pm10", 400), ("pm25", 300)):
                if rng.random() < 0.08:
                    continue  # a missing hour of this pollutant
                # Half-units and band edges: GB/T 8170 ties (75.5 → 76, 76.5 → 76).
                v = rng.choice((rng.randrange(0, top), rng.randrange(0, top) + 0.5, 75.0, 800.5))
                readings.append((sid, p, ts, float(v)))
            if rng.random() > 0.08:
                readings.append((sid, "co", ts, rng.randrange(0, 600) / 100))  # 0.25 → 0.2
    await feed(readings)
    await process_dirty(conn)
    rows = await (
        await conn.execute(
            "SELECT station_id, ts, so2, no2, co, o3, o3_8h, pm10, pm25, pm10_24h, pm25_24h,"
            " so2_24h, aqi, category, primary_pollutants, edition FROM air_hour"
            " ORDER BY station_id, ts"
        )
    ).fetchall()
    assert len(rows) == 2 * 4 * 24
    editions = set()
    names = ("so2", "no2", "co", "o3", "o3_8h", "pm10", "pm25", "pm10_24h", "pm25_24h", "so2_24h")
    for r in rows:
        by_name = dict(zip(names, r[2:12], strict=True))
        ed = aqi_std.edition_for(r[1])
        res = aqi_std.hourly_aqi(
            hourly_mapping([by_name[k] for k in HOURLY_ROW], ed),
            edition=ed,
            not_monitored=("so2", "co") if r[0] == "air-ty-2" else (),
        )
        assert r[12:] == (res.aqi, res.category, res.primary, ed), r
        editions.add(ed)
    assert editions == {2012, 2026}
