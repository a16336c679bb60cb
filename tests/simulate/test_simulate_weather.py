"""Weather: elevation, seasons and days, rain, the link to air pollution."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from envmon.simulate import simulate
from envmon.simulate.weather import station_pressure
from envmon.timeutil import BEIJING


def _frame(stations: Any, start: datetime, end: datetime) -> pd.DataFrame:
    df = pd.concat(simulate(stations, start, end, kinds=("weather",)), ignore_index=True)
    df["ts"] = pd.to_datetime(df["time"].str.slice(0, 19))
    return df


@pytest.fixture(scope="module")
def weather(stations: Any) -> list[Any]:
    return [s for s in stations if s.kind == "weather"]


@pytest.fixture(scope="module")
def january(weather: list[Any]) -> pd.DataFrame:
    return _frame(
        weather, datetime(2025, 1, 1, tzinfo=BEIJING), datetime(2025, 2, 1, tzinfo=BEIJING)
    )


@pytest.fixture(scope="module")
def july(weather: list[Any]) -> pd.DataFrame:
    return _frame(
        weather, datetime(2025, 7, 1, tzinfo=BEIJING), datetime(2025, 8, 1, tzinfo=BEIJING)
    )


def _means(df: pd.DataFrame, parameter: str) -> pd.Series:
    return df[df["parameter"] == parameter].groupby("station")["value"].mean()


def test_pressure_from_elevation(january: pd.DataFrame, weather: list[Any]) -> None:
    elev = pd.Series({s.id: s.elevation_m for s in weather})
    p = _means(january, "pressure")
    assert np.corrcoef(elev[p.index], p)[0, 1] < -0.99
    assert np.allclose(p, station_pressure(elev[p.index].to_numpy()), atol=15.0)
    summit = max(weather, key=lambda s: s.elevation_m)
    assert 760.0 < p[summit.id] < 800.0  # 五台山, 2208 m
    assert float(station_pressure(0.0)) == pytest.approx(1013.25)


def test_temperature_climate(january: pd.DataFrame, july: pd.DataFrame, weather: list[Any]) -> None:
    valley = [s.id for s in weather if 740.0 <= s.elevation_m <= 820.0 and s.lat < 38.0]
    jan, jul = _means(january, "air_temp"), _means(july, "air_temp")
    assert -8.0 <= jan[valley].mean() <= -2.0  # Taiyuan ≈ −5 °C
    assert 21.0 <= jul[valley].mean() <= 27.0  # Taiyuan ≈ 24 °C
    summit = max(weather, key=lambda s: s.elevation_m).id
    assert jan[summit] < jan[valley].mean() - 7.0
    temps = july[july["parameter"] == "air_temp"]
    by_hour = temps.groupby(temps["ts"].dt.hour)["value"].mean()
    assert by_hour.idxmax() in range(13, 17) and by_hour.idxmin() in range(4, 8)
    assert by_hour.max() - by_hour.min() > 6.0


def test_rain_and_humidity(january: pd.DataFrame, july: pd.DataFrame) -> None:
    jul_rain = july[july["parameter"] == "precip"]
    jan_rain = january[january["parameter"] == "precip"]
    assert (jul_rain["value"] == 0).mean() > 0.85  # mostly dry hours
    per_station_jul = jul_rain.groupby("station")["value"].sum().median()
    per_station_jan = jan_rain.groupby("station")["value"].sum().median()
    assert 50.0 < per_station_jul < 300.0 and per_station_jan < 15.0
    assert _means(july, "rh").median() > _means(january, "rh").median()
    wet = july.pivot_table(index=["station", "ts"], columns="parameter", values="value")
    raining = wet["precip"] > 0.5
    assert wet.loc[raining, "rh"].mean() > wet.loc[~raining, "rh"].mean() + 15.0


def test_ranges(january: pd.DataFrame, july: pd.DataFrame) -> None:
    both = pd.concat([january, july])
    by = both.groupby("parameter")["value"]
    assert by.min()["rh"] >= 5 and by.max()["rh"] <= 100
    assert by.min()["wind_dir"] >= 0 and by.max()["wind_dir"] < 360
    assert by.min()["wind_speed"] >= 0 and by.max()["wind_speed"] < 40
    assert by.min()["visibility"] >= 20 and by.max()["visibility"] <= 30000
    assert set(both["period"]) == {"1h"}


def test_winter_haze_lowers_visibility(january: pd.DataFrame, july: pd.DataFrame) -> None:
    assert _means(january, "visibility").median() < _means(july, "visibility").median()
