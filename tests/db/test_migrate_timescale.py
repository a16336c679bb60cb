"""migrate and the embedded cluster when TimescaleDB comes and goes (issue 12, items 2–3),
and the embedded cluster's passwords (issue 19).

Each test starts its own cluster from the system's binaries; the TimescaleDB ones skip,
with the reason, where those binaries have no timescaledb.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envmon.db import migrate
from envmon.db.embedded import EmbeddedCluster, find_bindir, free_port, has_timescaledb
from envmon.errors import DatabaseError

needs_timescaledb = pytest.mark.skipif(
    not has_timescaledb(find_bindir()), reason="this PostgreSQL server has no timescaledb"
)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~107 bytes: keep the data dir short.
    d = Path(tempfile.mkdtemp(prefix="envmon-m-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _preloaded(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW shared_preload_libraries").fetchone()
    return str(row[0]) if row else ""


@pytest.mark.timescale
@needs_timescaledb
def test_not_preloaded_then_preloaded_converts_the_plain_database(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    plain = EmbeddedCluster(short_dir, port, tuning=("fsync = off",), timescaledb=False)
    plain.start()
    try:
        url = plain.url()
        assert _preloaded(url) == ""
        # Installed but not preloaded: one clear line, then plain PostgreSQL; no dead connection.
        with caplog.at_level(logging.WARNING, logger="envmon.db"):
            done = migrate.migrate(url)
        assert "core/0001_core.sql" in done
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "not preloaded" in warnings[0], warnings
        assert "carrying on as plain PostgreSQL" in warnings[0]
        with pytest.raises(DatabaseError, match=r"not preloaded.*TimescaleDB is required"):
            migrate.migrate(url, migrate.Options(timescaledb_required=True))
        with psycopg.connect(url) as conn:
            assert not migrate.timescale_installed(conn)
            conn.execute(
                "INSERT INTO reading (station_id, parameter, period, ts, value, source)"
                " SELECT 'air-a', 'pm25', '1h', t, 1, 'old'"
                " FROM generate_series(timestamptz '2024-01-01', '2024-03-01', '1 hour') t"
            )
            conn.execute("INSERT INTO ingest_cursor (source, last_error) VALUES ('hj212', 'kept')")
    finally:
        plain.stop()
    # The server gets TimescaleDB (this cluster's binaries have it): the next start preloads
    # it, whatever postgresql.conf says, and migrate converts the database, saying so.
    ts = EmbeddedCluster(short_dir, port, timescaledb=None)
    ts.start()
    try:
        url = ts.url()
        assert _preloaded(url) == "timescaledb"
        done = migrate.migrate(url)
        assert any("extension created" in d and "stand-in replaced" in d for d in done), done
        assert "timescale/0001_reading_hypertable.sql" in done
        assert any("reading is a TimescaleDB hypertable" in d for d in done), done
        with psycopg.connect(url) as conn:
            assert conn.execute(
                "SELECT count(*) FROM timescaledb_information.hypertables"
                " WHERE hypertable_name = 'reading'"
            ).fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM reading").fetchone() == (24 * 60 + 1,)
            assert conn.execute("SELECT count(*) FROM ONLY reading").fetchone() == (0,)
            # time_bucket is TimescaleDB's own now, with the same answers.
            assert conn.execute(
                "SELECT e.extname FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid"
                " JOIN pg_extension e ON e.oid = d.refobjid"
                " WHERE p.proname = 'time_bucket' LIMIT 1"
            ).fetchone() == ("timescaledb",)
            assert conn.execute(
                "SELECT time_bucket('1 day', timestamptz '2025-01-01 07:00+08', 'Asia/Shanghai')"
                " = timestamptz '2025-01-01 00:00+08'"
            ).fetchone() == (True,)
            assert conn.execute("SELECT last_error FROM ingest_cursor").fetchone() == ("kept",)
        assert migrate.migrate(url) == []
    finally:
        ts.stop()


def test_embedded_cluster_requires_a_password(short_dir: Path) -> None:
    """scram-sha-256 on TCP and socket, the password generated into a 0600 file; a cluster
    created with ``trust`` by an older envmon gets one at its next start."""
    cluster = EmbeddedCluster(short_dir, free_port(), tuning=("fsync = off",), timescaledb=False)
    cluster.start()
    try:
        assert cluster.password_file.stat().st_mode & 0o777 == 0o600
        no_password = f"host=127.0.0.1 port={cluster.port} user=envmon dbname=postgres"
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(no_password, connect_timeout=5)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(no_password + " password=guess", connect_timeout=5)
        with psycopg.connect(cluster.url("postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # What an older envmon left: trust everywhere, no password file.
        hba = cluster.pgdata / "pg_hba.conf"
        hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
        cluster.password_file.unlink()
        cluster.stop()
        cluster.start()
        assert "trust" not in [
            line.split()[-1] for line in hba.read_text().splitlines() if line and line[0] != "#"
        ]
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(no_password, connect_timeout=5)
        with psycopg.connect(cluster.url("postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        cluster.stop()
