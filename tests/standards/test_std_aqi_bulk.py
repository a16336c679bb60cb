"""The vectorised hourly AQI (standards.aqi_bulk) equals the scalar hourly_aqi on every row."""

from __future__ import annotations

import random
from decimal import Decimal

import numpy as np
import pytest

from envmon.standards.aqi import _BREAKPOINTS, hourly_aqi
from envmon.standards.aqi_bulk import HOURLY_KEYS, NA, hourly_aqi_bulk
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


def test_random_reports_missing_not_monitored_and_so2_fallback() -> None:
    rng = random.Random(16)
    rows, editions, nms = [], [], []
    for _ in range(20_000):
        row = {}
        for key in HOURLY_KEYS:
            grid_top = 160 if key.startswith("co") else 1000
            if rng.random() < 0.1:
                row[key] = float("nan")
            elif key.startswith("co"):
                row[key] = rng.randrange(0, grid_top * 10) / 10
            elif key.startswith("so2") and rng.random() < 0.2:
                row[key] = float(rng.randrange(780, 3000))  # around the 800 µg/m³ note
            else:
                row[key] = float(rng.randrange(0, grid_top))
        rows.append(row)
        editions.append(rng.choice((2012, 2026)))
        nms.append(tuple(p for p in POLL if rng.random() < 0.05))
    _check(rows, editions, nms)


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
