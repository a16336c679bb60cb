"""The live status line fits 100 columns whatever the counts; log lines carry their zone."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from datetime import datetime
from typing import Any

from envmon.log import FORMAT, BeijingFormatter
from envmon.statusline import STATUS_WIDTH, columns, status_line


def _status(**over: Any) -> dict[str, Any]:
    st: dict[str, Any] = {
        "stations": {
            "air": {"total": 26, "active": 26},
            "water": {"total": 14, "active": 14},
            "weather": {"total": 167, "active": 167},
        },
        "recent_readings": {
            "air": {"stations_reporting": 26},
            "water": {"stations_reporting": 14},
            "weather": {"stations_reporting": 167},
        },
        "ingested_since_start": 1_234_567,
        "by_source": {"hj212": 1_000_000, "simulator-live": 234_567, "cnemc-air": 5},
        "readings_total": 987_654_321,
        "rejected_24h": {"value is negative": 12_345, "unknown station": 7},
        "spool_pending_files": 3,
        "derived_at": "2026-12-07T20:44:19+08:00",
        "alerts": {"open": [{"count": 7, "severity": "critical", "state": "firing"}]},
        "hj212": {"port": 9212, "connections": 40},
        "simulator": "loading 2020 (air and water) in the background",
    }
    st.update(over)
    return st


def test_status_line_fits_100_columns_with_everything_running() -> None:
    line = status_line(_status())
    assert columns(line) <= STATUS_WIDTH, line
    # The important parts stay: stations reporting, open alerts, what came in.
    assert "air 26/26 water 14/14 weather 167/167" in line
    assert "alerts 7" in line
    assert "in 1.2M" in line
    assert "\n" not in line


def test_status_line_with_absurd_counts_and_wide_text_still_fits() -> None:
    huge = 10**15
    st = _status(
        ingested_since_start=huge,
        readings_total=huge,
        rejected_24h={"x": huge},
        spool_pending_files=huge,
        simulator="正在后台加载 2020 年的空气和水质数据" * 5,
        stations={f"kind{i}": {"total": 9999, "active": 9999} for i in range(12)},
        recent_readings={},
    )
    line = status_line(st)
    assert columns(line) <= STATUS_WIDTH, line
    for width in (40, 60, 80):
        assert columns(status_line(_status(), width=width)) <= width


def test_status_line_without_optional_parts() -> None:
    st = _status(alerts=None, hj212=None, simulator=None, derived_at=None)
    line = status_line(st)
    assert "alerts 0" in line
    assert "HJ212" not in line and "sim " not in line
    assert columns(line) <= STATUS_WIDTH


def test_log_time_is_beijing_with_its_offset() -> None:
    record = logging.LogRecord("envmon.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    record.created = datetime.fromisoformat("2026-01-01T00:30:00+00:00").timestamp()
    text = BeijingFormatter(FORMAT).format(record)
    assert text.startswith("2026-01-01T08:30:00.000+08:00 INFO envmon.test: hello x"), text


def test_every_cli_log_line_carries_plus_0800() -> None:
    # A real process configured as the CLI does; envmon's and third-party loggers alike.
    code = (
        "import logging, sys; from envmon import log; log.configure('INFO');"
        "logging.getLogger('envmon.x').warning('one'); logging.getLogger('other').error('two')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2
    for ln in lines:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00 ", ln), ln
