"""Surface-water automatic stations: the "9 + X" basic set, every 4 hours.

Parameters: ph, do, codmn, nh3n, tp, tn (mg/L), temp (°C), conductivity
(µS/cm), turbidity (NTU). National automatic stations report at 00, 04, 08 …
20 Beijing time (``period`` 4h, time = start of the period).

Each section gets the water quality of its ``target_class`` (GB 3838-2002):
one "governing" indicator (CODMn, NH3-N or TP, chosen per section) sits in the
middle of that class (geometric mean of its limits), the others a quarter
lower, so the median single-factor class is the target. Special case: 陈家营
(牧马河) was class V in the 2023 reports and is simulated as V whatever its target.

Seasons and events: water temperature ≈ 2 °C in January to ≈ 25 °C in July
(shared synoptic anomalies, small diurnal cycle); DO follows saturation at that
temperature (so it is highest in winter) times a class-dependent saturation,
with an afternoon photosynthesis swing; NH3-N is higher in winter (little
nitrification under ice); summer rain (the regional runoff of :mod:`shared`)
sends turbidity to hundreds of NTU, lifts TP and CODMn and dilutes conductivity.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from envmon.simulate import defects, rng
from envmon.simulate.base import BLOCK_HOURS, Block, StationLike, seasonal
from envmon.simulate.rng import F64
from envmon.simulate.shared import Shared

PARAMETERS: Final = ("ph", "do", "codmn", "nh3n", "tp", "tn", "temp", "conductivity", "turbidity")
SLOT_HOURS: Final = 4
POOR_SECTIONS: Final = {"陈家营": 5}  # name → simulated class

# Per class: medians of the governing indicator (geometric middle of the class),
# TN (not classified for rivers; Shanxi rivers run high), DO saturation share,
# conductivity and base turbidity.
_GOVERNING: Final = ("codmn", "nh3n", "tp")
_CLASS: Final[dict[int, dict[str, float]]] = {
    1: {"codmn": 1.3, "nh3n": 0.08, "tp": 0.012, "tn": 1.2, "do_sat": 1.02, "cond": 380.0,
        "turb": 4.0},
    2: {"codmn": 2.8, "nh3n": 0.27, "tp": 0.045, "tn": 2.0, "do_sat": 0.96, "cond": 480.0,
        "turb": 8.0},
    3: {"codmn": 4.9, "nh3n": 0.70, "tp": 0.14, "tn": 3.2, "do_sat": 0.88, "cond": 620.0,
        "turb": 14.0},
    4: {"codmn": 7.7, "nh3n": 1.22, "tp": 0.245, "tn": 5.0, "do_sat": 0.76, "cond": 850.0,
        "turb": 22.0},
    5: {"codmn": 12.2, "nh3n": 1.73, "tp": 0.346, "tn": 7.5, "do_sat": 0.64, "cond": 1150.0,
        "turb": 30.0},
}  # fmt: skip
_OTHERS: Final = 0.75  # non-governing indicators, relative to the class middle
_NOISE: Final = ("codmn", "nh3n", "tp", "tn", "do", "temp", "cond", "turb", "ph")
_NOISE_TAU: Final = 18.0  # slots (3 days): river chemistry drifts slowly
_WARMUP: Final = 144  # slots
_RUNOFF_SCALE: Final = 0.1

RATES: Final = defects.DefectRates(
    missing=0.01,
    param_missing=0.004,
    outage_per_day=0.003,
    outage_days=3,
    maintenance_per_day=0.01,
    maintenance_start=(8, 12),
    maintenance_hours=(4, 8),
    # Weekly standard-solution check of the wet-chemistry analysers (04:00 sample).
    calibrating_share=0.8,
    calibration_hour=4,
    calibration_hours=(1, 4),
    calibrated=frozenset({"codmn", "nh3n", "tp", "tn"}),
    param_missing_extra={"tp": 0.008, "tn": 0.008},
)


def simulated_class(station: StationLike) -> int:
    """The GB 3838 class a section's water is simulated at."""
    for name, cls in POOR_SECTIONS.items():
        if name in station.name:
            return cls
    return min(max(station.target_class or 3, 1), 5)


def do_saturation(temp: F64) -> F64:
    """DO at saturation in fresh water (mg/L) at ``temp`` °C (APHA polynomial fit)."""
    return np.asarray(
        14.62 - 0.3898 * temp + 0.006969 * temp**2 - 5.896e-5 * temp**3, dtype=np.float64
    )


