"""The stream contract: columns, determinism, chunk independence, validity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from envmon.catalog import load_catalog
from envmon.schemas.readings import FLAGS, Validator
from envmon.simulate import COLUMNS, live_values, simulate
from envmon.timeutil import BEIJING


def _all(stations: Any, start: datetime, end: datetime, **kw: Any) -> pd.DataFrame:
    frames = list(simulate(stations, start, end, **kw))
    return pd.concat(frames, ignore_index=True)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["station", "parameter", "time"]).reset_index(drop=True)


def _few(stations: Any) -> list[Any]:
    by_kind: dict[str, list[Any]] = {}
    for s in stations:
        by_kind.setdefault(s.kind, []).append(s)
    return by_kind["air"][:3] + by_kind["water"][:3] + by_kind["weather"][:4]


START = datetime(2024, 12, 28, 0, tzinfo=BEIJING)


def test_columns_and_dtypes(stations: Any) -> None:
    df = _all(_few(stations), START, START + timedelta(days=2))
    assert tuple(df.columns) == COLUMNS
    assert df["value"].dtype == "float64"
    for c in ("station", "parameter", "time", "flag", "period"):
        assert pd.api.types.is_string_dtype(df[c]), c
    assert df["time"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00\+08:00").all()
    assert set(df["flag"]) <= FLAGS
    kind = {s.id: s.kind for s in stations}
    periods = df.groupby(df["station"].map(kind))["period"].unique()
    assert list(periods["air"]) == ["1h"]
    assert list(periods["weather"]) == ["1h"]
    assert list(periods["water"]) == ["4h"]
    water_hours = df.loc[df["period"] == "4h", "time"].str.slice(11, 13).astype(int)
    assert set(water_hours) == {0, 4, 8, 12, 16, 20}


def test_deterministic_and_seed_dependent(stations: Any) -> None:
    few = _few(stations)
    end = START + timedelta(days=1)
    a = _all(few, START, end)
    b = _all(few, START, end)
    pd.testing.assert_frame_equal(a, b)
    c = _all(few, START, end, seed=7)
    assert not a["value"].equals(c["value"])


@pytest.mark.parametrize("cut_hours", [1, 37, 250, 769])
def test_chunking_does_not_change_anything(stations: Any, cut_hours: int) -> None:
    few = _few(stations)
    a, c = START, START + timedelta(hours=1200)  # crosses epoch-aligned blocks
    b = a + timedelta(hours=cut_hours)
    whole = _all(few, a, c, chunk_hours=5000)
    parts = pd.concat([_all(few, a, b), _all(few, b, c)], ignore_index=True)
    pd.testing.assert_frame_equal(_sorted(whole), _sorted(parts))
    small = _all(few, a, c, chunk_hours=13)
    pd.testing.assert_frame_equal(_sorted(whole), _sorted(small))


def test_station_values_do_not_depend_on_the_other_stations(stations: Any) -> None:
    few = _few(stations)
    end = START + timedelta(days=2)
    together = _all(few, START, end)
    for one in (few[0], few[4], few[-1]):
        alone = _all([one], START, end)
        pd.testing.assert_frame_equal(
            _sorted(alone), _sorted(together[together["station"] == one.id])
        )


def test_a_week_passes_the_validator(stations: Any) -> None:
    validator = Validator(
        {s.id: s.kind for s in stations}, clock=lambda: datetime(2030, 1, 1, tzinfo=BEIJING)
    )
    sample = stations[::6]  # every kind, several of each
    start = datetime(2025, 3, 10, tzinfo=BEIJING)
    n = 0
    for df in simulate(sample, start, start + timedelta(days=7), chunk_hours=48):
        result = validator.validate_frame(df, "simulate")
        assert result.rejected == []
        assert len(result.batch) == len(df)
        n += len(df)
    assert n > 10_000


def test_time_arguments(stations: Any) -> None:
    few = _few(stations)[:1]
    # A start inside an hour begins at the next hour; naive times are Beijing time.
    df = _all(few, datetime(2025, 1, 1, 7, 30), datetime(2025, 1, 1, 10, 0))
    assert sorted(set(df["time"])) == ["2025-01-01T08:00:00+08:00", "2025-01-01T09:00:00+08:00"]
    utc = _all(few, datetime(2025, 1, 1, 0, tzinfo=UTC), datetime(2025, 1, 1, 1, tzinfo=UTC))
    assert set(utc["time"]) == {"2025-01-01T08:00:00+08:00"}
    assert list(simulate(few, START, START)) == []
    with pytest.raises(ValueError, match="unknown station kinds"):
        list(simulate(few, START, START + timedelta(hours=1), kinds=("soil",)))


def test_live_values_match_the_backfill(stations: Any) -> None:
    few = _few(stations)
    at = datetime(2025, 6, 3, 8, 41, tzinfo=BEIJING)
    live = live_values(few, at)
    hour = _all(few, at.replace(minute=0), at.replace(minute=0) + timedelta(hours=1))
    pd.testing.assert_frame_equal(live, hour)
    assert set(live["time"]) == {"2025-06-03T08:00:00+08:00"}
    assert (live["period"] == "4h").any()  # 08:00 starts a water period
    off_slot = live_values(few, at + timedelta(hours=1))
    assert not (off_slot["period"] == "4h").any()
    empty = live_values([], at)
    assert tuple(empty.columns) == COLUMNS and len(empty) == 0


def test_the_real_catalog_simulates_and_validates() -> None:
    path = Path(__file__).resolve().parents[2] / "config" / "stations.yaml"
    stations = load_catalog(path).stations
    validator = Validator(
        {s.id: s.kind for s in stations}, clock=lambda: datetime(2030, 1, 1, tzinfo=BEIJING)
    )
    start = datetime(2025, 7, 1, tzinfo=BEIJING)
    df = _all(stations, start, start + timedelta(hours=6))
    result = validator.validate_frame(df, "simulate")
    assert result.rejected == []
    assert df["station"].nunique() > 0.95 * len(stations)
