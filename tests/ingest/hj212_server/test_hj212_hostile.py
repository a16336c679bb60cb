"""Hostile peers cannot lock the devices out or fill the database (issue 18)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import datetime

from envmon.timeutil import BEIJING

from .conftest import Harness

T0 = datetime(2025, 6, 1, 8, tzinfo=BEIJING)
VALUES = {"a34004": (35.0, "N")}


async def _idle(port: int, n: int, host: str) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(n):
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0))
            writers.append(w)
    return writers


async def test_idle_unauthenticated_connections_do_not_keep_a_logger_out(hj: Harness) -> None:
    async with hj.server(max_connections=1000, auth_deadline_s=1.0) as srv:
        # 2,000 idle connections from another address: the per-address cap
        # (64 by default) refuses most; the rest are closed at the deadline.
        idle = await _idle(srv.port, 2000, "127.0.0.2")
        assert srv.connections <= 64
        async with hj.device(srv) as dev:
            reply = await dev.send_hourly(T0, VALUES)
        assert reply.cn == "9014"

        async def closed() -> bool:
            return srv.connections == 0

        await hj.wait_until(closed, within=5.0)  # the idle ones: at the deadline
        for w in idle:
            w.close()
        assert srv.stats.refused > 1000  # most refused at once by the cap
    assert len(await hj.readings()) == 1


async def test_ten_megabytes_of_garbage_add_a_few_rows(hj: Harness) -> None:
    async with hj.server(server_args={"max_frames_per_s": 1e6}) as srv:
        _, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < 10 << 20:
                chunk = os.urandom(64 << 10) + b"##0010QN=1;ST=22\r\n" * 100
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        writer.close()
        await hj.settled(srv)
    rows = await hj.query("SELECT count(*), coalesce(sum(length(raw)), 0) FROM rejected")
    [(count, size)] = rows
    assert count <= 51  # max_rejects_per_connection (50) + one summary row
    assert size <= 51 * 2100
    archive = hj.tmp_path / "archive"
    assert sum(p.stat().st_size for p in archive.glob("*")) < 10_000
