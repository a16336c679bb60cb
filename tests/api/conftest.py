"""A small real dataset, written once per session through the real validator, writer and
derive step, and the API served over it on 127.0.0.1 (port 0) with real tokens.

Data (deterministic):
* three air stations (two in 太原市, one the 上兰 clean-control point, one in 忻州市),
  simulated hourly 2026-02-20 … 2026-03-10 — across the 2026-03-01 edition switch;
* one water section simulated (4-hourly) over the same days;
* one water section (汾河 上兰) with a daily NH3-N series 2023–2025 of known trend:
  0.60 + 0.10 mg/L per year + a seasonal cycle, with February 2024 cut to 20 days
  (below the capture rule: a gap).
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import aiohttp
import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

from envmon.api.app import ApiServer
from envmon.app import App, open_app
from envmon.evaluate.derive import process_dirty
from envmon.schemas.readings import RawReading
from envmon.settings import ApiSettings, Settings
from envmon.simulate import simulate
from envmon.timeutil import BEIJING

REPO = Path(__file__).resolve().parents[2]
READ = "read-token-for-analysts-0123456789"
ADMIN = "admin-token-for-the-bureau-9876543210"
AIR = ["air-taiyuan-jiancaoping", "air-taiyuan-shanglan", "air-xinzhou-kaifaqu"]
WATER_SIM = "water-hutuo-daixianqiao"
WATER_TREND = "water-fen-shanglan"
SIM_START = datetime(2026, 2, 20, tzinfo=BEIJING)
SIM_END = datetime(2026, 3, 10, tzinfo=BEIJING)
TREND_START, TREND_END = date(2023, 1, 1), date(2026, 1, 1)
TREND_SLOPE = 0.10  # mg/L per year

TARGETS_YAML = """
targets:
  - {metric: pm25_annual_mean, region: zone, baseline_year: 2020, baseline: 50.0,
     target_year: 2026, change: -0.20}
  - {metric: good_day_ratio, region: zone, baseline_year: 2020, baseline: 0.70,
     target_year: 2026, change: 0.10}
  - {metric: water_good_ratio, region: zone, target_year: 2026, target: 1.0}
"""


def nh3n(day: date) -> float:
    t = (day - TREND_START).days / 365.25
    season = 0.2 * math.cos(2 * math.pi * (day.month - 1) / 12)
    wiggle = 0.01 * math.sin(day.toordinal() * 1.7)  # small, deterministic
    return round(0.60 + TREND_SLOPE * t + season + wiggle, 4)


def trend_days() -> list[date]:
    out = []
    d = TREND_START
    while d < TREND_END:
        if not (d.year == 2024 and d.month == 2 and d.day > 20):
            out.append(d)
        d += timedelta(days=1)
    return out


def settings_for(tmp: Path) -> Settings:
    return Settings(
        data_dir=tmp,
        config_dir=REPO / "config",
        stations_file=REPO / "config" / "stations.yaml",
        pool_max_size=4,
    )


def api_settings(tmp: Path, **over: object) -> ApiSettings:
    targets = tmp / "targets.yaml"
    targets.write_text(TARGETS_YAML, encoding="utf-8")
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "read_token": SecretStr(READ),
        "admin_token": SecretStr(ADMIN),
        "targets_file": targets,
    }
    return ApiSettings.model_validate({**base, **over})


async def load_dataset(app: App) -> None:
    await app.load_stations()
    stations = [app.catalog.by_id[s] for s in [*AIR, WATER_SIM]]
    for frame in simulate(stations, SIM_START, SIM_END, seed=8):
        await app.sink.store(app.validator.validate_frame(frame, "sim"))
    raws = [
        RawReading(
            WATER_TREND,
            "nh3n",
            datetime(d.year, d.month, d.day, 8, tzinfo=BEIJING),
            nh3n(d),
            "N",
            "1d",
        )
        for d in trend_days()
    ]
    v = app.validator.validate(raws, "lab")
    assert not v.rejected, v.rejected[:3]
    await app.sink.store(v)
    async with app.pool.connection() as conn:
        await process_dirty(conn)


def _create_db(admin_dsn: str, template: str, name: str) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)


def _drop_db(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
async def dataset_url(
    admin_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A database holding the dataset (read-only for the tests that share it)."""
    name = f"envmon_api_dataset_{os.getpid()}"
    url = _create_db(admin_dsn, template_db, name)
    tmp = tmp_path_factory.mktemp("api-dataset")
    async with open_app(settings_for(tmp), url=url) as app:
        await load_dataset(app)
    yield url
    _drop_db(admin_dsn, name)


@dataclass
class Api:
    url: str
    server: ApiServer
    app: App
    http: aiohttp.ClientSession

    def headers(self, token: str | None = READ) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def get(
        self, path: str, token: str | None = READ, **params: object
    ) -> tuple[int, object, aiohttp.ClientResponse]:
        q = {k.rstrip("_"): str(v) for k, v in params.items()}
        async with self.http.get(self.url + path, params=q, headers=self.headers(token)) as r:
            ctype = r.headers.get("Content-Type", "")
            body = await (r.json(content_type=None) if "json" in ctype else r.read())
            return r.status, body, r


@pytest.fixture(scope="session")
async def api(dataset_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    tmp = tmp_path_factory.mktemp("api")
    async with (
        open_app(settings_for(tmp), url=dataset_url) as app,
        ApiServer(app.pool, app.catalog, api_settings(tmp), sink=app.sink) as server,
        aiohttp.ClientSession() as http,
    ):
        yield Api(server.url, server, app, http)


@pytest.fixture
async def fresh_api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    """An API over an empty (migrated, catalog loaded) database, for tests that write."""
    async with (
        open_app(settings_for(tmp_path), url=db_url) as app,
        ApiServer(app.pool, app.catalog, api_settings(tmp_path), sink=app.sink) as server,
        aiohttp.ClientSession() as http,
    ):
        await app.load_stations()
        yield Api(server.url, server, app, http)


@pytest.fixture
def dataset_conn(dataset_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(dataset_url) as conn:
        conn.execute("SET TIME ZONE 'Asia/Shanghai'")
        yield conn
