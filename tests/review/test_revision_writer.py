"""Revisions through the sink and writer: kept for changes only, compressed chunks included."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from envmon.db.connection import open_pool
from envmon.db.spool import Spool
from envmon.db.writer import Writer
from envmon.ingest.sink import Sink
from envmon.schemas.readings import RawReading, Validator
from envmon.settings import Settings
from envmon.timeutil import BEIJING

T0 = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
VALIDATOR = Validator({"air-a": "air"})


def batch(values: list[float], source: str, flag: str = "N") -> object:
    raws = [
        RawReading("air-a", "pm25", T0 + timedelta(hours=h), v, flag, "1h")  # type: ignore[arg-type]
        for h, v in enumerate(values)
    ]
    return VALIDATOR.validate(raws, source).batch


def revisions(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT ts, value, flag, source, new_source, reason FROM reading_revision ORDER BY id"
        ).fetchall()


async def test_compressed_chunk_resend_keeps_old_version(timescale: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, pool_min_size=0)
    async with open_pool(settings, url=timescale) as pool:
        sink = Sink(Writer(pool), Spool(tmp_path / "spool"))
        await sink.store_batch(batch([10, 11, 12], "logger"))  # type: ignore[arg-type]
        with psycopg.connect(timescale, autocommit=True) as conn:
            n = conn.execute(
                "SELECT count(compress_chunk(c)) FROM show_chunks('reading') c"
            ).fetchone()
            assert n == (1,)
            assert conn.execute(
                "SELECT count(*) FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'reading' AND is_compressed"
            ).fetchone() == (1,)
        # Identical resend into the compressed chunk: nothing kept, nothing changed.
        r = await sink.store_batch(batch([10, 11, 12], "logger"))  # type: ignore[arg-type]
        assert (r.inserted, r.updated, r.unchanged) == (0, 0, 3)
        assert revisions(timescale) == []
        # A changed value and a backfill's changed flag: the old versions are kept.
        r = await sink.store_batch(batch([10, 99, 12], "logger"))  # type: ignore[arg-type]
        assert r.updated == 1
        r = await sink.store_batch(batch([10, 99, 12], "platform", "M"), reason="backfill")  # type: ignore[arg-type]
        assert r.updated == 3
    revs = revisions(timescale)
    assert revs[0][1:] == (11.0, "N", "logger", "logger", "resend")
    assert sorted(x[1:] for x in revs[1:]) == [
        (10.0, "N", "logger", "platform", "backfill"),
        (12.0, "N", "logger", "platform", "backfill"),
        (99.0, "N", "logger", "platform", "backfill"),
    ]
