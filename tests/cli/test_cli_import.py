"""`envmon import` end to end: the real command, a real database, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import psycopg
import pytest
import yaml

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


def test_import_takes_chinese_names_and_pinyin(db_url: str, tmp_path: Path) -> None:
    """The station column may hold 尖草坪 or jiancaoping: stored under the id (issue 13)."""
    f = tmp_path / "names.csv"
    f.write_text(
        "station,parameter,time,value\n"
        "尖草坪,pm25,2025-01-02T08:00:00,35\n"
        "jiancaoping,pm10,2025-01-02T08:00:00,70\n"
        "代县桥,nh3n,2025-01-02T08:00:00,0.5\n"
        "尖草坪,air_temp,2025-01-02T08:00:00,-3.5\n",
        encoding="utf-8",
    )
    out = envmon(["import", str(f), "--no-derive"], db_url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "accepted 4" in out.stdout
    with psycopg.connect(db_url) as conn:
        got = conn.execute(
            "SELECT station_id, parameter FROM reading WHERE ts = '2025-01-02T08:00+08'"
            " ORDER BY parameter"
        ).fetchall()
    assert got == [
        ("wx-53677", "air_temp"),
        ("water-hutuo-daixianqiao", "nh3n"),
        ("air-taiyuan-jiancaoping", "pm10"),
        ("air-taiyuan-jiancaoping", "pm25"),
    ]


# -- encodings and counted rejects (issue 19) ------------------------------------------
# What Excel on a Chinese Windows writes, and damaged text: GB18030/GBK and UTF-16
# (BOM) files import; a bad byte deep in a large file stops the import before
# anything is stored and names its true line; rejects are counted, not repeated.

HEADER = "station,parameter,time,value,备注\n"


def imp(args: list[str], db_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return envmon(["import", *args, "--no-derive"], db_url, tmp_path)


def counts(db_url: str) -> tuple[int, int]:
    with psycopg.connect(db_url) as conn:
        (r,) = conn.execute("SELECT count(*) FROM reading").fetchone() or (0,)
        (j,) = conn.execute("SELECT count(*) FROM rejected").fetchone() or (0,)
    return int(r), int(j)


TEXT = (
    HEADER
    + f"{ST},pm25,2025-01-01T08:00:00,35,尖草坪 自动站\n"
    + f"{ST},pm10,2025-01-01T08:00:00,61,正常\n"
    + "无此站,pm25,2025-01-01T08:00:00,35,站名不在目录中\n"
)


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-16", "utf-8-sig"])
def test_chinese_windows_encodings_import(db_url: str, tmp_path: Path, encoding: str) -> None:
    f = tmp_path / "excel.csv"
    f.write_bytes(TEXT.replace("\n", "\r\n").encode(encoding))
    out = imp([str(f)], db_url, tmp_path)
    assert out.returncode == 4, out.stderr  # one row rejected
    assert "accepted 2 (new 2" in out.stdout, out.stdout
    assert "line 4: unknown station '无此站'" in out.stdout, out.stdout
    with psycopg.connect(db_url) as conn:
        (raw,) = conn.execute("SELECT raw FROM rejected").fetchone() or ("",)
    # Decoded, not mojibake: the raw row is kept as it stood in the file.
    assert raw == "无此站,pm25,2025-01-01T08:00:00,35,站名不在目录中"


def test_encoding_option_wins_and_is_checked(db_url: str, tmp_path: Path) -> None:
    f = tmp_path / "utf16-no-bom.csv"
    f.write_bytes(TEXT.encode("utf-16-le"))  # no BOM: only --encoding can tell
    guessed = imp([str(f)], db_url, tmp_path)
    assert guessed.returncode == 1
    assert "Give the file's encoding with --encoding" in guessed.stderr
    out = imp([str(f), "--encoding", "utf-16-le", "--allow-rejects"], db_url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "accepted 2 (new 2" in out.stdout
    bogus = imp([str(f), "--encoding", "no-such-codec"], db_url, tmp_path)
    assert bogus.returncode == 1
    assert "unknown encoding 'no-such-codec'" in bogus.stderr
    g = tmp_path / "gbk.csv"
    g.write_bytes(("station,parameter,time,value\n" + TEXT.split("\n", 1)[1]).encode("gbk"))
    wrong = imp([str(g), "--encoding", "ascii"], db_url, tmp_path)
    assert wrong.returncode == 1
    assert "not ascii text at line 2" in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert counts(db_url) == (2, 1)  # only the utf-16 import stored anything


@pytest.mark.slow
def test_bad_byte_deep_in_a_large_utf8_file_stores_nothing(db_url: str, tmp_path: Path) -> None:
    # 120,000 rows (several import chunks); the bad byte on line 110,001.
    rows = [
        f"{ST},pm25,2024-{1 + (i // 672) % 12:02d}-{1 + (i // 24) % 28:02d}T{i % 24:02d}:00:00,"
        f"{i % 90},第{i}行"
        for i in range(120_000)
    ]
    data = bytearray((HEADER + "\n".join(rows) + "\n").encode())
    line = 110_001
    at = data.index(f"第{line - 2}行".encode())
    data[at] = 0xFF
    f = tmp_path / "big.csv"
    f.write_bytes(bytes(data))
    out = imp([str(f)], db_url, tmp_path)
    assert out.returncode == 1, out.stdout
    assert f"not valid UTF-8 at line {line} (byte {at}" in out.stderr, out.stderr
    assert "nothing was stored" in out.stderr
    assert counts(db_url) == (0, 0)


def test_bad_byte_in_a_gbk_file_names_its_line(db_url: str, tmp_path: Path) -> None:
    data = bytearray(TEXT.encode("gb18030"))
    # A GB18030 lead byte followed by a newline: no valid sequence, on line 3.
    at = data.index("正常".encode("gb18030"))
    data[at + 1] = 0x0A
    f = tmp_path / "gbk.csv"
    f.write_bytes(bytes(data))
    out = imp([str(f)], db_url, tmp_path)
    assert out.returncode == 1
    assert "neither UTF-8 (line 1" in out.stderr
    assert "GB18030/GBK text (line 3" in out.stderr, out.stderr
    assert counts(db_url) == (0, 0)


def test_reimport_adds_no_rejects_and_counts_them(db_url: str, tmp_path: Path) -> None:
    f = tmp_path / "twice.csv"
    f.write_text(
        "station,parameter,time,value\n"
        f"{ST},pm25,2025-01-01T08:00:00,-1\n"
        f"{ST},pm25,2025-01-01T08:00:00,-1\n"  # the same bad row twice in the file
        f"{ST},pm25,2025-01-01T09:00:00,abc\n",
        encoding="utf-8",
    )
    for _ in range(3):
        out = imp([str(f)], db_url, tmp_path)
        assert out.returncode == 4
    with psycopg.connect(db_url) as conn:
        got = conn.execute(
            "SELECT reason, times, received_at <= last_seen_at FROM rejected ORDER BY reason"
        ).fetchall()
    assert got == [
        ("negative concentration -1", 6, True),
        ("value 'abc' is not a number", 3, True),
    ]


def _derived(db_url: str) -> dict[str, tuple[object, ...]]:
    sums = {}
    with psycopg.connect(db_url) as conn:
        for table, key in (
            ("air_hour", "station_id, ts"),
            ("air_day", "station_id, day"),
            ("region_day", "region, day"),
        ):
            sums[table] = (
                conn.execute(
                    f"SELECT count(*), md5(string_agg(x::text, '|' ORDER BY {key}))"
                    f" FROM {table} AS x"
                ).fetchone()
                or ()
            )
    return sums


def test_import_derives_alongside_as_a_derive_afterwards_does(db_url: str, tmp_path: Path) -> None:
    """``envmon import`` derives the days already written while it writes the
    rest: on a file of several chunks whose second half of the month comes
    first (days derived before the days they follow arrive), the derived
    tables equal those of ``--no-derive`` followed by ``envmon derive``."""
    catalog = yaml.safe_load((REPO / "config" / "stations.yaml").read_text(encoding="utf-8"))
    air = [s["id"] for s in catalog["stations"] if s["kind"] == "air"]
    params = {"pm25": 40, "pm10": 80, "so2": 12, "no2": 35, "o3": 90, "co": 1}
    lines = ["station,parameter,time,value,flag,period"]
    for day in [*range(17, 33), *range(1, 17)]:  # 2025-01-17 … 02-01, then 01-01 … 01-16
        month, dom = (1, day) if day <= 31 else (2, day - 31)
        for hour in range(24):
            for i, sid in enumerate(air):
                for j, (p, base) in enumerate(params.items()):
                    value = base + (i * 7 + j * 3 + hour + day) % 23 + (0.5 if hour % 5 else 0)
                    if p == "co":
                        value = round(value / 20, 2)
                    lines.append(
                        f"{sid},{p},2025-{month:02d}-{dom:02d}T{hour:02d}:00:00+08:00,{value},N,1h"
                    )
    f = tmp_path / "month.csv"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert len(lines) > 2 * 50_000  # several chunks (read_csv_chunks: 50,000 rows)

    out = envmon(["import", "--no-derive", str(f)], db_url, tmp_path)
    assert out.returncode == 0, out.stderr
    out = envmon(["derive"], db_url, tmp_path)
    assert out.returncode == 0, out.stderr
    afterwards = _derived(db_url)
    with psycopg.connect(db_url) as conn:
        conn.execute("TRUNCATE reading, derive_dirty, air_hour, air_day, region_day")
        conn.commit()
    out = envmon(["import", str(f)], db_url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "derived values updated for" in out.stdout
    assert _derived(db_url) == afterwards
    assert afterwards["air_day"][0] == 32 * len(air)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM derive_dirty").fetchone() == (0,)


def test_a_failed_derive_keeps_the_readings_and_says_so(db_url: str, tmp_path: Path) -> None:
    """The derive alongside the import fails (here: the database refuses every
    air_day row): the readings are stored, their days stay queued for the derive
    job, and the command says so and exits 1."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN RAISE EXCEPTION 'air_day refused by the test'; END$$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON air_day FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
        conn.commit()
    f = tmp_path / "day.csv"
    f.write_text(
        "station,parameter,time,value,flag,period\n"
        + "".join(f"{ST},pm25,2025-01-01T{h:02d}:00:00+08:00,{30 + h},N,1h\n" for h in range(24)),
        encoding="utf-8",
    )
    out = envmon(["import", str(f)], db_url, tmp_path)
    assert out.returncode == 1, out.stderr
    assert "accepted 24 (new 24" in out.stdout
    assert "the readings are stored, but the derived tables were not updated" in out.stderr
    assert "air_day refused by the test" in out.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM reading").fetchone() == (24,)
        assert conn.execute("SELECT count(*) FROM derive_dirty").fetchone() == (1,)
