"""Air: seasons, daily cycles, station contrasts, the 2020→2025 calibration, defects."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from envmon.standards.aqi import daily_aqi


def _valid(df: pd.DataFrame, stations: Any, parameter: str) -> pd.DataFrame:
    assessed = {s.id for s in stations if s.kind == "air" and s.assessed}
    keep = (df["parameter"] == parameter) & (df["flag"] == "N") & df["station"].isin(assessed)
    return df[keep]


def _zone_hourly(df: pd.DataFrame, stations: Any) -> pd.DataFrame:
    """Zone-mean hourly concentrations (assessed stations, valid data) by parameter."""
    assessed = {s.id for s in stations if s.kind == "air" and s.assessed}
    valid = df[(df["flag"] == "N") & df["station"].isin(assessed)]
    return valid.pivot_table(index="ts", columns="parameter", values="value", aggfunc="mean")


def _good_day_share(zone: pd.DataFrame) -> float:
    day = zone.index.floor("D")
    daily = zone.groupby(day).mean()
    o3_8h = zone["o3"].rolling(8).mean()
    o3_8h = o3_8h[zone.index.hour >= 7]  # 8-h windows ending 07:00…23:00 of the day
    mda8 = o3_8h.groupby(o3_8h.index.floor("D")).max()
    o3_1h = zone["o3"].groupby(day).max()
    good = 0
    for d, row in daily.iterrows():
        res = daily_aqi(
            {
                "so2_24h": round(row["so2"]),
                "no2_24h": round(row["no2"]),
                "pm10_24h": round(row["pm10"]),
                "pm25_24h": round(row["pm25"]),
                "co_24h": round(row["co"], 1),
                "o3_1h": round(o3_1h[d]),
                "o3_8h": round(mda8[d]),
            },
            edition=2012,
        )
        good += res.aqi <= 100
    return good / len(daily)


def test_zone_pm25_calibration(
    air_2020: pd.DataFrame, air_2025: pd.DataFrame, stations: Any
) -> None:
    mean_2020 = _valid(air_2020, stations, "pm25")["value"].mean()
    mean_2025 = _valid(air_2025, stations, "pm25")["value"].mean()
    assert 44.0 <= mean_2020 <= 52.0
    assert 36.0 <= mean_2025 <= 41.0
    # Near the −20 % target line (38.4 for a 48 baseline): evaluation has something to say.
    assert abs(mean_2025 / mean_2020 - 0.8) < 0.04


def test_good_day_share(air_2020: pd.DataFrame, air_2025: pd.DataFrame, stations: Any) -> None:
    share_2020 = _good_day_share(_zone_hourly(air_2020, stations))
    share_2025 = _good_day_share(_zone_hourly(air_2025, stations))
    assert 0.64 <= share_2020 <= 0.78
    assert 0.72 <= share_2025 <= 0.84
    assert share_2025 > share_2020


def test_seasons_and_heating(air_2020: pd.DataFrame, stations: Any) -> None:
    zone = _zone_hourly(air_2020, stations)
    month = zone.index.month
    winter, summer = month.isin([12, 1, 2]), month.isin([6, 7, 8])
    assert zone.loc[winter, "pm25"].mean() > 2.0 * zone.loc[summer, "pm25"].mean()
    # Heating starts on 15 November: the second half of November is far dirtier.
    nov = month == 11
    early = zone[nov & (zone.index.day <= 10)]
    late = zone[nov & (zone.index.day >= 20)]
    for p, factor in (("pm25", 1.3), ("so2", 2.0), ("co", 1.3)):
        assert late[p].mean() > factor * early[p].mean(), p
    assert zone.loc[summer, "o3"].mean() > 2.0 * zone.loc[winter, "o3"].mean()
    ratio = zone["pm10"].mean() / zone["pm25"].mean()
    assert 1.6 <= ratio <= 2.2


def test_daily_cycles(air_2020: pd.DataFrame, stations: Any) -> None:
    zone = _zone_hourly(air_2020, stations)
    hour = zone.groupby(zone.index.hour).mean()
    assert hour.loc[13:17, "o3"].mean() > 2.0 * hour.loc[0:5, "o3"].mean()
    assert hour["o3"].idxmax() in range(13, 18)
    assert hour.loc[7:9, "no2"].mean() > hour.loc[12:15, "no2"].mean() * 1.3
    assert hour.loc[19:22, "no2"].mean() > hour.loc[12:15, "no2"].mean() * 1.3
    assert hour.loc[21:23, "pm25"].mean() > hour.loc[12:15, "pm25"].mean()


def test_station_contrasts(air_2020: pd.DataFrame, stations: Any) -> None:
    pm = air_2020[(air_2020["parameter"] == "pm25") & (air_2020["flag"] == "N")]
    mean = pm.groupby("station")["value"].mean()
    info = {s.id: s for s in stations if s.kind == "air"}
    taiyuan = [i for i, s in info.items() if s.city == "太原市" and s.assessed]
    wutai = {i for i, s in info.items() if "五台" in s.name + s.county}  # the 五台山 area
    xinzhou = [i for i, s in info.items() if s.city == "忻州市" and i not in wutai]
    clean = [i for i, s in info.items() if not s.assessed or i in wutai]
    assert mean[taiyuan].mean() > 1.15 * mean[xinzhou].mean()
    assert mean[clean].max() < mean[xinzhou].min()


def test_spring_dust(air_2020: pd.DataFrame, stations: Any) -> None:
    zone = _zone_hourly(air_2020, stations)
    spring = zone[zone.index.month.isin([3, 4, 5])]
    daily = spring["pm10"].groupby(spring.index.floor("D")).mean()
    assert daily.max() > 250.0
    assert (spring["pm10"] > 400).any()
    assert (daily > 150).sum() < 15  # a few days, not a season


def test_rounding_and_ranges(air_2020: pd.DataFrame) -> None:
    by = air_2020.groupby("parameter")["value"]
    for p in ("pm25", "pm10", "so2", "no2", "o3"):
        v = by.get_group(p)
        assert (v == np.round(v)).all() and v.min() >= 1.0, p
    co = by.get_group("co")
    assert np.allclose(co * 10, np.round(co * 10)) and co.min() >= 0.1
    pm = air_2020.pivot_table(index=["station", "ts"], columns="parameter", values="value")
    pm = pm.dropna(subset=["pm25", "pm10"])
    assert (pm["pm10"] >= pm["pm25"]).all()


def test_defects(air_2020: pd.DataFrame, stations: Any) -> None:
    air = [s for s in stations if s.kind == "air"]
    expected = len(air) * 6 * 24 * 366
    missing = 1.0 - len(air_2020) / expected
    assert 0.01 <= missing <= 0.02
    flags = air_2020["flag"].value_counts(normalize=True)
    assert 0.001 < flags["C"] < 0.01 and 0.0005 < flags["M"] < 0.01
    cal = air_2020[air_2020["flag"] == "C"]
    assert set(cal["ts"].dt.hour) <= {2, 3}
    assert set(cal["parameter"]) == {"so2", "no2", "o3", "co"}
    assert cal["ts"].dt.day_of_week.nunique() > 1  # stations calibrate on different weekdays
    # Outages: some station is silent for at least one whole day.
    per_day = air_2020.groupby(["station", air_2020["ts"].dt.date]).size()
    full = per_day.unstack(fill_value=0)
    assert (full == 0).to_numpy().sum() >= 5


@pytest.mark.parametrize("year", [2020])
def test_year_is_complete_in_time(air_2020: pd.DataFrame, year: int) -> None:
    assert air_2020["ts"].min() == pd.Timestamp(f"{year}-01-01 00:00")
    assert air_2020["ts"].max() == pd.Timestamp(f"{year}-12-31 23:00")
