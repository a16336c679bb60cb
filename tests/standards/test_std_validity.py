"""GB 3095 Table 4 minimum-data rules and O3 8-h statistics."""

from __future__ import annotations

import pytest

from envmon.standards import StandardsError
from envmon.standards.validity import (
    day_valid,
    hour_valid,
    mda8,
    mda8_valid,
    month_valid,
    o3_8h_moving,
    o3_8h_valid,
    o3_8h_windows,
    year_valid,
)


def test_edges() -> None:
    assert not hour_valid(44)
    assert hour_valid(45)
    assert not day_valid(19)
    assert day_valid(20)
    assert not o3_8h_valid(5)
    assert o3_8h_valid(6)
    assert not year_valid(323)
    assert year_valid(324)


@pytest.mark.parametrize(
    ("n_days", "year", "month", "want"),
    [
        (26, 2025, 1, False),
        (27, 2025, 1, True),
        (26, 2025, 4, False),
        (27, 2025, 4, True),
        (24, 2025, 2, False),
        (25, 2025, 2, True),
        (24, 2024, 2, False),  # leap year: still 25
        (25, 2024, 2, True),
    ],
)
def test_month(n_days: int, year: int, month: int, want: bool) -> None:
    assert month_valid(n_days, year, month) is want


def test_mda8_valid() -> None:
    assert not mda8_valid(13, 150.0, 160)
    assert mda8_valid(14, 150.0, 160)
    assert mda8_valid(13, 161.0, 160)  # few windows, but exceeding counts
    assert not mda8_valid(13, 160.0, 160)  # equal is not exceeding
    assert not mda8_valid(0, None, 160)


def test_bad_counts() -> None:
    with pytest.raises(StandardsError):
        hour_valid(-1)
    with pytest.raises(StandardsError):
        month_valid(27, 2025, 13)


def test_o3_8h_moving() -> None:
    assert o3_8h_moving([None, None, 1, 2, 3, 4, 5, 6]) == 3.5
    assert o3_8h_moving([None, None, None, 1, 2, 3, 4, 5]) is None  # 5 of 8
    assert o3_8h_moving([1000, 1, 1, 1, 1, 1, 1, 1, 1]) == 1.0  # trailing 8 only
    assert o3_8h_moving([1, 2, 3, 4, 5, 6]) == 3.5  # 6 given: earlier 2 missing
    assert o3_8h_moving([1, 2, 3, 4, 5]) is None
    assert o3_8h_moving([0.1] * 8) == 0.1  # exact mean, no float drift


def test_mda8_windows() -> None:
    hourly: list[float | None] = [float(h) for h in range(24)]
    windows = o3_8h_windows(hourly)
    assert len(windows) == 17
    assert windows[0] == 3.5  # 00–08: mean of 0..7
    assert windows[-1] == 19.5  # 16–24: mean of 16..23
    day = mda8(hourly)
    assert day.value == 19.5
    assert day.n_valid_windows == 17
    assert day.valid(160)

    # Hours 16–24 missing: windows ending 17, 18 still have ≥ 6 hours; 19+ do not.
    hourly[16:] = [None] * 8
    day = mda8(hourly)
    assert day.n_valid_windows == 11  # windows ending 08 … 18
    assert day.value == 12.5  # 10–18: mean of 10..15
    assert not day.valid(160)
    assert day.valid(12)  # exceeding the limit makes it usable


def test_mda8_needs_24_hours() -> None:
    with pytest.raises(StandardsError):
        mda8([1.0] * 23)
