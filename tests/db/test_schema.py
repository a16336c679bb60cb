"""The schema's portable surface: time_bucket() as TimescaleDB defines it, and the
Timescale-only track (run where the server has the extension, skipped otherwise)."""

from __future__ import annotations

import psycopg
import pytest

CASES = [
    # (width, ts, tz or None, expected) — TimescaleDB semantics: sub-month widths
    # from the origin Monday 2000-01-03, months from 2000-01-01; UTC unless a zone is given.
    ("1 hour", "2025-01-01 08:30:00+08", None, "2025-01-01 08:00:00+08"),
    ("15 minutes", "2025-01-01 08:44:59+08", None, "2025-01-01 08:30:00+08"),
    ("1 day", "2025-01-01 07:00:00+08", None, "2024-12-31 08:00:00+08"),
    ("1 day", "2025-01-01 07:00:00+08", "Asia/Shanghai", "2025-01-01 00:00:00+08"),
    ("7 days", "2025-01-01 12:00:00+00", None, "2024-12-30 00:00:00+00"),  # a Monday
    ("1 month", "2025-02-17 12:00:00+00", None, "2025-02-01 00:00:00+00"),
    ("1 month", "2025-02-28 20:00:00+00", "Asia/Shanghai", "2025-03-01 00:00:00+08"),
    ("3 months", "2025-05-17 12:00:00+00", None, "2025-04-01 00:00:00+00"),
    ("1 year", "2025-05-17 12:00:00+00", None, "2025-01-01 00:00:00+00"),
]


@pytest.mark.parametrize(("width", "ts", "tz", "expected"), CASES)
def test_time_bucket(db_url: str, width: str, ts: str, tz: str | None, expected: str) -> None:
    with psycopg.connect(db_url) as conn:
        if tz is None:
            got = conn.execute(
                "SELECT time_bucket(%s::interval, %s::timestamptz) = %s::timestamptz",
                (width, ts, expected),
            ).fetchone()
        else:
            got = conn.execute(
                "SELECT time_bucket(%s::interval, %s::timestamptz, %s) = %s::timestamptz",
                (width, ts, tz, expected),
            ).fetchone()
    assert got == (True,)


def test_reading_key_is_unique(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        row = ("s", "pm25", "1h", "2025-01-01 00:00+08", 1.0, "t")
        conn.execute(
            "INSERT INTO reading (station_id, parameter, period, ts, value, source)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            row,
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO reading (station_id, parameter, period, ts, value, source)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                row,
            )


@pytest.mark.timescale
def test_timescale_track(timescale: str) -> None:
    """On TimescaleDB: reading is a hypertable with 7-day chunks and a compression policy."""
    with psycopg.connect(timescale) as conn:
        (interval,) = conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions"
            " WHERE hypertable_name = 'reading'"
        ).fetchone() or (None,)
        assert str(interval) == "7 days, 0:00:00"
        segs = conn.execute(
            "SELECT attname FROM timescaledb_information.compression_settings"
            " WHERE hypertable_name = 'reading' AND segmentby_column_index IS NOT NULL"
            " ORDER BY segmentby_column_index"
        ).fetchall()
        assert [s[0] for s in segs] == ["station_id", "parameter"]
        jobs = conn.execute(
            "SELECT count(*) FROM timescaledb_information.jobs"
            " WHERE hypertable_name = 'reading'"
            " AND proc_name = 'policy_compression'"
        ).fetchone()
        assert jobs == (1,)
