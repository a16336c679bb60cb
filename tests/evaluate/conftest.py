"""Fixtures for the derived-table tests: a few stations and a writer on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from envmon.db.connection import open_pool
from envmon.db.spool import Spool
from envmon.db.writer import Writer
from envmon.ingest.sink import Sink
from envmon.schemas.readings import RawReading, Validator
from envmon.settings import Settings

STATIONS = [
    # id, kind, city, county, assessed, waterbody, target_class
    ("air-ty-1", "air", "太原市", "杏花岭区", True, None, None),
    ("air-ty-2", "air", "太原市", "迎泽区", True, None, None),
    ("air-ty-clean", "air", "太原市", "尖草坪区", False, None, None),
    ("air-xz-1", "air", "忻州市", "忻府区", True, None, None),
    ("water-1", "water", "忻州市", "代县", True, "river", 3),
]


def insert_stations(url: str) -> None:
    with psycopg.connect(url) as conn:
        for sid, kind, city, county, assessed, wb, tc in STATIONS:
            conn.execute(
                "INSERT INTO station (id, kind, name, city, county, lon, lat, control_level,"
                " assessed, waterbody, river, basin, target_class, evaluation_point,"
                " clean_control)"
                " VALUES (%s, %s, %s, %s, %s, 112.5, 38.0, 'national', %s, %s, %s, %s, %s,"
                " %s, %s)",
                (
                    sid,
                    kind,
                    sid,
                    city,
                    county,
                    assessed,
                    wb,
                    "滹沱河" if wb else None,
                    "海河" if wb else None,
                    tc,
                    kind == "air" and assessed,  # the city's evaluation points
                    kind == "air" and not assessed,  # air-ty-clean: a 对照点
                ),
            )


class Feed:
    """Writes readings through the real validator and the sink."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.validator = Validator(
            {s[0]: s[1] for s in STATIONS}, clock=lambda: datetime(2030, 1, 1).astimezone()
        )

    async def __call__(
        self,
        rows: Sequence[tuple[str, str, datetime, float]]
        | Sequence[tuple[str, str, datetime, float, str, str]],
    ) -> None:
        raws = [
            RawReading(r[0], r[1], r[2], r[3], *(r[4:] if len(r) > 4 else ("N", "1h")))
            for r in rows
        ]
        v = self.validator.validate(raws, "test")
        assert not v.rejected, v.rejected
        await self.sink.store(v)


@pytest.fixture
async def feed(db_url: str, tmp_path: Path) -> AsyncIterator[Feed]:
    insert_stations(db_url)
    async with open_pool(Settings(data_dir=tmp_path), url=db_url) as pool:
        yield Feed(Sink(Writer(pool), Spool(tmp_path / "spool")))


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    async with await psycopg.AsyncConnection.connect(db_url) as c:
        await c.execute("SET TIME ZONE 'Asia/Shanghai'")
        yield c
