"""Weather stations: air_temp °C, rh %, pressure hPa, wind_speed m/s, wind_dir °,
precip mm, visibility m — hourly.

Climate of the Fen/Hutuo valleys (continental, monsoon summer rain):

* Temperature at Taiyuan (778 m, 37.78° N): January mean ≈ −5 °C, July ≈ 24 °C
  (annual 9.5 °C, amplitude 14.5 °C, coldest on 17 January); lapse rate
  6.5 °C/km with elevation (五台山, 2208 m: ≈ 9 °C colder), −0.8 °C per degree of
  latitude northwards; diurnal half-range ≈ 5 °C (larger in dry spring, smaller
  in the rainy summer and on summits), minimum near sunrise, maximum ≈ 15:00;
  shared synoptic anomalies of ≈ 3 °C (larger in winter).
* Humidity through the dew point (Taiyuan: ≈ −14 °C in January, ≈ 19 °C in
  July), Magnus formula; rain hours near saturation.
* Station pressure from elevation, 1013.25·(1 − 2.25577e-5·h)^5.25588 hPa,
  + winter Siberian high (+7 hPa) and synoptic swings (σ ≈ 6 hPa, low when warm).
* Wind: ≈ 1.5 m/s in the valleys (afternoon maximum), stronger on summits and
  in spring, weak in stagnant spells, gales with dust storms; direction NNW in
  winter, SSE in summer (the Fen valley's axis), turning with the weather.
* Precipitation: ≈ 0.5 % of hours in winter, ≈ 5 % in late July (afternoon and
  evening showers), ≈ 400–500 mm a year in the valleys, more on the mountains.
* Visibility from the regional PM2.5 (hygroscopic growth with humidity), rain and
  dust (Koschmieder, 3.912 / extinction), capped at 30 km.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from envmon.simulate import defects, rng
from envmon.simulate.air import regional_log_pm25
from envmon.simulate.base import BLOCK_HOURS, Block, StationLike, bump, seasonal, wrap
from envmon.simulate.rng import F64
from envmon.simulate.shared import Shared, rain_mean_mm, rain_probability

PARAMETERS: Final = ("air_temp", "rh", "pressure", "wind_speed", "wind_dir", "precip", "visibility")

REF_ELEVATION: Final = 778.0  # Taiyuan (53772), m
REF_LAT: Final = 37.78
T_ANNUAL: Final = 9.5  # °C at the reference station
T_AMPLITUDE: Final = 14.5
LAPSE_RATE: Final = 0.0065  # °C/m
TD_ANNUAL: Final = 2.5
TD_AMPLITUDE: Final = 16.3
DEFAULT_ELEVATION: Final = 800.0
DEFAULT_LAT: Final = 38.0

# Per-station AR(1) noise streams and their e-folding times (hours).
_NOISE: Final = {
    "temp": 6.0,
    "td": 6.0,
    "wind": 3.0,
    "dir": 8.0,
    "rain": 2.0,
    "pres": 12.0,
    "vis": 4.0,
}
_WARMUP: Final = 96

RATES: Final = defects.DefectRates(
    missing=0.004,
    param_missing=0.001,
    outage_per_day=0.001,
    outage_days=3,
    maintenance_per_day=0.003,
    maintenance_start=(9, 14),
    maintenance_hours=(1, 3),
    calibrating_share=0.0,
    calibration_hour=0,
    calibration_hours=(0, 0),
    # Forward-scatter visibility sensors drop out more than the rest.
    param_missing_extra={"visibility": 0.004},
)


def station_pressure(elevation_m: F64 | float) -> F64:
    """Standard-atmosphere station pressure (hPa) at an elevation (m)."""
    return np.asarray(
        1013.25 * (1.0 - 2.25577e-5 * np.asarray(elevation_m)) ** 5.25588, dtype=np.float64
    )


def _magnus(t: F64) -> F64:
    return np.asarray(6.112 * np.exp(17.62 * t / (243.12 + t)), dtype=np.float64)


def block(seed: int, block_no: int, stations: list[StationLike], sh: Shared) -> Block:
    h = sh.hours
    t, s = len(h.index), len(stations)
    col = np.newaxis
    elev = np.array(
        [DEFAULT_ELEVATION if st.elevation_m is None else st.elevation_m for st in stations]
    )
    lat = np.array([DEFAULT_LAT if st.lat is None else st.lat for st in stations])
    summit = np.clip((elev - 1200.0) / 800.0, 0.0, 1.0)

    def u(what: str) -> F64:
        return rng.uniform(rng.keys(seed, [("weather-station", what, x.id) for x in stations]), 0)

    lo = block_no * BLOCK_HOURS
    ext = np.arange(lo - _WARMUP, lo + BLOCK_HOURS, dtype=np.int64)
    names: list[tuple[object, ...]] = [("weather-noise", x.id, n) for x in stations for n in _NOISE]
    eps = rng.normal(rng.keys(seed, names)[None, :], ext[:, None])
    phi = np.tile(rng.phi_for(list(_NOISE.values())), s)
    nz = rng.ar1(eps, phi)[_WARMUP:].reshape(t, s, len(_NOISE))
    noise = {n: nz[:, :, i] for i, n in enumerate(_NOISE)}
    city_temp = np.stack([sh.city(x.city).temp for x in stations], axis=1)
    city_wet = np.stack([sh.city(x.city).wet for x in stations], axis=1)

    d = h.doy[:, col]
    x = (h.hour + 0.5)[:, col]

    # Precipitation first: it cools, moistens and cuts visibility.
    orographic = 1.0 + np.maximum(elev - 800.0, 0.0) / 3000.0
    p_rain = np.minimum(rain_probability(h)[:, col] * orographic[None, :], 0.5)
    latent = (0.55 * sh.wet[:, col] + 0.45 * city_wet + 0.70 * noise["rain"]) / 0.9975
    raining = latent > rng.norm_ppf(1.0 - p_rain)
    amount_u = rng.uniform(
        rng.keys(seed, [("weather-rain", x_.id) for x_ in stations])[None, :], h.index[:, col]
    )
    amount = rain_mean_mm(h)[:, col] * -np.log(amount_u) * orographic[None, :]
    precip = np.where(raining, np.minimum(np.round(amount, 1), 80.0), 0.0)

    # Temperature.
    t_mean = (
        T_ANNUAL
        - LAPSE_RATE * (elev - REF_ELEVATION)
        - 0.8 * (lat - REF_LAT)
        + 0.5 * (u("t") - 0.5)
    )
    half_range = (
        5.0 + 1.0 * bump(wrap(d, 110.0), 0.0, 40.0) - 0.8 * bump(wrap(d, 205.0), 0.0, 35.0)
    ) * (1.0 - 0.5 * summit[None, :])
    shape = (
        np.cos(2.0 * math.pi * (x - 15.0) / 24.0) + 0.3 * np.cos(4.0 * math.pi * (x - 14.0) / 24.0)
    ) / 1.13
    synoptic = (3.0 + 0.8 * seasonal(d, 17.0)) * (0.85 * sh.tsyn[:, col] + 0.5 * city_temp)
    day = np.clip(np.sin(math.pi * (x - 6.0) / 13.0), 0.0, 1.0)
    air_temp = (
        t_mean[None, :]
        - T_AMPLITUDE * seasonal(d, 17.0)
        + half_range * shape
        + synoptic
        + 0.6 * noise["temp"]
        - 2.0 * raining * day
        - 3.0 * sh.dust[:, col]
    )

    # Humidity from the dew point.
    td = (
        TD_ANNUAL
        - TD_AMPLITUDE * seasonal(d, 20.0)
        - 0.003 * (elev - REF_ELEVATION)[None, :]
        - 0.5 * (lat - REF_LAT)[None, :]
        + 3.0 * sh.moist[:, col]
        + 0.8 * noise["td"]
        + 3.0 * raining
        - 6.0 * sh.dust[:, col]
    )
    rh = 100.0 * _magnus(np.minimum(td, air_temp)) / _magnus(air_temp)
    wet_rh = 88.0 + 10.0 * rng.uniform(
        rng.keys(seed, [("weather-rh", y.id) for y in stations])[None, :], h.index[:, col]
    )
    rh = np.where(raining, np.maximum(rh, wet_rh), rh)
    rh = np.clip(np.round(rh), 5.0, 100.0)

    # Station pressure.
    anomaly = (
        7.0 * seasonal(d, 15.0)
        + 6.0 * sh.psyn[:, col]
        + 0.8 * np.cos(4.0 * math.pi * (x - 10.0) / 24.0)
        + 0.3 * noise["pres"]
    )
    p0 = station_pressure(elev)[None, :]
    pressure = np.round(p0 * (1.0 + anomaly / 1013.25), 1)

    # Wind.
    base = (1.5 + 3.0 * np.clip((elev - 1000.0) / 1200.0, 0.0, None)) * (0.8 + 0.4 * u("wind"))
    season = 1.0 + 0.3 * bump(wrap(d, 105.0), 0.0, 35.0) - 0.1 * bump(wrap(d, 230.0), 0.0, 40.0)
    valley_cycle = 1.0 + 0.35 * np.cos(2.0 * math.pi * (x - 14.5) / 24.0)
    summit_cycle = 1.0 + 0.10 * np.cos(2.0 * math.pi * (x - 2.0) / 24.0)
    cycle = valley_cycle * (1.0 - summit[None, :]) + summit_cycle * summit[None, :]
    wind = (
        base[None, :]
        * season
        * cycle
        * np.exp(0.35 * sh.wind[:, col] + 0.25 * noise["wind"])
        * (1.0 + 1.5 * sh.dust[:, col])
    )
    wind_speed = np.round(wind, 1)
    prevailing = 250.0 + 85.0 * seasonal(d, 15.0)  # NNW (335°) in January, SSE (165°) in July
    direction = prevailing + 60.0 * sh.wdir[:, col] + 25.0 * noise["dir"] + (60.0 * u("dir") - 30.0)
    towards_nw = (315.0 - direction + 180.0) % 360.0 - 180.0  # dust storms blow from the NW
    direction = direction + sh.dust[:, col] * towards_nw
    wind_dir = np.round(direction % 360.0) % 360.0

    # Visibility (m).
    pm = np.exp(
        regional_log_pm25(h, sh)[:, col]
        + 0.2 * np.stack([sh.city(y.city).pm for y in stations], axis=1)
    ) * (1.0 - 0.5 * summit[None, :])
    growth = (1.0 - np.clip(rh, 40.0, 97.0) / 100.0) ** -0.6 / 1.36
    extinction = (
        0.02 + 0.0045 * pm * growth + 0.002 * sh.dust_pm10[:, col] + 0.3 * np.power(precip, 0.6)
    )
    vis = 3912.0 / extinction * np.exp(0.15 * noise["vis"])
    visibility = np.round(np.clip(vis, 20.0, 30000.0), -1)

    values = np.stack(
        [np.round(air_temp, 1), rh, pressure, wind_speed, wind_dir, precip, visibility], axis=2
    )
    ids = [y.id for y in stations]
    flags, present = defects.apply(seed, "weather", ids, PARAMETERS, h, RATES)
    return Block("weather", "1h", h.index, ids, PARAMETERS, values, flags, present)
