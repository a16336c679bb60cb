"""The one way in: the sink against a real PostgreSQL.

What it promises every source: listeners hear of each stored batch after the
commit (history only those that ask), unsubscribe works, a batch the database
refuses for a non-connection reason is quarantined with its reason and never
blocks the spool or the batches after it, and a listener that fails does not
stop ingestion.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from envmon.db.connection import open_pool
from envmon.db.embedded import free_port
from envmon.db.spool import Spool
from envmon.db.writer import Writer, is_unavailable
from envmon.errors import DatabaseUnavailable
from envmon.ingest.sink import Sink
from envmon.schemas.readings import RawReading, ReadingBatch, ValidationResult, Validator
from envmon.settings import Settings
from envmon.timeutil import BEIJING

T0 = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
VALIDATOR = Validator({"air-a": "air", "air-b": "air"})


def batch(station: str, hours: range, value: float = 10.0) -> ValidationResult:
    raws = [RawReading(station, "pm25", T0 + timedelta(hours=h), value + h) for h in hours]
    return VALIDATOR.validate(raws, "test")


def count(url: str, station: str | None = None) -> int:
    with psycopg.connect(url) as conn:
        q = "SELECT count(*) FROM reading" + (" WHERE station_id = %s" if station else "")
        row = conn.execute(q, (station,) if station else None).fetchone()
    assert row is not None
    return int(row[0])


def refuse_station(url: str, station: str, sqlstate: str = "53400") -> None:
    """Make the real database refuse one station's rows (as TimescaleDB refuses a
    write into compressed chunks past its limit, SQLSTATE 53400)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"""
            CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.station_id = '{station}' THEN
                RAISE EXCEPTION 'refused for the test' USING ERRCODE = '{sqlstate}';
              END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON reading
              FOR EACH ROW EXECUTE FUNCTION refuse();
            """
        )


def allow_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER refuse ON reading")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, pool_min_size=0)


async def test_listeners_hear_after_commit_history_only_when_asked(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    heard: dict[str, list[tuple[int, int]]] = {"live": [], "all": []}

    async with open_pool(settings, url=db_url) as pool:
        sink = Sink(Writer(pool), Spool(tmp_path / "spool"))

        async def live(b: ReadingBatch) -> None:
            # After the commit: another connection already sees the rows.
            heard["live"].append((len(b), count(db_url)))

        async def every(b: ReadingBatch) -> None:
            heard["all"].append((len(b), count(db_url)))

        stop_live = sink.listen(live)
        sink.listen(every, history=True)
        assert sink.listeners == [live, every]
        await sink.store(batch("air-a", range(3)))
        await sink.store(batch("air-a", range(3, 5)), history=True)
        stop_live()
        stop_live()  # twice is harmless
        await sink.store(batch("air-b", range(2)))
    assert heard["live"] == [(3, 3)]
    assert heard["all"] == [(3, 3), (2, 5), (2, 7)]


async def test_a_failing_listener_does_not_stop_ingestion(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    told: list[int] = []

    async def broken(b: ReadingBatch) -> None:
        raise RuntimeError("a listener's bug")

    async def after(b: ReadingBatch) -> None:
        told.append(len(b))

    async with open_pool(settings, url=db_url) as pool:
        sink = Sink(Writer(pool), Spool(tmp_path / "spool"))
        sink.listen(broken)
        sink.listen(after)
        r = await sink.store(batch("air-a", range(4)))
    assert r.inserted == 4 and told == [4]
    assert count(db_url) == 4


async def test_a_refused_batch_is_quarantined_and_blocks_nothing(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    """SQLSTATE 53400 (TimescaleDB's decompression limit) is not 'database down'."""
    refuse_station(db_url, "air-b")
    spool = Spool(tmp_path / "spool")
    async with open_pool(settings, url=db_url) as pool:
        sink = Sink(Writer(pool), spool)
        refused = await sink.store(batch("air-b", range(5)))
        assert (refused.inserted, refused.spooled, refused.quarantined) == (0, 0, 5)
        assert not sink.database_down
        # The batches after it go straight in: nothing waits behind the refused one.
        later = await sink.store(batch("air-a", range(24)))
        assert later.inserted == 24 and not spool.pending()
    assert count(db_url, "air-a") == 24 and count(db_url, "air-b") == 0
    # Kept on disk with the reason, for an operator: nothing the station sent is lost.
    (kept,) = spool.quarantined()
    reason = kept.with_name(kept.name + ".reason.txt").read_text(encoding="utf-8")
    assert "refused by the database" in reason and "refused for the test" in reason
    back = Spool.load(kept)
    assert isinstance(back, ReadingBatch) and len(back) == 5
    assert set(back.station_id) == {"air-b"}


async def test_a_refused_spool_file_is_quarantined_and_the_rest_replayed(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    first, refused, last = (
        batch("air-a", range(2)),
        batch("air-b", range(3)),
        batch("air-a", range(2, 6)),
    )
    for v in (first, refused, last):
        spool.append_batch(v.batch)
    refuse_station(db_url, "air-b")
    replayed: list[int] = []

    async def listener(b: ReadingBatch) -> None:
        replayed.append(len(b))

    async with open_pool(settings, url=db_url) as pool:
        sink = Sink(Writer(pool), spool)
        sink.listen(listener)
        r = await sink.replay_spool()
    assert (r.inserted, r.quarantined) == (6, 3)
    assert spool.pending() == [] and len(spool.quarantined()) == 1
    assert count(db_url) == 6
    # Live listeners hear of replayed data (it was live when it arrived).
    assert replayed == [2, 3, 4]


async def test_database_down_then_back_replays_in_order_before_new_data(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    dead = f"postgresql://envmon@127.0.0.1:{free_port()}/envmon?connect_timeout=1"
    async with open_pool(settings, url=dead) as pool:
        sink = Sink(Writer(pool, timeout=1.0), spool, retry_after=60.0)
        r1 = await sink.store(batch("air-a", range(2), value=1.0))
        assert r1.spooled == 2 and sink.database_down
        # The circuit breaker: the next batch is spooled at once, behind the first.
        r2 = await sink.store(batch("air-a", range(2), value=50.0))
        assert r2.spooled == 2
    assert len(spool.pending()) == 2
    async with open_pool(settings, url=db_url) as pool:
        sink = Sink(Writer(pool), spool)
        r3 = await sink.store(batch("air-a", range(2, 3)))
        assert r3.inserted == 1 and spool.pending() == []
    with psycopg.connect(db_url) as conn:
        values = [v for (v,) in conn.execute("SELECT value FROM reading ORDER BY ts")]
    # Replayed oldest first: the later spooled values (50, 51) won, then the new hour.
    assert values == [50.0, 51.0, 12.0]


async def test_unavailable_is_only_the_connection_class() -> None:
    assert is_unavailable(DatabaseUnavailable("x"))
    assert is_unavailable(psycopg.OperationalError("connection refused"))  # no SQLSTATE
    limit = psycopg.errors.lookup("53400")("decompression limit")
    assert not is_unavailable(limit)
    assert is_unavailable(psycopg.errors.lookup("57P01")("terminating connection"))
    assert is_unavailable(psycopg.errors.lookup("08006")("connection failure"))
    assert not is_unavailable(psycopg.errors.lookup("23505")("unique violation"))
    assert not is_unavailable(ValueError("a bug"))
