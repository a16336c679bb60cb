"""What every simulated platform shares: the simulated data, the faults, how an answer goes out.

:class:`SimData` holds the simulator's readings a block at a time;
:class:`Faults` decides, deterministically by seed, which request fails how and
which record is malformed; :class:`Publisher` is the plumbing of one running
server (clock, faults, request counts, the stop event) and :class:`Platform` the
base of one platform's handlers (one module per platform beside this one).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from aiohttp import web

from envmon import timeutil
from envmon.catalog import Catalog, Station
from envmon.simulate.base import BLOCK_HOURS, EPOCH, hour_index
from envmon.simulate.generator import simulate

logger = logging.getLogger(__name__)

PARAMS: Final[dict[str, tuple[str, ...]]] = {
    "air": ("pm25", "pm10", "so2", "no2", "o3", "co"),
    "water": ("ph", "do", "codmn", "nh3n", "tp", "tn", "temp", "conductivity", "turbidity"),
    "weather": ("air_temp", "rh", "pressure", "wind_speed", "wind_dir", "precip", "visibility"),
}
PUBLISH_LAG: Final = timedelta(hours=1)
DEFAULT_MIX: Final[dict[str, float]] = {
    "500": 0.35,
    "429": 0.2,
    "hang": 0.1,
    "slow": 0.15,
    "malformed": 0.2,
}
_FLAG_CODES: Final = {"N": 0, "M": 1, "C": 2}

Hours = list[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.uint8]]]


def _u01(*parts: object) -> float:
    """A uniform number in [0, 1) from a hash of the parts (stable across runs)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def time_of(h: int) -> datetime:
    """The period start of hour index ``h``."""
    return EPOCH + timedelta(hours=h)


def fmt(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}" if decimals else str(round(v))


# --------------------------------------------------------------------------- data


@dataclass(slots=True)
class _Dense:
    """One kind's readings over one simulator block: (hour, station, parameter)."""

    h0: int  # hour index of row 0
    values: npt.NDArray[np.float64]  # NaN = absent
    flags: npt.NDArray[np.uint8]


class SimData:
    """Simulated readings by kind, built a block (32 days) at a time and kept a while."""

    def __init__(self, catalog: Catalog, seed: int, *, keep_blocks: int = 6) -> None:
        self.seed = seed
        self.stations: dict[str, list[Station]] = {
            k: [s for s in catalog.stations if s.kind == k and s.active] for k in PARAMS
        }
        self.index: dict[str, dict[str, int]] = {
            k: {s.id: i for i, s in enumerate(v)} for k, v in self.stations.items()
        }
        self.keep = keep_blocks
        self._blocks: OrderedDict[tuple[str, int], _Dense] = OrderedDict()
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    def _build(self, kind: str, b: int) -> _Dense:
        start = EPOCH + timedelta(hours=b * BLOCK_HOURS)
        end = start + timedelta(hours=BLOCK_HOURS)
        stations = self.stations[kind]
        params = PARAMS[kind]
        values = np.full((BLOCK_HOURS, len(stations), len(params)), np.nan)
        flags = np.zeros(values.shape, dtype=np.uint8)
        if stations:
            frames = list(
                simulate(
                    stations, start, end, seed=self.seed, kinds=[kind], chunk_hours=BLOCK_HOURS
                )
            )
            df = pd.concat(frames) if len(frames) > 1 else frames[0]
            if len(df):
                tcode, tuniq = pd.factorize(df["time"])
                hours = np.array([hour_index(datetime.fromisoformat(t)) for t in tuniq])
                rows = hours[tcode] - b * BLOCK_HOURS
                idx = self.index[kind]
                scode = np.array([idx[s] for s in df["station"].to_numpy()])
                pidx = {p: i for i, p in enumerate(params)}
                pcode = np.array([pidx[p] for p in df["parameter"].to_numpy()])
                values[rows, scode, pcode] = df["value"].to_numpy(dtype=np.float64)
                flags[rows, scode, pcode] = [_FLAG_CODES.get(f, 1) for f in df["flag"]]
        return _Dense(b * BLOCK_HOURS, values, flags)

    async def block(self, kind: str, b: int) -> _Dense:
        key = (kind, b)
        found = self._blocks.get(key)
        if found is not None:
            self._blocks.move_to_end(key)
            return found
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._blocks.get(key)
            if found is None:
                found = await asyncio.to_thread(self._build, kind, b)
                self._blocks[key] = found
                while len(self._blocks) > self.keep:
                    self._blocks.popitem(last=False)
        self._locks.pop(key, None)
        return found

    async def hours(self, kind: str, h0: int, h1: int) -> Hours:
        """(hour index, values[station, parameter], flags[…]) for hours in [h0, h1)."""
        out = []
        h = h0
        while h < h1:
            b = h // BLOCK_HOURS
            blk = await self.block(kind, b)
            stop = min(h1, (b + 1) * BLOCK_HOURS)
            for i in range(h - blk.h0, stop - blk.h0):
                out.append((blk.h0 + i, blk.values[i], blk.flags[i]))
            h = stop
        return out


