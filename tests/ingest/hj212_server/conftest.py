"""A real HJ 212 receiver on 127.0.0.1:0 over a fresh database, and real TCP devices.

The ``hj`` fixture is a small harness: ``hj.server(...)`` runs an
:class:`Hj212Server` (settings overridable per test), ``hj.device(srv, ...)``
makes an :class:`Hj212Device` for a catalog station, ``hj.query`` reads the
database without blocking the loop the server runs on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from envmon.catalog import Catalog, Station, load_catalog
from envmon.db.connection import open_pool
from envmon.db.spool import Spool
from envmon.db.writer import Writer
from envmon.ingest.hj212.crc import VARIANTS, crc_variant
from envmon.ingest.hj212.device import Hj212Device
from envmon.ingest.hj212.server import Hj212Server
from envmon.ingest.sink import Intake, Listener, Sink
from envmon.schemas.readings import Validator
from envmon.settings import Hj212Settings, Settings

REPO = Path(__file__).resolve().parents[3]
CATALOG = load_catalog(REPO / "config" / "stations.yaml")
AIR, AIR2 = [s for s in CATALOG.stations if s.kind == "air" and s.mn][:2]
WATER = next(s for s in CATALOG.stations if s.kind == "water" and s.mn)
# Device passwords for the tests (in production: the secrets file / environment).
PASSWORDS = {s.mn: f"{i:06d}" for i, s in enumerate(CATALOG.stations, start=100000) if s.mn}


def wrong_crc(frame: bytes) -> bytes:
    """``frame`` with a CRC field that fits none of the variants.

    A fixed field ("0000") is not enough: the Annex A CRC takes only 256
    values (its last step is one table lookup), 0000 among them, so one frame
    in 256 would carry it rightly.
    """
    data = frame[6:-6]
    fits = {crc_variant(data, v) for v in VARIANTS}
    field = next(c for c in range(0x10000) if c not in fits)
    return b"%b%04X\r\n" % (frame[:-6], field)


@dataclass
class Harness:
    db_url: str
    tmp_path: Path
    catalog: Catalog = CATALOG

    def settings(self, **hj212: Any) -> Settings:
        return Settings(
            data_dir=self.tmp_path,
            config_dir=REPO / "config",
            pool_min_size=0,
            hj212=Hj212Settings(host="127.0.0.1", port=0, **hj212),
        )

    @asynccontextmanager
    async def server(
        self,
        *,
        catalog: Catalog | None = None,
        secrets: dict[str, str] | None = None,
        on_batch: Listener | None = None,
        flush_interval: float = 0.05,
        server_args: dict[str, Any] | None = None,
        **hj212: Any,
    ) -> AsyncIterator[Hj212Server]:
        catalog = catalog or self.catalog
        settings = self.settings(**hj212)
        async with open_pool(settings, url=self.db_url) as pool:
            sink = Sink(Writer(pool), Spool(settings.spool_dir))
            if on_batch is not None:
                sink.listen(on_batch)
            validator = Validator({s.id: s.kind for s in catalog.stations})
            async with Hj212Server(
                settings,
                Intake(sink, validator, catalog, pool),
                secrets=dict(PASSWORDS) if secrets is None else secrets,
                flush_interval=flush_interval,
                **(server_args or {}),
            ) as srv:
                yield srv

    def device(
        self,
        srv: Hj212Server,
        station: Station = AIR,
        *,
        pw: str | None = None,
        mn: str | None = None,
        timeout: float = 2.0,
        **kwargs: Any,
    ) -> Hj212Device:
        assert station.mn is not None
        return Hj212Device(
            "127.0.0.1",
            srv.port,
            mn or station.mn,
            PASSWORDS[station.mn] if pw is None else pw,
            st="21" if station.kind == "water" else "22",
            timeout=timeout,
            **kwargs,
        )

    async def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            await conn.execute("SET TIME ZONE 'Asia/Shanghai'")
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def execute(self, sql: str, params: Any = None) -> None:
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            await conn.execute("SET TIME ZONE 'Asia/Shanghai'")
            await conn.execute(sql, params)

    async def readings(self, station_id: str | None = None) -> list[tuple[Any, ...]]:
        return await self.query(
            "SELECT station_id, parameter, period, ts, value, flag, source FROM reading"
            " WHERE %(s)s::text IS NULL OR station_id = %(s)s"
            " ORDER BY station_id, parameter, period, ts",
            {"s": station_id},
        )

    async def rejected(self) -> list[tuple[Any, ...]]:
        return await self.query(
            "SELECT source, station_id, parameter, ts, raw, reason FROM rejected ORDER BY id"
        )

    async def settled(self, srv: Hj212Server) -> None:
        """Wait until every connection has ended, then write what is queued."""

        async def idle() -> bool:
            return srv.connections == 0

        await self.wait_until(idle)
        await srv.flush()

    async def wait_until(self, check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
        """Poll ``check`` (mostly a database query: nothing to wait on but time)."""
        async with asyncio.timeout(within):
            while not await check():  # noqa: ASYNC110
                await asyncio.sleep(0.02)


@pytest.fixture
def hj(db_url: str, tmp_path: Path) -> Harness:
    return Harness(db_url, tmp_path)


@pytest.fixture
async def srv(hj: Harness) -> AsyncIterator[Hj212Server]:
    async with hj.server() as server:
        yield server
