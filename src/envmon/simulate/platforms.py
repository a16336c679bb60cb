"""The zone's HTTP publishing platforms, simulated: one aiohttp app on localhost.

Serves the simulated readings (:func:`envmon.simulate.simulate`, the same values
a backfill or ``live_values`` gives) of every catalog station in the shapes of
the real platforms the pull sources read (:mod:`envmon.ingest.sources`):

=============================================  =====================================
``GET /cnemc/air/hourly?TimePoint=…``          CNEMC real-time air JSON, 26 stations
``GET /water/realtime?start=&end=&PageIndex=``  surface-water automatic stations
                                                (thead/tbody, paged), 14 sections
``GET /cma/api?interfaceId=…&timeRange=[…]``   CMA 天擎/CIMISS surface hourly, 167 st.
``GET /openaq/v3/locations[/{id}]``             OpenAQ v3 locations and sensors
``GET /openaq/v3/sensors/{id}/hours``           OpenAQ v3 hourly values (paged)
=============================================  =====================================

with each platform's conventions: CNEMC's end-of-hour ``TimePoint`` and "—";
the water system's year-less ``MM-DD HH:MM``, HTML-wrapped cells and "--";
CMA's UTC ``Year Mon Day Hour``, string values, 999999 (missing), 999990
(trace of rain) and 999017 (calm), and errors as HTTP 200 with a
``returnCode``; OpenAQ's ``meta``/``results`` pages, ``X-API-Key`` and rate
limit headers. Station codes: catalog ids (CNEMC), section names (water),
区站号 ``station_no`` else the id (CMA), location names (OpenAQ, ids 10001…).
Values flagged M/C by the simulator are published as missing, as the public
platforms do. A value with period start ``t`` is published at ``t + 1 h``.

Faults, deterministic by seed: each request may fail (``fault_rate``, or a
rate per platform) as a 500 (CMA: HTTP 200 with ``returnCode`` -1), a 429
with Retry-After, a hang (the client times out), a slow answer or a
truncated JSON page; and each record may be malformed (``record_fault_rate``):
a negative concentration, an impossible time. The k-th request for the same
URL decides by a hash of (seed, URL, k), so a retry sees a fresh draw and
the same run replays the same faults.

``python -m envmon.simulate.platforms --port 18765`` runs it on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import re
import warnings
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from aiohttp import web

from envmon import timeutil
from envmon.catalog import Catalog, Station
from envmon.simulate.base import BLOCK_HOURS, EPOCH, FLAG_N, hour_index
from envmon.simulate.generator import simulate
from envmon.standards import aqi as aqi_std
from envmon.standards import water as water_std

logger = logging.getLogger(__name__)

PARAMS: Final[dict[str, tuple[str, ...]]] = {
    "air": ("pm25", "pm10", "so2", "no2", "o3", "co"),
    "water": ("ph", "do", "codmn", "nh3n", "tp", "tn", "temp", "conductivity", "turbidity"),
    "weather": ("air_temp", "rh", "pressure", "wind_speed", "wind_dir", "precip", "visibility"),
}
PUBLISH_LAG: Final = timedelta(hours=1)
OPENAQ_BASE_ID: Final = 10001
FAULTS: Final = ("500", "429", "hang", "slow", "malformed")
DEFAULT_MIX: Final[dict[str, float]] = {
    "500": 0.35,
    "429": 0.2,
    "hang": 0.1,
    "slow": 0.15,
    "malformed": 0.2,
}
_FLAG_CODES: Final = {"N": 0, "M": 1, "C": 2}
_CNEMC_FIELDS: Final = {
    "pm25": "PM2_5",
    "pm10": "PM10",
    "so2": "SO2",
    "no2": "NO2",
    "co": "CO",
    "o3": "O3",
}
_PRIMARY_NAMES: Final = {
    "pm25": "PM2.5",
    "pm10": "PM10",
    "so2": "SO2",
    "no2": "NO2",
    "co": "CO",
    "o3": "O3",
}
_CMA_ELEMENTS: Final = {
    "TEM": "air_temp",
    "RHU": "rh",
    "PRS": "pressure",
    "WIN_S_Avg_2mi": "wind_speed",
    "WIN_D_Avg_2mi": "wind_dir",
    "PRE_1h": "precip",
    "VIS": "visibility",
}
_CMA_NAMES: Final = {
    "Station_Id_C": ("区站号(字符)", "-"),
    "Year": ("年", "年"),
    "Mon": ("月", "月"),
    "Day": ("日", "日"),
    "Hour": ("时", "时"),
    "TEM": ("温度/气温", "摄氏度(℃)"),
    "RHU": ("相对湿度", "百分率(%)"),
    "PRS": ("气压", "百帕(hPa)"),
    "WIN_S_Avg_2mi": ("2分钟平均风速", "米/秒(m/s)"),
    "WIN_D_Avg_2mi": ("2分钟平均风向(角度)", "度(°)"),
    "PRE_1h": ("过去1小时降水量", "毫米(mm)"),
    "VIS": ("水平能见度(人工)", "米(m)"),
}
_WATER_HEAD: Final = (
    "省份",
    "流域",
    "断面名称",
    "监测时间",
    "水质类别",
    "水温(℃)",
    "pH(无量纲)",
    "溶解氧(mg/L)",
    "电导率(μS/cm)",
    "浊度(NTU)",
    "高锰酸盐指数(mg/L)",
    "氨氮(mg/L)",
    "总磷(mg/L)",
    "总氮(mg/L)",
    "叶绿素α(mg/L)",
    "藻密度(cells/L)",
    "站点情况",
)
_WATER_ORDER: Final = ("temp", "ph", "do", "conductivity", "turbidity", "codmn", "nh3n", "tp", "tn")
_OPENAQ_PARAMS: Final = {
    "pm25": (2, "pm25", "µg/m³", "PM2.5"),
    "pm10": (1, "pm10", "µg/m³", "PM10"),
    "so2": (9, "so2", "µg/m³", "SO₂ mass"),
    "no2": (5, "no2", "µg/m³", "NO₂ mass"),
    "o3": (3, "o3", "µg/m³", "O₃ mass"),
    "co": (4, "co", "µg/m³", "CO mass"),
}


def _u01(*parts: object) -> float:
    """A uniform number in [0, 1) from a hash of the parts (stable across runs)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


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

    async def hours(
        self, kind: str, h0: int, h1: int
    ) -> list[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.uint8]]]:
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


