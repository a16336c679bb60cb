"""A non-owner's batch goes to the alert owner in the transaction that stores it
(``Writer.announce``): delivered exactly when the batch is committed — an
instance killed right after its commit has forwarded already (no code runs
after the commit here: the sink has no listener), a write rolled back
forwards nothing, an import (history) forwards nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import psycopg

from envmon.alerts.relay import CHANNEL, decode, encode, listen
from envmon.db.connection import open_pool
from envmon.db.spool import Spool
from envmon.db.writer import Writer
from envmon.ingest.sink import Sink
from envmon.schemas.readings import RawReading, Validator
from envmon.settings import Settings
from envmon.timeutil import floor_hour, now

from .conftest import AIR

VALIDATOR = Validator({AIR: "air"})


async def _received(conn: psycopg.AsyncConnection[tuple[object, ...]], quiet: float) -> list[str]:
    """The notifications that arrive until none came for ``quiet`` seconds."""
    got: list[str] = []
    gen = conn.notifies(timeout=quiet)
    async for note in gen:
        got.append(note.payload)
    return got


async def test_forwarded_with_the_commit_and_only_then(db_url: str, tmp_path: Path) -> None:
    hour = floor_hour(now()) - timedelta(hours=1)

    def batch(value: float, *, hours: int = 3) -> list[RawReading]:
        return [
            RawReading(AIR, "pm25", hour - timedelta(hours=h), value, "N", "1h")
            for h in range(hours)
        ]

    listener = await listen(db_url)
    try:
        async with open_pool(Settings(data_dir=tmp_path, pool_min_size=0), url=db_url) as pool:
            writer = Writer(pool)
            writer.announce = lambda b: [
                (CHANNEL, p) for p in encode(b, "instance-b", now().timestamp())
            ]
            sink = Sink(writer, Spool(tmp_path / "spool"))
            # New readings: the COPY's transaction forwards them.
            r1 = await sink.store(VALIDATOR.validate(batch(40.0), "hj212"))
            # Two of them again, one changed: the COPY fails on the first existing
            # key and rolls back with its NOTIFY; the merge forwards the batch once.
            r2 = await sink.store(VALIDATOR.validate(batch(41.0, hours=2), "hj212"))
            # An import (history) forwards nothing.
            r3 = await sink.store(
                VALIDATOR.validate(
                    [RawReading(AIR, "pm10", hour, 80.0, "N", "1h")], "import:x.csv"
                ),
                history=True,
            )
        assert (r1.inserted, r2.updated, r2.unchanged, r3.inserted) == (3, 2, 0, 1)
        got = await asyncio.wait_for(_received(listener, 1.0), 20)
    finally:
        await listener.close()
    batches = [decode(p) for p in got]
    assert [(b.source, len(b)) for b in batches] == [("hj212", 3), ("hj212", 2)]
    assert batches[0].value.tolist() == [40.0] * 3
    assert batches[1].value.tolist() == [41.0] * 2
