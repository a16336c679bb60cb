"""Stream simulated readings as validator-ready frames, chunk by chunk.

Output rows are long format — ``station, parameter, time, value, flag, period``
— exactly what :meth:`envmon.schemas.readings.Validator.validate_frame` takes:
``time`` is the start of the period as ISO 8601 with the +08:00 offset,
``period`` is ``1h`` (air, weather) or ``4h`` (water), ``flag`` an HJ 212 flag.
Missing data are absent rows.

Work is done in epoch-aligned blocks (:data:`base.BLOCK_HOURS`) whatever the
chunking, so ``[a, c)`` equals ``[a, b) + [b, c)`` row for row, and a station's
values do not depend on which other stations are simulated with it. Only the
blocks that the current chunk touches are held in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from envmon.simulate import air, shared, water, weather
from envmon.simulate.base import (
    BLOCK_HOURS,
    EPOCH,
    FLAG_CODES,
    Block,
    StationLike,
    hour_index,
    iso_times,
)

KINDS: Final = ("air", "water", "weather")
COLUMNS: Final = ("station", "parameter", "time", "value", "flag", "period")

_BlockFn = Callable[[int, int, list[StationLike], shared.Shared], Block]
_BUILDERS: Final[dict[str, _BlockFn]] = {
    "air": air.block,
    "water": water.block,
    "weather": weather.block,
}
_FLAGS: Final = np.array(FLAG_CODES, dtype=object)


def simulate(
    stations: Sequence[StationLike],
    start: datetime,
    end: datetime,
    *,
    seed: int = 2025,
    kinds: Collection[str] = KINDS,
    chunk_hours: int = 24 * 31,
) -> Iterator[pd.DataFrame]:
    """Simulated readings of ``stations`` for the periods starting in [start, end).

    Times are aware (naive ones are Beijing time); a start inside an hour begins
    at the next whole hour. Yields one frame per ``chunk_hours`` of the range
    (possibly empty, never with other columns than :data:`COLUMNS`).
    """
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown station kinds {sorted(unknown)}; expected {KINDS}")
    if chunk_hours < 1:
        raise ValueError(f"chunk_hours must be ≥ 1, not {chunk_hours}")
    by_kind = {k: [s for s in stations if s.kind == k] for k in KINDS if k in kinds}
    by_kind = {k: v for k, v in by_kind.items() if v}
    h0, h1 = hour_index(start), hour_index(end)
    cache = _Blocks(seed, by_kind)
    for c0 in range(h0, h1, chunk_hours):
        c1 = min(c0 + chunk_hours, h1)
        yield _frame([cache.slice(kind, c0, c1) for kind in by_kind])
        cache.forget_before(c1 // BLOCK_HOURS)


def live_values(
    stations: Sequence[StationLike],
    at: datetime,
    *,
    seed: int = 2025,
    kinds: Collection[str] = KINDS,
) -> pd.DataFrame:
    """The readings of the hour that contains ``at`` (same values as a backfill).

    Water stations report only in hours starting a 4-h period (00, 04 … 20).
    """
    h = hour_index(at, ceil=False)
    start = EPOCH + timedelta(hours=h)
    frames = list(simulate(stations, start, start + timedelta(hours=1), seed=seed, kinds=kinds))
    return frames[0] if frames else _frame([])


_Long = tuple[npt.NDArray[Any], ...]


class _Blocks:
    """The blocks the current chunk needs, per kind, plus the shared processes."""

    def __init__(self, seed: int, by_kind: dict[str, list[StationLike]]) -> None:
        self.seed = seed
        self.by_kind = by_kind
        self.cities = sorted({s.city for group in by_kind.values() for s in group})
        self.shared: dict[int, shared.Shared] = {}
        self.blocks: dict[tuple[str, int], Block] = {}

    def get(self, kind: str, b: int) -> Block:
        blk = self.blocks.get((kind, b))
        if blk is None:
            sh = self.shared.get(b)
            if sh is None:
                sh = self.shared[b] = shared.compute(self.seed, b, self.cities)
            blk = _BUILDERS[kind](self.seed, b, self.by_kind[kind], sh)
            self.blocks[(kind, b)] = blk
        return blk

    def forget_before(self, b: int) -> None:
        for key in [k for k in self.blocks if k[1] < b]:
            del self.blocks[key]
        for n in [n for n in self.shared if n < b]:
            del self.shared[n]

    def slice(self, kind: str, c0: int, c1: int) -> list[_Long]:
        out = []
        for b in range(c0 // BLOCK_HOURS, (c1 - 1) // BLOCK_HOURS + 1):
            blk = self.get(kind, b)
            sel = np.flatnonzero((blk.hours >= c0) & (blk.hours < c1))
            if len(sel):
                out.append(_long(blk, sel))
        return out


def _long(blk: Block, sel: npt.NDArray[np.intp]) -> _Long:
    """Rows (slot-major, then station, then parameter) of the present readings."""
    _, s, p = blk.values.shape
    present = blk.present[sel].ravel()
    idx = np.flatnonzero(present)
    t_i, rest = np.divmod(idx, s * p)
    s_i, p_i = np.divmod(rest, p)
    times = np.array(iso_times(blk.hours[sel]), dtype=object)
    station = np.array(blk.station_ids, dtype=object)[s_i]
    parameter = np.array(blk.parameters, dtype=object)[p_i]
    value = blk.values[sel].ravel()[idx]
    flag = _FLAGS[blk.flags[sel].ravel()[idx]]
    period = np.full(len(idx), blk.period, dtype=object)
    return station, parameter, times[t_i], value, flag, period


def _frame(parts: list[list[_Long]]) -> pd.DataFrame:
    cols = [p for kind in parts for p in kind]
    if not cols:
        return pd.DataFrame(
            {c: pd.Series(dtype=np.float64 if c == "value" else object) for c in COLUMNS}
        )
    data = {c: np.concatenate([part[i] for part in cols]) for i, c in enumerate(COLUMNS)}
    data["value"] = data["value"].astype(np.float64)
    return pd.DataFrame(data, columns=list(COLUMNS))
