"""Regional weather shared by every station: the synoptic factors, rain, dust storms.

One set of slow random processes per block drives all three kinds, so the
simulated zone is coherent: a stagnant spell (high ``stag``) means weak wind,
high humidity, poor visibility and a PM2.5 episode at every station at once; a
summer rain spell wets the weather stations and muddies the rivers; a spring
dust storm brings strong wind, low visibility and PM10 of several hundred µg/m³.

Processes are unit-variance AR(1) on the hourly scale (e-folding times below),
plus a city-level component per city (Taiyuan and Xinzhou are 70 km apart:
correlated, not identical).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from envmon.simulate import rng
from envmon.simulate.base import BLOCK_HOURS, Hours, bump, wrap
from envmon.simulate.rng import F64

# Regional processes and their e-folding times (hours).
_REGIONAL_TAU: Final[dict[str, float]] = {
    "stag": 72.0,  # boundary-layer stagnation: multi-day pollution episodes
    "pfast": 8.0,  # faster regional pollution variation
    "tsyn": 60.0,  # synoptic temperature anomaly (cold fronts, warm spells)
    "pown": 48.0,  # pressure, the part not explained by temperature
    "mown": 36.0,  # moisture
    "wet": 5.0,  # rain propensity (convective systems are short-lived)
    "wown": 24.0,  # wind speed
    "dir": 30.0,  # wind direction swing
    "o3own": 48.0,  # photochemical (ozone) weather
}
_CITY_TAU: Final[dict[str, float]] = {"pm": 24.0, "wet": 4.0, "temp": 24.0}
WARMUP_HOURS: Final = 600  # > 8 × the longest e-folding time
_RUNOFF_TAU: Final = 36.0  # hours a rain pulse keeps rivers muddy

# Dust storms (沙尘): spring (Mar–May) days start one with this probability.
DUST_DAY_PROB: Final = 0.04
DUST_SEASON: Final = (59.0, 152.0)  # day-of-year range (1 Mar – 31 May)


@dataclass(frozen=True, slots=True)
class City:
    pm: F64
    wet: F64
    temp: F64


@dataclass(frozen=True, slots=True)
class Shared:
    hours: Hours
    stag: F64
    pfast: F64
    tsyn: F64
    psyn: F64
    moist: F64
    wet: F64
    wind: F64
    wdir: F64
    o3: F64
    dust: F64  # 0–1 pulse of a dust storm
    dust_pm10: F64  # coarse PM10 the storm adds at a typical station, µg/m³
    runoff: F64  # smoothed regional rain, mm/h scale (drives river turbidity)
    cities: dict[str, City]

    def city(self, name: str) -> City:
        return self.cities[name]


def rain_probability(hours: Hours) -> F64:
    """Share of hours with rain at a valley station (≈ 0.5 % in winter, 5 % in late July)."""
    d = wrap(hours.doy, 205.0)
    summer = bump(d, 0.0, 40.0)
    base = 0.006 + 0.060 * summer + 0.015 * bump(d, -70.0, 30.0) + 0.015 * bump(d, 55.0, 25.0)
    # Summer showers favour the late afternoon and evening.
    diurnal = 1.0 + 0.6 * summer * np.cos(2.0 * math.pi * (hours.hour - 18.0) / 24.0)
    return np.asarray(base * diurnal, dtype=np.float64)


def rain_mean_mm(hours: Hours) -> F64:
    """Mean amount of a rainy hour (mm): drizzle and snow in winter, showers in summer."""
    return 0.4 + 2.5 * bump(wrap(hours.doy, 205.0), 0.0, 45.0)


def compute(seed: int, block: int, cities: list[str]) -> Shared:
    """The shared processes for one aligned block."""
    lo = block * BLOCK_HOURS
    ext = np.arange(lo - WARMUP_HOURS, lo + BLOCK_HOURS, dtype=np.int64)
    names: list[tuple[object, ...]] = [("regional", n) for n in _REGIONAL_TAU]
    taus = list(_REGIONAL_TAU.values())
    for c in cities:
        names += [("city", c, n) for n in _CITY_TAU]
        taus += list(_CITY_TAU.values())
    eps = rng.normal(rng.keys(seed, names)[None, :], ext[:, None])
    x = rng.ar1(eps, rng.phi_for(taus))
    reg = {n: x[:, i] for i, n in enumerate(_REGIONAL_TAU)}

    hours_ext = Hours.of(ext)
    # Regional rain: the share of the zone where it rains, times the mean amount.
    thr = rng.norm_ppf(1.0 - 1.6 * rain_probability(hours_ext))
    regional_rain = np.maximum(reg["wet"] - thr, 0.0) * rain_mean_mm(hours_ext)
    runoff = rng.ema(regional_rain, math.exp(-1.0 / _RUNOFF_TAU))

    w = slice(WARMUP_HOURS, None)
    hours = hours_ext.take(w)
    tsyn = reg["tsyn"][w]
    stag = reg["stag"][w]
    dust, dust_pm10 = _dust(seed, hours)
    k = len(_REGIONAL_TAU)
    city_map = {
        c: City(pm=x[w, k + 3 * i], wet=x[w, k + 3 * i + 1], temp=x[w, k + 3 * i + 2])
        for i, c in enumerate(cities)
    }
    return Shared(
        hours=hours,
        stag=stag,
        pfast=reg["pfast"][w],
        tsyn=tsyn,
        psyn=-0.55 * tsyn + 0.835 * reg["pown"][w],
        moist=0.45 * stag + 0.89 * reg["mown"][w],
        wet=reg["wet"][w],
        wind=-0.55 * stag + 0.835 * reg["wown"][w],
        wdir=reg["dir"][w],
        o3=0.5 * tsyn + 0.866 * reg["o3own"][w],
        dust=dust,
        dust_pm10=dust_pm10,
        runoff=runoff[w],
        cities=city_map,
    )


def _dust(seed: int, hours: Hours) -> tuple[F64, F64]:
    """Dust-storm pulses: start day, hour, 10–36 h length and peak drawn per day."""
    k = rng.keys(seed, [("dust", "day"), ("dust", "start"), ("dust", "length"), ("dust", "peak")])
    pulse = np.zeros(len(hours.index))
    pm10 = np.zeros(len(hours.index))
    t = hours.index.astype(np.float64) + 0.5
    for back in range(3):  # a storm lasts at most 36 h, so it started ≤ 2 days before
        d = hours.day - back
        doy = hours.doy - back
        in_season = (doy >= DUST_SEASON[0]) & (doy < DUST_SEASON[1])
        occurs = in_season & (rng.uniform(k[0], d) < DUST_DAY_PROB)
        start = d * 24.0 + np.floor(rng.uniform(k[1], d) * 24.0)
        length = 10.0 + 26.0 * rng.uniform(k[2], d)
        peak = 250.0 + 550.0 * rng.uniform(k[3], d) ** 2
        phase = (t - start) / length
        inside = occurs & (phase >= 0.0) & (phase < 1.0)
        shape = np.where(inside, np.sin(math.pi * np.clip(phase, 0.0, 1.0)) ** 2, 0.0)
        pulse = np.maximum(pulse, shape)
        pm10 = pm10 + shape * peak
    return pulse, pm10
