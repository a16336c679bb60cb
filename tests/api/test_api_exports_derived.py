"""Exports of derived values (AQI, HJ 663 statistics, water classes) parse back with the
database's rows, headers in Chinese or English with units, values at published precision."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow.parquet as pq

from envmon.standards.rounding import round_half_even

from .conftest import AIR, WATER_SIM, Api

Sync = Any
RANGE = {"from_": "2026-02-20", "to": "2026-03-10"}


async def fetch(api: Api, path: str, **params: object) -> bytes:
    status, body, _ = await api.get(path, **params)
    assert status == 200, body
    assert isinstance(body, bytes)
    return body


def read_csv(body: bytes) -> list[dict[str, str]]:
    assert body.startswith("\ufeff".encode())  # Excel reads the UTF-8 headers right
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def read_xlsx(body: bytes, tmp_path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    path = tmp_path / "x.xlsx"
    path.write_bytes(body)
    wb = openpyxl.load_workbook(path, read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    wb.close()
    return [str(h) for h in rows[0]], rows[1:]


async def test_region_daily_aqi_by_chinese_name_as_xlsx(
    api: Api, dataset_conn: Sync, tmp_path: Path
) -> None:
    body = await fetch(api, "/api/v1/export/aqi", region="太原市", format="xlsx", **RANGE)
    header, rows = read_xlsx(body, tmp_path)
    db = dataset_conn.execute(
        "SELECT day, aqi, pm25, co, primary_pollutants FROM region_day WHERE region = 'taiyuan'"
        " AND day >= '2026-02-20' AND day < '2026-03-10' ORDER BY day"
    ).fetchall()
    assert len(rows) == len(db) == 18
    col = {h: i for i, h in enumerate(header)}
    assert "PM2.5（µg/m³）" in col and "CO（mg/m³）" in col and "日期" in col
    assert "PM2.5分指数" in col and "首要污染物" in col and "类别" in col
    for row, (day, aqi, pm25, co, _primary) in zip(rows, db, strict=True):
        assert row[col["区域名称"]] == "太原市"
        assert row[col["日期"]].date() == day
        assert row[col["AQI"]] == aqi
        if pm25 is not None:
            assert row[col["PM2.5（µg/m³）"]] == float(round_half_even(pm25, 0))
        if co is not None:
            assert row[col["CO（mg/m³）"]] == float(round_half_even(co, 1))


async def test_station_daily_aqi_csv_in_english(api: Api, dataset_conn: Sync) -> None:
    body = await fetch(
        api, "/api/v1/export/aqi", station="jiancaoping", lang="en", format="csv", **RANGE
    )
    rows = read_csv(body)
    db = dataset_conn.execute(
        "SELECT day, aqi, iaqi, pm25 FROM air_day WHERE station_id = %s"
        " AND day >= '2026-02-20' AND day < '2026-03-10' ORDER BY day",
        (AIR[0],),
    ).fetchall()
    assert len(rows) == len(db)
    assert set(rows[0]) >= {"station id", "station name", "date", "AQI", "PM2.5 (µg/m³)"}
    for row, (day, aqi, iaqi, pm25) in zip(rows, db, strict=True):
        assert row["station name"] == "尖草坪" and row["date"] == day.isoformat()
        assert row["AQI"] == ("" if aqi is None else str(aqi))
        iaqi_pm25 = next((v for k, v in iaqi.items() if k.startswith("pm25")), None)
        assert row["IAQI PM2.5"] == ("" if iaqi_pm25 is None else str(iaqi_pm25))
        if pm25 is not None:
            assert Decimal(row["PM2.5 (µg/m³)"]) == round_half_even(pm25, 0)
            assert "." not in row["PM2.5 (µg/m³)"]


async def test_hourly_aqi_parquet_is_beijing_time(api: Api, dataset_conn: Sync) -> None:
    body = await fetch(
        api,
        "/api/v1/export/aqi",
        station=AIR[2],
        resolution="hourly",
        format="parquet",
        from_="2026-02-28T00:00",
        to="2026-03-02T00:00",
    )
    table = pq.read_table(io.BytesIO(body))
    n = dataset_conn.execute(
        "SELECT count(*) FROM air_hour WHERE station_id = %s"
        " AND ts >= '2026-02-28T00:00+08' AND ts < '2026-03-02T00:00+08'",
        (AIR[2],),
    ).fetchone()[0]
    assert table.num_rows == n > 40
    time_col = next(n for n in table.column_names if n.startswith("时间"))
    assert "北京时间" in time_col and str(table.schema.field(time_col).type.tz) == "Asia/Shanghai"
    first = table.column(time_col)[0].as_py()
    assert (
        first.utcoffset().total_seconds() == 8 * 3600 and first.date().isoformat() == "2026-02-28"
    )
    # The edition switches with the day: HJ 633-2026 from 2026-03-01.
    assert set(table.column("HJ 633版本").to_pylist()) == {2012, 2026}


async def test_hourly_aqi_csv_times_carry_their_offset(api: Api) -> None:
    body = await fetch(
        api,
        "/api/v1/export/aqi",
        station=AIR[1],
        resolution="hourly",
        lang="en",
        from_="2026-03-01",
        to="2026-03-01T03:00",
    )
    rows = read_csv(body)
    assert [r["time (Beijing, UTC+8)"] for r in rows] == [
        f"2026-03-01T0{h}:00:00+08:00" for h in range(3)
    ]


async def test_annual_and_monthly_statistics(api: Api, dataset_conn: Sync) -> None:
    body = await fetch(
        api, "/api/v1/export/statistics", period="annual", from_="2026-01-01", to="2027-01-01"
    )
    rows = read_csv(body)
    kinds = [(r["类型"], r["编号"]) for r in rows]
    assert kinds[:3] == [("region", "zone"), ("region", "taiyuan"), ("region", "xinzhou")]
    n_air = dataset_conn.execute("SELECT count(*) FROM station WHERE kind = 'air'").fetchone()[0]
    assert len(rows) == 3 + n_air
    zone = rows[0]
    db_mean = dataset_conn.execute(
        "SELECT avg(pm25) FROM region_day WHERE region = 'zone' AND pm25 IS NOT NULL"
        " AND day >= '2026-01-01'"
    ).fetchone()[0]
    assert Decimal(zone["PM2.5平均浓度（实况）（µg/m³）"]) == round_half_even(db_mean, 0)
    body = await fetch(
        api,
        "/api/v1/export/statistics",
        period="monthly",
        region="xinzhou",
        lang="en",
        from_="2026-02-01",
        to="2026-04-01",
    )
    rows = read_csv(body)
    assert [(r["id"], r["month"]) for r in rows] == [("xinzhou", "2026-02"), ("xinzhou", "2026-03")]
    assert (
        int(rows[0]["valid days"])
        == dataset_conn.execute(
            "SELECT count(*) FROM region_day WHERE region = 'xinzhou' AND aqi IS NOT NULL"
            " AND day >= '2026-02-01' AND day < '2026-03-01'"
        ).fetchone()[0]
    )


async def test_water_classes_per_month(api: Api, dataset_conn: Sync, tmp_path: Path) -> None:
    body = await fetch(
        api, "/api/v1/export/water", station="代县桥", from_="2026-02", to="2026-04", format="xlsx"
    )
    header, rows = read_xlsx(body, tmp_path)
    db = dataset_conn.execute(
        "SELECT month, class FROM water_section_month WHERE station_id = %s ORDER BY month",
        (WATER_SIM,),
    ).fetchall()
    assert len(rows) == len(db) > 0
    col = {h: i for i, h in enumerate(header)}
    roman = ("Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", "Ⅴ", "劣Ⅴ")
    for row, (month, cls) in zip(rows, db, strict=True):
        assert row[col["月份"]] == f"{month:%Y-%m}" and row[col["水质类别"]] == roman[cls - 1]
        assert row[col["控制级别"]] in ("国控", "省控", "市控")
    assert "氨氮（mg/L）" in col and "溶解氧（mg/L）" in col


async def test_export_input_errors(api: Api) -> None:
    status, body, _ = await api.get("/api/v1/export/aqi", region="北京市", **RANGE)
    assert status == 400 and body["errors"][0]["parameter"] == "region"  # type: ignore[index]
    status, body, _ = await api.get(
        "/api/v1/export/aqi", region="zone", resolution="hourly", **RANGE
    )
    assert status == 400
    status, body, _ = await api.get("/api/v1/export/aqi", lang="fr", **RANGE)
    assert status == 400 and body["errors"][0]["parameter"] == "lang"  # type: ignore[index]


async def test_daily_readings_are_the_derived_daily_values(api: Api, dataset_conn: Sync) -> None:
    """period=1d was a bare header for air stations (issue 13): it is the valid daily means."""
    body = await fetch(
        api,
        "/api/v1/export/readings",
        station=f"{AIR[0]},water-fen-shanglan",
        period="1d",
        from_="2025-12-30",
        to="2026-03-01",
    )
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    air = [r for r in rows if r["station"] == AIR[0]]
    db = dataset_conn.execute(
        "SELECT day, pm25, o3_8h_max FROM air_day WHERE station_id = %s AND day < '2026-03-01'"
        " ORDER BY day",
        (AIR[0],),
    ).fetchall()
    pm25 = [r for r in air if r["parameter"] == "pm25"]
    assert [(r["time"], float(r["value"])) for r in pm25] == [
        (f"{d.isoformat()}T00:00:00+08:00", v) for d, v, _ in db if v is not None
    ]
    o3 = {r["time"][:10]: float(r["value"]) for r in air if r["parameter"] == "o3"}
    assert o3 == {d.isoformat(): v for d, _, v in db if v is not None}
    assert {r["source"] for r in air} == {"derived"} and {r["period"] for r in air} == {"1d"}
    # The laboratory's stored daily values stay as stored, once each (no derived twin).
    water = [r for r in rows if r["station"] == "water-fen-shanglan"]
    assert [r["time"] for r in water] == ["2025-12-30T08:00:00+08:00", "2025-12-31T08:00:00+08:00"]
    assert {r["source"] for r in water} == {"lab"}
    status, page, _ = await api.get(
        "/api/v1/readings",
        station=AIR[0],
        parameter="pm25",
        period="1d",
        from_="2026-02-21",
        to="2026-02-24",
    )
    assert status == 200 and page["count"] == 3  # type: ignore[index]
