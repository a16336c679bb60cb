"""The receiver's files: device secrets, the raw-frame archive, config/hj212.yaml."""

from __future__ import annotations

import logging
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from envmon.errors import ConfigError
from envmon.ingest.hj212.archive import (
    _ESCAPE_RE,
    FrameArchive,
    _escape_char,
    escape,
    parse_line,
    unescape,
)
from envmon.ingest.hj212.auth import check_password, generate_secrets, load_secrets
from envmon.ingest.hj212.session import load_config, parse_config

from .conftest import AIR, CATALOG, REPO

MN = "010000A8900016F000169DC0"

# --------------------------------------------------------------------------- secrets


def test_secrets_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(f'"{MN.lower()}": "123456"\n"AAAAAAAAAAAAAAAAAAAAAAAA": "abcdef"\n')
    path.chmod(0o600)
    env = {"AAAAAAAAAAAAAAAAAAAAAAAA": SecretStr("zzzzzz"), "BB": "qqqqqq"}
    assert load_secrets(path, env) == {
        MN: "123456",  # MNs compare upper-case
        "AAAAAAAAAAAAAAAAAAAAAAAA": "zzzzzz",  # the environment wins
        "BB": "qqqqqq",
    }
    assert load_secrets(tmp_path / "missing.yaml", {}) == {}
    assert load_secrets(None) == {}


