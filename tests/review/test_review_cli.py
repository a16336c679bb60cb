"""Issue 14 end to end: revisions kept, review invalidate/restore, reviewed daily values.

The real commands (``python -m envmon.cli``) against a real database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
ST = "air-taiyuan-jiancaoping"  # in config/stations.yaml


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


DAY = "2025-01-01"


def day_file(tmp_path: Path, name: str, high: float) -> Path:
    """24 hours of PM2.5: 30 except 10:00–13:59 Beijing time, which are ``high``."""
    lines = ["station,parameter,time,value,flag,period"]
    for h in range(24):
        v = high if 10 <= h < 14 else 30
        lines.append(f"{ST},pm25,{DAY}T{h:02d}:00:00+08:00,{v},N,1h")
    f = tmp_path / name
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f


def pm25_day(db_url: str) -> float | None:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT pm25 FROM air_day WHERE station_id = %s AND day = %s", (ST, DAY)
        ).fetchone()
    return None if row is None else float(row[0])


def ok(args: list[str], db_url: str, tmp_path: Path) -> str:
    out = envmon(args, db_url, tmp_path)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def loaded(db_url: str, tmp_path: Path) -> str:
    ok(["stations", "load"], db_url, tmp_path)
    ok(["import", str(day_file(tmp_path, "first.csv", 200))], db_url, tmp_path)
    return db_url


def test_changed_resend_keeps_old_version_and_history_shows_both(
    loaded: str, tmp_path: Path
) -> None:
    # Identical re-delivery: a no-op that adds nothing.
    ok(["import", str(day_file(tmp_path, "same.csv", 200))], loaded, tmp_path)
    with psycopg.connect(loaded) as conn:
        assert conn.execute("SELECT count(*) FROM reading_revision").fetchone() == (0,)
    # A corrected file: four hours change.
    ok(["import", str(day_file(tmp_path, "fixed.csv", 60))], loaded, tmp_path)
    with psycopg.connect(loaded) as conn:
        revs = conn.execute(
            "SELECT value, source, new_source, reason FROM reading_revision ORDER BY ts"
        ).fetchall()
    assert revs == [(200.0, "import:first.csv", "import:fixed.csv", "import")] * 4
    out = ok(
        [
            "review",
            "history",
            "--station",
            ST,
            "--parameter",
            "pm25",
            "--time",
            f"{DAY}T11:00:00",
            "--json",
        ],
        loaded,
        tmp_path,
    )
    hist = json.loads(out)
    assert [(h["kind"], h["value"], h["current"]) for h in hist] == [
        ("version", 200.0, False),
        ("version", 60.0, True),
    ]
    assert hist[0]["replaced_because"] == "import"
    assert hist[0]["replaced_by"] == "import:fixed.csv"


def test_invalidate_and_restore_change_daily_values_and_are_logged(
    loaded: str, tmp_path: Path
) -> None:
    ok(["derive"], loaded, tmp_path)
    assert pm25_day(loaded) == pytest.approx((20 * 30 + 4 * 200) / 24, abs=1)
    with psycopg.connect(loaded) as conn:
        name = conn.execute("SELECT name FROM station WHERE id = %s", (ST,)).fetchone()
    assert name is not None
    sel = ["--station", name[0], "--parameter", "pm25"]  # the Chinese name works too
    rng = ["--from", f"{DAY}T10:00:00", "--to", f"{DAY}T14:00:00"]
    out = ok(
        ["review", "invalidate", *sel, *rng, "--reason", "校准", "--by", "王工"], loaded, tmp_path
    )
    assert "4 readings" in out
    ok(["derive"], loaded, tmp_path)
    assert pm25_day(loaded) == pytest.approx(30, abs=0.5)
    out = ok(
        ["review", "restore", *sel, *rng, "--reason", "复核无误", "--by", "李工"], loaded, tmp_path
    )
    assert "4 readings" in out
    ok(["derive"], loaded, tmp_path)
    assert pm25_day(loaded) == pytest.approx((20 * 30 + 4 * 200) / 24, abs=1)
    hist = json.loads(
        ok(["review", "history", *sel, "--time", f"{DAY}T12:00:00", "--json"], loaded, tmp_path)
    )
    assert [(h["kind"], h.get("by"), h.get("reason")) for h in hist] == [
        ("version", None, None),
        ("invalidate", "王工", "校准"),
        ("restore", "李工", "复核无误"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--station", "nowhere", "--parameter", "pm25"], "unknown station 'nowhere'"),
        (["--station", ST, "--parameter", "xyz"], "unknown parameter 'xyz'"),
        (["--station", ST, "--parameter", "nh3n"], "is not measured at air station"),
    ],
)
def test_bad_selectors_are_refused_and_change_nothing(
    loaded: str, tmp_path: Path, args: list[str], message: str
) -> None:
    rng = ["--from", f"{DAY}T10:00:00", "--to", f"{DAY}T14:00:00"]
    out = envmon(
        ["review", "invalidate", *args, *rng, "--reason", "x", "--by", "y"], loaded, tmp_path
    )
    assert out.returncode == 1
    assert message in out.stderr
    assert_untouched(loaded)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (f"{DAY}T14:00:00", f"{DAY}T14:00:00", "empty range"),
        (f"{DAY}T14:00:00", f"{DAY}T10:00:00", "empty range"),
        ("2099-01-01T00:00:00", "2099-01-02T00:00:00", "range in the future"),
    ],
)
def test_bad_ranges_are_refused_and_change_nothing(
    loaded: str, tmp_path: Path, start: str, end: str, message: str
) -> None:
    out = envmon(
        [
            "review",
            "restore",
            "--station",
            ST,
            "--parameter",
            "pm25",
            "--from",
            start,
            "--to",
            end,
            "--reason",
            "x",
            "--by",
            "y",
        ],
        loaded,
        tmp_path,
    )
    assert out.returncode == 1
    assert message in out.stderr
    assert_untouched(loaded)


def assert_untouched(url: str) -> None:
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM review_action").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM review_mark").fetchone() == (0,)


# Baselines as numbers (the test stores no 2020 data); the figures are the test's own.
TARGETS = """targets:
  - {metric: pm25_annual_mean, region: zone, baseline_year: 2020, baseline: 50.0,
     target_year: 2025, change: -0.20}
  - {metric: good_day_ratio, region: zone, baseline_year: 2020, baseline: 0.6,
     target_year: 2025, change: 0.10}
