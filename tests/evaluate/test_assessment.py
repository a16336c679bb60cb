"""`evaluate_year` on a synthetic year whose numbers are computed by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import psycopg
import pytest

from envmon.errors import ConfigError
from envmon.evaluate.assessment import evaluate_year
from envmon.evaluate.derive import process_dirty
from envmon.evaluate.targets import Target
from envmon.timeutil import BEIJING

from .conftest import Feed

Y0 = datetime(2025, 1, 1, tzinfo=BEIJING)
TARGETS = [
    Target(
        metric="pm25_annual_mean",
        region="zone",
        baseline_year=2020,
        baseline=50.0,
        target_year=2025,
        change=-0.20,
    ),
    Target(
        metric="good_day_ratio",
        region="zone",
        baseline_year=2020,
        baseline=0.80,
        target_year=2025,
        change=0.10,
    ),
    Target(metric="water_good_ratio", region="zone", target_year=2025, target=1.0),
]


def pm25_of(day_index: int) -> float:
    """Days 1–300: 30; 301–330: 70 (良 under 2012, 轻度 under 2026); 331–365: 90."""
    return 30.0 if day_index <= 300 else 70.0 if day_index <= 330 else 90.0


@pytest.fixture
async def year(feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    rows = []
    for i in range(1, 366):
        # Days 100–102 and 200–201 have only 19 hours: invalid days (GB 3095 Table 4
        # needs 20); April keeps 27 valid days, July 29, so the year stays valid.
        hours = range(19) if i in (100, 101, 102, 200, 201) else range(24)
        for sid in ("air-ty-1", "air-xz-1"):
            # The other pollutants low and constant (their IAQIs stay below PM2.5's):
            # every indicator present, so HJ 633-2026 §5.3.1 (NA) never applies.
            for p, v in (
                ("pm25", pm25_of(i)),
                ("pm10", 40.0),
                ("so2", 8.0),
                ("no2", 20.0),
                ("co", 0.4),
                ("o3", 50.0),
            ):
                rows += [(sid, p, Y0 + timedelta(days=i - 1, hours=h), v) for h in hours]
        rows += [
            ("water-1", "nh3n", Y0 + timedelta(days=i - 1, hours=h), 0.8, "N", "4h")
            for h in (0, 12)
        ]
    await feed(rows)
    await process_dirty(conn)


@pytest.mark.usefixtures("year")
async def test_synthetic_year_by_hand(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    """One imported year (≈ 100,000 readings), three questions asked of it."""
    await _finished_year(conn)
    await _forced_2026_edition(conn)
    await _current_year_projection(conn)


async def _finished_year(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    res = await evaluate_year(conn, 2025, "zone", TARGETS, as_of=date(2026, 3, 1))
    assert res["edition"] == 2012 and res["finished"]
    pm = res["pm25"]
    # 360 valid days: (295 × 30 + 30 × 70 + 35 × 90) / 360 = 14100 / 360 = 39.17.
    assert (pm["mean"], pm["valid_days"], pm["invalid_days"]) == (39.2, 360, 5)
    assert (pm["baseline"], pm["target"], pm["status"]) == (50.0, 40.0, "met")
    gd = res["good_days"]
    # 2012: PM2.5 30 → IAQI 43 (优), 70 → 94 (良), 90 → 119 (轻度).
    assert (gd["good"], gd["valid"], gd["ratio"]) == (325, 360, round(325 / 360, 4))
    assert gd["by_category"]["优"] == 295 and gd["by_category"]["轻度污染"] == 35
    assert (gd["target"], gd["status"]) == (0.9, "met")
    w = res["water"]
    assert (w["good"], w["sections"], w["ratio"], w["status"]) == (1, 1, 1.0, "met")
    assert w["sections_detail"][0]["roman"] == "Ⅲ"  # NH3-N 0.8 mg/L: class III


async def _forced_2026_edition(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    res = await evaluate_year(conn, 2025, "zone", TARGETS, as_of=date(2026, 3, 1), edition=2026)
    gd = res["good_days"]
    # HJ 633-2026: PM2.5 70 → 100 + 50/55 × 10 = 109.1 → 110: no longer good.
    assert (res["edition"], gd["good"], gd["status"]) == (2026, 295, "not_met")


async def _current_year_projection(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    res = await evaluate_year(
        conn,
        2025,
        "taiyuan",
        [
            *TARGETS,
            Target(
                metric="pm25_annual_mean",
                region="taiyuan",
                baseline=50.0,
                baseline_year=2020,
                target_year=2025,
                change=-0.2,
            ),
            Target(
                metric="good_day_ratio",
                region="taiyuan",
                baseline=0.8,
                baseline_year=2020,
                target_year=2025,
                change=0.1,
            ),
        ],
        as_of=date(2025, 6, 30),
    )
    pm = res["pm25"]
    assert res["days_elapsed"] == 181 and not res["finished"]
    # Year to date 30 µg/m³ on 178 valid days, no previous year: projection = 30.
    assert (pm["mean"], pm["projection"], pm["status"]) == (30.0, 30.0, "on_track")
    # What the remaining 184 days may average: (40 × 362 − 30 × 178) / 184 = 49.674.
    assert pm["remaining_max_mean"] == 49.7
    gd = res["good_days"]
    assert gd["allowed_non_good_days"] == int(365 * (1 - 0.9))
    assert gd["status"] == "on_track"


async def test_baseline_from_data_needs_data(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    t = [
        Target(
            metric="pm25_annual_mean",
            region="zone",
            baseline_year=2020,
            baseline="from_data",
            target_year=2025,
            change=-0.2,
        )
    ]
    with pytest.raises(ConfigError, match="no 2020 data"):
        await evaluate_year(conn, 2025, "zone", t, as_of=date(2026, 1, 5))


async def test_2026_across_the_switch_both_editions(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    # PM2.5 75 µg/m³ on 2026-02-28 and on 2026-03-01, the other pollutants low.
    rows = []
    for day in (datetime(2026, 2, 28, tzinfo=BEIJING), datetime(2026, 3, 1, tzinfo=BEIJING)):
        for p, v in (
            ("pm25", 75.0),
            ("pm10", 40.0),
            ("so2", 8.0),
            ("no2", 20.0),
            ("co", 0.4),
            ("o3", 50.0),
        ):
            rows += [("air-ty-1", p, day + timedelta(hours=h), v) for h in range(24)]
    await feed(rows)
    await process_dirty(conn)
    as_of = date(2026, 3, 1)
    by_date = await evaluate_year(conn, 2026, "zone", TARGETS, as_of=as_of)
    old = await evaluate_year(conn, 2026, "zone", TARGETS, as_of=as_of, edition=2012)
    new = await evaluate_year(conn, 2026, "zone", TARGETS, as_of=as_of, edition=2026)
    # By date: 02-28 under HJ 633-2012 (IAQI 100, 良), 03-01 under 2026 (114, 轻度).
    assert by_date["edition"] == "by_date"
    assert (by_date["good_days"]["good"], by_date["good_days"]["valid"]) == (1, 2)
    assert (old["good_days"]["good"], new["good_days"]["good"]) == (2, 0)
    assert old["pm25"]["mean"] == new["pm25"]["mean"] == 75.0
