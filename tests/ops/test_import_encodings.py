"""`envmon import` of what Excel on a Chinese Windows writes, and of damaged text.

Real files, the real command, a real database: GB18030/GBK and UTF-16 (BOM)
files import; a bad byte deep in a large file stops the import before anything
is stored and names its true line; rejects are counted, not repeated.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
ST = "air-taiyuan-jiancaoping"  # in config/stations.yaml
HEADER = "station,parameter,time,value,备注\n"


def envmon(args: list[str], db_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        ENVMON_DATABASE_URL=db_url,
        ENVMON_DATA_DIR=str(tmp_path / "var"),
        ENVMON_CONFIG_DIR=str(REPO / "config"),
    )
    return subprocess.run(
        [sys.executable, "-m", "envmon.cli", "import", *args, "--no-derive"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def counts(db_url: str) -> tuple[int, int]:
    with psycopg.connect(db_url) as conn:
        (r,) = conn.execute("SELECT count(*) FROM reading").fetchone() or (0,)
        (j,) = conn.execute("SELECT count(*) FROM rejected").fetchone() or (0,)
    return int(r), int(j)


TEXT = (
    HEADER
    + f"{ST},pm25,2025-01-01T08:00:00,35,尖草坪 自动站\n"
    + f"{ST},pm10,2025-01-01T08:00:00,61,正常\n"
    + "尖草坪,pm25,2025-01-01T08:00:00,35,站号写成了中文名\n"
)


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-16", "utf-8-sig"])
def test_chinese_windows_encodings_import(db_url: str, tmp_path: Path, encoding: str) -> None:
    f = tmp_path / "excel.csv"
    f.write_bytes(TEXT.replace("\n", "\r\n").encode(encoding))
    out = envmon([str(f)], db_url, tmp_path)
    assert out.returncode == 4, out.stderr  # one row rejected
    assert "accepted 2 (new 2" in out.stdout, out.stdout
    assert "line 4: unknown station '尖草坪'" in out.stdout, out.stdout
    with psycopg.connect(db_url) as conn:
        (raw,) = conn.execute("SELECT raw FROM rejected").fetchone() or ("",)
    # Decoded, not mojibake: the raw row is kept as it stood in the file.
    assert raw == "尖草坪,pm25,2025-01-01T08:00:00,35,站号写成了中文名"


def test_encoding_option_wins_and_is_checked(db_url: str, tmp_path: Path) -> None:
    f = tmp_path / "utf16-no-bom.csv"
    f.write_bytes(TEXT.encode("utf-16-le"))  # no BOM: only --encoding can tell
    guessed = envmon([str(f)], db_url, tmp_path)
    assert guessed.returncode == 1
    assert "Give the file's encoding with --encoding" in guessed.stderr
    out = envmon([str(f), "--encoding", "utf-16-le", "--allow-rejects"], db_url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "accepted 2 (new 2" in out.stdout
    bogus = envmon([str(f), "--encoding", "no-such-codec"], db_url, tmp_path)
    assert bogus.returncode == 1
    assert "unknown encoding 'no-such-codec'" in bogus.stderr
    g = tmp_path / "gbk.csv"
    g.write_bytes(("station,parameter,time,value\n" + TEXT.split("\n", 1)[1]).encode("gbk"))
    wrong = envmon([str(g), "--encoding", "ascii"], db_url, tmp_path)
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
    out = envmon([str(f)], db_url, tmp_path)
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
    out = envmon([str(f)], db_url, tmp_path)
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
        out = envmon([str(f)], db_url, tmp_path)
        assert out.returncode == 4
    with psycopg.connect(db_url) as conn:
        got = conn.execute(
            "SELECT reason, times, received_at <= last_seen_at FROM rejected ORDER BY reason"
        ).fetchall()
    assert got == [
        ("negative concentration -1", 6, True),
        ("value 'abc' is not a number", 3, True),
    ]
