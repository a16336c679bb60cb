"""Realistic data defects: missing records, outages, maintenance and calibration flags.

Missing data are rows that are simply absent (a station that sent nothing);
maintenance and calibration hours are sent with the HJ 212 flag ``M`` / ``C``
(HJ 212-2017 Table 8) and a value that the evaluation must leave out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from envmon.simulate import rng
from envmon.simulate.base import FLAG_C, FLAG_M, FLAG_N, Hours


@dataclass(frozen=True, slots=True)
class DefectRates:
    missing: float  # a whole record (all parameters of a station-slot) absent
    param_missing: float  # one analyser's value absent
    outage_per_day: float  # a station falls silent for 1…outage_days whole days
    outage_days: int
    maintenance_per_day: float  # a few hours flagged M, starting at maintenance_start
    maintenance_start: tuple[int, int]  # hour-of-day range of the start
    maintenance_hours: tuple[int, int]  # length range
    calibrating_share: float  # share of stations with a weekly calibration
    calibration_hour: int  # hour of day the weekly calibration starts
    calibration_hours: tuple[int, int]  # its length range
    calibrated: frozenset[str] = frozenset()  # parameters flagged C while calibrating
    param_missing_extra: Mapping[str, float] = field(default_factory=dict)


def apply(
    seed: int,
    kind: str,
    station_ids: list[str],
    parameters: tuple[str, ...],
    hours: Hours,
    rates: DefectRates,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Flags and presence of each (slot, station, parameter)."""
    t, s, p = len(hours.index), len(station_ids), len(parameters)
    idx = hours.index[:, None]
    day = hours.day[:, None]
    hod = hours.hour[:, None]

    def station_keys(what: str) -> rng.U64:
        return rng.keys(seed, [(kind, what, sid) for sid in station_ids])[None, :]

    present = rng.uniform(station_keys("missing"), idx) >= rates.missing  # (t, s)

    out_keys = station_keys("outage")
    len_keys = station_keys("outage-length")
    silent = np.zeros((t, s), dtype=bool)
    for back in range(rates.outage_days):
        start_day = day - back
        starts = rng.uniform(out_keys, start_day) < rates.outage_per_day
        length = 1 + np.floor(rng.uniform(len_keys, start_day) * rates.outage_days).astype(np.int64)
        silent |= starts & (length > back)
    present &= ~silent

    pkeys = rng.keys(
        seed, [(kind, "pmissing", sid, par) for sid in station_ids for par in parameters]
    )
    pkeys = pkeys.reshape(1, s, p)
    prate = np.array(
        [rates.param_missing + rates.param_missing_extra.get(par, 0.0) for par in parameters]
    )
    present3 = present[:, :, None] & (rng.uniform(pkeys, hours.index[:, None, None]) >= prate)

    flags = np.full((t, s, p), FLAG_N, dtype=np.uint8)
    if rates.calibrated and rates.calibrating_share > 0:
        ck = station_keys("calibration")
        ck0 = np.zeros((1, 1), dtype=np.int64)
        does = rng.uniform(ck, ck0) < rates.calibrating_share
        weekday = np.floor(rng.uniform(ck, ck0 + 1) * 7).astype(np.int64)
        lo, hi = rates.calibration_hours
        length = lo + np.floor(rng.uniform(ck, ck0 + 2) * (hi - lo + 1)).astype(np.int64)
        start = rates.calibration_hour
        cal = does & (hours.weekday[:, None] == weekday) & (hod >= start) & (hod < start + length)
        cal_par = np.array([par in rates.calibrated for par in parameters])
        flags[cal[:, :, None] & cal_par[None, None, :]] = FLAG_C

    mk = station_keys("maintenance")
    maint_day = rng.uniform(mk, day) < rates.maintenance_per_day
    s_lo, s_hi = rates.maintenance_start
    m_start = s_lo + np.floor(
        rng.uniform(station_keys("maintenance-start"), day) * (s_hi - s_lo + 1)
    )
    l_lo, l_hi = rates.maintenance_hours
    m_len = l_lo + np.floor(
        rng.uniform(station_keys("maintenance-length"), day) * (l_hi - l_lo + 1)
    )
    maint = maint_day & (hod >= m_start) & (hod < m_start + m_len)
    flags[np.broadcast_to(maint[:, :, None], (t, s, p))] = FLAG_M
    return flags, present3