"""


def evaluate(db_url: str, tmp_path: Path, *extra: str) -> dict[str, object]:
    targets = tmp_path / "targets.yaml"
    targets.write_text(TARGETS, encoding="utf-8")
    out = ok(
        ["evaluate", "--year", "2025", "--json", "--targets", str(targets), *extra],
        db_url,
        tmp_path,
    )
    res = json.loads(out)
    assert isinstance(res, dict)
    return res


def test_evaluate_as_of_reproduces_the_result_before_a_correction_and_review(
    loaded: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    before = evaluate(loaded, tmp_path)
    t = datetime.now(UTC).isoformat()
    ok(["import", str(day_file(tmp_path, "fixed.csv", 60))], loaded, tmp_path)
    ok(
        [
            "review",
            "invalidate",
            "--station",
            ST,
            "--parameter",
            "pm25",
            "--from",
            f"{DAY}T00:00:00",
            "--to",
            f"{DAY}T02:00:00",
            "--reason",
            "维护",
            "--by",
            "王工",
        ],
        loaded,
        tmp_path,
    )
    after = evaluate(loaded, tmp_path)
    assert after["pm25"] != before["pm25"]
    again = evaluate(loaded, tmp_path, "--as-of", t)
    assert again["pm25"] == before["pm25"]
    assert again["good_days"] == before["good_days"]
    assert again["reviewed_as_of"] != before["reviewed_as_of"]
    # The stored data and derived values are untouched by the reproduction.
    assert evaluate(loaded, tmp_path)["pm25"] == after["pm25"]
