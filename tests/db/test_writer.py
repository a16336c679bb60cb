"""The sink and its writer against a real PostgreSQL: COPY → upsert counts, rejects, the spool."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from envmon.db.connection import open_pool
from envmon.db.embedded import free_port
from envmon.db.spool import Spool
from envmon.db.writer import Writer
from envmon.ingest.sink import Sink
from envmon.schemas.readings import RawReading, Validator
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
        # The fast path (a plain INSERT) queued the station-days for derive.
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
