"""What the simulator's parts share: the station protocol, the hour grid and blocks.

Time is an integer hour index from :data:`EPOCH` (2000-01-01 00:00 Beijing time).
Beijing time has no daylight saving, so the hour of the day is ``index % 24``
and the natural day is ``index // 24``.

Everything is computed in *blocks* of :data:`BLOCK_HOURS` hours aligned on the
epoch, whatever range was asked for: a block is a pure function of (seed, block
number, station), which is what makes output independent of chunking. Slow
random processes (AR(1)) are run from a warm-up before the block's start, long
enough (≥ 8 e-folding times) that the join between two blocks is invisible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from envmon import timeutil
from envmon.simulate.rng import F64, I64

FloatArray = npt.NDArray[np.floating[Any]]

EPOCH: Final = datetime(2000, 1, 1, tzinfo=timeutil.BEIJING)
BLOCK_HOURS: Final = 768  # 32 days: a multiple of 24 (days) and 4 (water periods)
_EPOCH_DAY: Final = np.datetime64("2000-01-01", "D")

# HJ 212-2017 Table 8 flags the simulator emits, by code stored in a block.
FLAG_CODES: Final = ("N", "M", "C")
FLAG_N: Final = 0
FLAG_M: Final = 1
FLAG_C: Final = 2


class StationLike(Protocol):
    """The station attributes the simulator reads (a catalog ``Station`` has them all)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def county(self) -> str | None: ...
    @property
    def lat(self) -> float | None: ...
    @property
    def elevation_m(self) -> float | None: ...
    @property
    def assessed(self) -> bool: ...
    @property
    def target_class(self) -> int | None: ...


def hour_index(ts: datetime, *, ceil: bool = True) -> int:
    """Hours since :data:`EPOCH` of an aware (or Beijing-naive) time, rounded up by default."""
    seconds = (timeutil.to_beijing(ts) - EPOCH) / timedelta(seconds=1)
    return math.ceil(seconds / 3600.0) if ceil else math.floor(seconds / 3600.0)


def iso_times(hours: I64) -> list[str]:
    """ISO 8601 Beijing times with offset (``2025-01-01T08:00:00+08:00``) of hour indexes."""
    local = np.datetime64("2000-01-01T00", "h") + hours.astype("timedelta64[h]")
    return [s + ":00:00+08:00" for s in np.datetime_as_string(local, unit="h").tolist()]


@dataclass(frozen=True, slots=True)
class Hours:
    """Calendar features of a run of hour indexes (all arrays of the same length)."""

    index: I64
    hour: I64  # 0–23, Beijing
    day: I64  # days since the epoch
    weekday: I64  # Monday = 0
    year: I64
    doy: F64  # day of year, 0-based, with the fraction of the day at mid-hour
    year_frac: F64  # e.g. 2020.5 in early July 2020
    heating: F64  # 0–1: 15 Nov – 15 Mar heating season, ramped over a few days

    @classmethod
    def of(cls, index: I64) -> Hours:
        day = index // 24
        hour = index - day * 24
        dates = _EPOCH_DAY + day.astype("timedelta64[D]")
        ystart = dates.astype("datetime64[Y]")
        year = ystart.astype(np.int64) + 1970
        ystart_d = ystart.astype("datetime64[D]")
        ylen = ((ystart + 1).astype("datetime64[D]") - ystart_d).astype(np.float64)
        frac_day = (hour.astype(np.float64) + 0.5) / 24.0
        doy = (dates - ystart_d).astype(np.float64) + frac_day
        # Heating season (集中供暖 15 Nov – 15 Mar): emissions rise within days of the
        # boilers starting, so a logistic ramp of ~2 days on each side.
        months = ystart.astype("datetime64[M]")
        mar15 = ((months + 2).astype("datetime64[D]") + 14 - ystart_d).astype(np.float64)
        nov15 = ((months + 10).astype("datetime64[D]") + 14 - ystart_d).astype(np.float64)
        heating = _sigmoid((mar15 - doy) / 2.0) + _sigmoid((doy - nov15) / 2.0)
        return cls(
            index=index,
            hour=hour,
            day=day,
            weekday=(day + 5) % 7,  # 2000-01-01 was a Saturday
            year=year,
            doy=doy,
            year_frac=year.astype(np.float64) + doy / ylen,
            heating=np.clip(heating, 0.0, 1.0),
        )

    def take(self, sel: npt.NDArray[np.intp] | slice) -> Hours:
        return Hours(
            self.index[sel], self.hour[sel], self.day[sel], self.weekday[sel], self.year[sel],
            self.doy[sel], self.year_frac[sel], self.heating[sel],
        )  # fmt: skip


def _sigmoid(x: F64) -> F64:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -50.0, 50.0))), dtype=np.float64)


def seasonal(doy: FloatArray, peak_doy: float) -> F64:
    """cos of the year angle: +1 on ``peak_doy``, −1 half a year away."""
    return np.asarray(np.cos(2.0 * math.pi * (doy - peak_doy) / 365.25), dtype=np.float64)


def bump(x: FloatArray, centre: float, width: float) -> F64:
    """Gaussian bump: 1 at ``centre``, falling off over ``width``."""
    return np.asarray(np.exp(-0.5 * ((x - centre) / width) ** 2), dtype=np.float64)


def wrap(doy: FloatArray, centre: float) -> F64:
    """Signed days from ``centre`` on the periodic year axis (−182.6 … +182.6)."""
    return np.asarray((doy - centre + 182.625) % 365.25 - 182.625, dtype=np.float64)


def trend(year_frac: FloatArray, anchors: dict[int, float]) -> F64:
    """Piecewise-linear multiplier through mid-year anchors (held flat outside them)."""
    years = sorted(anchors)
    xs = np.array([y + 0.5 for y in years])
    ys = np.array([anchors[y] for y in years])
    return np.asarray(np.interp(year_frac, xs, ys), dtype=np.float64)


@dataclass(slots=True)
class Block:
    """One kind's readings for one aligned block: arrays indexed (slot, station, parameter)."""

    kind: str
    period: str
    hours: I64  # hour index of each slot (every hour, or every 4th for water)
    station_ids: list[str]
    parameters: tuple[str, ...]
    values: F64
    flags: npt.NDArray[np.uint8]
    present: npt.NDArray[np.bool_]