def _time_of(h: int) -> datetime:
    return EPOCH + timedelta(hours=h)


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


# --------------------------------------------------------------------------- platforms


def _fmt(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}" if decimals else str(round(v))


class Platforms:
    """The aiohttp handlers of every simulated platform."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        seed: int,
        fault_rate: float | Mapping[str, float],
        record_fault_rate: float | None = None,
        fault_mix: Mapping[str, float] | None = None,
        clock: Callable[[], datetime] = timeutil.now,
        hang_s: float = 60.0,
        slow_s: float = 1.0,
        retry_after_s: int = 1,
        api_key: str | None = None,
        data: SimData | None = None,
    ) -> None:
        self.data = data if data is not None and data.seed == seed else SimData(catalog, seed)
        if record_fault_rate is None:
            base = fault_rate if isinstance(fault_rate, int | float) else 0.0
            record_fault_rate = base / 4
        self.faults = Faults(seed, fault_rate, record_fault_rate, fault_mix)
        self.clock = clock
        self.hang_s = hang_s
        self.slow_s = slow_s
        self.retry_after_s = retry_after_s
        self.api_key = api_key
        self.stopping = asyncio.Event()
        self.requests: Counter[str] = Counter()
        air = self.data.stations["air"]
        self.openaq_locations = {OPENAQ_BASE_ID + i: st for i, st in enumerate(air)}
        self.cma_code = {s.id: (s.station_no or s.id) for s in self.data.stations["weather"]}
        self.cma_by_code = {c: sid for sid, c in self.cma_code.items()}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cnemc/air/hourly", self.cnemc)
        app.router.add_get("/water/realtime", self.water)
        app.router.add_get("/cma/api", self.cma)
        app.router.add_get("/openaq/v3/locations", self.openaq_locations_list)
        app.router.add_get("/openaq/v3/locations/{id}", self.openaq_location)
        app.router.add_get("/openaq/v3/sensors/{id}/hours", self.openaq_hours)
        app.router.add_get("/", self.index)

        async def stop(_: web.Application) -> None:
            self.stopping.set()

        app.on_shutdown.append(stop)
        return app

    # ------------------------------------------------------------------ plumbing

    def latest_hour(self) -> int:
        """Hour index of the newest period start already published."""
        return hour_index(self.clock() - PUBLISH_LAG, ceil=False)

    async def _fault(self, platform: str, request: web.Request) -> web.Response | str | None:
        """A fault response, "malformed"/"slow" (handled by the caller), or None."""
        self.requests[platform] += 1
        key = request.path_qs
        fault = self.faults.request(platform, key)
        if fault is None:
            return None
        logger.debug("simulated fault platform=%s fault=%s url=%s", platform, fault, key)
        if fault == "500":
            if platform == "cma":
                return web.json_response(
                    {"returnCode": "-1", "returnMessage": "服务器繁忙，请稍后再试 (server busy)"}
                )
            return web.Response(status=500, text="Internal Server Error")
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

    async def _answer(self, platform: str, request: web.Request, body: Any) -> web.Response:
        fault = await self._fault(platform, request)
        if isinstance(fault, web.Response):
            return fault
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        headers = {}
        if platform == "openaq":
            headers = {
                "X-RateLimit-Used": "1",
                "X-RateLimit-Remaining": "59",
                "X-RateLimit-Limit": "60",
                "X-RateLimit-Reset": "60",
            }
        if fault == "slow":
            try:
                await asyncio.wait_for(self.stopping.wait(), self.slow_s)
            except TimeoutError:
                pass
        if fault == "malformed":
            text = text[: max(1, len(text) // 2)]
        return web.Response(
            text=text, content_type="application/json", charset="utf-8", headers=headers
        )

    async def index(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "platforms": ["cnemc_air", "water_auto", "cma_surface", "openaq_v3"],
                "stations": {k: len(v) for k, v in self.data.stations.items()},
                "requests": dict(self.requests),
                "faults": dict(self.faults.injected),
            }
        )

    # ------------------------------------------------------------------ CNEMC air

    async def cnemc(self, request: web.Request) -> web.Response:
        tp = request.query.get("TimePoint")
        latest = self.latest_hour()
        if tp:
            try:
                end = timeutil.to_beijing(datetime.fromisoformat(tp.replace(" ", "T")))
            except ValueError:
                return web.json_response({"detail": f"bad TimePoint {tp!r}"}, status=400)
            h = hour_index(end, ceil=False) - 1  # TimePoint labels the end of the hour
        else:
            h = latest
        if h > latest:
            return await self._answer("cnemc", request, [])
        rows = await self.data.hours("air", max(0, h - 23), h + 1)
        return await self._answer("cnemc", request, self._cnemc_records(rows))

    def _cnemc_records(
        self, rows: list[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.uint8]]]
    ) -> list[dict[str, Any]]:
        h, values, flags = rows[-1]
        params = PARAMS["air"]
        valid = np.stack([np.where(f == FLAG_N, v, np.nan) for _, v, f in rows])  # (t, s, p)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            # An hour with no valid value gives NaN ("mean of empty slice"), as wanted.
            warnings.simplefilter("ignore", category=RuntimeWarning)
            pm24 = np.nanmean(valid[:, :, :2], axis=0)
            o3_8h = np.nanmean(valid[-8:, :, params.index("o3")], axis=0)
        end = _time_of(h + 1)
        label = end.strftime("%Y-%m-%dT%H:%M:%S")
        out = []
        for i, st in enumerate(self.data.stations["air"]):
            rec: dict[str, Any] = {
                "Area": st.city,
                "PositionName": st.name,
                "StationCode": st.id,
                "TimePoint": label,
                "Latitude": f"{st.lat:.4f}",
                "Longitude": f"{st.lon:.4f}",
            }
            conc: dict[str, float | None] = {}
            for j, p in enumerate(params):
                v = values[i, j]
                ok = not math.isnan(v) and flags[i, j] == FLAG_N
                conc[p] = float(v) if ok else None
                rec[_CNEMC_FIELDS[p]] = _fmt(v, 1 if p == "co" else 0) if ok else "—"
            o3_8 = o3_8h[i]
            rec["O3_8h"] = "—" if math.isnan(o3_8) else _fmt(o3_8, 0)
            result = aqi_std.hourly_aqi(
                {
                    "pm25_24h": None if math.isnan(pm24[i, 0]) else round(float(pm24[i, 0])),
                    "pm10_24h": None if math.isnan(pm24[i, 1]) else round(float(pm24[i, 1])),
                    "so2_1h": conc["so2"],
                    "no2_1h": conc["no2"],
                    "co_1h": conc["co"],
                    "o3_1h": conc["o3"],
                    "o3_8h": None if math.isnan(o3_8) else round(float(o3_8)),
                },
                edition=aqi_std.edition_for(timeutil.beijing_day(end)),
            )
            rec["AQI"] = str(result.aqi) if result.aqi is not None else "—"
            rec["PrimaryPollutant"] = (
                ",".join(_PRIMARY_NAMES.get(p, p) for p in result.primary) or "—"
            )
            rec["Quality"] = result.level or "—"
            self._cnemc_fault(rec, st.id, h)
            out.append(rec)
        return out

    def _cnemc_fault(self, rec: dict[str, Any], station: str, h: int) -> None:
        how = self.faults.record("cnemc", station, h)
        if how is None:
            return
        if how < 0.5:
            rec["PM2_5"] = "-3"  # a negative concentration
        else:
            rec["TimePoint"] = "2025-13-45T25:00:00"  # an impossible time

    # ------------------------------------------------------------------ water

    async def water(self, request: web.Request) -> web.Response:
        q = request.query
        latest = self.latest_hour()
        try:
            if q.get("start") and q.get("end"):
                h0 = hour_index(_beijing(q["start"]))
                h1 = min(hour_index(_beijing(q["end"])), latest + 1)
            else:
                h0, h1 = latest - 3, latest + 1
            page = int(q.get("PageIndex", "1"))
            size = int(q.get("PageSize", "100"))
        except ValueError as err:
            return web.json_response({"result": 0, "message": f"参数错误: {err}"}, status=400)
        rows: list[list[str]] = []
        if h1 > h0:
            for h, values, flags in await self.data.hours("water", max(h0, 0), h1):
                if h % 4:
                    continue
                for i, st in enumerate(self.data.stations["water"]):
                    if np.isnan(values[i]).all():
                        continue
                    rows.append(self._water_row(st, h, values[i], flags[i]))
        if not q.get("start"):
            latest_row: dict[str, list[str]] = {}
            for r in rows:
                latest_row[r[2]] = r
            rows = list(latest_row.values())
        total = len(rows)
        chunk = rows[(page - 1) * size : page * size] if page >= 1 and size >= 1 else []
        body = {
            "result": 1,
            "message": "操作成功",
            "total": total,
            "thead": list(_WATER_HEAD),
            "tbody": chunk,
        }
        return await self._answer("water", request, body)

    def _water_row(
        self, st: Station, h: int, values: npt.NDArray[np.float64], flags: npt.NDArray[np.uint8]
    ) -> list[str]:
        params = PARAMS["water"]
        got: dict[str, float | None] = {}
        for j, p in enumerate(params):
            v = values[j]
            got[p] = float(v) if not math.isnan(v) and flags[j] == FLAG_N else None
        decimals = {"temp": 1, "ph": 2, "do": 2, "conductivity": 0, "turbidity": 1, "codmn": 1,
                    "nh3n": 3, "tp": 3, "tn": 2}  # fmt: skip
        cells = ["--" if got[p] is None else _fmt(got[p] or 0.0, decimals[p]) for p in _WATER_ORDER]
        evaluated = {p: got[p] for p in ("ph", "do", "codmn", "nh3n", "tp") if got[p] is not None}
        cls = "--"
        if evaluated:
            res = water_std.section_class(evaluated, waterbody=st.waterbody or "river")
            if res.cls is not None:
                cls = water_std.roman(res.cls)
        t = timeutil.to_beijing(_time_of(h))
        maintenance = any(
            flags[j] != FLAG_N and not math.isnan(values[j]) for j in range(len(params))
        )
        row = [
            "山西省",
            f"{st.basin or '海河'}流域",
            f"<span title='{st.river or ''}'>{st.name}</span>",
            t.strftime("%m-%d %H:%M"),
            cls,
            *cells,
            "--",
            "--",
            "维护" if maintenance else "正常",
        ]
        how = self.faults.record("water", st.id, h)
        if how is not None:
            if how < 0.5:
                row[11] = "0.0.35"  # 氨氮: not a number
            else:
                row[3] = "13-45 25:00"
        return row

    # ------------------------------------------------------------------ CMA

    async def cma(self, request: web.Request) -> web.Response:
        q = request.query
        t0 = self.clock()
        if q.get("interfaceId") not in ("getSurfEleByTimeRangeAndStaID", "getSurfEleByTimeRange"):
            return await self._answer(
                "cma",
                request,
                {
                    "returnCode": "-1",
                    "returnMessage": f"interface not supported: {q.get('interfaceId')}",
                },
            )
        m = re.fullmatch(r"\[(\d{14}),(\d{14})\]", q.get("timeRange", ""))
        if not m:
            return await self._answer(
                "cma", request, {"returnCode": "-1", "returnMessage": "parameter timeRange error"}
            )
        first = datetime.strptime(m.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        last = datetime.strptime(m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        # Observation times are the ends of the simulated hours.
        h0 = hour_index(first - timedelta(hours=1))
        h1 = min(hour_index(last - timedelta(hours=1), ceil=False) + 1, self.latest_hour() + 1)
        wanted = [c for c in q.get("staIDs", "").split(",") if c]
        ids = (
            [self.cma_by_code[c] for c in wanted if c in self.cma_by_code]
            if wanted
            else [s.id for s in self.data.stations["weather"]]
        )
        index = self.data.index["weather"]
        sel = [index[i] for i in ids]
        elements = [e for e in q.get("elements", "").split(",") if e] or list(_CMA_NAMES)
        rows: list[dict[str, str]] = []
        params = PARAMS["weather"]
        if h1 > h0 and sel:
            for h, values, flags in await self.data.hours("weather", max(h0, 0), h1):
                obs = _time_of(h + 1).astimezone(UTC)
                for sid, i in zip(ids, sel, strict=True):
                    if np.isnan(values[i]).all():
                        continue
                    rows.append(self._cma_row(sid, h, obs, values[i], flags[i], params, elements))
        body = {
            "returnCode": "0",
            "returnMessage": "Query Succeed",
            "rowCount": str(len(rows)),
            "colCount": str(len(elements)),
            "requestParams": "&".join(
                f"{k.lower()}={v}" for k, v in q.items() if k not in ("pwd", "userId")
            ),
            "requestTime": t0.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "responseTime": self.clock().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "takeTime": f"{(self.clock() - t0).total_seconds():.3f}",
            "fieldNames": " ".join(_CMA_NAMES.get(e, (e, ""))[0] for e in elements),
            "fieldUnits": " ".join(_CMA_NAMES.get(e, ("", "-"))[1] for e in elements),
            "DS": rows,
        }
        return await self._answer("cma", request, body)

    def _cma_row(
        self,
        sid: str,
        h: int,
        obs: datetime,
        values: npt.NDArray[np.float64],
        flags: npt.NDArray[np.uint8],
        params: Sequence[str],
        elements: Sequence[str],
    ) -> dict[str, str]:
        by = {p: (values[j], flags[j]) for j, p in enumerate(params)}
        row: dict[str, str] = {}
        for e in elements:
            if e == "Station_Id_C":
                row[e] = self.cma_code[sid]
            elif e == "Year":
                row[e] = str(obs.year)
            elif e == "Mon":
                row[e] = str(obs.month)
            elif e == "Day":
                row[e] = str(obs.day)
            elif e == "Hour":
                row[e] = str(obs.hour)
            elif e in _CMA_ELEMENTS:
                p = _CMA_ELEMENTS[e]
                v, f = by[p]
                if math.isnan(v) or f != FLAG_N:
                    row[e] = "999999"
                elif p == "precip" and 0 < v < 0.1:
                    row[e] = "999990"  # 微量: a trace of rain
                elif (
                    p == "wind_dir"
                    and not math.isnan(by["wind_speed"][0])
                    and by["wind_speed"][0] < 0.2
                ):
                    row[e] = "999017"  # 静风: calm, no direction
                else:
                    row[e] = f"{v:.4f}"
            else:
                row[e] = "999998"  # an element this station does not observe
        how = self.faults.record("cma", sid, h)
        if how is not None:
            if how < 0.5 and "TEM" in row:
                row["TEM"] = "85.0000"  # implausible temperature
            elif "Hour" in row:
                row["Hour"] = "25"
        return row

    # ------------------------------------------------------------------ OpenAQ

    def _openaq_auth(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("X-API-Key")
        if not key or (self.api_key is not None and key != self.api_key):
            return web.json_response(
                {"detail": "Unauthorized. A valid API key must be given in the X-API-Key header."},
                status=401,
            )
        return None

    def _location(self, loc_id: int, st: Station) -> dict[str, Any]:
        sensors = []
        for k, p in enumerate(PARAMS["air"]):
            pid, name, units, display = _OPENAQ_PARAMS[p]
            sensors.append(
                {
                    "id": loc_id * 10 + k,
                    "name": f"{name} {units}",
                    "parameter": {"id": pid, "name": name, "units": units, "displayName": display},
                }
            )
        return {
            "id": loc_id,
            "name": st.name,
            "locality": st.county,
            "timezone": "Asia/Shanghai",
            "country": {"id": 10, "code": "CN", "name": "China"},
            "owner": {"id": 4, "name": "Unknown Governmental Organization"},
            "provider": {"id": 166, "name": "China National Environmental Monitoring Centre"},
            "isMobile": False,
            "isMonitor": True,
            "instruments": [{"id": 2, "name": "Government Monitor"}],
            "sensors": sensors,
            "coordinates": {"latitude": st.lat, "longitude": st.lon},
            "licenses": None,
            "bounds": [st.lon, st.lat, st.lon, st.lat],
            "distance": None,
            "datetimeFirst": None,
            "datetimeLast": None,
        }

    def _meta(self, page: int, limit: int, found: int | str) -> dict[str, Any]:
        return {"name": "openaq-api", "website": "/", "page": page, "limit": limit, "found": found}

    async def openaq_locations_list(self, request: web.Request) -> web.Response:
        denied = self._openaq_auth(request)
        if denied:
            return denied
        try:
            limit = int(request.query.get("limit", "100"))
            page = int(request.query.get("page", "1"))
        except ValueError:
            return web.json_response({"detail": "limit/page must be integers"}, status=422)
        locs = [self._location(i, st) for i, st in self.openaq_locations.items()]
        part = locs[(page - 1) * limit : page * limit]
        return await self._answer(
            "openaq", request, {"meta": self._meta(page, limit, len(locs)), "results": part}
        )

    async def openaq_location(self, request: web.Request) -> web.Response:
        denied = self._openaq_auth(request)
        if denied:
            return denied
        try:
            loc_id = int(request.match_info["id"])
            st = self.openaq_locations[loc_id]
        except (ValueError, KeyError):
            return web.json_response({"detail": "Location not found"}, status=404)
        return await self._answer(
            "openaq",
            request,
            {"meta": self._meta(1, 100, 1), "results": [self._location(loc_id, st)]},
        )

    async def openaq_hours(self, request: web.Request) -> web.Response:
        denied = self._openaq_auth(request)
        if denied:
            return denied
        q = request.query
        try:
            sensor = int(request.match_info["id"])
            loc_id, k = divmod(sensor, 10)
            st = self.openaq_locations[loc_id]
            p = PARAMS["air"][k]
            limit = int(q.get("limit", "100"))
            page = int(q.get("page", "1"))
            frm = _aware(q.get("datetime_from")) or (self.clock() - timedelta(days=1))
            to = _aware(q.get("datetime_to")) or self.clock()
        except (ValueError, KeyError, IndexError):
            return web.json_response({"detail": "Sensor not found"}, status=404)
        h0 = hour_index(frm)
        h1 = min(hour_index(to), self.latest_hour() + 1)
        _, name, units, display = _OPENAQ_PARAMS[p]
        i = self.data.index["air"][st.id]
        results = []
        if h1 > h0:
            for h, values, flags in await self.data.hours("air", max(h0, 0), h1):
                v = values[i, k]
                if math.isnan(v) or flags[i, k] != FLAG_N:
                    continue
                value = float(v) * 1000.0 if p == "co" else float(v)
                if self.faults.record("openaq", f"{st.id}/{p}", h) is not None:
                    value = -999.0
                start = _time_of(h)
                results.append(_openaq_hour(value, name, units, display, start))
        part = results[(page - 1) * limit : page * limit]
        found: int | str = len(results) if len(results) <= 1000 else ">1000"
        return await self._answer(
            "openaq", request, {"meta": self._meta(page, limit, found), "results": part}
        )


PLATFORMS: Final = web.AppKey("platforms", Platforms)


def _openaq_hour(
    value: float, name: str, units: str, display: str, start: datetime
) -> dict[str, Any]:
    end = start + timedelta(hours=1)

    def both(t: datetime) -> dict[str, str]:
        return {
            "utc": t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "local": timeutil.to_beijing(t).isoformat(),
        }

    return {
        "value": value,
        "flagInfo": {"hasFlags": False},
        "parameter": {"id": 0, "name": name, "units": units, "displayName": display},
        "period": {
            "label": "1hour",
            "interval": "01:00:00",
            "datetimeFrom": both(start),
            "datetimeTo": both(end),
        },
        "coordinates": None,
        "summary": None,
        "coverage": {
            "expectedCount": 1,
            "expectedInterval": "01:00:00",
            "observedCount": 1,
            "observedInterval": "01:00:00",
            "percentComplete": 100.0,
            "percentCoverage": 100.0,
            "datetimeFrom": both(start),
            "datetimeTo": both(end),
        },
    }


def _beijing(text: str) -> datetime:
    return timeutil.to_beijing(datetime.fromisoformat(text.strip().replace(" ", "T")))


def _aware(text: str | None) -> datetime | None:
    if not text:
        return None
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    return timeutil.to_beijing(datetime.fromisoformat(t))


# --------------------------------------------------------------------------- serving


@asynccontextmanager
async def serve_platforms(
    catalog: Catalog,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int = 2025,
    fault_rate: float | Mapping[str, float] = 0.0,
    record_fault_rate: float | None = None,
    fault_mix: Mapping[str, float] | None = None,
    clock: Callable[[], datetime] = timeutil.now,
    hang_s: float = 60.0,
    slow_s: float = 1.0,
    retry_after_s: int = 1,
    api_key: str | None = None,
    data: SimData | None = None,
) -> AsyncIterator[str]:
    """Serve every simulated platform on ``host:port`` (0 = any free port); yields the base URL.

    ``fault_rate`` is the share of requests that fail (one rate, or one per
    platform: ``cnemc water cma openaq``); ``fault_mix`` weighs the kinds of
    failure (:data:`DEFAULT_MIX`); ``record_fault_rate`` (default a quarter of
    ``fault_rate``) the share of malformed records.
    """
    platforms = Platforms(
        catalog,
        seed=seed,
        fault_rate=fault_rate,
        record_fault_rate=record_fault_rate,
        fault_mix=fault_mix,
        clock=clock,
        hang_s=hang_s,
        slow_s=slow_s,
        retry_after_s=retry_after_s,
        api_key=api_key,
        data=data,
    )
    app = platforms.app()
    app[PLATFORMS] = platforms
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        base_url = f"http://{shown}:{bound}"
        logger.info(
            "simulated platforms at %s (seed=%d, fault rate %s, stations %s)",
            base_url,
            seed,
            fault_rate,
            {k: len(v) for k, v in platforms.data.stations.items()},
        )
        yield base_url
    finally:
        platforms.stopping.set()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the simulated platforms until interrupted (benchmarks, manual testing)."""
    from pathlib import Path

    from envmon.catalog import load_catalog

    p = argparse.ArgumentParser(prog="python -m envmon.simulate.platforms")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18765)
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--stations", default="config/stations.yaml")
    args = p.parse_args(argv)
    catalog = load_catalog(Path(args.stations))

    async def run() -> None:
        async with serve_platforms(
            catalog, args.host, args.port, seed=args.seed, fault_rate=args.fault_rate
        ) as url:
            print(f"serving {url}", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
