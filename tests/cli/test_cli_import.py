"""`envmon import` end to end: the real command, a real database, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
ST = "air-taiyuan-jiancaoping"  # in config/stations.yaml
WATER = "water-hutuo-daixianqiao"


def envmon(args: list[str], db_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        ENVMON_DATABASE_URL=db_url,
        ENVMON_DATA_DIR=str(tmp_path / "var"),
        ENVMON_CONFIG_DIR=str(REPO / "config"),
    )
    return subprocess.run(
        [sys.executable, "-m", "envmon.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


MIXED = f"""station,parameter,time,value,flag,period
{ST},pm25,2025-01-01T08:00:00,35,N,1h
{ST},pm25,2025-01-01T09:00:00+08:00,36,,
{ST},pm25,2025-01-01T10:00:00,abc,N,1h
nowhere,pm25,2025-01-01T10:00:00,1,N,1h
{ST},pm25,2025-01-01T11:00:00,-5,N,1h
{ST},pm25,not-a-time,5,N,1h
{ST},ph,2025-01-01T11:00:00,7,N,1h
{ST},pm25,2099-01-01T00:00:00,5,N,1h
{ST},pm25,2025-01-01T12:00:00,5,X,1h
{ST},pm25,2025-01-01T13:00:00,5,N,2h
{ST},co,2025-01-01T08:00:00,1.2,N,1h,surplus
{ST},co,2025-01-01T09:00:00,,N,1h
{WATER},nh3n,2025-01-01T08:00:00,0.6,N,4h
"""


def test_malformed_file_keeps_good_rows_and_lists_bad(db_url: str, tmp_path: Path) -> None:
    f = tmp_path / "mixed.csv"
    f.write_text(MIXED, encoding="utf-8")
    out = envmon(["import", str(f)], db_url, tmp_path)
    # Rows were rejected: the good ones are stored, and the exit code says so (issue 19).
    assert out.returncode == 4, out.stderr
    assert "10 row(s) rejected" in out.stderr
    assert "accepted 3 (new 3" in out.stdout
    assert "rejected 10" in out.stdout
    for line, reason in [
        (4, "value 'abc' is not a number"),
        (5, "unknown station 'nowhere'"),
        (6, "negative concentration -5"),
        (7, "unreadable time 'not-a-time'"),
        (8, "parameter 'ph' is not measured at air station"),
        (9, "time in the future"),
        (10, "unknown data flag 'X'"),
        (11, "unknown period '2h'"),
        (12, "row has 7 fields, the header 6"),
        (13, "missing value"),
    ]:
        assert any(ln.startswith(f"  line {line}: {reason}") for ln in out.stdout.splitlines()), (
            line,
            reason,
            out.stdout,
        )
    with psycopg.connect(db_url) as conn:
        got = conn.execute(
            "SELECT station_id, parameter, period, value, flag FROM reading ORDER BY station_id, ts"
        ).fetchall()
        assert got == [
            (ST, "pm25", "1h", 35.0, "N"),
            (ST, "pm25", "1h", 36.0, "N"),
            (WATER, "nh3n", "4h", 0.6, "N"),
        ]
        rejected = conn.execute("SELECT count(*), count(DISTINCT reason) FROM rejected").fetchone()
        assert rejected == (10, 10)
        # The raw row is kept as it stood in the file.
        (raw,) = conn.execute(
            "SELECT raw FROM rejected WHERE reason LIKE 'unknown station%'"
        ).fetchone() or ("",)
        assert raw == "nowhere,pm25,2025-01-01T10:00:00,1,N,1h"
    # Importing again changes nothing; a corrected value is an update.
    again = envmon(["import", str(f), "--allow-rejects"], db_url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "accepted 3 (new 0, updated 0, unchanged 3" in again.stdout
    with psycopg.connect(db_url) as conn:
        # … and adds no rejects: the same raw row and reason is one reject, seen twice.
        assert conn.execute("SELECT count(*), sum(times) FROM rejected").fetchone() == (10, 20)
    f2 = tmp_path / "fix.csv"
    f2.write_text(f"station,parameter,time,value\n{ST},pm25,2025-01-01T08:00:00,40\n")
    fixed = envmon(["import", str(f2)], db_url, tmp_path)
    assert "accepted 1 (new 0, updated 1, unchanged 0" in fixed.stdout


def test_xlsx_import(db_url: str, tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["station", "parameter", "time", "value", "flag", "period"])
    ws.append([ST, "pm10", "2025-03-01T08:00:00", 80, "N", "1h"])
    ws.append([ST, "pm10", "2025-03-01T09:00:00", "n/a", "N", "1h"])
    ws.append([ST, "o3", "2025-03-01T09:00:00", 120.5, None, None])
    f = tmp_path / "readings.xlsx"
    wb.save(f)
    out = envmon(["import", str(f), "--allow-rejects"], db_url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "accepted 2 (new 2" in out.stdout
    assert "value 'n/a' is not a number" in out.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("", "empty file"),
        ("a,b,c\n1,2,3\n", "missing column(s) station, parameter, time, value"),
        (b"\x80\x80\xffgarbage", "neither UTF-8 (line 1"),
        (
            b"station,parameter,time,value\n" + "尖草坪".encode()[:-1] + b"\n",
            "not valid UTF-8 at line 2",
        ),
    ],
)
def test_unreadable_file_is_a_clear_error(
    db_url: str, tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    f = tmp_path / "in.csv"
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif content is not None:
        f.write_text(content)
    out = envmon(["import", str(f)], db_url, tmp_path)
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_stations_list_json_without_database(tmp_path: Path) -> None:
    env = dict(os.environ, ENVMON_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    out = subprocess.run(
        [sys.executable, "-m", "envmon.cli", "stations", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    import json

    data = json.loads(out.stdout)
    assert len(data) == 207
    assert {
        "id",
        "kind",
        "name",
        "city",
        "county",
        "lon",
        "lat",
        "elevation_m",
        "control_level",
        "assessed",
    } <= set(data[0])


def test_stations_load_is_idempotent(db_url: str, tmp_path: Path) -> None:
    first = envmon(["stations", "load"], db_url, tmp_path)
    assert "207 new, 0 updated, 0 unchanged" in first.stdout, first.stderr
    second = envmon(["stations", "load"], db_url, tmp_path)
    assert "0 new, 0 updated, 207 unchanged" in second.stdout
