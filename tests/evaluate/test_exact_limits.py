"""Issue 15: means exactly on a limit are classified as the standard says.

Each case has an exact decimal mean on a limit or a rounding tie; binary-float
averaging lands a hair beside it (e.g. 0.1 + 0.2 + 0.3 = 0.6000000000000001).
The derived tables hold the exact mean rounded per GB/T 8170 to the published
precision, and the class/IAQI comes from that value.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from fractions import Fraction

import psycopg

from envmon.evaluate.assessment import evaluate_year
from envmon.evaluate.derive import process_dirty
from envmon.evaluate.targets import Target
from envmon.timeutil import BEIJING

from .conftest import Feed
from .test_derive_air import LOW, fetch

Conn = psycopg.AsyncConnection[tuple[object, ...]]
D = datetime(2025, 1, 10, tzinfo=BEIJING)
# 24 hourly PM2.5 values whose exact mean is 75 (IAQI 2012: 100, 良).
PM_75 = [74.1, 75.9, 73.3, 76.7, 74.9, 75.1, 72.2, 77.8, 74.6, 75.4, 70.3, 79.7] * 2


def hours_of(
    station: str, start: datetime, pm25: list[float]
) -> list[tuple[str, str, datetime, float]]:
    rows = [(station, "pm25", start + timedelta(hours=h), v) for h, v in enumerate(pm25)]
    rows += [(station, p, start + timedelta(hours=h), v) for h in range(24) for p, v in LOW.items()]
    return rows


async def test_pm25_exact_mean_75_is_iaqi_100_for_station_city_and_zone(
    feed: Feed, conn: Conn
) -> None:
    assert sum(Fraction(str(v)) for v in PM_75) / 24 == 75
    await feed(hours_of("air-ty-1", D, PM_75))
    await process_dirty(conn)
    (pm25, aqi, cat) = (await fetch(conn, "SELECT pm25, aqi, category FROM air_day"))[0]
    assert (pm25, aqi, cat) == (75.0, 100, 2)  # 良, not 101 轻度污染
    regions = {r[0]: r[1:] for r in await fetch(conn, "SELECT region, pm25, aqi FROM region_day")}
    assert regions == {"taiyuan": (75.0, 100), "zone": (75.0, 100)}


async def test_2026_exact_35_5_rounds_to_36(feed: Feed, conn: Conn) -> None:
    # Exact mean 35.5 → GB/T 8170 half-even → 36 → HJ 633-2026 IAQI 52 (not 35 → 50).
    day = datetime(2026, 3, 10, tzinfo=BEIJING)
    values = [35.1, 35.9, 34.7, 36.3, 35.3, 35.7] * 4
    assert sum(Fraction(str(v)) for v in values) / 24 == Fraction(71, 2)
    await feed(hours_of("air-ty-1", day, values))
    await process_dirty(conn)
    (pm25, iaqi) = (await fetch(conn, "SELECT pm25, iaqi->>'pm25_24h' FROM air_day"))[0]
    assert (pm25, iaqi) == (36.0, "52")


async def test_co_mean_stored_at_one_decimal(feed: Feed, conn: Conn) -> None:
    # CO 24-h exact mean 2.2 → IAQI 55 (float arithmetic gives 56, standards.md §1.4);
    # 2.25 rounds half-even to 2.2 as well.
    rows = hours_of("air-ty-1", D, [30.0] * 24)
    rows = [r for r in rows if r[1] != "co"]
    rows += [("air-ty-1", "co", D + timedelta(hours=h), v) for h, v in enumerate([2.1, 2.4] * 12)]
    await feed(rows)
    await process_dirty(conn)
    (co, iaqi) = (await fetch(conn, "SELECT co, iaqi->>'co_24h' FROM air_day"))[0]
    assert (co, iaqi) == (2.2, "55")


async def test_tp_mean_on_class_iii_limit(feed: Feed, conn: Conn) -> None:
    # TP daily means 0.1, 0.2, 0.3 mg/L: exact monthly mean 0.2 = class III (limits
    # inclusive); the float mean 0.20000000000000004 would be class IV.
    m = datetime(2025, 7, 1, tzinfo=BEIJING)
    await feed(
        [
            ("water-1", "tp", m + timedelta(days=d), v, "N", "4h")
            for d, v in enumerate((0.1, 0.2, 0.3))
        ]
    )
    await process_dirty(conn)
    (value, cls) = (await fetch(conn, "SELECT value, class FROM water_month"))[0]
    assert (value, cls) == (0.2, 3)
    (section_cls, meets) = (
        await fetch(conn, "SELECT class, meets_target FROM water_section_month")
    )[0]
    assert (section_cls, meets) == (3, True)


async def test_zone_deducts_a_citys_dust(feed: Feed, conn: Conn) -> None:
    """A dust period entered for 太原 is deducted from the zone value too."""
    start = datetime(2025, 1, 1, tzinfo=BEIJING)
    rows: list[tuple[str, str, datetime, float]] = []
    for i in range(365):
        pm = 200.0 if i in (10, 11) else 30.0  # two dust days
        rows += hours_of("air-ty-1", start + timedelta(days=i), [pm] * 24)
    await feed(rows)
    await process_dirty(conn)
    await conn.execute(
        "INSERT INTO dust_period (region, starts_at, ends_at) VALUES ('taiyuan', %s, %s)",
        (start + timedelta(days=10), start + timedelta(days=12)),
    )
    targets = [
        Target(metric="pm25_annual_mean", region=r, target=30.0, target_year=2025)
        for r in ("taiyuan", "zone")
    ]
    for region in ("taiyuan", "zone"):
        res = await evaluate_year(conn, 2025, region, targets, as_of=date(2026, 1, 5))
        pm = res["pm25"]
        assert (pm["dust_days"], pm["mean"], pm["status"]) == (2, 30.0, "met"), region
        assert pm["mean_measured"] == 30.9  # (363 × 30 + 2 × 200) / 365 = 30.93


async def test_too_few_valid_days_is_insufficient_data(feed: Feed, conn: Conn) -> None:
    start = datetime(2025, 1, 1, tzinfo=BEIJING)
    rows: list[tuple[str, str, datetime, float]] = []
    for i in range(0, 365, 3):  # 122 valid days
        rows += hours_of("air-ty-1", start + timedelta(days=i), [20.0] * 24)
    await feed(rows)
    await process_dirty(conn)
    targets = [
        Target(metric="pm25_annual_mean", region="taiyuan", target=35.0, target_year=2025),
        Target(metric="water_good_ratio", region="taiyuan", target=0.8, target_year=2025),
    ]
    res = await evaluate_year(conn, 2025, "taiyuan", targets, as_of=date(2026, 1, 5))
    pm = res["pm25"]
    assert (pm["status"], pm["valid_days"], pm["valid_year"]) == ("insufficient_data", 122, False)
    assert sum(pm["days_per_month"]) == 122 and pm["short_months"][2] == 9
    # 太原 has no water section with data: "no data", not "not met".
    assert (res["water"]["sections"], res["water"]["status"]) == (0, "no_data")


async def test_city_o3_both_ways(feed: Feed, conn: Conn) -> None:
    """City O3 MDA8: of the city-mean hourly series (default) or the mean of station MDA8s.

    太原's two points peak 12 hours apart (200 µg/m³ for 8 hours each, 40 otherwise):
    each station's MDA8 is 200, the city-mean series never exceeds (200 + 40) / 2 = 120.
    """
    rows: list[tuple[str, str, datetime, float]] = []
    for sid, peak in (("air-ty-1", range(0, 8)), ("air-ty-2", range(12, 20))):
        rows += hours_of(sid, D, [30.0] * 24)
        rows = [r for r in rows if not (r[0] == sid and r[1] == "o3")]
        rows += [
            (sid, "o3", D + timedelta(hours=h), 200.0 if h in peak else 40.0) for h in range(24)
        ]
    await feed(rows)
    await process_dirty(conn)
    got = dict(await fetch(conn, "SELECT region, o3_8h_max FROM region_day"))  # type: ignore[arg-type]
    assert got == {"taiyuan": 120.0, "zone": 120.0}
    await conn.execute(
        "INSERT INTO derive_dirty (station_id, day) VALUES ('air-ty-1', %s)", (D.date(),)
    )
    await process_dirty(conn, city_o3="station_mean")
    got = dict(await fetch(conn, "SELECT region, o3_8h_max FROM region_day"))  # type: ignore[arg-type]
    assert got == {"taiyuan": 200.0, "zone": 200.0}


async def test_incomplete_days_count_symmetrically(feed: Feed, conn: Conn) -> None:
    """HJ 633-2026 §5.3.1 makes a day missing a pollutant NA only when its AQI ≤ 100:
    counting only published AQIs would make incomplete days bad-only (issue 15)."""
    start = datetime(2026, 4, 1, tzinfo=BEIJING)
    rows: list[tuple[str, str, datetime, float]] = []
    for i in range(30):
        day = start + timedelta(days=i)
        pm = 150.0 if i >= 20 else 20.0  # days 20–29 bad (轻度 or worse), the rest good
        day_rows = hours_of("air-ty-1", day, [pm] * 24)
        if i < 10:  # days 0–9: no CO at all → incomplete, good
            day_rows = [r for r in day_rows if r[1] != "co"]
        rows += day_rows
    await feed(rows)
    await process_dirty(conn)
    targets = [Target(metric="good_day_ratio", region="taiyuan", target=0.5, target_year=2026)]

    async def good(edition: int | None, incomplete: str) -> tuple[int, int]:
        res = await evaluate_year(
            conn, 2026, "taiyuan", targets, as_of=date(2026, 4, 30), edition=edition,
            incomplete=incomplete,  # type: ignore[arg-type]
        )  # fmt: skip
        return res["good_days"]["good"], res["good_days"]["valid"]

    assert await good(2012, "computed") == (20, 30)
    assert await good(2026, "computed") == (20, 30)  # the same days count in both editions
    assert await good(2026, "published") == (10, 20)  # the biased count, still selectable


async def test_dust_by_day_or_by_hour(feed: Feed, conn: Conn) -> None:
    """A 3-hour dust period: the whole day deducted (default) or only its hours."""
    start = datetime(2025, 5, 1, tzinfo=BEIJING)
    rows: list[tuple[str, str, datetime, float]] = []
    for i in range(3):
        pm = [300.0 if i == 1 and 10 <= h < 13 else 30.0 for h in range(24)]
        rows += hours_of("air-ty-1", start + timedelta(days=i), pm)
    await feed(rows)
    await process_dirty(conn)
    day1 = start + timedelta(days=1)
    await conn.execute(
        "INSERT INTO dust_period (region, starts_at, ends_at) VALUES ('taiyuan', %s, %s)",
        (day1 + timedelta(hours=10), day1 + timedelta(hours=13)),
    )
    targets = [Target(metric="pm25_annual_mean", region="taiyuan", target=35.0, target_year=2025)]

    async def pm(unit: str, region: str = "taiyuan") -> tuple[float, float, int]:
        res = await evaluate_year(
            conn, 2025, region, targets, as_of=date(2025, 5, 3),
            dust_unit=unit,  # type: ignore[arg-type]
        )  # fmt: skip
        p = res["pm25"]
        return p["mean"], p["mean_measured"], p["dust_days"]

    # Measured: day 2 = (21 × 30 + 3 × 300) / 24 = 63.75 → 64; mean (30 + 64 + 30) / 3.
    assert await pm("day") == (30.0, 41.3, 1)
    assert await pm("hour") == (30.0, 41.3, 0)  # day 2 kept at its 21 clean hours: 30
    assert await pm("hour", "zone") == (30.0, 41.3, 0)
