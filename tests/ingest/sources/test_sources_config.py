"""``config/sources.yaml``: the shipped file, durations, and errors that name the source."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from envmon.durations import parse_duration
from envmon.errors import ConfigError
from envmon.ingest.sources import load_sources, parse_sources
from envmon.settings import Settings

from .conftest import CATALOG, REPO


def test_shipped_file_runs_the_simulator_sources() -> None:
    config = load_sources(REPO / "config" / "sources.yaml")
    assert config.simulated
    assert [s.name for s in config.active()] == [
        "sim-cnemc-air",
        "sim-water-auto",
        "sim-cma-surface",
        "sim-openaq",
    ]
    assert all(s.base_url is None for s in config.active())
    bound = config.bind_simulator("http://127.0.0.1:4321/")
    assert {s.base_url for s in bound.active()} == {"http://127.0.0.1:4321"}
    # Defaults are merged into every entry; an entry's own value wins.
    water = bound.get("sim-water-auto")
    assert water.overlap == timedelta(hours=8) and water.max_catchup == timedelta(days=7)
    assert water.interval == timedelta(minutes=5)
    with pytest.raises(ConfigError, match=r"no source named 'nope'.*sim-openaq"):
        config.get("nope")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("3h", 10800), ("1d", 86400), (45, 45), ("250ms", 0.25)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_bad_duration_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match=r"write e\.g\. 30s, 5m, 3h or 1d"):
        parse_duration("5 minutes")


def entry(**kw: object) -> dict[str, object]:
    return {"name": "cnemc-air", "kind": "cnemc_air", "base_url": "http://x.test", **kw}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"sources": [entry(interval="5 minutes")]},
            r"source 'cnemc-air' \(sources\[0\]\): interval: Value error, '5 minutes' is not",
        ),
        (
            {"sources": [entry(kind="weather_radar")]},
            r"source 'cnemc-air': unknown kind 'weather_radar' \(one of cma_surface, cnemc_air",
        ),
        (
            {"sources": [entry(), entry(kind="water_auto")]},
            "source names must be unique: cnemc-air used twice",
        ),
        (
            {"sources": [entry(name="CNEMC Air")]},
            r"source 'CNEMC Air' \(sources\[0\]\): name: Value error, lower-case",
        ),
        (
            {"sources": [entry(intervall="5m")]},
            r"source 'cnemc-air' \(sources\[0\]\): intervall: Extra inputs are not permitted",
        ),
        ({"sources": [entry(base_url=None)]}, "source 'cnemc-air': base_url is required"),
        (
            {"sources": [entry(options={"time_label": "middle"})]},
            r"source 'cnemc-air' \(cnemc_air\): options.time_label: Input should be 'end' or",
        ),
        (
            {"simulator": {"sources": [{"name": "sim", "kind": "cnemc_air", "chunk": "10m"}]}},
            r"source 'sim' \(simulator.sources\[0\]\): Value error, chunk must be at least 1h",
        ),
        (
            {"defaults": {"overlap": "-1h"}, "sources": [entry()]},
            r"source 'cnemc-air' \(sources\[0\]\)",
        ),
    ],
    ids=[
        "duration",
        "kind",
        "duplicate",
        "name",
        "unknown-field",
        "no-url",
        "options",
        "simulator",
        "defaults",
    ],
)
def test_errors_name_the_file_the_source_and_the_field(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_sources(raw, path="config/sources.yaml")
    assert str(info.value).startswith("config/sources.yaml: ")


def test_all_problems_are_reported_at_once() -> None:
    raw = {"sources": [entry(interval="x"), entry(name="b", timeout="y")]}
    with pytest.raises(ConfigError) as info:
        parse_sources(raw)
    assert "interval" in str(info.value) and "timeout" in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the sources file"):
        load_sources(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sources(bad)


def test_secrets_come_from_the_settings_before_the_file() -> None:
    from pydantic import SecretStr

    config = parse_sources({"sources": [entry(api_key="from-file")]})
    src = config.sources[0]
    assert src.secret({}) == "from-file"
    assert src.secret({"cnemc-air": SecretStr("from-env")}) == "from-env"
    assert "from-file" not in repr(src)
    # The file's path is resolved once, by the settings.
    assert Settings(config_dir=Path("config")).sources_path == Path("config/sources.yaml")


def test_check_sources_without_network() -> None:
    from envmon.ingest.backfill import check_sources

    shipped = load_sources(REPO / "config" / "sources.yaml")
    rows = {r["source"]: r for r in check_sources(CATALOG, shipped)}
    assert all(r["problem"] is None for r in rows.values())
    assert rows["sim-cma-surface"]["stations"] == 167 and rows["sim-cma-surface"]["active"]
    keyless = parse_sources(
        {"sources": [{"name": "oaq", "kind": "openaq_v3", "base_url": "http://x.test",
                      "stations": {"1": "air-taiyuan-nanzhai", "2": "wx-53677"}}]}
    )  # fmt: skip
    (row,) = check_sources(CATALOG, keyless)
    assert "'2' maps to weather station 'wx-53677'" in row["problem"]