# --------------------------------------------------------------------------- faults


class Faults:
    """Which request fails how, and which record is malformed — deterministic by seed."""

    def __init__(
        self,
        seed: int,
        rate: float | Mapping[str, float],
        record_rate: float,
        mix: Mapping[str, float] | None = None,
    ) -> None:
        self.seed = seed
        self.rate = rate
        self.record_rate = record_rate
        mix = dict(mix or DEFAULT_MIX)
        total = sum(mix.values()) or 1.0
        self.mix = [(k, v / total) for k, v in mix.items() if v > 0]
        self.seen: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def rate_for(self, platform: str) -> float:
        if isinstance(self.rate, Mapping):
            return float(self.rate.get(platform, 0.0))
        return float(self.rate)

    def request(self, platform: str, key: str) -> str | None:
        n = self.seen[key]
        self.seen[key] += 1
        if _u01(self.seed, "request", platform, key, n) >= self.rate_for(platform):
            return None
        u = _u01(self.seed, "kind", platform, key, n)
        for fault, share in self.mix:
            if u < share:
                self.injected[fault] += 1
                return fault
            u -= share
        if not self.mix:
            return None
        last = self.mix[-1][0]  # rounding left u just above the last share
        self.injected[last] += 1
        return last

    def record(self, platform: str, station: str, h: int) -> float | None:
        """None, or a number in [0, 1) choosing how this record is malformed."""
        if self.record_rate <= 0:
            return None
        if _u01(self.seed, "record", platform, station, h) >= self.record_rate:
            return None
        return _u01(self.seed, "how", platform, station, h)


# --------------------------------------------------------------------------- plumbing


class Publisher:
    """One running server's shared parts: data, faults, clock, request counts, stop event."""

    def __init__(
        self,
        data: SimData,
        faults: Faults,
        *,
        clock: Callable[[], datetime] = timeutil.now,
        hang_s: float = 60.0,
        slow_s: float = 1.0,
        retry_after_s: int = 1,
    ) -> None:
        self.data = data
        self.faults = faults
        self.clock = clock
        self.hang_s = hang_s
        self.slow_s = slow_s
        self.retry_after_s = retry_after_s
        self.stopping = asyncio.Event()
        self.requests: Counter[str] = Counter()

    def latest_hour(self) -> int:
        """Hour index of the newest period start already published."""
        return hour_index(self.clock() - PUBLISH_LAG, ceil=False)

    async def _fault(self, platform: Platform, request: web.Request) -> web.Response | str | None:
        """A fault response, "malformed"/"slow" (handled by the caller), or None."""
        self.requests[platform.name] += 1
        key = request.path_qs
        fault = self.faults.request(platform.name, key)
        if fault is None:
            return None
        logger.debug("simulated fault platform=%s fault=%s url=%s", platform.name, fault, key)
        if fault == "500":
            return platform.server_error()
        if fault == "429":
            return web.json_response(
                {"detail": "Too many requests"},
                status=429,
                headers={"Retry-After": str(self.retry_after_s)},
            )
        if fault == "hang":
            try:
                await asyncio.wait_for(self.stopping.wait(), self.hang_s)
            except TimeoutError:
                pass
            return web.Response(status=504, text="Gateway Timeout")
        return fault

    async def answer(self, platform: Platform, request: web.Request, body: Any) -> web.Response:
        """``body`` as JSON, unless this request draws a fault."""
        fault = await self._fault(platform, request)
        if isinstance(fault, web.Response):
            return fault
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if fault == "slow":
            try:
                await asyncio.wait_for(self.stopping.wait(), self.slow_s)
            except TimeoutError:
                pass
        if fault == "malformed":
            text = text[: max(1, len(text) // 2)]
        return web.Response(
            text=text,
            content_type="application/json",
            charset="utf-8",
            headers=dict(platform.headers),
        )


class Platform(ABC):
    """One simulated platform: its routes, and how it answers and fails."""

    name: ClassVar[str]  # its key in fault rates and request counts
    source: ClassVar[str]  # the pull source kind (envmon.ingest.sources) that reads it
    headers: ClassVar[Mapping[str, str]] = {}  # sent with every successful answer

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.data = publisher.data
        self.faults = publisher.faults

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """Its GET handlers, by path."""

    def server_error(self) -> web.Response:
        """What a "500" fault looks like on this platform."""
        return web.Response(status=500, text="Internal Server Error")

    async def answer(self, request: web.Request, body: Any) -> web.Response:
        return await self.publisher.answer(self, request, body)
