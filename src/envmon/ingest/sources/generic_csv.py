"""``generic_csv``: a platform that publishes CSV; columns are mapped in the config.

The same options as :mod:`.generic_json` (``layout``, ``station``, ``time``,
``parameter``/``value`` or ``columns``, ``units``, ``time_format`` …) with
column names instead of JSON paths, plus ``delimiter``, ``encoding`` (read
from the response, else UTF-8 with a GB 18030 fallback) and ``skip_rows``
(lines before the header). Example::

    - name: bureau-water-csv
      kind: generic_csv
      base_url: https://example.gov.cn
      options:
        path: /export/water.csv
        params: {begin: "{start}", end: "{end}"}
        request_time_format: "%Y%m%d%H"
        layout: wide
        station: 断面
        time: 时间
        period: 4h
        columns: {ph: pH, do: 溶解氧, nh3n: 氨氮, tp: 总磷}
        kinds: [water]

A row whose number of cells does not match the header is quarantined with
that reason; the rest of the file is kept.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from envmon.catalog import KINDS
from envmon.ingest.sources.base import Fetched, PayloadError, Source
from envmon.ingest.sources.generic_json import GenericOptions, Mapper


class GenericCsv(Source):
    kind = "generic_csv"
    station_kinds = KINDS
    Options = GenericOptions

    async def fetch(self, start: datetime, end: datetime) -> Fetched:
        o: GenericOptions = self.options
        mapper = Mapper(self, o)
        r = await self.http.get(o.path, mapper.params(start, end))
        text = r.body.decode(o.encoding, errors="replace") if o.encoding else r.text
        return self.parse(text, mapper).within(start, end)

    def parse(self, text: str, mapper: Mapper | None = None) -> Fetched:
        o: GenericOptions = self.options
        mapper = mapper or Mapper(self, o)
        lines = text.lstrip("\ufeff").splitlines()[o.skip_rows :]
        reader = csv.reader(lines, delimiter=o.delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return Fetched()
        except csv.Error as err:
            raise PayloadError(f"unreadable CSV header: {err}", text[:2000]) from err
        needed = [o.station, o.time] + (
            list(o.columns.values()) if o.layout == "wide" else [o.parameter or "", o.value or ""]
        )
        absent = [c for c in needed if c not in header]
        if absent:
            raise PayloadError(f"CSV columns {absent} not in the header {header}", text[:2000])
        records: list[object] = []
        bad = Fetched()
        for n, row in enumerate(reader, start=o.skip_rows + 2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                bad.reject(
                    self.name,
                    _line(row, o.delimiter),
                    f"line {n}: {len(row)} cells, the header has {len(header)}",
                )
                continue
            records.append(dict(zip(header, row, strict=True)))
        out = mapper.map(records)
        out.rejects.extend(bad.rejects)
        return out


def _line(row: list[str], delimiter: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerow(row)
    return buf.getvalue().rstrip("\r\n")
