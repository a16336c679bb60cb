"""The vectorised AQI reports (standards.aqi_bulk) equal the scalar hourly_aqi and daily_aqi
on every row."""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pytest

from envmon.standards.aqi import _BREAKPOINTS, daily_aqi, hourly_aqi
from envmon.standards.aqi_bulk import (
    DAILY_KEYS,
    HOURLY_KEYS,
    NA,
    PRIMARY_LISTS,
    daily_aqi_bulk,
    hourly_aqi_bulk,
)
from envmon.standards.editions import StandardsError

POLL = ("so2", "no2", "co", "o3", "pm10", "pm25")


def _scalar(row: dict[str, float], edition: int, nm: tuple[str, ...]) -> tuple[int, int, list[str]]:
    mapping = {
        k: (None if np.isnan(v) else Decimal(repr(v)))
        for k, v in row.items()
        if edition == 2012 or k != "so2_24h"
    }
    res = hourly_aqi(mapping, edition=edition, not_monitored=nm)
    return (
        NA if res.aqi is None else res.aqi,
        NA if res.category is None else res.category,
        res.primary,
    )


def _check(rows: list[dict[str, float]], editions: list[int], nms: list[tuple[str, ...]]) -> None:
    cols = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in HOURLY_KEYS}
    nm = {p: np.array([p in x for x in nms]) for p in POLL}
    bulk = hourly_aqi_bulk(cols, np.array([e == 2026 for e in editions]), nm)
    for i, row in enumerate(rows):
        got = (int(bulk.aqi[i]), int(bulk.category[i]), bulk.primary[i])
        assert got == _scalar(row, editions[i], nms[i]), (row, editions[i], nms[i])


def _grid(key: str) -> list[float]:
    """Every published value from 0 to past the top breakpoint (band edges and ties)."""
    top = max(_BREAKPOINTS[2012][key][-1], _BREAKPOINTS[2026][key][-1])
    if key.startswith("co"):
        return [round(i / 10, 1) for i in range(0, top * 10 + 30)]
    return [float(i) for i in range(0, top + 30)]


@pytest.mark.parametrize("edition", [2012, 2026])
@pytest.mark.parametrize("key", HOURLY_KEYS[:6])
def test_every_published_value_of_one_pollutant(key: str, edition: int) -> None:
    # One pollutant over its whole range, the others absent: the IAQI of every
    # value — each breakpoint, each value either side, every exact-integer tie.
    rows = []
    for v in _grid(key):
        row = dict.fromkeys(HOURLY_KEYS, float("nan"))
        row[key] = v
        rows.append(row)
    _check(rows, [edition] * len(rows), [()] * len(rows))
    # ...and with the other five present at a small value (the NA rule does not apply).
    for row in rows:
        for k in HOURLY_KEYS[:6]:
            if k != key:
                row[k] = 1.0
    _check(rows, [edition] * len(rows), [()] * len(rows))


def _random_cases(
    rng: random.Random, keys: tuple[str, ...], value: Callable[[str], float], missing: float
) -> tuple[list[dict[str, float]], list[int], list[tuple[str, ...]]]:
    """20,000 rows of ``value(key)`` (NaN with probability ``missing``), random editions
    and random pollutants outside the programme."""
    rows, editions, nms = [], [], []
    for _ in range(20_000):
        rows.append({k: float("nan") if rng.random() < missing else value(k) for k in keys})
        editions.append(rng.choice((2012, 2026)))
        nms.append(tuple(p for p in POLL if rng.random() < 0.05))
    return rows, editions, nms


def test_random_reports_missing_not_monitored_and_so2_fallback() -> None:
    rng = random.Random(16)

    def value(key: str) -> float:
        grid_top = 160 if key.startswith("co") else 1000
        if key.startswith("co"):
            return rng.randrange(0, grid_top * 10) / 10
        if key.startswith("so2") and rng.random() < 0.2:
            return float(rng.randrange(780, 3000))  # around the 800 µg/m³ note
        return float(rng.randrange(0, grid_top))

    _check(*_random_cases(rng, HOURLY_KEYS, value, 0.1))


