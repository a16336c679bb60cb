"""The stored daily values and AQI (computed in bulk) equal the scalar reference of every
station-day: ``station_day_values`` and ``aqi_columns`` on the exact daily aggregates."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

import psycopg

from envmon.evaluate.derive import (
    DAY_VALUES,
    aqi_columns,
    daily_mapping,
    process_dirty,
    station_day_values,
)
from envmon.standards import aqi as aqi_std
from envmon.timeutil import BEIJING

from .conftest import Feed

# 20 days either side of the edition switch (2026-03-01, the first 2026 day).
START = datetime(2026, 2, 9, tzinfo=BEIJING)
DAYS = 40
POLLUTANTS = ("so2", "no2", "co", "o3", "pm10", "pm25")
COUNTS = ("so2", "no2", "co", "o3", "pm10", "pm25", "o3_8h")
# IAQI breakpoints of both editions (HJ 633-2012 Table 1, HJ 633-2026 Table 3), in the
# published unit: a daily mean exactly on one, and means either side of it.
EDGES = {
    "so2": (50, 150, 475, 800),
    "no2": (40, 80, 180, 280),
    "co": (2, 4, 14, 24),
    "o3": (100, 160, 200, 215, 300, 800),
    "pm10": (50, 120, 150, 250, 350),
    "pm25": (35, 60, 75, 115, 150),
}
NOT_MONITORED = {"air-ty-2": ("so2", "co"), "air-xz-1": ("o3",)}

# The exact daily aggregates the scalar path starts from (the query derive used before
# the daily values were computed in bulk).
REFERENCE_SQL = """
SELECT station_id, bj_day(ts) AS day,
       avg(so2::numeric), avg(no2::numeric), avg(co::numeric), avg(pm10::numeric),
       avg(pm25::numeric), max(o3::numeric),
       max(o3_8h::numeric) FILTER (WHERE extract(hour FROM bj_time(ts)) >= 7),
       count(so2), count(no2), count(co), count(o3), count(pm10), count(pm25),
       count(o3_8h) FILTER (WHERE extract(hour FROM bj_time(ts)) >= 7)
FROM air_hour GROUP BY 1, 2 ORDER BY 1, 2
"""
STORED_SQL = """
SELECT station_id, day, so2, no2, co, pm10, pm25, o3_1h_max, o3_8h_max,
       n_so2, n_no2, n_co, n_o3, n_pm10, n_pm25, n_o3_8h,
       aqi, category, primary_pollutants, iaqi, complete, edition
