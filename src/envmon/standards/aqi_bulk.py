"""The real-time (hourly) and daily AQI reports of many rows at once, vectorised with numpy.

Same rules and same numbers as :func:`envmon.standards.aqi.hourly_aqi` and
:func:`~envmon.standards.aqi.daily_aqi` (which stay the definition;
``tests/standards/test_std_aqi_bulk.py`` compares them on every row, band edges and
ties included), for concentrations already rounded to their
published precision (GB/T 8170: integers µg/m³, CO 0.1 mg/m³) — what the derive
job passes. At that precision the HJ 633 IAQI formula is exact in integers: with
the concentration and breakpoints scaled to whole units (CO ×10),
``IAQI = I_lo + ceil((I_hi - I_lo) × (c - BP_lo) / (BP_hi - BP_lo))``, a ceiling
division of integers. The HJ 633-2026 §4.2.2 rounding is then a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from envmon.standards.aqi import (
    _ABOVE_800_2026,
    _BREAKPOINTS,
    _REPORT_KEYS,
    CATEGORIES,
    IAQI_LEVELS,
    POLLUTANTS,
)
from envmon.standards.editions import Edition, StandardsError

__all__ = [
    "DAILY_KEYS",
    "HOURLY_KEYS",
    "PRIMARY_LISTS",
    "DailyAqi",
    "HourlyAqi",
    "daily_aqi_bulk",
    "hourly_aqi_bulk",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# The real-time report's indicators (both editions) and the 2012 SO2 fallback.
HOURLY_KEYS: Final = (*_REPORT_KEYS[2012, "hourly"], "so2_24h")
assert _REPORT_KEYS[2012, "hourly"] == _REPORT_KEYS[2026, "hourly"]
# The daily report's indicators: 2012's; 2026 drops the O3 daily max 1-h.
DAILY_KEYS: Final = _REPORT_KEYS[2012, "daily"]
assert set(_REPORT_KEYS[2026, "daily"]) <= set(DAILY_KEYS)

# Whole units of the published precision (standards.rounding.AIR_PUBLISHED_PLACES).
_SCALE: Final[Mapping[str, int]] = {"co": 10}
_LEVELS: Final = np.array(IAQI_LEVELS, dtype=np.int64)
_CATEGORY_TOPS: Final = np.array([c.aqi_max for c in CATEGORIES[:-1]], dtype=np.int64)
NA: Final = -1
"""``aqi``/``category`` of an hour whose AQI is NA (and an IAQI that was not computed)."""


@dataclass(frozen=True)
class HourlyAqi:
    """Per hour: ``aqi`` and ``category`` (:data:`NA` = None) and the primary pollutants."""

    aqi: Ints
    category: Ints
    primary: list[list[str]]
    primary_mask: Ints  # bit j: POLLUTANTS[j] is primary (the index into PRIMARY_LISTS)


@dataclass(frozen=True)
class DailyAqi:
    """Per day: ``aqi``, ``category`` (:data:`NA` = None), the primary-pollutant mask
    (as :attr:`HourlyAqi.primary_mask`), ``complete`` and the IAQI of each of
    :data:`DAILY_KEYS` (:data:`NA` where ``AqiResult.iaqi`` has no such key)."""

    aqi: Ints
    category: Ints
    primary_mask: Ints
    complete: Bools
    iaqi: dict[str, Ints]


def _pollutant(key: str) -> str:
    return key.split("_", 1)[0]


def _iaqi(key: str, values: Floats, edition: Edition, used: Bools) -> tuple[Ints, Bools]:
    """(IAQI or NA, no-IAQI-above-800) of ``values`` for the rows in ``used``."""
    scale = _SCALE.get(_pollutant(key), 1)
    present = used & ~np.isnan(values)
    v = np.where(present, values, 0.0)
    if bool(np.any(v < 0)):
        bad = values[present & (v < 0)][0]
        raise StandardsError(f"negative concentration {key}={bad!r}")
    s = np.rint(v * scale)
    if not bool(np.all(s / scale == v)):
        raise ValueError(f"{key}: concentrations must be at their published precision")
    c = s.astype(np.int64)
    bps = np.array(_BREAKPOINTS[edition][key], dtype=np.int64) * scale
    top = len(bps) - 1
    i = np.clip(np.searchsorted(bps, c, side="left"), 1, top)
    lo, hi = bps[i - 1], bps[i]
    i_lo, i_hi = _LEVELS[i - 1], _LEVELS[i]
    num = (i_hi - i_lo) * (c - lo)
    out = i_lo - (-num // (hi - lo))  # ceiling division of non-negative integers
    above = present & (c > bps[-1])
    no_iaqi = np.zeros_like(present)
    if key in _ABOVE_800_2026:
        if edition == 2012:
            no_iaqi = above  # HJ 633-2012 Table 1 notes 2/3: the caller falls back
            out = np.where(above, NA, out)
        else:
            out = np.where(above, _ABOVE_800_2026[key], out)  # HJ 633-2026 notes b/c
    else:
        out = np.where(above, IAQI_LEVELS[-1], out)
    return np.where(present, out, NA), no_iaqi


def _one_edition(
    values: Mapping[str, Floats], edition: Edition, rows: Bools, not_monitored: Mapping[str, Bools]
) -> tuple[Ints, Ints]:
    """(AQI or NA, bitmask of primary pollutants in POLLUTANTS order) for ``rows``."""
    n = len(rows)
    by_pollutant: dict[str, Ints] = {}
    counted_missing = np.zeros(n, dtype=bool)
    pm10_missing = np.zeros(n, dtype=bool)
    for key in _REPORT_KEYS[edition, "hourly"]:
        p = _pollutant(key)
        used = rows & ~not_monitored.get(p, np.zeros(n, dtype=bool))
        col = values[key]
        missing = used & np.isnan(col)
        if key == "pm10_1h":
            pm10_missing = missing
        else:
            counted_missing |= missing
        result, no_iaqi = _iaqi(key, col, edition, used)
        if key == "so2_1h" and bool(np.any(no_iaqi)):
            fallback, _ = _iaqi("so2_24h", values["so2_24h"], edition, no_iaqi)
            counted_missing |= no_iaqi & (fallback == NA)
            result = np.where(no_iaqi, fallback, result)
        by_pollutant[p] = result
    # A missing PM10 1-h does not count while PM2.5 1-h is present (aqi._na_rule_applies).
    counted_missing |= pm10_missing & (by_pollutant["pm25"] == NA)
    return _aqi_and_primary(by_pollutant, edition, counted_missing)


def _aqi_and_primary(
    by_pollutant: Mapping[str, Ints], edition: Edition, na_rule: Bools
) -> tuple[Ints, Ints]:
    """(AQI or NA, primary mask) from each pollutant's IAQI (NA = none); ``na_rule``:
    the rows where a missing indicator makes an AQI ≤ 100 NA (HJ 633-2026 §5.3.1)."""
    stacked = np.stack([by_pollutant[p] for p in POLLUTANTS])
    aqi = stacked.max(axis=0)
    if edition == 2026:
        aqi = np.where(aqi == NA, NA, np.maximum(aqi, 1))  # AQI range 1–500
    aqi = np.where(na_rule & (aqi != NA) & (aqi <= 100), NA, aqi)
    weights = (1 << np.arange(len(POLLUTANTS), dtype=np.int64))[:, None]
    primary = ((stacked == aqi) & (aqi > 50)).astype(np.int64) * weights
    return aqi, primary.sum(axis=0)


def _daily_one_edition(
    values: Mapping[str, Floats], edition: Edition, rows: Bools, not_monitored: Mapping[str, Bools]
) -> list[npt.NDArray[Any]]:
    """AQI or NA, primary mask, complete and the IAQI of each of DAILY_KEYS (NA = none),
    of the daily report for ``rows``."""
    n = len(rows)
    none = np.zeros(n, dtype=bool)
    by_pollutant = {p: np.full(n, NA, dtype=np.int64) for p in POLLUTANTS}
    iaqis = {k: np.full(n, NA, dtype=np.int64) for k in DAILY_KEYS}
    missing = none
    for key in _REPORT_KEYS[edition, "daily"]:
        p = _pollutant(key)
        used = rows & ~not_monitored.get(p, none)
        missing = missing | (used & np.isnan(values[key]))
        # O3 8-h > 800 in 2012 (Table 1 note 3): no IAQI and not missing; the O3
        # 1-h IAQI, an indicator of the 2012 daily report too, stands for O3.
        iaqis[key], _ = _iaqi(key, values[key], edition, used)
        by_pollutant[p] = np.maximum(by_pollutant[p], iaqis[key])
    # HJ 633-2026 §5.3.1 in the daily report: 2026 only (aqi._na_rule_applies).
    aqi, mask = _aqi_and_primary(by_pollutant, edition, missing if edition == 2026 else none)
    return [aqi, mask, ~missing, *(iaqis[k] for k in DAILY_KEYS)]


# The primary pollutants of each mask (bit j: POLLUTANTS[j]), in POLLUTANTS order.
PRIMARY_LISTS: Final = [
    [p for j, p in enumerate(POLLUTANTS) if mask >> j & 1] for mask in range(1 << len(POLLUTANTS))
]


def hourly_aqi_bulk(
    values: Mapping[str, Floats],
    is_2026: Bools,
    not_monitored: Mapping[str, Bools] | None = None,
) -> HourlyAqi:
    """The hourly report of every row, as :func:`~envmon.standards.aqi.hourly_aqi` gives it.

    ``values`` maps each of :data:`HOURLY_KEYS` to a float column of published
    concentrations (NaN = missing; ``so2_24h`` is read only in 2012 rows with SO2
    1-h > 800); ``is_2026`` selects the edition of each row; ``not_monitored``
    maps a pollutant name to the rows where it is outside the programme.
    A value not at its published precision raises ``ValueError``.
    """
    nm = dict(not_monitored or {})
    aqi, mask = _by_edition(is_2026, lambda edition, rows: _one_edition(values, edition, rows, nm))
    return HourlyAqi(aqi, _category(aqi), [PRIMARY_LISTS[m] for m in mask.tolist()], mask)


def _by_edition(
    is_2026: Bools, report: Callable[[Edition, Bools], Sequence[npt.NDArray[Any]]]
) -> list[npt.NDArray[Any]]:
    """The columns ``report`` gives for the rows of each edition, merged row by row."""
    editions: list[tuple[Edition, Bools]] = [(2012, ~is_2026), (2026, is_2026)]
    present = [(e, rows) for e, rows in editions if bool(np.any(rows))] or editions[:1]
    merged = list(report(*present[0]))
    for edition, rows in present[1:]:
        merged = [np.where(rows, c, m) for c, m in zip(report(edition, rows), merged, strict=True)]
    return merged


def _category(aqi: Ints) -> Ints:
    """The category number 1–6 of each AQI (:func:`~envmon.standards.aqi.category_of`)."""
    return np.where(aqi == NA, NA, np.searchsorted(_CATEGORY_TOPS, aqi, side="left") + 1)


def daily_aqi_bulk(
    values: Mapping[str, Floats],
    is_2026: Bools,
    not_monitored: Mapping[str, Bools] | None = None,
) -> DailyAqi:
    """The daily report of every row, as :func:`~envmon.standards.aqi.daily_aqi` gives it.

    ``values`` maps each of :data:`DAILY_KEYS` to a float column of published
    concentrations (NaN = missing; ``o3_1h`` is read only in 2012 rows);
    ``is_2026`` and ``not_monitored`` as for :func:`hourly_aqi_bulk`.
    """
    nm = dict(not_monitored or {})
    aqi, mask, complete, *iaqis = _by_edition(
        is_2026, lambda edition, rows: _daily_one_edition(values, edition, rows, nm)
    )
    return DailyAqi(aqi, _category(aqi), mask, complete, dict(zip(DAILY_KEYS, iaqis, strict=True)))
