"""Trend statistics on synthetic monthly series with a known slope (envmon.evaluate.trends)."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pymannkendall as mk
import pytest

from envmon.evaluate.trends import (
    MIN_VALID_MONTHS,
    MonthValue,
    TrendError,
    month_range,
    month_series,
    trend,
)

MONTHS = month_range(date(2016, 1, 1), date(2026, 1, 1))  # ten years


def series(slope: float, *, noise: float = 2.0, seed: int = 7, gaps: int = 0) -> list[MonthValue]:
    """50 µg/m³ + slope per year + a winter peak (±20) + noise; ``gaps`` invalid months."""
    rng = np.random.default_rng(seed)
    out = []
    for i, m in enumerate(MONTHS):
        v = 50 + slope * i / 12 + 20 * math.cos(2 * math.pi * (m.month - 1) / 12)
        out.append(MonthValue(m, float(v + rng.normal(0, noise)), 30, True))
    for i in rng.choice(len(out), size=gaps, replace=False):
        out[i] = MonthValue(out[i].month, None, 12, False)
    return out


@pytest.mark.parametrize("method", ["seasonal_kendall", "anomalies", "none"])
def test_known_slope_is_found(method: str) -> None:
    res = trend(series(-2.0, gaps=9), deseasonalise=method)  # type: ignore[arg-type]
    assert res.status == "ok" and res.n_valid == 111 and len(res.excluded) == 9
    assert res.slope_per_year == pytest.approx(-2.0, abs=0.25)
    assert res.trend == "decreasing" and res.significant and res.p_value is not None
    assert res.p_value < 0.001
    assert res.slope_ci is not None and res.slope_ci[0] <= res.slope_per_year <= res.slope_ci[1]
    if method != "none":  # the raw series' seasonal swing widens the plain CI
        assert res.slope_ci[0] < -2.0 < res.slope_ci[1] or abs(res.slope_per_year + 2) < 0.1


def test_seasonal_slope_equals_pymannkendall_without_gaps() -> None:
    s = series(1.5)
    res = trend(s)
    ref = mk.seasonal_sens_slope(np.array([v.mean for v in s]), period=12)
    assert res.slope_per_year == pytest.approx(float(ref.slope))
    ref_test = mk.seasonal_test(np.array([v.mean for v in s]), period=12)
    assert res.p_value == pytest.approx(float(ref_test.p)) and res.s == float(ref_test.s)


def test_no_trend_is_not_significant() -> None:
    res = trend(series(0.0, noise=3.0, seed=11))
    assert res.status == "ok" and res.significant is False and res.trend == "no trend"
    assert res.slope_ci is not None and res.slope_ci[0] < 0 < res.slope_ci[1]


def test_plain_test_on_a_seasonal_series_is_what_deseasonalising_is_for() -> None:
    # Two years starting in the low season and ending in the winter peak: the plain test
    # sees the season; the seasonal test does not.
    s = [
        v for v in series(0.0, noise=0.5, seed=3) if date(2018, 4, 1) <= v.month < date(2020, 4, 1)
    ]
    assert not trend(s, deseasonalise="seasonal_kendall").significant


def test_capture_rule_of_gb3095_table4() -> None:
    months = [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]
    got = month_series(
        months, {months[0]: (40.0, 26), months[1]: (50.0, 25), months[2]: (45.0, 27)}
    )
    assert [v.valid for v in got] == [False, True, True]  # January 26 < 27; February 25 ok
    assert got[0].mean is None and got[0].n_days == 26


def test_insufficient_data_is_said_not_guessed() -> None:
    short = series(-2.0)[: MIN_VALID_MONTHS - 1]
    res = trend(short)
    assert res.status == "insufficient_data" and res.slope_per_year is None
    assert "23 valid months" in (res.reason or "")
    d = res.as_dict()
    assert d["slope_per_year"] is None and d["mann_kendall"]["p_value"] is None
    assert "27" in d["capture_rule"]


def test_gaps_keep_their_place_in_time() -> None:
    # A perfect line with a missing year in the middle: the slope stays exact.
    s = [MonthValue(m, 10 + 0.5 * i / 12, 30, True) for i, m in enumerate(MONTHS)]
    for i in range(36, 48):
        s[i] = MonthValue(MONTHS[i], None, 0, False)
    for method in ("seasonal_kendall", "none"):
        assert trend(s, deseasonalise=method).slope_per_year == pytest.approx(0.5)  # type: ignore[arg-type]


def test_bad_input() -> None:
    s = series(1.0)
    with pytest.raises(TrendError):
        trend([s[0], s[2], *s[3:]])  # not contiguous
    with pytest.raises(TrendError):
        trend(s, deseasonalise="loess")  # type: ignore[arg-type]
    with pytest.raises(TrendError):
        trend(s, alpha=5)
