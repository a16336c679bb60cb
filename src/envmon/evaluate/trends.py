"""Trend statistics on monthly means: Theil–Sen slope, Mann–Kendall significance.

The series is one value per calendar month (Beijing time). A month counts only
when its mean rests on enough valid daily values: >= 27, February >= 25
(GB 3095 Table 4, :func:`envmon.standards.validity.month_valid`); other months
are gaps, never zeros, and are listed with the reason.

Methods (``deseasonalise``):

* ``"seasonal_kendall"`` (default): the seasonal Mann–Kendall test (Hirsch &
  Slack 1984; ``pymannkendall.seasonal_test``) and the seasonal Sen slope — the
  median of the slopes between the same calendar month in different years — with
  its confidence interval from the ranks (Gilbert 1987, §17.3.1). The heating
  season's winter peaks in Taiyuan make an unadjusted test mostly a test of
  *when* the series starts and ends.
* ``"anomalies"``: each month minus that calendar month's mean over the series,
  then Mann–Kendall on the anomalies and a Sen slope over pairs of months from
  different years (within a year the anomalies of a linear trend are flat).
* ``"none"``: Mann–Kendall (``pymannkendall.original_test``) and Theil–Sen
  (``scipy.stats.theilslopes``) on the raw monthly means, for series without a
  seasonal cycle.

Slopes are in the parameter's unit per year. The Theil–Sen fit uses each
month's real position in time (gaps keep their place); Mann–Kendall is a rank
test and needs only the order. Serial correlation is not corrected for: on
monthly means of daily data it is small once the season is removed, but a
significant result on a short series should be read with that in mind.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, Literal

import numpy as np
import pymannkendall as mk  # type: ignore[import-untyped]
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow
from scipy import stats as sps  # type: ignore[import-untyped]

from envmon.errors import EnvmonError
from envmon.evaluate.regions import REGIONS
from envmon.parameters import BY_CODE
from envmon.standards import validity

Conn = AsyncConnection[TupleRow]
Deseasonalise = Literal["none", "seasonal_kendall", "anomalies"]
METHODS: Final[tuple[Deseasonalise, ...]] = ("seasonal_kendall", "anomalies", "none")

CAPTURE_RULE: Final = (
    "a month counts only with >= 27 valid daily values (February >= 25), GB 3095-2012/2026 "
    "Table 4; months below that are gaps, not zeros"
)
# Two full years: each calendar month seen at least twice, so the seasonal test
# has a pair in every season and an anomaly has a climatology to differ from.
MIN_VALID_MONTHS: Final = 24

# Air parameters come from the daily tables; O3 is its daily maximum 8-h mean
# (MDA8, the GB 3095 O3 statistic), CO mg/m³, the rest µg/m³.
AIR_COLUMNS: Final[dict[str, str]] = {
    "pm25": "pm25",
    "pm10": "pm10",
    "so2": "so2",
    "no2": "no2",
    "co": "co",
    "o3": "o3_8h_max",
}
WATER_PARAMETERS: Final = frozenset(p.code for p in BY_CODE.values() if p.kind == "water")


class TrendError(EnvmonError, ValueError):
    """A trend cannot be computed for what was asked (unknown parameter, region …)."""


@dataclass(frozen=True, slots=True)
class MonthValue:
    """One calendar month of a series: its mean of valid daily values, if valid."""

    month: date  # first day of the month
    mean: float | None  # None when not valid (too few days) or no data
    n_days: int
    valid: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month.strftime("%Y-%m"),
            "mean": self.mean,
            "n_days": self.n_days,
            "valid": self.valid,
        }


@dataclass(frozen=True)
class TrendResult:
    method: Deseasonalise
    alpha: float
    n_months: int
    n_valid: int
    status: Literal["ok", "insufficient_data"]
    reason: str | None = None
    slope_per_year: float | None = None
    slope_ci: tuple[float, float] | None = None  # (1 - alpha) confidence interval
    intercept: float | None = None  # at the first month of the series (raw or anomaly units)
    relative_slope_per_year: float | None = None  # slope / median of the valid means
    tau: float | None = None
    s: float | None = None
    var_s: float | None = None
    z: float | None = None
    p_value: float | None = None
    trend: Literal["increasing", "decreasing", "no trend"] | None = None
    significant: bool | None = None
    excluded: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "alpha": self.alpha,
            "status": self.status,
            "reason": self.reason,
            "n_months": self.n_months,
            "n_valid_months": self.n_valid,
            "min_valid_months": MIN_VALID_MONTHS,
            "capture_rule": CAPTURE_RULE,
            "slope_per_year": _f(self.slope_per_year),
            "slope_ci": None if self.slope_ci is None else [_f(x) for x in self.slope_ci],
            "intercept": _f(self.intercept),
            "relative_slope_per_year": _f(self.relative_slope_per_year),
            "mann_kendall": {
                "tau": _f(self.tau),
                "s": _f(self.s),
                "var_s": _f(self.var_s),
                "z": _f(self.z),
                "p_value": _f(self.p_value),
                "trend": self.trend,
                "significant": self.significant,
            },
            "excluded_months": self.excluded,
        }


def _f(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def month_range(start: date, end: date) -> list[date]:
    """First days of the months in [start, end) (start's month included)."""
    out = []
    y, m = start.year, start.month
    while date(y, m, 1) < end:
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def month_series(
    months: Sequence[date], means: dict[date, tuple[float | None, int]]
) -> list[MonthValue]:
    """A contiguous monthly series with the capture rule applied.

    ``means`` maps a month to (mean of the valid daily values, number of them).
    """
    out = []
    for m in months:
        mean, n = means.get(m, (None, 0))
        ok = mean is not None and validity.month_valid(n, m.year, m.month)
        out.append(MonthValue(m, mean if ok else None, n, ok))
    return out


def _excluded(series: Sequence[MonthValue]) -> list[dict[str, Any]]:
    out = []
    for v in series:
        if v.valid:
            continue
        need = validity.FEBRUARY_MIN_DAYS if v.month.month == 2 else validity.MONTH_MIN_DAYS
        reason = "no data" if v.n_days == 0 else f"{v.n_days} valid days < {need}"
        out.append({"month": v.month.strftime("%Y-%m"), "n_days": v.n_days, "reason": reason})
    return out


def trend(
    series: Sequence[MonthValue],
    *,
    deseasonalise: Deseasonalise = "seasonal_kendall",
    alpha: float = 0.05,
    min_valid_months: int = MIN_VALID_MONTHS,
) -> TrendResult:
    """Theil–Sen slope and Mann–Kendall significance of a contiguous monthly series."""
    if deseasonalise not in METHODS:
        raise TrendError(f"unknown method {deseasonalise!r}; expected one of {METHODS}")
    if not 0 < alpha < 1:
        raise TrendError(f"alpha is a significance level between 0 and 1, not {alpha!r}")
    for a, b in itertools.pairwise(series):
        if (b.month.year * 12 + b.month.month) - (a.month.year * 12 + a.month.month) != 1:
            raise TrendError(f"the series is not contiguous at {a.month} → {b.month}")
    y = np.array([np.nan if v.mean is None else v.mean for v in series], dtype=float)
    valid = ~np.isnan(y)
    n_valid = int(valid.sum())
    excluded = _excluded(series)

    def insufficient(reason: str) -> TrendResult:
        return TrendResult(
            deseasonalise,
            alpha,
            len(series),
            n_valid,
            "insufficient_data",
            reason,
            excluded=excluded,
        )

    if n_valid < min_valid_months:
        return insufficient(f"{n_valid} valid months < {min_valid_months} needed")
    calendar_month = np.array([v.month.month for v in series])
    seasons_seen = {int(m) for m in calendar_month[valid]}
    if deseasonalise != "none":
        # Every calendar month that has a valid value must have two, or it adds
        # nothing (seasonal test) or is all zero anomaly (anomalies).
        counts = {m: int((valid & (calendar_month == m)).sum()) for m in seasons_seen}
        if sum(1 for c in counts.values() if c >= 2) < 6:
            return insufficient(
                "fewer than 6 calendar months have valid values in two or more years"
            )
    t_years = np.arange(len(series), dtype=float) / 12.0
    median = float(np.median(y[valid]))
    if deseasonalise == "seasonal_kendall":
        res = _seasonal(y, t_years, alpha)
    elif deseasonalise == "anomalies":
        clim = {m: float(np.mean(y[valid & (calendar_month == m)])) for m in seasons_seen}
        anomalies = np.array(
            [y[i] - clim[int(calendar_month[i])] if valid[i] else np.nan for i in range(len(y))]
        )
        years = np.array([v.month.year for v in series])
        res = _anomalies(anomalies, t_years, years, alpha)
    else:
        res = _plain(y, t_years, alpha)
    slope = res["slope"]
    return TrendResult(
        deseasonalise,
        alpha,
        len(series),
        n_valid,
        "ok",
        slope_per_year=slope,
        slope_ci=res["ci"],
        intercept=res["intercept"],
        relative_slope_per_year=(slope / median) if median > 0 else None,
        tau=res["tau"],
        s=res["s"],
        var_s=res["var_s"],
        z=res["z"],
        p_value=res["p"],
        trend=res["trend"],
        significant=bool(res["h"]),
        excluded=excluded,
    )


def _plain(values: np.ndarray[Any, Any], t: np.ndarray[Any, Any], alpha: float) -> dict[str, Any]:
    ok = ~np.isnan(values)
    mkr = mk.original_test(values[ok], alpha=alpha)
    ts = sps.theilslopes(values[ok], t[ok], alpha=1 - alpha)
    return {
        "slope": float(ts.slope),
        "ci": (float(ts.low_slope), float(ts.high_slope)),
        "intercept": float(ts.intercept),
        "tau": float(mkr.Tau),
        "s": float(mkr.s),
        "var_s": float(mkr.var_s),
        "z": float(mkr.z),
        "p": float(mkr.p),
        "trend": str(mkr.trend),
        "h": bool(mkr.h),
    }


def _anomalies(
    values: np.ndarray[Any, Any],
    t: np.ndarray[Any, Any],
    years: np.ndarray[Any, Any],
    alpha: float,
) -> dict[str, Any]:
    """Mann–Kendall and a Sen slope on monthly anomalies.

    Subtracting each calendar month's mean also takes out the part of the trend
    inside each year (the anomaly of a linear series is a step per year), so
    pairs within one year carry slope 0 and would bias a plain Theil–Sen slope
    towards zero. The slope is the median over pairs from different years.
    """
    ok = ~np.isnan(values)
    mkr = mk.original_test(values[ok], alpha=alpha)
    v, tt, yy = values[ok], t[ok], years[ok]
    i, j = np.triu_indices(len(v), k=1)
    keep = yy[i] != yy[j]
    d = np.sort((v[j][keep] - v[i][keep]) / (tt[j][keep] - tt[i][keep]))
    slope = float(np.median(d))
    return {
        "slope": slope,
        "ci": _rank_ci(d, float(mkr.var_s), alpha),
        "intercept": float(np.median(v - slope * tt)),
        "tau": float(mkr.Tau),
        "s": float(mkr.s),
        "var_s": float(mkr.var_s),
        "z": float(mkr.z),
        "p": float(mkr.p),
        "trend": str(mkr.trend),
        "h": bool(mkr.h),
    }


def _rank_ci(d: np.ndarray[Any, Any], var_s: float, alpha: float) -> tuple[float, float]:
    """Gilbert (1987) §17.3.1: the CI of a Sen slope from the ranks, via Var(S)."""
    c = float(sps.norm.ppf(1 - alpha / 2)) * math.sqrt(var_s)
    m1 = math.floor((len(d) - c) / 2)
    m2 = math.ceil((len(d) + c) / 2)
    return float(d[max(m1 - 1, 0)]), float(d[min(m2, len(d) - 1)])


def _seasonal(y: np.ndarray[Any, Any], t: np.ndarray[Any, Any], alpha: float) -> dict[str, Any]:
    n = len(y)
    pad = (-n) % 12
    padded = np.concatenate([y, np.full(pad, np.nan)])
    mkr = mk.seasonal_test(padded, period=12, alpha=alpha)
    # Seasonal Sen slope with real spacing: pairs within each season (column).
    grid = padded.reshape(-1, 12)
    slopes: list[float] = []
    for col in range(12):
        vals = grid[:, col]
        years = np.nonzero(~np.isnan(vals))[0]
        for i, a in enumerate(years):
            for b in years[i + 1 :]:
                slopes.append(float((vals[b] - vals[a]) / (b - a)))
    d = np.sort(np.array(slopes))
    slope = float(np.median(d))
    ci = _rank_ci(d, float(mkr.var_s), alpha)
    ok = ~np.isnan(y)
    intercept = float(np.median(y[ok] - slope * t[ok]))
    return {
        "slope": slope,
        "ci": ci,
        "intercept": intercept,
        "tau": float(mkr.Tau),
        "s": float(mkr.s),
        "var_s": float(mkr.var_s),
        "z": float(mkr.z),
        "p": float(mkr.p),
        "trend": str(mkr.trend),
        "h": bool(mkr.h),
    }


# -- monthly means from the database -----------------------------------------------------


def parameter_kind(parameter: str) -> Literal["air", "water"]:
    if parameter in AIR_COLUMNS:
        return "air"
    if parameter in WATER_PARAMETERS:
        return "water"
    raise TrendError(
        f"no trend for parameter '{parameter}'; air: {', '.join(AIR_COLUMNS)}; "
        f"water: {', '.join(sorted(WATER_PARAMETERS))}"
    )


async def monthly_means(
    conn: Conn,
    parameter: str,
    start: date,
    end: date,
    *,
    station: str | None = None,
    region: str | None = None,
) -> list[MonthValue]:
    """Monthly means of valid daily values for the months in [start, end).

    Air: a station's (``air_day``) or a region's (``region_day``, HJ 663 city
    values) daily values, as measured (no dust deduction: a trend of what was
    breathed). Water: a section's daily means (``water_day``), same capture rule.
    """
    if (station is None) == (region is None):
        raise TrendError("give exactly one of station and region")
    kind = parameter_kind(parameter)
    months = month_range(start, end)
    if not months:
        return []
    lo, hi = months[0], end
    query: sql.Composable
    if kind == "air":
        col = sql.Identifier(AIR_COLUMNS[parameter])
        if region is not None:
            if region not in REGIONS:
                raise TrendError(f"unknown region '{region}' ({', '.join(REGIONS)})")
            query = sql.SQL(
                "SELECT date_trunc('month', day)::date, avg({c}), count({c}) FROM region_day"
                " WHERE region = %s AND day >= %s AND day < %s GROUP BY 1"
            ).format(c=col)
            args: tuple[Any, ...] = (region, lo, hi)
        else:
            query = sql.SQL(
                "SELECT date_trunc('month', day)::date, avg({c}), count({c}) FROM air_day"
                " WHERE station_id = %s AND day >= %s AND day < %s GROUP BY 1"
            ).format(c=col)
            args = (station, lo, hi)
    else:
        if region is not None:
            raise TrendError("water trends are per section (station), not per region")
        query = sql.SQL(
            "SELECT date_trunc('month', day)::date, avg(value), count(*) FROM water_day"
            " WHERE station_id = %s AND parameter = %s AND day >= %s AND day < %s GROUP BY 1"
        )
        args = (station, parameter, lo, hi)
    rows = await (await conn.execute(query, args)).fetchall()
    means = {r[0]: (None if r[1] is None else float(r[1]), int(r[2])) for r in rows}
    return month_series(months, means)
