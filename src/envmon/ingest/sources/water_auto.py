"""``water_auto``: the national surface-water automatic-monitoring real-time publishing JSON.

The publishing system (国家地表水水质自动监测实时数据发布系统) answers with a
header row and table rows rather than records::

    {"result": 1, "message": "操作成功", "total": 14,
     "thead": ["省份", "流域", "断面名称", "监测时间", "水质类别", "水温(℃)", "pH(无量纲)",
               "溶解氧(mg/L)", "电导率(μS/cm)", "浊度(NTU)", "高锰酸盐指数(mg/L)",
               "氨氮(mg/L)", "总磷(mg/L)", "总氮(mg/L)", "叶绿素α(mg/L)", "藻密度(cells/L)",
               "站点情况"],
     "tbody": [["山西省", "海河流域", "<span title='滹沱河'>乔儿沟</span>", "01-10 08:00",
                "Ⅱ", "3.2", "8.12", …, "正常"]]}

Quirks handled here: cells may be wrapped in HTML (``<span title=…>``); the
time has no year (``MM-DD HH:MM``, Beijing time, the start of the 4-hour
sampling cycle), so the year is the one that puts it nearest the window asked
for; "--" (also "—", "*", blank) means no value; the unit is in the header,
in parentheses, and is converted when it is not envmon's. Columns are found
by name, not position, so added columns (叶绿素α, 藻密度) do not shift anything.
Sections are identified by name: map ``断面名称`` to catalog ids (``stations``
or ``match: [name]``).

``history: true`` asks for a time range (``start``/``end``, paged) — what a
provincial mirror or the simulator offers; the national page itself only
shows the latest cycle (``history: false``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envmon import timeutil
from envmon.ingest.sources.base import (
    Fetched,
    PayloadError,
    Source,
    TransientSourceError,
)
from envmon.ingest.sources.convert import Missing, cell, parse_time, strip_tags, unit_factor

COLUMNS = {
    "水温": "temp",
    "pH": "ph",
    "溶解氧": "do",
    "电导率": "conductivity",
    "浊度": "turbidity",
    "高锰酸盐指数": "codmn",
    "氨氮": "nh3n",
    "总磷": "tp",
    "总氮": "tn",
}
_HEADER = re.compile(r"^\s*([^(（]+?)\s*(?:[(（]\s*([^)）]*)\s*[)）])?\s*$")
_SHORT_TIME = re.compile(r"^(\d{1,2})-(\d{1,2})\s+(\d{1,2}):(\d{2})$")
PERIOD = timedelta(hours=4)


class WaterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = "/water/realtime"
    history: bool = True
    start_param: str = "start"
    end_param: str = "end"
    time_format: str = "%Y-%m-%d %H:%M:%S"
    page_param: str | None = "PageIndex"
    size_param: str = "PageSize"
    page_size: int = Field(default=500, ge=1, le=10000)
    max_pages: int = Field(default=200, ge=1)
    station_column: str = "断面名称"
    time_column: str = "监测时间"
    columns: dict[str, str] = Field(default_factory=lambda: dict(COLUMNS))
    extra_params: dict[str, str] = Field(default_factory=dict)


class WaterAuto(Source):
    kind = "water_auto"
    station_kinds = ("water",)
    period = PERIOD
    Options = WaterOptions

    async def fetch(self, start: datetime, end: datetime) -> Fetched:
        o: WaterOptions = self.options
        params: dict[str, str | int | float] = dict(o.extra_params)
        if o.history:
            params[o.start_param] = timeutil.to_beijing(start).strftime(o.time_format)
            params[o.end_param] = timeutil.to_beijing(end).strftime(o.time_format)
        out = Fetched()
        seen = 0
        page = 1
        while True:
            if o.page_param:
                params[o.page_param] = page
                params[o.size_param] = o.page_size
            payload = await self.http.get_json(o.path, params)
            rows, total = self._table(payload)
            out.extend(self.parse(payload, start, end))
            seen += len(rows)
            if not o.page_param or not rows or len(rows) < o.page_size:
                break
            if total is not None and seen >= total:
                break
            page += 1
            if page > o.max_pages:
                raise PayloadError(f"more than {o.max_pages} pages: the paging does not end")
        return out.within(start, end)

    def _table(self, payload: Any) -> tuple[list[Any], int | None]:
        if not isinstance(payload, dict):
            raise PayloadError("expected a JSON object with thead/tbody", str(payload)[:2000])
        result = payload.get("result")
        if result is not None and str(result) not in ("1", "true", "True"):
            # The system answers HTTP 200 with result 0 when it is busy.
            raise TransientSourceError(
                f"platform answered result={result}: {payload.get('message', '')}"
            )
        rows = payload.get("tbody")
        if not isinstance(rows, list) or not isinstance(payload.get("thead"), list):
            raise PayloadError("thead/tbody missing from the answer", str(payload)[:2000])
        total = payload.get("total")
        try:
            return rows, int(total) if total is not None else None
        except (TypeError, ValueError):
            return rows, None

    def parse(self, payload: Any, start: datetime, end: datetime) -> Fetched:
        """One page → readings; ``start``/``end`` only place the year-less times."""
        o: WaterOptions = self.options
        rows, _ = self._table(payload)
        header = [strip_tags(str(h)) for h in payload["thead"]]
        names: dict[str, tuple[int, str | None]] = {}
        for i, h in enumerate(header):
            m = _HEADER.match(h)
            if m:
                names.setdefault(m.group(1), (i, m.group(2)))
        try:
            st_col = names[o.station_column][0]
            t_col = names[o.time_column][0]
        except KeyError as err:
            raise PayloadError(
                f"column {err} not in the header {header}", str(payload)[:2000]
            ) from err
        wanted: list[tuple[int, str, float | str]] = []  # column, parameter, factor or reason
        for label, parameter in o.columns.items():
            if label not in names:
                continue  # the platform does not publish it here: nothing to read
            col, unit = names[label]
            try:
                wanted.append((col, parameter, unit_factor(parameter, unit)))
            except ValueError as err:
                wanted.append((col, parameter, str(err)))
        out = Fetched()
        for row in rows:
            if not isinstance(row, list) or len(row) != len(header):
                out.reject(self.name, row, f"row has {_len(row)} cells, the header {len(header)}")
                continue
            name = strip_tags(str(row[st_col] or ""))
            sid = self.stations.get(name)
            if sid is None:
                if name:
                    out.ignored += 1
                else:
                    out.reject(self.name, row, f"row without {o.station_column}")
                continue
            ts = self._time(row[t_col], start, end)
            if ts is None:
                out.reject(
                    self.name, row, f"unreadable {o.time_column} '{row[t_col]}'", station=sid
                )
                continue
            rec = out.keep(dict(zip(header, row, strict=True)))
            for col, parameter, factor in wanted:
                v = cell(row[col])
                if isinstance(v, Missing):
                    out.missing += 1
                elif isinstance(factor, str):
                    out.reject(self.name, row, factor, station=sid, parameter=parameter, ts=ts)
                elif isinstance(v, float):
                    out.add(rec, sid, parameter, ts, round(v * factor, 6), period="4h")
                else:
                    out.add(rec, sid, parameter, ts, v, period="4h")
        return out

    def _time(self, value: Any, start: datetime, end: datetime) -> datetime | None:
        text = strip_tags(str(value or ""))
        m = _SHORT_TIME.match(text)
        if not m:
            return parse_time(text, timeutil.BEIJING)
        month, day, hour, minute = (int(g) for g in m.groups())
        middle = timeutil.to_beijing(start + (end - start) / 2)
        best: datetime | None = None
        for year in (middle.year - 1, middle.year, middle.year + 1):
            try:
                t = datetime(year, month, day, hour, minute, tzinfo=timeutil.BEIJING)
            except ValueError:
                continue  # 02-29 in a common year
            if best is None or abs(t - middle) < abs(best - middle):
                best = t
        return best


def _len(row: Any) -> int:
    return len(row) if isinstance(row, list) else 0