def block(seed: int, block_no: int, stations: list[StationLike], sh: Shared) -> Block:
    sel = slice(0, None, SLOT_HOURS)  # blocks start on a multiple of 4 h
    h = sh.hours.take(sel)
    t, s = len(h.index), len(stations)
    col = np.newaxis
    cls = [simulated_class(x) for x in stations]

    def per_station(what: str) -> F64:
        return rng.uniform(rng.keys(seed, [("water-station", what, x.id) for x in stations]), 0)

    def table(field: str) -> F64:
        return np.array([_CLASS[c][field] for c in cls])

    lo = block_no * BLOCK_HOURS // SLOT_HOURS
    ext = np.arange(lo - _WARMUP, lo + BLOCK_HOURS // SLOT_HOURS, dtype=np.int64)
    names: list[tuple[object, ...]] = [("water-noise", x.id, n) for x in stations for n in _NOISE]
    k = rng.keys(seed, names)[None, :]
    slow = rng.ar1(rng.normal(k, ext[:, None]), np.full(len(names), math.exp(-1.0 / _NOISE_TAU)))
    slow = slow[_WARMUP:].reshape(t, s, len(_NOISE))
    fast = rng.normal(rng.keys(seed, [(*n, "fast") for n in names])[None, :], h.index[:, col])
    fast = fast.reshape(t, s, len(_NOISE))

    def noise(name: str, slow_sd: float, fast_sd: float) -> F64:
        i = _NOISE.index(name)
        return np.asarray(slow_sd * slow[:, :, i] + fast_sd * fast[:, :, i], dtype=np.float64)

    d = h.doy[:, col]
    x = (h.hour + 2.0)[:, col]  # middle of the 4-h period
    runoff = (sh.runoff[sel] / _RUNOFF_SCALE)[:, col]
    afternoon = np.cos(2.0 * math.pi * (x - 15.0) / 24.0)
    summer = np.maximum(seasonal(d, 200.0), 0.0)

    governing = np.floor(per_station("governing") * len(_GOVERNING)).astype(np.int64)

    def level(name: str) -> F64:
        factor = np.where(governing == _GOVERNING.index(name), 1.0, _OTHERS)
        return table(name)[None, :] * factor[None, :]

    elev = np.array([900.0 if x_.elevation_m is None else x_.elevation_m for x_ in stations])
    temp = (
        13.5
        - 11.5 * seasonal(d, 25.0)
        - 0.003 * (elev - 900.0)[None, :]
        + 0.8 * sh.tsyn[sel][:, col]
        + (0.4 + 0.6 * summer) * afternoon
        + noise("temp", 0.4, 0.1)
    )
    temp = np.maximum(temp, 0.2)  # under ice

    codmn = level("codmn") * np.exp(
        0.08 * seasonal(d, 200.0) + 0.15 * np.log1p(runoff) + noise("codmn", 0.15, 0.06)
    )
    nh3n = level("nh3n") * np.exp(0.25 * seasonal(d, 20.0) + noise("nh3n", 0.15, 0.08))
    tp = level("tp") * np.exp(0.3 * np.log1p(runoff) + noise("tp", 0.15, 0.08))
    tn = table("tn")[None, :] * np.exp(0.15 * seasonal(d, 20.0) + noise("tn", 0.12, 0.05))
    swing = (0.2 + 0.15 * np.array(cls, dtype=np.float64))[None, :] * (0.3 + summer)
    do = do_saturation(temp) * table("do_sat")[None, :] * np.exp(noise("do", 0.03, 0.02)) + (
        swing * afternoon
    )
    ph_base = 8.05 + 0.4 * (per_station("ph") - 0.5)
    ph = ph_base[None, :] + 0.08 * afternoon * (0.3 + summer) + noise("ph", 0.05, 0.02)
    conductivity = (
        table("cond")[None, :]
        * (0.85 + 0.3 * per_station("cond"))[None, :]
        * np.exp(0.08 * seasonal(d, 30.0) + noise("cond", 0.05, 0.02))
        / (1.0 + 0.3 * runoff)
    )
    turbidity = (
        table("turb")[None, :]
        * (0.7 + 0.6 * per_station("turb"))[None, :]
        * (1.0 + 4.0 * runoff**1.3)
        * np.exp(noise("turb", 0.3, 0.15))
    )

    values = np.stack(
        [
            np.clip(np.round(ph, 2), 6.5, 9.2),
            np.maximum(np.round(do, 2), 0.5),
            np.maximum(np.round(codmn, 1), 0.5),
            np.maximum(np.round(nh3n, 3), 0.025),
            np.maximum(np.round(tp, 3), 0.01),
            np.maximum(np.round(tn, 2), 0.05),
            np.round(temp, 1),
            np.round(conductivity),
            np.clip(np.round(turbidity, 1), 0.5, 3000.0),
        ],
        axis=2,
    )
    ids = [x_.id for x_ in stations]
    flags, present = defects.apply(seed, "water", ids, PARAMETERS, h, RATES)
    return Block("water", "4h", h.index, ids, PARAMETERS, values, flags, present)
