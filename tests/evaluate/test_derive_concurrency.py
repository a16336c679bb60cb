"""The deriver alongside writers and another deriver (``envmon import`` derives
while it writes; two ``envmon run`` instances both run the derive job)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import psycopg

from envmon.evaluate.derive import process_dirty
from envmon.timeutil import BEIJING

from .conftest import Feed

T0 = datetime(2025, 6, 1, tzinfo=BEIJING)


async def _three_days(feed: Feed) -> None:
    await feed(
        [
            (sid, p, T0 + timedelta(hours=h), 30.0 + h % 7)
            for sid in ("air-ty-1", "air-ty-2")
            for p in ("pm25", "pm10", "o3")
            for h in range(72)
        ]
    )


async def test_a_day_being_marked_stays_queued_and_the_deriver_does_not_wait(
    feed: Feed, db_url: str, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await _three_days(feed)
    async with await psycopg.AsyncConnection.connect(db_url) as writer:
        # A writer marking one of the days again, its transaction still open.
        await writer.execute(
            "UPDATE derive_dirty SET marked_at = now() WHERE station_id = 'air-ty-1' AND day = %s",
            (T0.date() + timedelta(days=1),),
        )
        stats = await asyncio.wait_for(process_dirty(conn), 20)
        assert stats.station_days == 6
        cur = await conn.execute("SELECT station_id, day FROM derive_dirty")
        assert await cur.fetchall() == [("air-ty-1", T0.date() + timedelta(days=1))]
        await writer.commit()
    # The writer committed: the day is derived again, and then the queue is empty.
    assert (await process_dirty(conn)).station_days == 1
    cur = await conn.execute("SELECT count(*) FROM derive_dirty")
    assert await cur.fetchone() == (0,)


async def test_two_derivers_at_once_derive_each_day_once(
    feed: Feed, db_url: str, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await _three_days(feed)
    async with await psycopg.AsyncConnection.connect(db_url) as other:
        first, second = await asyncio.gather(process_dirty(conn), process_dirty(other))
    assert first.station_days + second.station_days == 6
    cur = await conn.execute("SELECT count(*), count(DISTINCT (station_id, ts)) FROM air_hour")
    assert await cur.fetchone() == (2 * 72, 2 * 72)
    cur = await conn.execute("SELECT count(*) FROM air_day")
    assert await cur.fetchone() == (6,)


async def test_a_deriver_with_nothing_to_do_keeps_no_lock(
    feed: Feed, db_url: str, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    """A connection already in a transaction (not autocommit) derives in a
    savepoint; with nothing queued it must still end the transaction that holds
    the part locks, or every other deriver waits for it (the derive job of
    ``envmon import``'s pause, a test's connection)."""
    await conn.execute("SELECT 1")  # in a transaction now
    assert (await process_dirty(conn)).station_days == 0
    await _three_days(feed)
    async with await psycopg.AsyncConnection.connect(db_url) as other:
        stats = await asyncio.wait_for(process_dirty(other), 20)
    assert stats.station_days == 6


async def test_the_parts_at_once_derive_what_one_deriver_does(
    feed: Feed, db_url: str, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    """Two derivers on the two parts of the stations (envmon import's catch-up):
    the region values of a day read both parts' days, whichever commits first."""
    rows = [
        (sid, p, T0 + timedelta(hours=h), 20.0 + (h * 7 + len(sid)) % 41)
        for sid in ("air-ty-1", "air-ty-2", "air-ty-clean", "air-xz-1")
        for p in ("pm25", "pm10", "o3", "so2", "no2", "co")
        for h in range(72)
    ]
    await feed(rows)
    await process_dirty(conn)  # one deriver: the reference
    reference = await _derived(conn)
    await conn.execute("TRUNCATE air_hour, air_day, region_day")
    await conn.execute(
        "INSERT INTO derive_dirty (station_id, day) SELECT DISTINCT station_id, bj_day(ts)"
        " FROM reading"
    )
    await conn.commit()
    async with await psycopg.AsyncConnection.connect(db_url) as other:
        await other.execute("SET TIME ZONE 'Asia/Shanghai'")
        a, b = await asyncio.gather(process_dirty(conn, part=0), process_dirty(other, part=1))
    assert a.station_days and b.station_days  # both parts had work
    assert await _derived(conn) == reference


async def _derived(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> list[object]:
    out = []
    for table, key in (
        ("air_hour", "station_id, ts"),
        ("air_day", "station_id, day"),
        ("region_day", "region, day"),
    ):
        cur = await conn.execute(f"SELECT * FROM {table} ORDER BY {key}")
        out.append(await cur.fetchall())
    return out
