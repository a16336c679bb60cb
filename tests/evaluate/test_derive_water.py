"""Water: daily and monthly means, GB 3838 classes, the section class and main pollutants."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from fractions import Fraction

import psycopg

from envmon.evaluate.derive import process_dirty
from envmon.timeutil import BEIJING

from .conftest import Feed

M = datetime(2025, 7, 1, tzinfo=BEIJING)


async def test_monthly_class_and_main_pollutants(
    feed: Feed, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    rows = []
    for d in range(31):
        for h in range(0, 24, 4):
            t = M + timedelta(days=d, hours=h)
            # NH3-N alternates 1.4 / 1.8 → monthly mean 1.6 (class V: 1.5 < 1.6 <= 2.0),
            # CODMn 7 (class IV), DO 6.5 (class II), TP 0.15 (class III), pH 7.8.
            rows += [
                ("water-1", "nh3n", t, 1.4 if h % 8 == 0 else 1.8, "N", "4h"),
                ("water-1", "codmn", t, 7.0, "N", "4h"),
                ("water-1", "do", t, 6.5, "N", "4h"),
                ("water-1", "tp", t, 0.15, "N", "4h"),
                ("water-1", "ph", t, 7.8, "N", "4h"),
                ("water-1", "temp", t, 22.0, "N", "4h"),
            ]
    await feed(rows)
    stats = await process_dirty(conn)
    assert stats.water_months == 1
    classes = dict(
        await (
            await conn.execute(
                "SELECT parameter, class FROM water_month WHERE station_id = 'water-1'"
            )
        ).fetchall()
    )
    assert classes == {"nh3n": 5, "codmn": 4, "do": 2, "tp": 3, "ph": 1, "temp": None}
    (cls, target, meets, main, exc) = (
        await (
            await conn.execute(
                "SELECT class, target_class, meets_target, main_pollutants, exceedance"
                " FROM water_section_month"
            )
        ).fetchone()
    ) or ()
    assert (cls, target, meets) == (5, 3, False)
    # Worst class first: NH3-N (V, 0.6× over class III 1.0), then CODMn (IV, 0.17×).
    assert main == ["nh3n", "codmn"]
    assert exc == {"nh3n": 0.6, "codmn": 0.167}
    days = (await (await conn.execute("SELECT count(DISTINCT day) FROM water_day")).fetchone()) or (
        0,
    )
    assert days[0] == 31
    # A late sample in one day recomputes that day and the month, nothing else.
    await feed([("water-1", "nh3n", M + timedelta(days=3, hours=2), 9.0, "N", "1h")])
    stats = await process_dirty(conn)
    assert (stats.station_days, stats.water_months) == (1, 1)
    (v,) = (
        await (
            await conn.execute(
                "SELECT value FROM water_day WHERE day = %s AND parameter = 'nh3n'",
                (date(2025, 7, 4),),
            )
        ).fetchone()
    ) or (None,)
    # The exact mean (numeric): 18.6 / 7, not the float sum's 2.6571428571428575.
    assert v == float(Fraction("18.6") / 7)