def test_secrets_file_refuses_unquoted_numbers_without_echoing_them(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    # YAML 1.1 reads 012345 as the octal number 5349.
    path.write_text(f"{MN}: 012345\n140108220000000000000001: '654321'\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as err:
        load_secrets(path)
    message = str(err.value)
    assert f"the password of MN {MN} is not a quoted string" in message
    assert "an MN is not a string (write it in quotes)" in message
    assert "012345" not in message and "5349" not in message and "654321" not in message


def test_secrets_file_with_bad_yaml_does_not_quote_the_line(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(f'"{MN}": "s3cret\n')
    with pytest.raises(ConfigError) as err:
        load_secrets(path)
    assert "s3cret" not in str(err.value) and "not valid YAML" in str(err.value)


def test_readable_secrets_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(f'"{MN}": "123456"\n')
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_secrets(path)
    assert "chmod 600" in caplog.text and "123456" not in caplog.text


def test_generate_secrets(tmp_path: Path) -> None:
    path = tmp_path / "var" / "hj212-secrets.yaml"
    assert generate_secrets(CATALOG, path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secrets = load_secrets(path)
    mns = {s.mn.upper() for s in CATALOG.stations if s.mn}
    assert set(secrets) == mns
    assert all(len(pw) == 6 and pw.isalnum() for pw in secrets.values())
    assert len(set(secrets.values())) > len(mns) // 2  # random, not one shared value
    before = path.read_text()
    assert generate_secrets(CATALOG, path) is False  # never overwritten
    assert path.read_text() == before


def test_check_password() -> None:
    assert check_password("123456", "123456")
    assert not check_password("123456", "123457")
    assert not check_password("123456", None)
    assert not check_password("123456", "")


# --------------------------------------------------------------------------- archive


@pytest.mark.parametrize(
    "raw",
    [
        b"##0101QN=1;ST=32&&1C80\r\n",
        b"a\\b\\\\x41\tc\r\n\x00\x7f",
        "中文 -Info".encode() + b"\xff\xfe\x80",
        b"\\x41 literally",
        b"",
    ],
)
def test_escape_is_one_line_and_reversible(raw: bytes) -> None:
    line = escape(raw)
    assert "\n" not in line and "\r" not in line and "\t" not in line
    assert unescape(line) == raw


@given(st.binary(max_size=200), st.sampled_from([b"", b"\r\n", b"\n", b"\r\n\r\n"]))
def test_escape_of_a_frame_with_its_crlf_is_the_general_escape(body: bytes, tail: bytes) -> None:
    raw = b"##" + body + tail
    assert escape(raw) == _ESCAPE_RE.sub(_escape_char, raw.decode("utf-8", "surrogateescape"))
    assert unescape(escape(raw)) == raw


def test_archive_lines_daily_files_and_prune(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    with FrameArchive(directory, retention_days=2) as archive:
        t1 = datetime(2025, 6, 1, 23, 59, 59, tzinfo=UTC)
        t2 = datetime(2025, 6, 2, 0, 0, 1, tzinfo=UTC)
        archive.append(t1, "10.0.0.1:5000", MN, "ok", b"##frame one\r\n")
        archive.append(t2, "10.0.0.1:5000", None, "error", b"junk\tjunk")
        assert not directory.exists()  # buffered until the flush
        archive.flush()
        archive.append(t2, "[::1]:6000", MN, "rejected", b"##frame two\r\n")
    day1 = directory / "hj212-2025-06-01.log"
    day2 = directory / "hj212-2025-06-02.log"
    assert sorted(directory.iterdir()) == [day1, day2]
    [one] = day1.read_text().splitlines()
    assert one == f"2025-06-01T23:59:59+00:00\t10.0.0.1:5000\t{MN}\tok\t##frame one\\r\\n"
    records = [parse_line(line) for line in day2.read_text().splitlines()]
    assert [(r.received_at, r.peer, r.mn, r.status, r.raw) for r in records] == [
        (t2, "10.0.0.1:5000", None, "error", b"junk\tjunk"),
        (t2, "[::1]:6000", MN, "rejected", b"##frame two\r\n"),
    ]
    (directory / "hj212-2025-05-30.log").write_text("")
    (directory / "notes.txt").write_text("")
    archive = FrameArchive(directory, retention_days=2)
    removed = archive.prune(today=date(2025, 6, 3))
    assert removed == [directory / "hj212-2025-05-30.log"]
    assert archive.prune(today=date(2025, 6, 4)) == [day1]
    assert sorted(p.name for p in directory.iterdir()) == ["hj212-2025-06-02.log", "notes.txt"]


def test_archive_appends_to_an_existing_day(tmp_path: Path) -> None:
    at = datetime(2025, 6, 1, 8, tzinfo=UTC)
    for n in range(2):
        with FrameArchive(tmp_path, retention_days=1) as archive:
            archive.append(at, "p", MN, "ok", b"frame %d" % n)
    lines = (tmp_path / "hj212-2025-06-01.log").read_text().splitlines()
    assert [parse_line(line).raw for line in lines] == [b"frame 0", b"frame 1"]


def test_archive_rejects_an_unknown_status(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="status"):
        FrameArchive(tmp_path, 1).append(datetime.now(UTC), "p", None, "fine", b"")


# --------------------------------------------------------------------------- config


def test_shipped_config_is_valid_for_the_catalog() -> None:
    config = load_config(REPO / "config" / "hj212.yaml", CATALOG)
    units = config.unit_overrides(AIR.id, "air")
    # Ambient-air loggers send µg/m³ for PM and gases, mg/m³ for CO (standards.md §7.8).
    assert units["a34004"] == units["a34002"] == units["a21026"] == "µg/m³"
    assert units["a21005"] == "mg/m³"
    assert config.unit_overrides("water-x", "water") == {}


def test_config_station_blocks_merge_over_kind_defaults() -> None:
    config = parse_config(
        {
            "unit_overrides": {"air": {"a34004": "ug/m3", "02": "µg/m³"}},
            "stations": {AIR.id: {"unit_overrides": {"a34004": "ng/m³"}, "minute_interval": 5}},
        },
        CATALOG,
    )
    assert config.unit_overrides(AIR.id, "air") == {"a34004": "ng/m³", "a21026": "µg/m³"}
    assert config.unit_overrides("air-other", "air") == {"a34004": "ug/m3", "a21026": "µg/m³"}
    assert config.minute_interval(AIR.id) == 5
    assert config.minute_interval("air-other") is None


def test_config_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "unit_overrides": {"air": {"a34004": "mg/L", "a21005": "furlong"}, "soil": {}},
                "stations": {
                    "air-nowhere": {"unit_overrides": {}},
                    AIR.id: {"minute_interval": 7, "colour": "red"},
                },
                "extra": 1,
            },
            CATALOG,
        )
    message = str(err.value)
    for problem in (
        "unknown top-level key 'extra'",
        "unknown station kind 'soil'",
        "unit_overrides.air.a34004: cannot convert mg/L to µg/m³",
        "unit_overrides.air.a21005: unknown unit 'furlong'",
        "stations.air-nowhere: no such station in the catalog",
        f"stations.{AIR.id}.minute_interval: 7 is not one of",
        f"stations.{AIR.id}: unknown key 'colour'",
    ):
        assert problem in message


def test_missing_config_file_means_no_overrides(tmp_path: Path) -> None:
    config = load_config(tmp_path / "hj212.yaml", CATALOG)
    assert config.unit_overrides(AIR.id, "air") == {}


def test_archive_write_failure_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    archive = FrameArchive(blocker, retention_days=1)
    at = datetime(2025, 6, 1, 8, tzinfo=UTC)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            archive.append(at, "p", MN, "ok", b"frame")
            archive.flush()
    assert archive.lost == 3
    assert caplog.text.count("hj212 archive write failed") == 1  # said once, not per flush