def test_no_value_everywhere_and_precision_and_negative() -> None:
    row = dict.fromkeys(HOURLY_KEYS, float("nan"))
    _check([row, row], [2012, 2026], [(), ("so2",)])
    bad = dict(row, co_1h=0.25)
    with pytest.raises(ValueError, match="published precision"):
        _check([bad], [2012], [()])
    neg = dict(row, no2_1h=-1.0)
    with pytest.raises(StandardsError, match="negative"):
        _check([neg], [2026], [()])
    # A negative value of a pollutant outside the programme is never evaluated.
    _check([neg], [2026], [("no2",)])


# -- daily report -----------------------------------------------------------------------


def _daily_scalar(
    row: dict[str, float], edition: int, nm: tuple[str, ...]
) -> tuple[int, int, list[str], dict[str, int], bool]:
    mapping = {k: (None if np.isnan(v) else Decimal(repr(v))) for k, v in row.items()}
    res = daily_aqi(mapping, edition=edition, not_monitored=nm)
    return (
        NA if res.aqi is None else res.aqi,
        NA if res.category is None else res.category,
        res.primary,
        res.iaqi,
        res.complete,
    )


def _daily_check(
    rows: list[dict[str, float]], editions: list[int], nms: list[tuple[str, ...]]
) -> None:
    cols = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in DAILY_KEYS}
    nm = {p: np.array([p in x for x in nms]) for p in POLL}
    bulk = daily_aqi_bulk(cols, np.array([e == 2026 for e in editions]), nm)
    for i, row in enumerate(rows):
        got = (
            int(bulk.aqi[i]),
            int(bulk.category[i]),
            PRIMARY_LISTS[int(bulk.primary_mask[i])],
            {k: int(bulk.iaqi[k][i]) for k in DAILY_KEYS if bulk.iaqi[k][i] != NA},
            bool(bulk.complete[i]),
        )
        assert got == _daily_scalar(row, editions[i], nms[i]), (row, editions[i], nms[i])


@pytest.mark.parametrize("edition", [2012, 2026])
@pytest.mark.parametrize("key", DAILY_KEYS)
def test_daily_every_published_value_of_one_pollutant(key: str, edition: int) -> None:
    # Every breakpoint and both sides of it, alone (NA rule in 2026) and beside small
    # values of the others; O3 8-h past 800 (2012: no IAQI, O3 1-h stands for it).
    rows = []
    for v in _grid("o3_1h" if key == "o3_8h" else key):
        row = dict.fromkeys(DAILY_KEYS, float("nan"))
        row[key] = v
        rows.append(row)
    others = [{k: (v if k == key else 1.0) for k, v in row.items()} for row in rows]
    _daily_check(rows + others, [edition] * 2 * len(rows), [()] * 2 * len(rows))


def test_daily_random_reports_missing_and_not_monitored() -> None:
    rng = random.Random(1616)

    def value(key: str) -> float:
        if key.startswith("co"):
            return rng.randrange(0, 200) / 10
        if key == "o3_8h" and rng.random() < 0.1:
            return float(rng.randrange(780, 900))  # around the 800 µg/m³ note
        # Mostly low, so that ties between pollutants and the NA rule happen.
        return float(rng.randrange(0, rng.choice((60, 160, 1000))))

    _daily_check(*_random_cases(rng, DAILY_KEYS, value, 0.08))


def test_daily_no_value_everywhere_and_precision() -> None:
    row = dict.fromkeys(DAILY_KEYS, float("nan"))
    _daily_check([row, row, row], [2012, 2026, 2026], [(), ("so2",), tuple(POLL)])
    with pytest.raises(ValueError, match="published precision"):
        _daily_check([dict(row, pm25_24h=75.5)], [2026], [()])
