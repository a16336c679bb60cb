"""HJ 663 percentile, comprehensive index, good-day ratio, exceedance multiple."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envmon.standards import StandardsError
from envmon.standards.stats import (
    comprehensive_index,
    exceedance_multiple,
    good_day_ratio,
    percentile,
)


def test_percentile_reference_vector() -> None:
    # standards.md §3.2: sorted {2,3,4,4,5,8}, k = 5.5, 5 + (8 − 5)·0.5.
    assert percentile([3, 4, 8, 2, 5, 4], 0.9) == 6.5


@pytest.mark.parametrize(
    ("values", "p", "want"),
    [
        ([3, 4, 8, 2, 5, 4], 0.0, 2.0),
        ([3, 4, 8, 2, 5, 4], 1.0, 8.0),
        ([3, 4, 8, 2, 5, 4], 0.5, 4.0),  # k = 3.5 → 4 + 0·0.5
        ([7], 0.95, 7.0),
        ([1, 2], 0.95, 1.95),  # k = 1.95
        (list(range(1, 366)), 0.9, 328.6),  # k = 328.6
        ([0.1, 0.2], 0.5, 0.15),  # exact, not 0.15000000000000002
    ],
)
def test_percentile(values: list[float], p: float, want: float) -> None:
    assert percentile(values, p) == want


def test_percentile_errors() -> None:
    with pytest.raises(StandardsError):
        percentile([1, 2, 3], 90)  # a percent, not a fraction
    with pytest.raises(StandardsError):
        percentile([], 0.9)


@settings(database=None, max_examples=200, deadline=None)
@given(
    values=st.lists(st.integers(0, 1000), min_size=1, max_size=50),
    p=st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.98, 1.0]),
)
def test_percentile_matches_numpy_linear(values: list[int], p: float) -> None:
    assert percentile(values, p) == pytest.approx(float(np.percentile(values, p * 100)))


def test_comprehensive_index() -> None:
    at_limits = {"so2": 60, "no2": 40, "pm10": 70, "pm25": 35, "co": 4, "o3": 160}
    assert comprehensive_index(at_limits, edition=2012) == 6.0
    conc = {"so2": 12, "no2": 30, "pm10": 77, "pm25": 42, "co": 1.4, "o3": 176}
    # 0.2 + 0.75 + 1.1 + 1.2 + 0.35 + 1.1
    assert comprehensive_index(conc, edition=2012) == 4.7
    assert comprehensive_index(conc, edition=2026) == 4.7
    custom = {"so2": 60, "no2": 40, "pm10": 60, "pm25": 30, "co": 4, "o3": 160}
    # 0.2 + 0.75 + 77/60 + 1.4 + 0.35 + 1.1 = 5.0833…
    assert comprehensive_index(conc, edition=2026, denominators=custom) == pytest.approx(
        5.083333333333333
    )
    with pytest.raises(StandardsError):
        comprehensive_index({"so2": 12}, edition=2012)
    with pytest.raises(StandardsError):
        comprehensive_index({**conc, "nox": 1}, edition=2012)


def test_good_day_ratio() -> None:
    assert good_day_ratio([50, 100, 101, None, 300]) == 0.5
    assert good_day_ratio([]) is None
    assert good_day_ratio([None]) is None
    assert good_day_ratio([1, 2, 3]) == 1.0


def test_exceedance_multiple() -> None:
    assert exceedance_multiple(90, 75) == 0.2
    assert exceedance_multiple(2.2, 2.0) == 0.1  # exact, not 0.10000000000000009
    assert exceedance_multiple(60, 75) == -0.2
    with pytest.raises(StandardsError):
        exceedance_multiple(1, 0)
