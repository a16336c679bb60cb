"""The embedded cluster through the CLI, and the spool when the server stops mid-import."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envmon.app import open_app
from envmon.db import migrate
from envmon.db.embedded import EmbeddedCluster, free_port
from envmon.ingest.importer import import_file
from envmon.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~107 bytes: keep the data dir short.
    d = Path(tempfile.mkdtemp(prefix="envmon-t-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def cli(args: list[str], data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ENVMON_DATABASE_URL"}
    env.update(ENVMON_DATA_DIR=str(data_dir), ENVMON_EMBEDDED_PORT=str(port))
    return subprocess.run(
        [sys.executable, "-m", "envmon.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_two_embedded_clusters_side_by_side(short_dir: Path) -> None:
    a, b = short_dir / "a", short_dir / "b"
    pa, pb = free_port(), free_port()
    try:
        for d, p in ((a, pa), (b, pb)):
            up = cli(["db", "up"], d, p)
            assert up.returncode == 0, up.stderr
            assert f"127.0.0.1:{p}/envmon" in up.stdout
            # Idempotent: a second `up` is fine.
            assert cli(["db", "up"], d, p).returncode == 0
        for d, p in ((a, pa), (b, pb)):
            st = json.loads(cli(["db", "status"], d, p).stdout)
            assert st["running"] and st["port"] == p
            url = cli(["db", "url"], d, p).stdout.strip()
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT current_setting('port')").fetchone() == (str(p),)
            # The Unix socket lives in the data dir.
            assert (d / "pg-socket" / f".s.PGSQL.{p}").exists()
        # migrate says what it did (issue 12: "timescaledb …: extension created" first
        # where the server preloads TimescaleDB), then the migrations it applied.
        assert "applied core/0001_core.sql" in cli(["migrate"], a, pa).stdout.splitlines()
        assert cli(["migrate"], a, pa).stdout.strip() == "schema up to date"
    finally:
        for d, p in ((a, pa), (b, pb)):
            cli(["db", "down"], d, p)
    assert json.loads(cli(["db", "status"], a, pa).stdout)["running"] is False


def _csv(path: Path, hours: int) -> int:
    stations = ["air-taiyuan-jiancaoping", "air-taiyuan-julun", "air-xinzhou-kaifaqu"]
    lines = ["station,parameter,time,value"]
    for h in range(hours):
        day, hour = divmod(h, 24)
        t = f"2025-{1 + day // 28:02d}-{1 + day % 28:02d}T{hour:02d}:00:00"
        lines += [f"{s},{p},{t},{10 + (h % 50)}" for s in stations for p in ("pm25", "pm10", "no2")]
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1


@pytest.mark.slow
async def test_server_stopped_mid_import_loses_nothing(short_dir: Path) -> None:
    """Stop PostgreSQL while an import runs: the rest is spooled, then replayed exactly once."""
    cluster = EmbeddedCluster(short_dir / "db", free_port(), tuning=("fsync = off",))
    await asyncio.to_thread(cluster.start)
    try:
        url = cluster.url()
        migrate.migrate(url)
        f = short_dir / "big.csv"
        n = _csv(f, 24 * 28 * 6)  # ≈ 36,000 readings, several chunks
        settings = Settings(data_dir=short_dir / "var", pool_min_size=0, config_dir=REPO / "config")
        stopped = False

        async def stop_after_first(batch_no: int) -> None:
            nonlocal stopped
            if batch_no == 1 and not stopped:
                stopped = True
                await asyncio.to_thread(cluster.stop, "immediate")

        async with open_app(settings, url=url) as app:
            app.sink.writer.timeout = 1.0
            from envmon.ingest import files

            # Small chunks so that the import has several batches.
            def chunks(path: Path) -> Iterator[files.Chunk]:
                return files.read_csv_chunks(path, chunk_rows=3000)

            report = await import_file(
                f,
                validator=app.validator,
                sink=app.sink,
                on_batch=lambda k: asyncio.ensure_future(stop_after_first(k)),
                reader=chunks,
            )
            assert stopped
            r = report.result
            assert r.inserted > 0
            assert r.spooled > 0
            assert r.inserted + r.spooled == n
            assert app.sink.spool.pending()
            # The server comes back; the next write (or `envmon spool replay`) drains the spool.
            await asyncio.to_thread(cluster.start)
            app.sink.writer.timeout = 30.0  # the pool reconnects with its own back-off
            again = await app.sink.replay_spool()
            assert again.inserted + again.unchanged == r.spooled
            assert app.sink.spool.pending() == []
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM reading").fetchone() == (n,)
    finally:
        await asyncio.to_thread(cluster.stop, "immediate")
