"""Assessment statistics of HJ 663-2013 (and what is known of HJ 663-2026).

Everything is computed with exact rationals from the values' decimal strings
and converted to ``float`` once, at the end (see :mod:`envmon.standards.rounding`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Final

from envmon.standards.editions import StandardsError, check_edition
from envmon.standards.rounding import Number, to_fraction

# HJ 663 comprehensive index denominators S_i (standards.md §3.5): class II
# annual limits of GB 3095-2012 Table 1 for SO2, NO2, PM10, PM2.5; the 24-h CO
# limit (compared with the CO 24-h P95, mg/m³) and the O3 8-h limit (compared
# with the O3 MDA8 P90).
COMPREHENSIVE_DENOMINATORS_2012: Final[Mapping[str, float]] = {
    "so2": 60,
    "no2": 40,
    "pm10": 70,
    "pm25": 35,
    "co": 4,
    "o3": 160,
}

# UNCERTAIN: HJ 663-2026 has not been read; whether it weights the terms or uses
# the GB 3095-2026 transitional limits (e.g. PM10 60, PM2.5 30) is unknown. The
# 2012 denominators are the default; pass ``denominators`` to override.
COMPREHENSIVE_DENOMINATORS_2026: Final[Mapping[str, float]] = COMPREHENSIVE_DENOMINATORS_2012


def _exact(value: Number | None, what: str) -> Fraction:
    f = to_fraction(value)
    if f is None:
        raise StandardsError(f"{what} is missing")
    return f


def percentile(values: Iterable[Number], p: float) -> float:
    """Percentile by HJ 663 Annex A (standards.md §3.2); ``p`` is a fraction 0–1.

    Sort ascending X(1) ≤ … ≤ X(n); k = 1 + (n − 1)·p; s = ⌊k⌋;
    m = X(s) + (X(s+1) − X(s))·(k − s). Same as NumPy ``method="linear"``.
    ``p`` as a fraction (0.9, not 90) so that a percent is never mistaken for
    it: values above 1 raise.

    >>> percentile([3, 4, 8, 2, 5, 4], 0.9)
    6.5
    """
    q = _exact(p, "p")
    if not 0 <= q <= 1:
        raise StandardsError(f"p is a fraction 0–1 (0.9 for P90), got {p!r}")
    xs = sorted(_exact(v, "a value") for v in values)
    if not xs:
        raise StandardsError("percentile of no values")
    k = 1 + (len(xs) - 1) * q
    s = math.floor(k)
    low = xs[s - 1]
    high = xs[s] if s < len(xs) else low
    return float(low + (high - low) * (k - s))


def comprehensive_index(
    conc: Mapping[str, Number],
    *,
    edition: int,
    denominators: Mapping[str, Number] | None = None,
) -> float:
    """环境空气质量综合指数 I_sum = Σ C_i / S_i over the six pollutants (standards.md §3.5).

    ``conc`` keys ``so2 no2 pm10 pm25 co o3``: period means for SO2, NO2, PM10,
    PM2.5 (µg/m³), CO 24-h P95 (mg/m³), O3 MDA8 P90 (µg/m³). All six are
    required — a missing term would make a city look cleaner. The 2012
    denominators come from the HJ 663-2013 practice; for 2026 they are the same
    by default because HJ 663-2026 is UNCERTAIN (not read) — pass
    ``denominators`` when the bureau confirms other values. Unrounded; smaller is
    better.
    """
    ed = check_edition(edition)
    if denominators is None:
        denominators = (
            COMPREHENSIVE_DENOMINATORS_2012 if ed == 2012 else COMPREHENSIVE_DENOMINATORS_2026
        )
    unknown = sorted(set(conc) - set(denominators))
    if unknown:
        raise StandardsError(f"no comprehensive-index denominator for {unknown}")
    missing = sorted(set(denominators) - set(conc))
    if missing:
        raise StandardsError(f"comprehensive index needs all pollutants; missing {missing}")
    total = Fraction(0)
    for name, s in denominators.items():
        total += _exact(conc[name], name) / _positive(s, name)
    return float(total)


def _positive(value: Number, what: str) -> Fraction:
    f = _exact(value, what)
    if f <= 0:
        raise StandardsError(f"{what} must be positive, got {value!r}")
    return f


def good_day_ratio(aqis: Iterable[int | None]) -> float | None:
    """优良天数比例 as a fraction 0–1: days with AQI ≤ 100 over evaluated days (§3.6).

    ``None`` entries (no valid AQI, incl. HJ 633-2026 §5.3.1 NA days) are left
    out of the denominator — UNCERTAIN in the reference. ``None`` if no day
    has an AQI. Multiply by 100 for the published percentage.
    """
    valid = [a for a in aqis if a is not None]
    if not valid:
        return None
    good = sum(1 for a in valid if a <= 100)
    return good / len(valid)


def exceedance_multiple(c: Number, s: Number) -> float:
    """超标倍数 (C − S) / S against the applicable limit S (standards.md §3.4).

    Signed: zero or negative means the limit is met; callers report positive
    values only.
    """
    limit = _positive(s, "limit")
    return float((_exact(c, "concentration") - limit) / limit)