FROM air_day ORDER BY 1, 2
"""


def _day_of_pollutant(rng: random.Random, p: str, short_day: bool) -> dict[int, float]:
    """The hourly values (hour → value) of one pollutant on one day, by a random case;
    on a ``short_day`` a few hours only (no valid daily value of any pollutant)."""
    scale = 10 if p == "co" else 1  # CO is published to 0.1 mg/m³
    edge = rng.choice(EDGES[p]) * scale

    def units(k: int) -> float:
        return k / scale

    hours = list(range(24))
    case = rng.choice(("random", "tie", "edge", "threshold", "few", "none", "o3_morning"))
    if short_day:
        case = "few"
    if case == "tie":
        # Alternating k and k + 1 over an even count: the mean is exactly k + ½ unit,
        # a GB/T 8170 tie (74.5 → 74, 75.5 → 76; CO 2.25 → 2.2, 2.35 → 2.4).
        k = edge + rng.choice((-1, 0))
        n = rng.choice((20, 24))
        return {h: units(k + h % 2) for h in rng.sample(hours, n)}
    if case == "edge":
        return {h: units(edge) for h in hours}  # exactly on the breakpoint
    if case == "threshold":
        # GB 3095 Table 4: a daily mean needs 20 hourly values; 19 is invalid.
        n = rng.choice((19, 20))
        return {h: units(edge + rng.randrange(-3, 4)) for h in rng.sample(hours, n)}
    if case == "few":
        top = min(2 * edge, 1400)  # within the validator's plausible range
        return {h: units(rng.randrange(0, top + 1)) for h in rng.sample(hours, 5)}
    if case == "none":
        return {}
    if case == "o3_morning" and p == "o3":
        # Hours 0–11 only: 7 valid 8-h windows (< 14), so the MDA8 counts only above
        # the 160 µg/m³ limit (HJ 663 §6.1.2) — at 160 it is NULL, at 160.5 it stands.
        v = rng.choice((150.0, 160.0, 160.5, 161.0, 230.0))
        return {h: v for h in range(12)}
    # Integers and half units, around the chosen breakpoint.
    return {h: units(max(0, edge + rng.randrange(-40, 41)) + rng.choice((0, 0.5))) for h in hours}


async def test_every_stored_day_matches_the_scalar_reference(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    rng = random.Random(20260301)
    for sid, nm in NOT_MONITORED.items():
        await conn.execute("UPDATE station SET not_monitored = %s WHERE id = %s", (list(nm), sid))
    await conn.commit()
    readings = []
    for sid in ("air-ty-1", "air-ty-2", "air-ty-clean", "air-xz-1"):
        for d in range(DAYS):
            day0 = START + timedelta(days=d)
            short_day = rng.random() < 0.1
            for p in POLLUTANTS:
                for h, v in _day_of_pollutant(rng, p, short_day).items():
                    readings.append((sid, p, day0 + timedelta(hours=h), v))
    await feed(readings)
    await process_dirty(conn)

    reference = await (await conn.execute(REFERENCE_SQL)).fetchall()
    stored = await (await conn.execute(STORED_SQL)).fetchall()
    assert len(stored) == len(reference) == 4 * DAYS
    seen: Counter[str] = Counter()
    for ref, got in zip(reference, stored, strict=True):
        sid, day = ref[0], ref[1]
        assert isinstance(sid, str) and isinstance(day, date)
        counts = dict(zip(COUNTS, (int(str(x)) for x in ref[9:16]), strict=True))
        values = station_day_values(ref[2:9], counts, day)
        aqi, category, primary, iaqi, complete, edition = aqi_columns(
            values, day, NOT_MONITORED.get(sid, ())
        )
        expected = (
            sid,
            day,
            *(values[k] for k in DAY_VALUES),
            *counts.values(),
            aqi,
            category,
            primary,
            json.loads(iaqi),
            complete,
            edition,
        )
        assert got == expected, (got, expected)
        _tally(seen, ref[2:9], counts, values, got)
        res = aqi_std.daily_aqi(
            daily_mapping(values), edition=edition, not_monitored=NOT_MONITORED.get(sid, ())
        )
        seen["2026 NA rule"] += res.aqi is None and res.aqi_computed is not None
    # The cases this test is for did occur.
    for case in (
        "edition 2012",
        "edition 2026",
        "tie",
        "on a breakpoint",
        "19 hours",
        "20 hours",
        "mda8 few windows above the limit",
        "mda8 few windows on the limit",
        "not monitored",
        "all null",
        "2026 NA rule",
        "incomplete",
    ):
        assert seen[case] > 0, (case, seen)


def _tally(
    seen: Counter[str],
    raw: tuple[object, ...],
    counts: dict[str, int],
    values: dict[str, float | None],
    got: tuple[object, ...],
) -> None:
    """Count the interesting cases of one station-day (stored row ``got``)."""
    edition, complete, aqi = got[21], got[20], got[16]
    seen[f"edition {edition}"] += 1
    means = dict(zip(("so2", "no2", "co", "pm10", "pm25"), raw[:5], strict=False))
    for p, mean in means.items():
        if isinstance(mean, Decimal) and counts[p] >= 20:
            unit = Decimal("0.1") if p == "co" else Decimal(1)
            seen["tie"] += (mean / unit) % 1 == Decimal("0.5")
            seen["on a breakpoint"] += any(mean == e for e in EDGES[p])
        seen["19 hours"] += counts[p] == 19
        seen["20 hours"] += counts[p] == 20
    mda8 = raw[6]
    if isinstance(mda8, Decimal) and counts["o3_8h"] < 14:
        seen["mda8 few windows above the limit"] += values["o3_8h_max"] is not None
        seen["mda8 few windows on the limit"] += mda8 == 160
    seen["not monitored"] += got[0] in NOT_MONITORED
    seen["all null"] += all(values[k] is None for k in DAY_VALUES) and aqi is None
    seen["incomplete"] += complete is False and aqi is not None
