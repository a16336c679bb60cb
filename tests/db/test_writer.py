"""The sink and its writer against a real PostgreSQL: COPY → upsert counts, rejects, the spool."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from envmon.db.connection import open_pool
from envmon.db.embedded import free_port
from envmon.db.spool import Spool
from envmon.db.writer import Writer, dirty_days
from envmon.ingest.sink import Sink
from envmon.schemas.readings import RawReading, ReadingBatch, Validator
from envmon.settings import Settings
from envmon.timeutil import BEIJING

T0 = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
VALIDATOR = Validator({"air-a": "air", "air-b": "air", "water-a": "water"})


def raw(station: str, param: str, hour: int, value: object, flag: str = "N") -> RawReading:
    return RawReading(station, param, T0 + timedelta(hours=hour), value, flag, "1h")  # type: ignore[arg-type]


def rows(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT station_id, parameter, period, ts, value, flag, source FROM reading"
            " ORDER BY station_id, parameter, ts"
        ).fetchall()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, pool_min_size=0)


async def test_insert_resend_correct(db_url: str, settings: Settings, tmp_path: Path) -> None:
    v = VALIDATOR.validate(
        [raw("air-a", "pm25", h, 30 + h) for h in range(24)] + [raw("air-b", "co", 0, 1.2)], "test"
    )
    assert not v.rejected
    async with open_pool(settings, url=db_url) as pool:
        w = Sink(Writer(pool), Spool(tmp_path / "spool"))
        r1 = await w.store_batch(v.batch)
        assert (r1.inserted, r1.updated, r1.unchanged) == (25, 0, 0)
        # The fast path (one COPY) queued the station-days for derive.
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT DISTINCT station_id FROM derive_dirty ORDER BY 1")
            assert [r[0] for r in await cur.fetchall()] == ["air-a", "air-b"]
        # An identical resend changes nothing.
        r2 = await w.store_batch(v.batch)
        assert (r2.inserted, r2.updated, r2.unchanged) == (0, 0, 25)
        # A late correction of one value and one flag replaces them and is counted as updated.
        v3 = VALIDATOR.validate(
            [
                raw("air-a", "pm25", 0, 99.5),
                raw("air-a", "pm25", 1, 31, "M"),
                raw("air-a", "pm25", 2, 32),
            ],
            "test2",
        )
        r3 = await w.store_batch(v3.batch)
        assert (r3.inserted, r3.updated, r3.unchanged) == (0, 2, 1)
    got = rows(db_url)
    assert len(got) == 25
    first = [r for r in got if r[0] == "air-a"][:2]
    assert first[0][3] == T0 and first[0][4] == 99.5 and first[0][6] == "test2"
    assert first[1][5] == "M"


async def test_same_key_twice_in_one_batch_keeps_the_last(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    v = VALIDATOR.validate([raw("air-a", "o3", 0, 10), raw("air-a", "o3", 0, 12)], "t")
    async with open_pool(settings, url=db_url) as pool:
        r = await Sink(Writer(pool), Spool(tmp_path / "s")).store_batch(v.batch)
    assert (r.inserted, r.duplicates) == (1, 1)
    assert rows(db_url)[0][4] == 12


async def test_rejects_are_kept_with_reason(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    v = VALIDATOR.validate(
        [
            raw("air-a", "pm25", 0, 35),
            raw("nowhere", "pm25", 0, 1),
            raw("air-a", "pm25", 1, -4),
            raw("air-a", "pm25", 2, "n/a"),
            raw("water-a", "pm25", 0, 5),
            raw("air-a", "pm25", 3, float("inf")),
            raw("air-a", "pm25", 4, 99999),
        ],
        "test",
    )
    assert len(v.batch) == 1
    async with open_pool(settings, url=db_url) as pool:
        r = await Sink(Writer(pool), Spool(tmp_path / "s")).store(v)
    assert r.rejected == 6
    with psycopg.connect(db_url) as conn:
        got = dict(conn.execute("SELECT raw, reason FROM rejected ORDER BY id").fetchall())
    reasons = list(got.values())
    assert reasons[0] == "unknown station 'nowhere'"
    assert reasons[1].startswith("negative concentration")
    assert reasons[2] == "value 'n/a' is not a number"
    assert reasons[3] == "parameter 'pm25' is not measured at water station 'water-a'"
    assert reasons[4] == "value is not finite"
    assert "outside the plausible range" in reasons[5]
    assert all(k for k in got)  # the raw form is kept


async def test_database_down_spools_then_replays_once(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    batches = [VALIDATOR.validate([raw("air-a", "pm25", h, h)], "t").batch for h in range(3)]
    bad = VALIDATOR.validate([raw("x", "pm25", 0, 1)], "t").rejected
    dead = f"postgresql://envmon@127.0.0.1:{free_port()}/envmon?connect_timeout=1"
    async with open_pool(settings, url=dead) as pool:
        w = Sink(Writer(pool, timeout=1.0), spool)
        for b in batches:
            r = await w.store_batch(b, bad)
            assert r.spooled == 1 and r.inserted == 0
    assert len(spool.pending()) == 6  # three batches, three reject files, in order
    async with open_pool(settings, url=db_url) as pool:
        w = Sink(Writer(pool), spool)
        # The next write drains the spool first, in order, then writes its own batch.
        r = await w.store_batch(VALIDATOR.validate([raw("air-a", "pm25", 5, 5)], "t").batch)
        assert r.inserted == 1
        assert spool.pending() == []
        # Replaying the same batches again (a crash between commit and delete) adds nothing.
        for b in batches:
            spool.append_batch(b)
        again = await w.replay_spool()
        assert (again.inserted, again.unchanged) == (0, 3)
    assert [r[4] for r in rows(db_url)] == [0.0, 1.0, 2.0, 5.0]
    with psycopg.connect(db_url) as conn:
        # The same bad reading three times is one reject seen three times (issue 19).
        assert conn.execute("SELECT count(*), sum(times) FROM rejected").fetchone() == (1, 3)


async def test_the_copy_stores_every_field_as_sent(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    """The fast path builds binary COPY rows from byte prefixes of different
    lengths (station, parameter, period, flag, source): every field must land
    in its own column, a non-ASCII source and extreme values included, and the
    days queued for derive must be the Beijing days ``bj_day`` gives — across
    midnight, and in 1988, when Beijing kept summer time (UTC+9)."""
    base = datetime(1988, 7, 1, 15, 30, tzinfo=UTC)  # 00:30 on 2 July in summer time
    sent = [
        ("air-a", "pm25", "1h", base, 0.0, "N"),
        ("air-b", "co", "1h", base, 1e-300, "T"),
        ("water-a", "codmn", "1h", base + timedelta(hours=1), 123456789.125, "M"),
        ("air-a", "o3", "1min", base - timedelta(hours=3), -0.5, "D"),
        ("air-b", "pm10", "1d", T0, 75.0, "N"),
        ("water-a", "nh3n", "1h", T0 + timedelta(hours=16), 0.15, "N"),  # 00:00 the next day
    ]
    batch = ReadingBatch(
        "import:太原市站点 2025.csv",
        *(np.array([r[i] for r in sent], dtype=object) for i in range(3)),
        np.array([r[3].astimezone(UTC).replace(tzinfo=None) for r in sent], dtype="datetime64[us]"),
        np.array([r[4] for r in sent], dtype=np.float64),
        np.array([r[5] for r in sent], dtype=object),
    )
    async with open_pool(settings, url=db_url) as pool:
        result, unwritten = await Writer(pool).write_readings(batch)
        assert unwritten == [] and result.inserted == len(sent)
    with psycopg.connect(db_url) as conn:
        stored = conn.execute(
            "SELECT station_id, parameter, period, ts, value, flag, source FROM reading"
        ).fetchall()
        dirty = conn.execute("SELECT station_id, day FROM derive_dirty ORDER BY 1, 2").fetchall()
        expected_dirty = conn.execute(
            "SELECT DISTINCT station_id, bj_day(ts) FROM reading ORDER BY 1, 2"
        ).fetchall()
    assert sorted(stored) == sorted((*r, batch.source) for r in sent)
    assert dirty == expected_dirty
    assert ("air-a", date(1988, 7, 2)) in dirty  # summer time, not UTC+8


async def test_a_batch_with_one_existing_key_is_merged_whole(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    """The COPY fails on the first existing key and leaves nothing behind; the
    merge then stores the batch once, with the right counts."""
    first = VALIDATOR.validate([raw("air-a", "pm25", 12, 40.0)], "test").batch
    batch = VALIDATOR.validate(
        [raw("air-a", "pm25", h, 40.0 if h == 12 else h) for h in range(24)]
        + [raw("air-b", "so2", h, 7.0) for h in range(24)],
        "test",
    ).batch
    async with open_pool(settings, url=db_url) as pool:
        writer = Writer(pool, parallel_min_rows=10)  # the merge split over two connections
        assert (await writer.write_readings(first))[0].inserted == 1
        result, unwritten = await writer.write_readings(batch)
    assert unwritten == []
    assert (result.inserted, result.updated, result.unchanged) == (47, 0, 1)
    assert len(rows(db_url)) == 48


async def test_a_deadlock_victim_is_written_again_not_quarantined(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    """A writer that loses a deadlock (SQLSTATE 40P01) wrote nothing; the batch
    is written again, not spooled or quarantined. Here another session holds the
    second day the writer marks and then asks for the first, which the writer
    holds: a real deadlock, which PostgreSQL breaks by aborting the writer."""
    day = T0.date()
    batch = VALIDATOR.validate(
        [raw("air-a", "pm25", 0, 30.0), raw("air-b", "pm25", 0, 31.0)], "test"
    ).batch
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as other:
        await other.execute(
            "INSERT INTO derive_dirty (station_id, day) VALUES ('air-a', %s), ('air-b', %s)",
            (day, day),
        )
        await other.execute("SET deadlock_timeout = '5s'")  # the writer detects it first
        await other.execute("BEGIN")
        await other.execute("SELECT 1 FROM derive_dirty WHERE station_id = 'air-b' FOR UPDATE")
        async with open_pool(settings, url=db_url) as pool:
            sink = Sink(Writer(pool), Spool(tmp_path / "spool"))
            store = asyncio.create_task(sink.store_batch(batch))

            async def writer_waits() -> bool:
                cur = await other.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
                )
                row = await cur.fetchone()
                return bool(row and row[0])

            for _ in range(200):
                if await writer_waits():
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the writer never waited for the other session")
            # The cycle: the writer holds air-a and waits for air-b; now ask for air-a.
            await other.execute("SELECT 1 FROM derive_dirty WHERE station_id = 'air-a' FOR UPDATE")
            await other.execute("COMMIT")
            result = await asyncio.wait_for(store, 30)
        assert (result.inserted, result.spooled, result.quarantined) == (2, 0, 0)
    assert len(rows(db_url)) == 2
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").rglob("*.*"))


def test_dirty_days_of_recent_times_are_beijing_days() -> None:
    """From 1992 on the days are computed in integers (UTC+8 all year); they
    must be the days the zone's rules give, around every midnight."""
    rng = np.random.default_rng(212)
    hours = rng.integers(
        np.datetime64("1992-01-01T00", "h").astype(np.int64),
        np.datetime64("2035-01-01T00", "h").astype(np.int64),
        5000,
    )
    ts = hours.astype("datetime64[h]").astype("datetime64[us]")
    codes = rng.integers(0, 7, 5000)
    stations, days = dirty_days(codes, ts)
    expected = {
        (int(c), t.item().replace(tzinfo=UTC).astimezone(BEIJING).date())
        for c, t in zip(codes, ts, strict=True)
    }
    assert sorted(zip(stations, days, strict=True)) == sorted(expected)
