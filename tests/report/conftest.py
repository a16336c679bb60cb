"""Two years of data, written once per session through the real validator, writer and derive.

* air: 尖草坪 (太原市) and 开发区 (忻州市) hourly, 2025-01-01 … 2026-12-31 (simulated);
  上兰 (the clean-control point) for 2026-01 … 2026-03;
* water: 代县桥 and 上兰 (national sections), 2026, one simulated sample a day;
* a dust period over 太原市, 2026-04-10 … 2026-04-13, and a few rejected readings.

The validator's clock is fixed in 2030, so the whole of 2026 is accepted whatever
today's date is (the service's own validator refuses readings from the future).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from envmon.app import open_app
from envmon.evaluate.derive import process_dirty
from envmon.evaluate.targets import Target
from envmon.schemas.readings import RawReading, Validator
from envmon.settings import Settings
from envmon.simulate import simulate
from envmon.timeutil import BEIJING

REPO = Path(__file__).resolve().parents[2]
AIR_LONG = ["air-taiyuan-jiancaoping", "air-xinzhou-kaifaqu"]
AIR_SHORT = ["air-taiyuan-shanglan"]
WATER = ["water-hutuo-daixianqiao", "water-fen-shanglan"]
TARGETS = [
    Target(
        metric="pm25_annual_mean",
        region="zone",
        baseline_year=2020,
        baseline=45.0,
        target_year=2026,
        change=-0.20,
    ),
    Target(
        metric="good_day_ratio",
        region="zone",
        baseline_year=2020,
        baseline=0.66,
        target_year=2026,
        change=0.10,
    ),
    Target(metric="water_good_ratio", region="zone", target_year=2026, target=1.0),
    Target(
        metric="pm25_annual_mean",
        region="taiyuan",
        baseline_year=2020,
        baseline=48.0,
        target_year=2026,
        change=-0.20,
    ),
]


def t(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=BEIJING)


@pytest.fixture(scope="session")
async def report_db(
    admin_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    name = f"envmon_report_dataset_{os.getpid()}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    url = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
    tmp = tmp_path_factory.mktemp("report-data")
    settings = Settings(
        data_dir=tmp, config_dir=REPO / "config", stations_file=REPO / "config" / "stations.yaml"
    )
    async with open_app(settings, url=url) as app:
        await app.load_stations()
        validator = Validator(
            {s.id: s.kind for s in app.catalog.stations}, clock=lambda: t(2030, 1, 1)
        )
        by_id = app.catalog.by_id
        chunks = [
            ([by_id[s] for s in AIR_LONG], t(2025, 1, 1), t(2027, 1, 1)),
            ([by_id[s] for s in AIR_SHORT], t(2026, 1, 1), t(2026, 4, 1)),
            ([by_id[s] for s in WATER], t(2026, 1, 1), t(2027, 1, 1)),
        ]
        for stations, start, end in chunks:
            for frame in simulate(stations, start, end, seed=2026):
                if stations[0].kind == "water":
                    frame = frame[frame["time"].str.slice(11, 13) == "08"]
                await app.sink.store(validator.validate_frame(frame, "sim"))
        bad = validator.validate(
            [
                RawReading(AIR_LONG[0], "pm25", t(2026, 5, 1, h), -5.0, raw=f"pm25=-5 h{h}")
                for h in range(3)
            ]
            + [RawReading(AIR_LONG[1], "no2", t(2026, 6, 1), "n/a", raw="no2=n/a")],
            "sim",
        )
        assert len(bad.rejected) == 4
        await app.sink.store(bad)
        async with app.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO dust_period (region, starts_at, ends_at, note)"
                " VALUES ('taiyuan', %s, %s, '沙尘过程（测试）')",
                (t(2026, 4, 10), t(2026, 4, 13)),
            )
            await conn.commit()
            await process_dirty(conn)
    yield url
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
async def report_conn(report_db: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    async with await psycopg.AsyncConnection.connect(report_db) as conn:
        await conn.execute("SET TIME ZONE 'Asia/Shanghai'")
        yield conn
