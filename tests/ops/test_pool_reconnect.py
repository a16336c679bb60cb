"""The pool under a real server that stops and comes back while clients keep asking.

A 20-second outage lets psycopg_pool's plain back-off (1, 2, 4, 8, 16 s …) grow
past the restart; envmon's pool must answer within a few seconds of the server
being back, and the outage must be logged as one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from envmon.db.availability import OutageLogFilter
from envmon.db.connection import RECONNECT_MAX_DELAY_S, open_pool
from envmon.db.embedded import EmbeddedCluster, free_port
from envmon.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster() -> Iterator[EmbeddedCluster]:
    root = Path(tempfile.mkdtemp(prefix="envmon-pool-"))
    c = EmbeddedCluster(root / "db", free_port(), tuning=("fsync = off",))
    c.start()
    try:
        yield c
    finally:
        c.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


async def _query(pool: AsyncConnectionPool[AsyncConnection[TupleRow]], wait_s: float) -> bool:
    try:
        async with pool.connection(timeout=wait_s) as conn:
            await conn.execute("SELECT 1")
        return True
    except (PoolTimeout, psycopg.OperationalError):
        return False


@pytest.mark.slow
async def test_pool_is_back_within_seconds_of_the_server(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path, config_dir=REPO / "config", pool_min_size=2, pool_max_size=4
    )
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.addFilter(OutageLogFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    watched = [logging.getLogger("psycopg.pool"), logging.getLogger("envmon.test")]
    for lg in watched:
        lg.addHandler(handler)
    try:
        async with open_pool(settings, url=cluster.url()) as pool:
            await pool.wait(timeout=30)
            assert await _query(pool, 5)
            await asyncio.to_thread(cluster.stop, "fast")
            # Clients keep asking during the outage, as the service's jobs do.
            t_down = time.monotonic()
            while time.monotonic() - t_down < 20:
                if not await _query(pool, 1.0):
                    try:
                        async with pool.connection(timeout=0.5):
                            pass
                    except PoolTimeout:
                        logging.getLogger("envmon.test").exception("derive job failed")
                await asyncio.sleep(0.5)
            await asyncio.to_thread(cluster.start)
            t_up = time.monotonic()
            while not await _query(pool, 1.0):
                assert time.monotonic() - t_up < 15, "pool did not come back"
            back_after = time.monotonic() - t_up
            # Every connection it hands out afterwards works (no stale one from before).
            for _ in range(8):
                assert await _query(pool, 5)
    finally:
        for lg in watched:
            lg.removeHandler(handler)
    assert back_after < RECONNECT_MAX_DELAY_S + 3.0, back_after
    text = log.getvalue()
    assert "Traceback" not in text, text
    assert "WARNING envmon.test: derive job failed: database unavailable (" in text, text
    # The pool's retries (every ≤2 s for 20 s): one short line, not one per attempt.
    retries = [ln for ln in text.splitlines() if "database not reachable" in ln]
    assert len(retries) == 1, text
    assert retries[0] == (
        "WARNING psycopg.pool: database not reachable (Connection refused);"
        " the pool keeps retrying every few seconds"
    )
