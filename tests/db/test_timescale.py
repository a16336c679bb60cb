"""TimescaleDB as the production store (issue 12): compressed chunks, which errors mean
"unavailable", the compression and pruning jobs. Tests marked ``timescale`` skip, with the reason,
where the test server has no TimescaleDB; the rest run on both stores.

Facts of the extension used here (TimescaleDB 2.28 docs and ../shared/timescaledb/README.md):
a DML statement that decompresses more than
``timescaledb.max_tuples_decompressed_per_dml_transaction`` rows (default 100,000) fails with
SQLSTATE 53400; background jobs are run explicitly with ``CALL run_job(id)``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from envmon.db import migrate
from envmon.db.connection import open_pool
from envmon.db.embedded import free_port
from envmon.db.writer import Writer, is_unavailable
from envmon.schemas.readings import ReadingBatch
from envmon.settings import Settings
from envmon.timeutil import BEIJING

# A week of minute data in 2025: long past the 30-day compression horizon.
T0 = datetime(2025, 3, 3, tzinfo=BEIJING)
STATIONS = [f"air-{i}" for i in range(11)]


def minute_batch(value: float, minutes: int = 7 * 1440) -> ReadingBatch:
    """11 stations × a week of minutes = 110,880 readings (over the 100,000 cap)."""
    n = len(STATIONS) * minutes
    ts = np.datetime64(T0.astimezone(BEIJING).replace(tzinfo=None) - timedelta(hours=8), "us")
    offsets = np.tile(np.arange(minutes, dtype="int64"), len(STATIONS)) * 60_000_000
    return ReadingBatch(
        "test",
        np.repeat(np.array(STATIONS, dtype=object), minutes),
        np.full(n, "pm25", dtype=object),
        np.full(n, "1min", dtype=object),
        ts + offsets.astype("timedelta64[us]"),
        np.full(n, value, dtype=np.float64),
        np.full(n, "N", dtype=object),
    )


def compression_job(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute(
        "SELECT job_id FROM timescaledb_information.jobs"
        " WHERE hypertable_name = 'reading' AND proc_name = 'policy_compression'"
    ).fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


@pytest.mark.timescale
async def test_compression_policy_then_writes_of_any_size_into_compressed_chunks(
    timescale: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, pool_min_size=0)
    async with open_pool(settings, url=timescale) as pool:
        # One transaction for the whole batch (no split over two connections).
        writer = Writer(pool, parallel=1)
        first, unwritten = await writer.write_readings(minute_batch(10.0))
        assert not unwritten
        assert first.inserted == len(STATIONS) * 7 * 1440
        # The policy itself, run as the scheduler would (README: run jobs explicitly).
        with psycopg.connect(timescale, autocommit=True) as conn:
            conn.execute("CALL run_job(%s)", (compression_job(conn),))
            compressed = conn.execute(
                "SELECT count(*) FILTER (WHERE is_compressed), count(*)"
                " FROM timescaledb_information.chunks WHERE hypertable_name = 'reading'"
            ).fetchone()
        assert compressed is not None and compressed[0] == compressed[1] >= 1
        # A re-import with corrected values: 110,880 rows decompressed in one transaction.
        again, unwritten = await writer.write_readings(minute_batch(11.5))
        assert [u.error for u in unwritten] == []
        assert again.updated == len(STATIONS) * 7 * 1440
        # A resend of the same values into the (partly) compressed chunk changes nothing.
        same, unwritten = await writer.write_readings(minute_batch(11.5))
        assert not unwritten and same.unchanged == len(STATIONS) * 7 * 1440
    with psycopg.connect(timescale) as conn:
        assert conn.execute("SELECT min(value), max(value), count(*) FROM reading").fetchone() == (
            11.5,
            11.5,
            len(STATIONS) * 7 * 1440,
        )


def test_only_connection_failures_mean_unavailable(db_url: str) -> None:
    # Nobody listens on the port: no SQLSTATE, a connection failure.
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(f"host=127.0.0.1 port={free_port()} dbname=x connect_timeout=2")
    assert is_unavailable(refused.value)
    with psycopg.connect(db_url, autocommit=True) as conn:
        # A limit: OperationalError too (class 53), but the server is fine.
        with pytest.raises(psycopg.OperationalError) as limit:
            conn.execute("DO $$ BEGIN RAISE EXCEPTION 'cap' USING ERRCODE = '53400'; END $$")
        assert limit.value.sqlstate == "53400" and not is_unavailable(limit.value)
        with pytest.raises(psycopg.errors.QueryCanceled) as cancelled:
            conn.execute("SET statement_timeout = '10ms'; SELECT pg_sleep(1)")
        assert not is_unavailable(cancelled.value)
        conn.execute("SET statement_timeout = 0")
        # Terminated by an administrator: 57P01, then a closed connection.
        with psycopg.connect(db_url, autocommit=True) as victim:
            pid = victim.info.backend_pid
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(psycopg.OperationalError) as terminated:
                victim.execute("SELECT 1")
            assert is_unavailable(terminated.value)
            with pytest.raises(psycopg.OperationalError) as closed:
                victim.execute("SELECT 1")
            assert closed.value.sqlstate is None and is_unavailable(closed.value)


def _prune_fixture(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    old, recent = "now() - interval '200 days'", "now() - interval '10 days'"
    for when, tag in ((old, "old"), (recent, "new")):
        for period in ("1min", "1h"):
            conn.execute(
                "INSERT INTO reading (station_id, parameter, period, ts, value, source)"
                f" VALUES (%s, 'pm25', %s, {when}, 1, 't')",
                (f"air-{tag}", period),
            )
    conn.execute(
        "INSERT INTO rejected (received_at, source, raw, reason) VALUES"
        " (now() - interval '400 days', 't', 'x', 'old'), (now(), 't', 'y', 'new')"
    )
    conn.execute(
        "INSERT INTO alert_notification (kind, channel, payload) VALUES ('test', 'log', '{}')"
    )
    conn.execute(
        "INSERT INTO alert_delivery (notification_id, channel, attempt, at, ok)"
        " SELECT id, 'log', 1, t, true FROM alert_notification,"
        " (VALUES (now() - interval '400 days'), (now())) v(t)"
    )


def _after_prune(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    kept = conn.execute(
        "SELECT station_id, period FROM reading ORDER BY station_id, period"
    ).fetchall()
    # Old minute data is gone; hours stay for good; recent minutes stay.
    assert kept == [("air-new", "1h"), ("air-new", "1min"), ("air-old", "1h")]
    assert conn.execute("SELECT reason FROM rejected").fetchall() == [("new",)]
    assert conn.execute("SELECT count(*) FROM alert_delivery").fetchone() == (1,)


def test_pruning_on_plain_postgresql_is_one_procedure(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _prune_fixture(conn)
        r = migrate.Retention()
        conn.execute("CALL envmon_prune(%s, %s, %s)", (r.minute_days, r.rejects_days, 365))
        _after_prune(conn)


@pytest.mark.timescale
def test_pruning_is_a_timescaledb_job_with_the_configured_days(timescale: str) -> None:
    with psycopg.connect(timescale, autocommit=True) as conn:
        # migrate schedules it from the settings, and re-configures it on the next run.
        migrate.migrate(timescale, migrate.Options(retention=migrate.Retention(90, 30, 180)))
        jobs = conn.execute(
            "SELECT job_id, config, schedule_interval FROM timescaledb_information.jobs"
            " WHERE proc_name = 'envmon_prune_job'"
        ).fetchall()
        assert len(jobs) == 1
        job_id, config, every = jobs[0]
        assert config == {"minute_days": 90, "rejects_days": 30, "alert_log_days": 180}
        assert every == timedelta(days=1)
        migrate.migrate(timescale, migrate.Options(retention=migrate.Retention(90, 365, 365)))
        _prune_fixture(conn)
        # A chunk of hours only, long ago: pruning must leave it compressed as it is
        # (a DELETE on the hypertable would decompress every old batch, every day).
        conn.execute(
            "INSERT INTO reading (station_id, parameter, period, ts, value, source)"
            " SELECT 'air-older', 'pm25', '1h', t, 1, 't' FROM generate_series("
            " now() - interval '400 days', now() - interval '399 days', interval '1 hour') t"
        )
        # Old minute rows inside a compressed chunk: pruning decompresses what it deletes.
        conn.execute("CALL run_job(%s)", (compression_job(conn),))
        conn.execute("CALL run_job(%s)", (job_id,))
        untouched = conn.execute(
            "SELECT bool_and(c.status & 8 = 0 AND c.compressed_chunk_id IS NOT NULL), count(*)"
            " FROM _timescaledb_catalog.chunk c JOIN timescaledb_information.chunks i"
            " ON i.chunk_name = c.table_name AND i.hypertable_name = 'reading'"
            " WHERE i.range_end <= now() - interval '380 days'"
        ).fetchone()
        assert untouched is not None and untouched[0] is True and untouched[1] >= 1
        conn.execute("DELETE FROM reading WHERE station_id = 'air-older'")
        _after_prune(conn)
