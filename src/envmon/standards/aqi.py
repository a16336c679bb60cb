"""Air quality index per HJ 633-2012 and HJ 633-2026, with exact arithmetic.

Pollutant keys name a pollutant and its averaging time: ``so2_1h so2_24h no2_1h
no2_24h pm10_24h pm25_24h co_1h co_24h o3_1h o3_8h`` plus, for the 2026
real-time report, ``pm10_1h pm25_1h``. Concentrations are µg/m³, CO mg/m³.

Arithmetic (standards.md §1.4): the value is read through its decimal string,
interpolated with ``Fraction`` (the HJ 633 IAQI formula, standards.md §1.3)
and only the result is rounded up (HJ 633-2012 §6.2 "全部进位取整数", HJ
633-2026 §4.2.6 "全部向上进位取整数"). For 2026 the concentration is first
rounded per GB/T 8170 to an integer µg/m³ (CO: 0.1 mg/m³), HJ 633-2026 §4.2.2–§4.2.3.

Judgment calls (standards.md marks them UNCERTAIN or silent):

* Above the top breakpoint the standards give no formula; the IAQI is 500
  (common practice) and the key is listed in :attr:`AqiResult.capped`.
* Real-time (hourly) report, both editions, as the national platform (CNEMC)
  publishes it (issue 15, checked on published station-hours in
  ``tests/standards/cnemc_published/``): the 1-h SO2/NO2/CO/O3 and the **1-h**
  PM10/PM2.5 concentrations judged against the 24-h (daily) breakpoints; the O3
  8-h moving mean is left out. HJ 633-2012 Table 4 read literally gives the PM
  IAQI from the 24-h moving means — the platform does not do that.
* A pollutant outside a station's monitoring programme (``/`` in the feed,
  HJ 633-2026 §5.3.2) is passed as ``not_monitored=``: it is neither an IAQI
  nor missing. A pollutant that is monitored but has no valid value is missing.
* The missing-pollutant rule of HJ 633-2026 §5.3.1 (AQI ≤ 100 with a pollutant
  missing → AQI, level and primary pollutant are NA): in the daily report for
  2026 only (HJ 633-2012 only says the missing pollutant is reported as NA, so a
  2012 daily AQI is computed from the others and flagged ``complete=False``); in
  the real-time report for both editions, as the platform publishes it, except
  that a missing PM10 1-h does not count while PM2.5 1-h is present (see
  :func:`_na_rule_applies`). Callers that count days (the good-day ratio) must
  treat the rule symmetrically, see :attr:`AqiResult.aqi_computed`.
* 2026 AQI range is 1–500 (HJ 633-2026 category table, 一级 = 1～50): an AQI of 0
  becomes 1; single IAQIs are left as computed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final, Literal, TypeAlias

from envmon.standards.editions import Edition, StandardsError, check_edition, edition_for
from envmon.standards.rounding import Number, round_half_even, to_decimal

__all__ = [
    "CATEGORIES",
    "POLLUTANTS",
    "AqiResult",
    "Category",
    "Edition",
    "category_of",
    "daily_aqi",
    "edition_for",
    "hourly_aqi",
    "iaqi",
]

ReportKind: TypeAlias = Literal["hourly", "daily"]

POLLUTANTS: Final = ("so2", "no2", "pm10", "pm25", "co", "o3")
"""Pollutant names used for the primary and non-attainment pollutant lists."""

# HJ 633-2012 Table 1 / HJ 633-2026 Table 3: the IAQI of each breakpoint row.
IAQI_LEVELS: Final[tuple[int, ...]] = (0, 50, 100, 150, 200, 300, 400, 500)

# HJ 633-2012 Table 1 — concentration breakpoints (µg/m³; CO mg/m³), one per row
# of IAQI_LEVELS. SO2 1-h stops at 800 (note 2: above it no 1-h IAQI, the 24-h
# IAQI is used); O3 8-h stops at 800 (note 3: above it the 1-h IAQI is used).
_BREAKPOINTS_2012: Final[Mapping[str, tuple[int, ...]]] = {
    "so2_24h": (0, 50, 150, 475, 800, 1600, 2100, 2620),
    "so2_1h": (0, 150, 500, 650, 800),
    "no2_24h": (0, 40, 80, 180, 280, 565, 750, 940),
    "no2_1h": (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    "pm10_24h": (0, 50, 150, 250, 350, 420, 500, 600),
    "co_24h": (0, 2, 4, 14, 24, 36, 48, 60),
    "co_1h": (0, 5, 10, 35, 60, 90, 120, 150),
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "o3_8h": (0, 100, 160, 215, 265, 800),
    "pm25_24h": (0, 35, 75, 115, 150, 250, 350, 500),
    # Real-time report: 1-h PM against the 24-h breakpoints (national platform practice).
    "pm10_1h": (0, 50, 150, 250, 350, 420, 500, 600),
    "pm25_1h": (0, 35, 75, 115, 150, 250, 350, 500),
}

# HJ 633-2026 Table 3 — identical to 2012 except the IAQI-100 points of PM10
# (150 → 120) and PM2.5 (75 → 60). Notes b/c: SO2 1-h > 800 → IAQI 200,
# O3 8-h > 800 → IAQI 300. HJ 633-2026 §4.2: a PM 1-h concentration is
# evaluated against the daily column, hence the pm10_1h/pm25_1h aliases.
_PM10_2026: Final = (0, 50, 120, 250, 350, 420, 500, 600)
_PM25_2026: Final = (0, 35, 60, 115, 150, 250, 350, 500)
_BREAKPOINTS_2026: Final[Mapping[str, tuple[int, ...]]] = {
    **_BREAKPOINTS_2012,
    "pm10_24h": _PM10_2026,
    "pm25_24h": _PM25_2026,
    "pm10_1h": _PM10_2026,
    "pm25_1h": _PM25_2026,
}

_BREAKPOINTS: Final[Mapping[Edition, Mapping[str, tuple[int, ...]]]] = {
    2012: _BREAKPOINTS_2012,
    2026: _BREAKPOINTS_2026,
}

ALL_KEYS: Final = frozenset(_BREAKPOINTS_2026)

# Columns that end at 800 with a special rule above it: HJ 633-2012 Table 1
# notes 2/3 (no IAQI; fall back), HJ 633-2026 Table 3 notes b/c (fixed IAQI).
_ABOVE_800_2026: Final[Mapping[str, int]] = {"so2_1h": 200, "o3_8h": 300}

# HJ 633-2026 §4.2.3: CO to one decimal (mg/m³), the others to integers (µg/m³).
_ROUNDING_PLACES_2026: Final[Mapping[str, int]] = {"co": 1}

# Indicators of each report (HJ 633-2012 Table 4 and its report clauses;
# HJ 633-2026 daily/real-time report clauses; standards.md §1.7).
_REPORT_KEYS: Final[Mapping[tuple[Edition, ReportKind], tuple[str, ...]]] = {
    # Real-time, both editions: the 1-h values of all six, PM against the 24-h
    # breakpoints, no O3 8-h (what the national platform publishes, issue 15).
    (2012, "hourly"): ("so2_1h", "no2_1h", "pm10_1h", "pm25_1h", "co_1h", "o3_1h"),
    # 2012 daily: 24-h means, O3 daily max 1-h and daily max 8-h.
    (2012, "daily"): ("so2_24h", "no2_24h", "pm10_24h", "pm25_24h", "co_24h", "o3_1h", "o3_8h"),
    (2026, "hourly"): ("so2_1h", "no2_1h", "pm10_1h", "pm25_1h", "co_1h", "o3_1h"),
    # 2026 daily: daily means and O3 daily max 8-h (the O3 1-h max was dropped).
    (2026, "daily"): ("so2_24h", "no2_24h", "pm10_24h", "pm25_24h", "co_24h", "o3_8h"),
}


@dataclass(frozen=True)
class Category:
    """One row of the HJ 633 AQI category table (standards.md §1.5)."""

    number: int
    level: str
    grade: str
    colour: str
    colour_name: str
    rgb: tuple[int, int, int]
    aqi_min: int
    aqi_max: int


# HJ 633-2012 / HJ 633-2026 AQI category table. Chinese purple is 153,0,76, not the
# US EPA purple. Category 1 starts at 0 in 2012 and at 1 in 2026; aqi_min holds 0.
CATEGORIES: Final[tuple[Category, ...]] = (
    Category(1, "优", "一级", "#00E400", "绿色", (0, 228, 0), 0, 50),
    Category(2, "良", "二级", "#FFFF00", "黄色", (255, 255, 0), 51, 100),
    Category(3, "轻度污染", "三级", "#FF7E00", "橙色", (255, 126, 0), 101, 150),
    Category(4, "中度污染", "四级", "#FF0000", "红色", (255, 0, 0), 151, 200),
    Category(5, "重度污染", "五级", "#99004C", "紫色", (153, 0, 76), 201, 300),
    Category(6, "严重污染", "六级", "#7E0023", "褐红色", (126, 0, 35), 301, 500),
)


def category_of(aqi: int) -> int:
    """The category number 1–6 of an AQI (HJ 633 category table, standards.md §1.5)."""
    if aqi < 0:
        raise StandardsError(f"AQI cannot be negative: {aqi}")
    for cat in CATEGORIES[:-1]:
        if aqi <= cat.aqi_max:
            return cat.number
    return CATEGORIES[-1].number


def _absent(value: Number | None) -> bool:
    """None or NaN (the common float case without building a Decimal)."""
    if value is None:
        return True
    if type(value) is float:
        return value != value  # NaN
    return to_decimal(value) is None


def _pollutant_of(key: str) -> str:
    return key.split("_", 1)[0]


def _iaqi_detail(key: str, value: Number | None, edition: Edition) -> tuple[int | None, bool]:
    """(IAQI, capped) of one concentration; capped = above the top breakpoint."""
    if type(value) not in _CACHE_SAFE:
        # numpy scalars and other number types compare equal to the nearest
        # float but read differently through their decimal string (float32 75.3
        # is "75.3", float(75.3f) is "75.30000305175781"): normalise before the
        # cache, so the result never depends on which type came first.
        value = to_decimal(value)
    if isinstance(value, float) and math.isnan(value):
        return None, False  # NaN is not a cache key (NaN != NaN)
    try:
        return _iaqi_cached(key, value, edition)
    except TypeError:  # an unhashable number type: compute directly
        return _iaqi_compute(key, value, edition)


# Types whose equal values always read the same through their decimal string.
_CACHE_SAFE: Final = frozenset({float, int, str, Decimal, type(None)})


# Pure function of (key, value, edition): cached, since measured concentrations
# repeat (analysers report to 1 µg/m³ or 0.1 mg/m³); derived tables compute
# hundreds of thousands of IAQIs per station-year.
@functools.lru_cache(maxsize=131_072)
def _iaqi_cached(key: str, value: Number | None, edition: Edition) -> tuple[int | None, bool]:
    return _iaqi_compute(key, value, edition)


def _iaqi_compute(key: str, value: Number | None, edition: Edition) -> tuple[int | None, bool]:
    table = _BREAKPOINTS[edition]
    if key not in table:
        if key in ALL_KEYS:
            raise StandardsError(f"HJ 633-{edition} has no IAQI for {key!r}")
        raise StandardsError(f"unknown pollutant key {key!r}")
    conc = to_decimal(value)
    if conc is None:
        return None, False
    if conc < 0:
        raise StandardsError(f"negative concentration {key}={value!r}")
    if edition == 2026:
        conc = round_half_even(conc, _ROUNDING_PLACES_2026.get(_pollutant_of(key), 0))
    bps = table[key]
    c = Fraction(conc)
    if c > bps[-1]:
        if key in _ABOVE_800_2026:
            # 2012 notes 2/3: no IAQI from this average (the caller falls back);
            # 2026 notes b/c: a fixed IAQI.
            return (None if edition == 2012 else _ABOVE_800_2026[key]), False
        return IAQI_LEVELS[-1], True
    for i in range(1, len(bps)):
        if c <= bps[i]:
            bp_lo, bp_hi = bps[i - 1], bps[i]
            i_lo, i_hi = IAQI_LEVELS[i - 1], IAQI_LEVELS[i]
            exact = Fraction(i_hi - i_lo, bp_hi - bp_lo) * (c - bp_lo) + i_lo
            return math.ceil(exact), False
    raise AssertionError("unreachable: c <= bps[-1] was checked")  # pragma: no cover


def iaqi(pollutant: str, value: Number | None, *, edition: int) -> int | None:
    """Individual AQI of one concentration (HJ 633-2012 §6, HJ 633-2026 §4.2).

    ``None``/NaN → ``None``. Segments are closed and share their end points, so a
    concentration on a breakpoint gives exactly that breakpoint's IAQI. Above the
    top breakpoint → 500. SO2 1-h > 800 µg/m³ and O3 8-h > 800 µg/m³ give ``None``
    in 2012 (HJ 633-2012 Table 1 notes 2/3: use the 24-h SO2 resp. 1-h O3 IAQI
    instead, as :func:`hourly_aqi` and :func:`daily_aqi` do) and 200 resp. 300 in
    2026 (HJ 633-2026 Table 3 notes b/c). ``pm10_1h``/``pm25_1h`` use the 24-h
    breakpoints of the edition. Negative values and unknown keys raise
    :class:`StandardsError`.
    """
    return _iaqi_detail(pollutant, value, check_edition(edition))[0]


@dataclass(frozen=True)
class AqiResult:
    """One AQI report (real-time or daily) with everything HJ 633 publishes.

    ``iaqi`` holds the IAQI of every indicator that was computed (keyed like the
    input), even when ``aqi`` is NA. ``complete`` is False when an indicator of
    the report was missing (listed in ``missing``).
    """

    aqi: int | None
    category: int | None
    level: str | None
    grade: str | None
    colour: str | None
    primary: list[str]
    iaqi: dict[str, int]
    exceeding: list[str]
    missing: list[str]
    edition: Edition
    complete: bool
    kind: ReportKind
    capped: list[str]
    aqi_computed: int | None = None
    """The AQI of the indicators present, before the HJ 633-2026 §5.3.1 NA rule."""
    not_monitored: list[str] = dataclasses.field(default_factory=list)


def _not_monitored(names: Iterable[str]) -> frozenset[str]:
    out = frozenset(names)
    unknown = sorted(out - set(POLLUTANTS))
    if unknown:
        raise StandardsError(f"not_monitored takes pollutant names {POLLUTANTS}, got {unknown}")
    return out


def _na_rule_applies(
    edition: Edition, kind: ReportKind, missing: list[str], iaqis: Mapping[str, int]
) -> bool:
    """Whether a missing indicator makes an AQI ≤ 100 NA (HJ 633-2026 §5.3.1).

    Daily report: 2026 only (HJ 633-2012 has no such rule). Real-time report: both
    editions, and a missing PM10 1-h does not count while PM2.5 1-h is present —
    what the national platform publishes (``tests/standards/cnemc_published``: it
    shows PM10 1-h as NA when it is below PM2.5, and such a PM10 can never have
    the higher IAQI, so the AQI is still published).
    """
    if kind == "daily":
        return edition == 2026 and bool(missing)
    counted = [m for m in missing if not (m == "pm10_1h" and "pm25_1h" in iaqis)]
    return bool(counted)


def _report(
    mapping: Mapping[str, Number | None],
    edition: Edition,
    kind: ReportKind,
    not_monitored: frozenset[str] = frozenset(),
) -> AqiResult:
    unknown = sorted(k for k in mapping if k not in ALL_KEYS)
    if unknown:
        raise StandardsError(f"unknown pollutant keys {unknown}")
    iaqis: dict[str, int] = {}
    missing: list[str] = []
    capped: list[str] = []
    for key in _REPORT_KEYS[edition, kind]:
        if _pollutant_of(key) in not_monitored:
            continue  # "/" — not in the programme: neither an IAQI nor missing (§5.3.2)
        source = key
        if edition == 2026 and key in ("pm10_1h", "pm25_1h") and key not in mapping:
            # Lenient alias: a 2026 real-time PM value passed under the 24-h key
            # is still a concentration judged against the daily breakpoints.
            alias = key.replace("_1h", "_24h")
            if alias in mapping:
                source = alias
        value = mapping.get(source)
        if _absent(value):
            missing.append(source)
            continue
        result, was_capped = _iaqi_detail(source, value, edition)
        if was_capped:
            capped.append(source)
        if result is not None:
            iaqis[source] = result
        elif source == "so2_1h":
            # HJ 633-2012 Table 1 note 2: SO2 1-h > 800 → report the 24-h IAQI.
            fallback, was_capped = _iaqi_detail("so2_24h", mapping.get("so2_24h"), edition)
            if fallback is None:
                missing.append("so2_24h")
            else:
                iaqis["so2_24h"] = fallback
                if was_capped:
                    capped.append("so2_24h")
        # o3_8h > 800 in 2012 (note 3): the O3 1-h IAQI, which is an indicator of
        # both 2012 reports, stands for O3; nothing to add here.

    by_pollutant: dict[str, int] = {}
    for key, value in iaqis.items():
        p = _pollutant_of(key)
        by_pollutant[p] = max(value, by_pollutant.get(p, value))

    aqi: int | None = max(by_pollutant.values()) if by_pollutant else None
    if aqi is not None and edition == 2026:
        aqi = max(aqi, 1)  # HJ 633-2026 category table: AQI range 1–500
    computed = aqi
    complete = not missing
    exceeding = [p for p in POLLUTANTS if by_pollutant.get(p, 0) > 100] if edition == 2012 else []
    if _na_rule_applies(edition, kind, missing, iaqis) and aqi is not None and aqi <= 100:
        aqi = None  # HJ 633-2026 §5.3.1: publish NA unless AQI > 100
    primary = (
        [p for p in POLLUTANTS if by_pollutant.get(p) == aqi]
        if aqi is not None and aqi > 50
        else []
    )
    cat = CATEGORIES[category_of(aqi) - 1] if aqi is not None else None
    return AqiResult(
        aqi=aqi,
        category=cat.number if cat else None,
        level=cat.level if cat else None,
        grade=cat.grade if cat else None,
        colour=cat.colour if cat else None,
        primary=primary,
        iaqi=iaqis,
        exceeding=exceeding,
        missing=missing,
        edition=edition,
        complete=complete,
        kind=kind,
        capped=capped,
        aqi_computed=computed,
        not_monitored=sorted(not_monitored),
    )


def hourly_aqi(
    mapping: Mapping[str, Number | None],
    *,
    edition: int,
    not_monitored: Iterable[str] = (),
) -> AqiResult:
    """Real-time (hourly) AQI report, as the national platform publishes it.

    Both editions: the 1-h means ``so2_1h no2_1h co_1h o3_1h pm10_1h pm25_1h``,
    PM judged against the 24-h (daily) breakpoints of the edition; the O3 8-h
    moving mean is not an indicator (HJ 633-2026 §4.2; for 2012 the platform's
    practice, see the module docstring). The edition is that of the hour's
    *start* (the hour labelled 2026-03-01 00:00 is 23:00–24:00 of 28 February:
    2012). 2012: ``so2_24h`` is read only as the fallback when SO2 1-h > 800
    µg/m³ (Table 1 note 2). 2026: if ``pm10_1h``/``pm25_1h`` is absent, a
    ``pm10_24h``/``pm25_24h`` entry is taken as that 1-h value.

    ``not_monitored`` names pollutants (``so2 no2 pm10 pm25 co o3``) outside the
    station's monitoring programme ("/" in the feed): they neither count nor make
    the report incomplete. Other known keys are ignored; unknown keys raise
    :class:`StandardsError`.
    """
    return _report(mapping, check_edition(edition), "hourly", _not_monitored(not_monitored))


def daily_aqi(
    mapping: Mapping[str, Number | None],
    *,
    edition: int,
    not_monitored: Iterable[str] = (),
) -> AqiResult:
    """Daily AQI report.

    2012 (HJ 633-2012 daily report, standards.md §1.7): the ``so2_24h no2_24h
    pm10_24h pm25_24h co_24h`` means, ``o3_1h`` (daily max 1-h) and ``o3_8h``
    (daily max 8-h moving); O3 8-h > 800 leaves O3 to the 1-h IAQI.

    2026 (HJ 633-2026 daily report): the five daily means and ``o3_8h``; ``o3_1h`` is
    ignored (the O3 daily max 1-h is no longer a daily indicator).
    ``not_monitored`` as for :func:`hourly_aqi`.
    """
    return _report(mapping, check_edition(edition), "daily", _not_monitored(not_monitored))
