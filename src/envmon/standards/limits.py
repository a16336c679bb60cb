"""Ambient concentration limits of GB 3095-2012 and GB 3095-2026, selected by date.

Three limit sets are in play (standards.md §2.1, GB 3095-2026 §4.4):

* ``"2012"`` — GB 3095-2012 (with the 2018 amendment, which changed only the
  reference state, not the numbers) for Beijing days before 2026-03-01;
* ``"2026-transitional"`` — GB 3095-2026 Table 1 transitional column,
  2026-03-01 … 2030-12-31 (the 2012 values except PM10/PM2.5 class II);
* ``"2026-final"`` — GB 3095-2026 Table 1 final column, from 2031-01-01.

Stat names are ``<pollutant>_<averaging time>``: ``annual``, ``24h`` (daily),
``1h``, ``o3_8h`` = daily maximum 8-h average. Units µg/m³, CO mg/m³.
Class 1 = 一级 (national parks, nature reserves, …), class 2 = 二级 (all else).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Final

from envmon.standards.editions import LimitSet, StandardsError, limit_set_for

# (class I, class II) per stat.

# GB 3095-2012 Table 1 (basic items) and Table 2 (other items).
_LIMITS_2012: Final[Mapping[str, tuple[float, float]]] = {
    "so2_annual": (20, 60),
    "so2_24h": (50, 150),
    "so2_1h": (150, 500),
    "no2_annual": (40, 40),
    "no2_24h": (80, 80),
    "no2_1h": (200, 200),
    "co_24h": (4, 4),  # mg/m³
    "co_1h": (10, 10),  # mg/m³
    "o3_8h": (100, 160),  # daily maximum 8-h average
    "o3_1h": (160, 200),
    "pm10_annual": (40, 70),
    "pm10_24h": (50, 150),
    "pm25_annual": (15, 35),
    "pm25_24h": (35, 75),
    # Table 2
    "tsp_annual": (80, 200),
    "tsp_24h": (120, 300),
    "nox_annual": (50, 50),
    "nox_24h": (100, 100),
    "nox_1h": (250, 250),
    "pb_annual": (0.5, 0.5),
    "pb_quarterly": (1, 1),
    "bap_annual": (0.001, 0.001),
    "bap_24h": (0.0025, 0.0025),
}

# GB 3095-2026 Table 1, transitional limits (to 2030-12-31); Table 2 transitional
# NOx values. Table-2 items apply as decided by the MEE or provinces (§4.5).
# The reference gives one NOx value per averaging time; it is used for both
# classes (as in GB 3095-2012).
_LIMITS_2026_TRANSITIONAL: Final[Mapping[str, tuple[float, float]]] = {
    "so2_annual": (20, 60),
    "so2_24h": (50, 150),
    "so2_1h": (150, 500),
    "no2_annual": (40, 40),
    "no2_24h": (80, 80),
    "no2_1h": (200, 200),
    "co_24h": (4, 4),  # mg/m³
    "co_1h": (10, 10),  # mg/m³
    "o3_8h": (100, 160),
    "o3_1h": (160, 200),
    "pm10_annual": (40, 60),
    "pm10_24h": (50, 120),
    "pm25_annual": (15, 30),
    "pm25_24h": (35, 60),
    # Table 2
    "tsp_annual": (80, 200),
    "tsp_24h": (120, 300),
    "nox_annual": (50, 50),
    "nox_24h": (100, 100),
    "nox_1h": (250, 250),
    "pb_annual": (0.5, 0.5),
    "pb_quarterly": (1, 1),
    "bap_annual": (0.001, 0.001),
    "bap_24h": (0.0025, 0.0025),
}

# GB 3095-2026 Table 1, final limits (from 2031-01-01); Table 2 final values.
_LIMITS_2026_FINAL: Final[Mapping[str, tuple[float, float]]] = {
    "so2_annual": (20, 20),
    "so2_24h": (50, 50),
    "so2_1h": (150, 150),
    "no2_annual": (30, 30),
    "no2_24h": (50, 50),
    "no2_1h": (200, 200),
    "co_24h": (4, 4),  # mg/m³
    "co_1h": (10, 10),  # mg/m³
    "o3_8h": (100, 160),
    "o3_1h": (160, 200),
    "pm10_annual": (20, 50),
    "pm10_24h": (50, 100),
    "pm25_annual": (10, 25),
    "pm25_24h": (25, 50),
    # Table 2
    "tsp_annual": (80, 200),
    "tsp_24h": (120, 300),
    "nox_annual": (40, 40),
    "nox_24h": (70, 70),
    "nox_1h": (250, 250),
    "pb_annual": (0.5, 0.5),
    "pb_quarterly": (1, 1),
    "bap_annual": (0.001, 0.001),
    "bap_24h": (0.0025, 0.0025),
}

LIMIT_SETS: Final[Mapping[LimitSet, Mapping[str, tuple[float, float]]]] = {
    "2012": _LIMITS_2012,
    "2026-transitional": _LIMITS_2026_TRANSITIONAL,
    "2026-final": _LIMITS_2026_FINAL,
}


def limit_in_set(pollutant_stat: str, limit_set: LimitSet, *, cls: int = 2) -> float:
    """The limit of ``pollutant_stat`` for a class in a named limit set."""
    if cls not in (1, 2):
        raise StandardsError(f"GB 3095 has classes 1 and 2, not {cls!r}")
    try:
        table = LIMIT_SETS[limit_set]
    except KeyError as err:
        raise StandardsError(f"unknown limit set {limit_set!r}") from err
    try:
        pair = table[pollutant_stat]
    except KeyError as err:
        raise StandardsError(f"no GB 3095 limit for {pollutant_stat!r}") from err
    return float(pair[cls - 1])


def limit(pollutant_stat: str, day: date | datetime, *, cls: int = 2) -> float:
    """The GB 3095 limit for ``pollutant_stat`` in force on a Beijing day.

    >>> limit("pm25_24h", date(2026, 2, 28)), limit("pm25_24h", date(2026, 3, 1))
    (75.0, 60.0)
    """
    return limit_in_set(pollutant_stat, limit_set_for(day), cls=cls)
