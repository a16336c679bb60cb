"""Every command with the database stopped: one line saying so and what to do, exit 3.

A real PostgreSQL cluster is started, migrated, then stopped; each command runs
as a real process against its URL. ``envmon import`` spools what it read and
the spool is written once the server is back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from envmon.db import migrate
from envmon.db.embedded import EmbeddedCluster, free_port

REPO = Path(__file__).resolve().parents[2]
ST = "air-taiyuan-jiancaoping"  # in config/stations.yaml
EXIT_UNAVAILABLE = 3


@pytest.fixture(scope="module")
def stopped() -> Iterator[EmbeddedCluster]:
    """A migrated cluster, stopped (tests start it again where they need it)."""
    root = Path(tempfile.mkdtemp(prefix="envmon-down-"))
    cluster = EmbeddedCluster(root / "db", free_port(), tuning=("fsync = off",))
    cluster.start()
    try:
        migrate.migrate(cluster.url())
        cluster.stop("fast")
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def envmon(
    args: list[str], url: str, data_dir: Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        ENVMON_DATABASE_URL=url,
        ENVMON_DATA_DIR=str(data_dir),
        ENVMON_CONFIG_DIR=str(REPO / "config"),
        ENVMON_HJ212__PORT="0",
        ENVMON_API__PORT="0",
    )
    return subprocess.run(
        [sys.executable, "-m", "envmon.cli", *args],
        env=env,
        cwd=cwd or data_dir,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


COMMANDS = [
    ["migrate"],
    ["status"],
    ["status", "--json"],
    ["stations", "load"],
    ["evaluate", "--year", "2025"],
    ["derive"],
    ["dust", "list"],
    ["report", "--year", "2025", "--format", "html"],
    ["backfill", "--source", "sim-cnemc-air", "--from", "2025-01-01", "--to", "2025-01-02"],
    ["simulate", "--from", "2025-01-01T00:00", "--to", "2025-01-01T02:00"],
    ["spool", "replay"],
    ["alerts", "list"],
    ["alerts", "ack", "1"],
    ["alerts", "silence", "list"],
    ["alerts", "silence", "add", "--rule", "pm25-*", "--for", "2h"],
    ["alerts", "maintenance", "list"],
    ["alerts", "requeue"],
    ["run", "--once"],
]


@pytest.mark.slow
def test_each_command_says_so_in_one_line(stopped: EmbeddedCluster, tmp_path: Path) -> None:
    url = stopped.url()

    def one(args: list[str]) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        d = tmp_path / "-".join(args).replace("*", "x")
        d.mkdir()
        return args, envmon(args, url, d / "var", cwd=d)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(one, COMMANDS))
    for args, out in results:
        what = f"envmon {' '.join(args)}: rc={out.returncode}\n{out.stdout}\n{out.stderr}"
        assert out.returncode == EXIT_UNAVAILABLE, what
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, what
        assert "Traceback" not in out.stderr, what
        line = lines[0]
        assert line.startswith("envmon: the database at "), what
        assert f"127.0.0.1:{stopped.port} is not reachable" in line, what
        assert "ENVMON_DATABASE_URL" in line, what
        assert out.stdout.strip() == "", what


@pytest.mark.slow
def test_password_in_the_url_never_printed(stopped: EmbeddedCluster, tmp_path: Path) -> None:
    url = f"postgresql://envmon:s3cret-pw@127.0.0.1:{stopped.port}/envmon"
    out = envmon(["status"], url, tmp_path / "var", cwd=tmp_path)
    assert out.returncode == EXIT_UNAVAILABLE
    assert "s3cret-pw" not in out.stderr + out.stdout
    assert f"127.0.0.1:{stopped.port}" in out.stderr


@pytest.mark.slow
def test_import_spools_then_replays_once_the_server_is_back(
    stopped: EmbeddedCluster, tmp_path: Path
) -> None:
    f = tmp_path / "hours.csv"
    rows = [f"{ST},pm25,2025-01-01T{h:02d}:00:00,{10 + h}" for h in range(24)]
    f.write_text("station,parameter,time,value\n" + "\n".join(rows) + "\nnowhere,pm25,x,1\n")
    data = tmp_path / "var"
    out = envmon(["import", str(f)], stopped.url(), data, cwd=tmp_path)
    assert out.returncode == EXIT_UNAVAILABLE, out.stderr
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert "is not reachable" in lines[0] and "24 readings spooled" in lines[0]
    assert "spooled 24 (database unavailable)" in out.stdout
    assert list((data / "spool").glob("*"))
    stopped.start()
    try:
        back = envmon(["spool", "replay"], stopped.url(), data, cwd=tmp_path)
        assert back.returncode == 0, back.stderr
        with psycopg.connect(stopped.url()) as conn:
            assert conn.execute("SELECT count(*) FROM reading").fetchone() == (24,)
            assert conn.execute("SELECT count(*) FROM rejected").fetchone() == (1,)
            conn.execute("TRUNCATE reading, rejected")
    finally:
        stopped.stop("fast")
