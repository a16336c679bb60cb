"""Recent valid readings in memory, and the AQI of a station or a city from them.

The in-stream rules need a little history — the 24-h moving PM means of the
HJ 633-2012 real-time AQI, a rolling daily AQI, a spike's starting point — and
must not query the database for it on every batch. The store keeps the last
day or so of valid values (HJ 212 flags N and T) of the parameters some rule
uses, filled from the batches and warmed from the database once at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final

from envmon.standards import aqi as aqi_std
from envmon.standards.limits import limit
from envmon.standards.validity import mda8_valid
from envmon.timeutil import BEIJING

HOUR: Final = 3600
AIR: Final = ("so2", "no2", "co", "o3", "pm10", "pm25")

Key = tuple[str, str, str]  # station, parameter, period


class SeriesStore:
    """Values by data time (epoch seconds of the period start) per (station, parameter, period)."""

    def __init__(self, horizon_s: int) -> None:
        self.horizon = horizon_s
        self._data: dict[Key, dict[int, float]] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self._data.values())

    def add(self, key: Key, ts: int, value: float) -> None:
        points = self._data.get(key)
        if points is None:
            points = self._data[key] = {}
        points[ts] = value

    def points(self, key: Key) -> Mapping[int, float]:
        return self._data.get(key) or {}

    def at(self, key: Key, ts: int) -> float | None:
        return self.points(key).get(ts)

    def window(self, key: Key, end: int, span: int) -> list[float]:
        """Values with ``end - span < ts <= end``."""
        lo = end - span
        return [v for t, v in self.points(key).items() if lo < t <= end]

    def mean(self, key: Key, end: int, span: int, min_count: int) -> float | None:
        vals = self.window(key, end, span)
        return sum(vals) / len(vals) if len(vals) >= min_count and vals else None

    def earlier(self, key: Key, end: int, span: int) -> list[tuple[int, float]]:
        """Points with ``end - span <= ts < end`` (a spike's baseline)."""
        lo = end - span
        return [(t, v) for t, v in self.points(key).items() if lo <= t < end]

    def trim(self, now_s: float) -> None:
        cut = now_s - self.horizon
        for key in list(self._data):
            points = self._data[key]
            old = [t for t in points if t < cut]
            for t in old:
                del points[t]
            if not points:
                del self._data[key]


def default_min_count(window_s: int) -> int:
    """GB 3095 Table 4: 20 of 24 hourly values a day, 6 of 8 for O3 8-h; else ¾ of the hours."""
    hours = window_s / HOUR
    if hours >= 24:
        return math.ceil(hours * 20 / 24)
    if hours >= 8:
        return math.ceil(hours * 6 / 8)
    return max(1, math.ceil(hours * 0.75))


def _k(station: str, parameter: str) -> Key:
    return (station, parameter, "1h")


def edition_at(ts: int) -> int:
    return aqi_std.edition_for(datetime.fromtimestamp(ts, BEIJING))


def hourly_indicators(store: SeriesStore, station: str, hour: int) -> dict[str, float | None]:
    """The real-time report's indicators of one station for one hour, both editions.

    ``hourly_aqi`` reads the keys of its edition's report and ignores the rest:
    HJ 633-2012 the 1-h SO2/NO2/CO/O3, the O3 8-h and the PM 24-h *moving* means
    (and the SO2 24-h mean when SO2 1-h > 800, Table 1 note 2); HJ 633-2026 the
    1-h values of all six.
    """
    so2, no2, co, o3, pm10, pm25 = (store.at(_k(station, p), hour) for p in AIR)
    return {
        "so2_1h": so2,
        "no2_1h": no2,
        "co_1h": co,
        "o3_1h": o3,
        "pm10_1h": pm10,
        "pm25_1h": pm25,
        "o3_8h": store.mean(_k(station, "o3"), hour, 8 * HOUR, 6),
        "so2_24h": store.mean(_k(station, "so2"), hour, 24 * HOUR, 20),
        "pm10_24h": store.mean(_k(station, "pm10"), hour, 24 * HOUR, 20),
        "pm25_24h": store.mean(_k(station, "pm25"), hour, 24 * HOUR, 20),
    }


def daily_indicators(store: SeriesStore, station: str, hour: int) -> dict[str, float | None]:
    """Daily-report indicators over the 24 hours ending with ``hour`` (a rolling day).

    GB 3095 Table 4: 24-h means need 20 hourly values; the O3 daily max 8-h is
    the highest of the 17 8-h means ending in the window (each of >= 6 values),
    valid per HJ 663 §6.1.2.
    """
    values: dict[str, float | None] = {
        f"{p}_24h": store.mean(_k(station, p), hour, 24 * HOUR, 20)
        for p in ("so2", "no2", "co", "pm10", "pm25")
    }
    o3 = store.window(_k(station, "o3"), hour, 24 * HOUR)
    values["o3_1h"] = max(o3) if len(o3) >= 20 else None  # daily max 1-h (2012 report)
    windows = [
        m
        for end in range(hour - 16 * HOUR, hour + 1, HOUR)
        if (m := store.mean(_k(station, "o3"), end, 8 * HOUR, 6)) is not None
    ]
    mda8 = max(windows) if windows else None
    day = datetime.fromtimestamp(hour, BEIJING)
    values["o3_8h"] = (
        mda8 if mda8 is not None and mda8_valid(len(windows), mda8, limit("o3_8h", day)) else None
    )
    return values


def mean_mapping(mappings: Iterable[Mapping[str, float | None]]) -> dict[str, float | None]:
    """HJ 663 city values: the mean of the stations' values, per indicator."""
    sums: dict[str, list[float]] = {}
    for m in mappings:
        for k, v in m.items():
            bucket = sums.setdefault(k, [])
            if v is not None:
                bucket.append(v)
    return {k: (sum(v) / len(v) if v else None) for k, v in sums.items()}


def aqi_of(mapping: Mapping[str, float | None], edition: int, daily: bool) -> aqi_std.AqiResult:
    if daily:
        return aqi_std.daily_aqi(mapping, edition=edition)
    return aqi_std.hourly_aqi(mapping, edition=edition)
