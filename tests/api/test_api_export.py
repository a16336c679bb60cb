"""Exports parse back (CSV, Parquet, XLSX) with exactly the rows of the database."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest

from envmon.api.export import XLSX_HEADER, XLSX_WIDTHS
from envmon.api.xlsx import ReadingsXlsx
from envmon.ingest.files import read_chunks
from envmon.schemas.readings import Validator
from envmon.timeutil import BEIJING

from .conftest import AIR, Api

PARAMS = {"station": AIR[2], "from_": "2026-02-27", "to": "2026-03-03"}


def db_rows(conn: object) -> list[tuple[object, ...]]:
    return conn.execute(  # type: ignore[attr-defined, no-any-return]
        "SELECT station_id, parameter, period, ts, value, flag, source FROM reading"
        " WHERE station_id = %s AND period = '1h' AND ts >= '2026-02-27' AND ts < '2026-03-03'"
        " ORDER BY station_id, parameter, period, ts",
        (AIR[2],),
    ).fetchall()


async def fetch(api: Api, fmt: str) -> tuple[bytes, dict[str, str]]:
    status, body, resp = await api.get("/api/v1/export/readings", format=fmt, **PARAMS)
    assert status == 200, body
    assert isinstance(body, bytes)
    return body, dict(resp.headers)


async def test_csv(api: Api, dataset_conn: object, tmp_path: Path) -> None:
    body, headers = await fetch(api, "csv")
    assert headers["Content-Type"].startswith("text/csv")
    assert headers["Content-Disposition"] == (
        f'attachment; filename="{AIR[2]}_20260227-20260303.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    want = db_rows(dataset_conn)
    assert len(rows) == len(want) > 500
    for r, (s, p, per, ts, v, f, src) in zip(rows, want, strict=True):
        assert (r["station"], r["parameter"], r["period"], r["flag"], r["source"]) == (
            s,
            p,
            per,
            f,
            src,
        )
        assert float(r["value"]) == v and datetime.fromisoformat(r["time"]) == ts
        assert r["time"].endswith("+08:00")
    # The file re-imports: the importer reads it and the validator accepts every row.
    path = tmp_path / "export.csv"
    path.write_bytes(body)
    validator = Validator({AIR[2]: "air"}, clock=lambda: datetime(2030, 1, 1, tzinfo=BEIJING))
    accepted = rejected = 0
    for chunk in read_chunks(path):
        v = validator.validate_frame(chunk.frame, "reimport", chunk.raw)
        accepted += len(v.batch)
        rejected += len(v.rejected)
    assert (accepted, rejected) == (len(want), 0)


async def test_parquet(api: Api, dataset_conn: object) -> None:
    body, headers = await fetch(api, "parquet")
    assert headers["Content-Type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(body))
    assert table.column_names == [
        "station",
        "parameter",
        "period",
        "time",
        "value",
        "flag",
        "source",
    ]
    assert str(table.schema.field("time").type) == "timestamp[us, tz=Asia/Shanghai]"
    got = table.to_pylist()
    want = db_rows(dataset_conn)
    assert len(got) == len(want)
    for r, (s, p, per, ts, v, f, src) in zip(got, want, strict=True):
        assert (r["station"], r["parameter"], r["period"], r["value"], r["flag"], r["source"]) == (
            s,
            p,
            per,
            v,
            f,
            src,
        )
        assert r["time"] == ts


async def test_xlsx(api: Api, dataset_conn: object, tmp_path: Path) -> None:
    body, headers = await fetch(api, "xlsx")
    assert headers["Content-Type"].startswith("application/vnd.openxmlformats")
    path = tmp_path / "export.xlsx"
    path.write_bytes(body)
    wb = openpyxl.load_workbook(path, read_only=True)
    ws = wb["readings"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][3] == "time (Beijing, UTC+8; start of period)"
    want = db_rows(dataset_conn)
    assert len(rows) - 1 == len(want)
    for r, (s, p, per, ts, v, f, src) in zip(rows[1:], want, strict=True):
        assert (r[0], r[1], r[2], r[4], r[5], r[6]) == (s, p, per, v, f, src)
        # Excel has no zones: Beijing wall time, to the second.
        local = ts.astimezone(BEIJING).replace(tzinfo=None)  # type: ignore[attr-defined]
        assert abs(r[3] - local) < timedelta(seconds=1)
    wb.close()


async def test_export_limits(api: Api) -> None:
    # Every air station for eleven years is over the stations × days limit (issue 13: a year
    # of every station of a city, or of the zone, is within it).
    status, body, _ = await api.get(
        "/api/v1/export/readings", parameter="pm25", from_="2015-01-01", to="2026-01-01"
    )
    assert status == 400 and "station-days" in body["detail"]  # type: ignore[index]
    status, body, _ = await api.get(
        "/api/v1/export/readings", parameter="pm25", from_="2025-01-01", to="2026-01-01"
    )
    assert status == 200, body
    status, body, _ = await api.get("/api/v1/export/readings", format="ods", **PARAMS)
    assert status == 400 and body["errors"][0]["parameter"] == "format"  # type: ignore[index]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
async def test_empty_export_is_a_valid_file(api: Api, fmt: str, tmp_path: Path) -> None:
    status, body, _ = await api.get(
        "/api/v1/export/readings", format=fmt, station=AIR[0], from_="2020-01-01", to="2020-01-02"
    )
    assert status == 200 and isinstance(body, bytes)
    if fmt == "csv":
        assert body.decode().strip() == "station,parameter,period,time,value,flag,source"
    elif fmt == "parquet":
        assert pq.read_table(io.BytesIO(body)).num_rows == 0
    else:
        path = tmp_path / "e.xlsx"
        path.write_bytes(body)
        wb = openpyxl.load_workbook(path, read_only=True)
        assert len(list(wb["readings"].iter_rows())) == 1
        wb.close()


def test_xlsx_continues_on_new_sheets(tmp_path: Path) -> None:
    """More rows than a sheet holds continue on the next sheet, each with its header."""
    sink = io.BytesIO()
    book = ReadingsXlsx(sink, XLSX_HEADER, XLSX_WIDTHS, max_rows=10)
    t0 = int(datetime(2026, 3, 1, tzinfo=BEIJING).timestamp() * 1e6)
    rows = [("s&1", "pm25", "1h", t0 + i * 3_600_000_000, float(i), "N", "x<y>") for i in range(25)]
    book.write(rows[:7])
    book.write(rows[7:])
    book.close()
    path = tmp_path / "s.xlsx"
    path.write_bytes(sink.getvalue())
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["readings", "readings2", "readings3"]
    got = []
    for ws in wb:
        values = list(ws.iter_rows(values_only=True))
        assert values[0] == XLSX_HEADER and ws.freeze_panes == "A2"
        got += values[1:]
    assert len(got) == 25 and [r[4] for r in got] == [float(i) for i in range(25)]
    assert got[0][0] == "s&1" and got[0][6] == "x<y>"
    assert (
        got[0][3] == datetime(2026, 3, 1)
        and wb["readings"]["D2"].number_format == "yyyy-mm-dd hh:mm"
    )
