"""The validator on its own: every reason, time zones, key cleaning, the batch it builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from envmon.schemas.readings import RawReading, Validator, parse_times

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
V = Validator({"a": "air", "w": "water", "m": "weather"}, clock=lambda: NOW)


def reasons(*rows: RawReading) -> list[str]:
    return [r.reason for r in V.validate(list(rows), "t").rejected]


def test_naive_times_are_beijing_time() -> None:
    got = parse_times(
        pd.Series(
            [
                "2025-01-01",
                "2025-01-01T08:00:00",
                "2025-01-01T00:00:00Z",
                "2025-01-01 08:00:00+08:00",
                "2025-01-01T08:00:00.5+0800",
                "garbage",
                None,
            ],
            dtype=object,
        )
    )
    expected = [
        "2024-12-31 16:00",
        "2025-01-01 00:00",
        "2025-01-01 00:00",
        "2025-01-01 00:00",
        "2025-01-01 00:00:00.5",
    ]
    assert [str(t)[: len(e)] for t, e in zip(got[:5], expected, strict=True)] == expected
    assert got[5:].isna().all()


def test_key_cleaning_and_defaults() -> None:
    df = pd.DataFrame(
        {
            "station": [" a ", "a"],
            "parameter": ["pm25 ", "pm25"],
            "time": ["2025-05-01T00:00", "2025-05-01T01:00"],
            "value": [" 35 ", "36"],
            "flag": ["n", ""],
            "period": ["", "1h"],
        },
        dtype=object,
    )
    v = V.validate_frame(df, "t")
    assert not v.rejected
    assert list(v.batch.station_id) == ["a", "a"]
    assert list(v.batch.flag) == ["N", "N"]
    assert list(v.batch.period) == ["1h", "1h"]
    assert v.batch.value.tolist() == [35.0, 36.0]
    assert v.batch.ts.dtype == np.dtype("datetime64[us]")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (RawReading("x", "pm25", "2025-05-01", 1), "unknown station 'x'"),
        (RawReading("a", "pm1", "2025-05-01", 1), "unknown parameter 'pm1'"),
        (
            RawReading("a", "nh3n", "2025-05-01", 1),
            "parameter 'nh3n' is not measured at air station 'a'",
        ),
        (
            RawReading("w", "air_temp", "2025-05-01", 1),
            "parameter 'air_temp' is not measured at water station 'w'",
        ),
        (
            RawReading("a", "pm25", "2025-05-01", 1, "Z"),
            "unknown data flag 'Z' (HJ 212: N F M S D C T B)",
        ),
        (
            RawReading("a", "pm25", "2025-05-01", 1, "N", "2h"),
            "unknown period '2h' (expected one of rt|1min|5min|1h|4h|1d)",
        ),
        (RawReading("a", "pm25", "soon", 1), "unreadable time 'soon'"),
        (RawReading("a", "pm25", "1999-12-31T23:00:00", 1), "time before 2000-01-01"),
        (
            RawReading("a", "pm25", NOW + timedelta(minutes=11), 1),
            "time in the future (beyond 0:10:00)",
        ),
        (RawReading("a", "pm25", "2025-05-01", None), "missing value"),
        (RawReading("a", "pm25", "2025-05-01", "—"), "value '—' is not a number"),
        (RawReading("a", "pm25", "2025-05-01", float("nan")), "value 'nan' is not a number"),
        (RawReading("a", "pm25", "2025-05-01", float("inf")), "value is not finite"),
        (RawReading("a", "pm25", "2025-05-01", -0.5), "negative concentration -0.5"),
        (
            RawReading("a", "co", "2025-05-01", 151),
            "value 151 mg/m³ outside the plausible range [0, 150]",
        ),
        (
            RawReading("m", "air_temp", "2025-05-01", -60),
            "value -60 °C outside the plausible range [-50, 50]",
        ),
    ],
)
def test_each_reason(row: RawReading, reason: str) -> None:
    assert reasons(row) == [reason]


def test_air_stations_also_measure_weather_and_negative_temperature_is_fine() -> None:
    v = V.validate(
        [
            RawReading("a", "air_temp", "2025-05-01", -12.5),
            RawReading("m", "air_temp", "2025-05-01", -12.5),
        ],
        "t",
    )
    assert not v.rejected
    assert len(v.batch) == 2


def test_first_failing_check_wins_and_raw_is_kept() -> None:
    v = V.validate([RawReading("x", "pm1", "never", "abc", raw="x;pm1;never;abc")], "t")
    (rej,) = v.rejected
    assert rej.reason == "unknown station 'x'"
    assert rej.raw == "x;pm1;never;abc"
    assert rej.source == "t"


def test_a_readers_problem_column() -> None:
    df = pd.DataFrame(
        {
            "station": ["a"],
            "parameter": ["pm25"],
            "time": ["2025-05-01"],
            "value": ["1"],
            "_problem": ["row has 7 fields, the header 6"],
        }
    )
    assert [r.reason for r in V.validate_frame(df, "t").rejected] == [
        "row has 7 fields, the header 6"
    ]
