"""Weather normalisation recovers a known emission trend from weather-driven data.

Synthetic but deliberate: PM2.5 = emissions (falling 6 % a year, with a seasonal
cycle) × a weather factor (stagnation: low wind and humid air raise it) × noise;
2025 is windier than the other years, so the observed 2020→2025 fall is larger
than the emission fall. The normalised change must find the emission fall, and
the weather's share must be the windy year's help.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from envmon.evaluate.normalise import normalise


def synthetic(windy_2025: float) -> tuple[pd.DataFrame, float]:
    rng = np.random.default_rng(7)
    days = [date(2020, 1, 1) + timedelta(d) for d in range(6 * 365 + 1)]
    n = len(days)
    t = np.arange(n) / 365.25
    doy = np.array([d.timetuple().tm_yday for d in days])
    ws = rng.gamma(2.0, 1.2, n) * np.where([d.year == 2025 for d in days], windy_2025, 1.0)
    rh = np.clip(60 + 20 * np.sin(2 * np.pi * doy / 365) + rng.normal(0, 10, n), 10, 100)
    emission = 60 * np.exp(-0.06 * t) * (1 + 0.3 * np.cos(2 * np.pi * doy / 365))
    pm = emission * np.exp(-0.25 * (ws - 2.4)) * (1 + 0.01 * (rh - 60))
    pm *= np.exp(rng.normal(0, 0.15, n))
    pm[rng.random(n) < 0.05] = np.nan  # invalid days
    angle = rng.uniform(0, 2 * np.pi, n)
    frame = pd.DataFrame(
        {
            "pm25": pm,
            "air_temp": 12 - 14 * np.cos(2 * np.pi * doy / 365) + rng.normal(0, 3, n),
            "rh": rh,
            "pressure": 900 + rng.normal(0, 5, n),
            "wind_speed": ws,
            "precip": rng.exponential(1, n),
            "wind_dir_sin": np.sin(angle),
            "wind_dir_cos": np.cos(angle),
        },
        index=days,
    )
    by_year = pd.Series(emission, index=[d.year for d in days]).groupby(level=0).mean()
    return frame, float(by_year[2025] / by_year[2020] - 1)


def test_normalised_change_is_the_emission_change() -> None:
    frame, emission_change = synthetic(windy_2025=1.5)  # about −26 %
    res = normalise(frame, year=2025).summary()
    assert res["status"] == "ok"
    observed = res["observed"]["change"] / res["observed"]["baseline"]
    normalised = res["relative_change_normalised"]
    # The windy year makes the observed fall larger than the emission fall …
    assert observed < emission_change - 0.08
    # … the normalised change finds the emission fall within 4 points.
    assert abs(normalised - emission_change) < 0.04, (normalised, emission_change)
    # Measures' share of the observed fall below 1; the weather's share is the rest.
    assert 0.3 < res["share_of_observed_change"] < 0.9
    assert abs(res["weather_share"] + res["share_of_observed_change"] - 1) < 1e-12


def test_ordinary_weather_leaves_the_change_alone() -> None:
    frame, emission_change = synthetic(windy_2025=1.0)
    res = normalise(frame, year=2025).summary()
    assert abs(res["relative_change_normalised"] - emission_change) < 0.04
    assert 0.75 < res["share_of_observed_change"] < 1.25


def test_monthly_series_and_too_little_data() -> None:
    frame, _ = synthetic(windy_2025=1.0)
    res = normalise(frame, year=2025)
    months = res.monthly()
    assert len(months) == 72 and months[0]["month"] == "2020-01"
    assert all(m["normalised"] is not None for m in months)
    # Normalised months vary less than observed ones: the weather's noise is gone.
    obs = np.array([m["observed"] for m in months], dtype=float)
    norm = np.array([m["normalised"] for m in months], dtype=float)
    assert np.nanstd(np.diff(norm)) < np.nanstd(np.diff(obs))
    short = normalise(frame.iloc[:100], year=2020)
    assert short.status == "insufficient_data" and "100 valid days" not in (short.reason or "x")
    assert short.monthly() == []


def test_no_weather_is_no_normalisation() -> None:
    frame, _ = synthetic(windy_2025=1.0)
    for col in ("air_temp", "rh", "pressure", "wind_speed", "precip"):
        frame[col] = np.nan
    res = normalise(frame, year=2025)
    assert res.status == "insufficient_data" and "no weather data" in (res.reason or "")
