"""Minimum-data rules of GB 3095 Table 4 and the O3 8-h statistics built on them.

GB 3095-2012 Table 4 and GB 3095-2026 Table 4 carry the same numbers
(standards.md §2.3). Invalid data are *missing*, never zero: a statistic that
fails its rule is not computed.

O3 8-h window convention (UNCERTAIN in the reference, HJ 663 not read): an 8-h
value is labelled by the end of its last hour; the windows belonging to a day
are those ending 08:00 … 24:00, i.e. 00–08 … 16–24, 17 windows entirely inside
the natural day. Hourly values are indexed by the hour they *start* (index 0 =
00:00–01:00), so the window ending at hour ``k`` covers indices ``k-8 … k-1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from envmon.standards.editions import StandardsError
from envmon.standards.rounding import Number, to_fraction

# GB 3095-2026 Table 4 (same numbers in GB 3095-2012 Table 4).
HOUR_MIN_MINUTES: Final = 45  # 1-h mean: ≥ 45 min of sampling in the hour
DAY_MIN_HOURS: Final = 20  # 24-h mean: ≥ 20 hourly means in the day
O3_8H_WINDOW_HOURS: Final = 8
O3_8H_MIN_HOURS: Final = 6  # O3 8-h mean: ≥ 6 hourly means in the window
MONTH_MIN_DAYS: Final = 27  # monthly mean: ≥ 27 daily means …
FEBRUARY_MIN_DAYS: Final = 25  # … February ≥ 25
YEAR_MIN_DAYS: Final = 324  # annual mean: ≥ 324 daily means
# HJ 663-2013 / HJ 663-2026 §6.1.2: O3 MDA8 needs ≥ 14 valid 8-h values, else it
# counts only if it exceeds the limit.
MDA8_MIN_WINDOWS: Final = 14


def _count(n: int, what: str) -> int:
    if n < 0:
        raise StandardsError(f"{what} cannot be negative: {n}")
    return n


def hour_valid(minutes: int) -> bool:
    """A 1-h mean is valid with ≥ 45 minutes of sampling (GB 3095 Table 4)."""
    return _count(minutes, "minutes") >= HOUR_MIN_MINUTES


def day_valid(n_hours: int) -> bool:
    """A 24-h mean is valid with ≥ 20 hourly means (GB 3095 Table 4)."""
    return _count(n_hours, "hours") >= DAY_MIN_HOURS


def o3_8h_valid(n_hours: int) -> bool:
    """An O3 8-h mean is valid with ≥ 6 hourly means in the window (GB 3095 Table 4)."""
    return _count(n_hours, "hours") >= O3_8H_MIN_HOURS


def mda8_valid(n_valid_windows: int, value: Number | None, limit: Number) -> bool:
    """Whether an O3 daily maximum 8-h value may be used (HJ 663 §6.1.2).

    Valid with ≥ 14 valid 8-h values in the day; with fewer, valid only when it
    exceeds (strictly) the concentration limit — a low value from a short day
    could hide a high one, a high value cannot be made lower.
    """
    if _count(n_valid_windows, "windows") >= MDA8_MIN_WINDOWS:
        return True
    v, s = to_fraction(value), to_fraction(limit)
    if s is None:
        raise StandardsError(f"limit must be a number, not {limit!r}")
    return v is not None and v > s


def month_valid(n_days: int, year: int, month: int) -> bool:
    """A monthly mean is valid with ≥ 27 daily means, February ≥ 25 (GB 3095 Table 4).

    ``year`` is checked but does not matter: February needs 25 in leap years too.
    """
    if not 1 <= month <= 12 or year < 1:
        raise StandardsError(f"not a month: {year}-{month}")
    need = FEBRUARY_MIN_DAYS if month == 2 else MONTH_MIN_DAYS
    return _count(n_days, "days") >= need


def year_valid(n_days: int) -> bool:
    """An annual mean is valid with ≥ 324 daily means (GB 3095 Table 4)."""
    return _count(n_days, "days") >= YEAR_MIN_DAYS


def _valid_mean(values: Sequence[Number | None], need: int) -> float | None:
    present = [f for f in (to_fraction(v) for v in values) if f is not None]
    if len(present) < need:
        return None
    # Exact mean, one rounding to float at the end.
    return float(sum(present, Fraction(0)) / len(present))


def o3_8h_moving(hourly: Sequence[Number | None]) -> float | None:
    """O3 8-h moving average ending at the last element of ``hourly``.

    Uses the trailing 8 elements (fewer given = the earlier hours are missing);
    ``None``/NaN hours are missing. Mean of the valid hours if there are ≥ 6,
    else ``None`` (GB 3095 Table 4).
    """
    window = list(hourly[-O3_8H_WINDOW_HOURS:])
    return _valid_mean(window, O3_8H_MIN_HOURS)


def o3_8h_windows(hourly: Sequence[Number | None]) -> list[float | None]:
    """The 17 O3 8-h means of a natural day, windows ending 08:00 … 24:00.

    ``hourly`` holds the day's 24 hourly means, index 0 = 00:00–01:00. See the
    module docstring: the window convention is UNCERTAIN in the reference.
    """
    if len(hourly) != 24:
        raise StandardsError(f"expected 24 hourly values, got {len(hourly)}")
    return [
        o3_8h_moving(hourly[end - O3_8H_WINDOW_HOURS : end])
        for end in range(O3_8H_WINDOW_HOURS, 25)
    ]


@dataclass(frozen=True)
class Mda8:
    """O3 daily maximum 8-h average and the number of valid windows behind it."""

    value: float | None
    n_valid_windows: int

    def valid(self, limit: Number) -> bool:
        """Whether the value may be used against ``limit`` (HJ 663 §6.1.2)."""
        return mda8_valid(self.n_valid_windows, self.value, limit)


def mda8(hourly: Sequence[Number | None]) -> Mda8:
    """O3 daily maximum 8-h average of one day's 24 hourly means (GB 3095-2026 §3).

    The maximum over the valid windows of :func:`o3_8h_windows`; whether it may
    be used depends on the limit, so check :meth:`Mda8.valid`.
    """
    windows = [w for w in o3_8h_windows(hourly) if w is not None]
    return Mda8(value=max(windows) if windows else None, n_valid_windows=len(windows))
