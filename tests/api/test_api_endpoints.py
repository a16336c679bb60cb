"""The JSON endpoints against the session's dataset, compared with the database itself."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from envmon.evaluate.assessment import evaluate_year
from envmon.evaluate.targets import load_targets
from envmon.standards.aqi import CATEGORIES

from .conftest import ADMIN, AIR, TREND_SLOPE, WATER_SIM, WATER_TREND, Api

Sync = psycopg.Connection[tuple[object, ...]]


def problem(body: Any, status: int) -> dict[str, Any]:
    assert isinstance(body, dict) and body["status"] == status, body
    assert {"type", "title", "detail", "instance"} <= set(body)
    return body


async def test_stations_filters(api: Api) -> None:
    status, body, _ = await api.get("/api/v1/stations", kind="air", county="尖草坪区")
    assert status == 200
    ids = [s["id"] for s in body["items"]]  # type: ignore[index]
    assert ids == [
        "air-taiyuan-jiancaoping",
        "air-taiyuan-nanzhai",
        "air-taiyuan-shanglan",
        "air-taiyuan-yingbinbeilu9",
    ]
    status, body, _ = await api.get("/api/v1/stations", kind="sea")
    assert status == 400
    assert problem(body, 400)["errors"][0]["parameter"] == "kind"
    status, body, _ = await api.get("/api/v1/stations", knd="air")
    assert status == 400 and "knd" in problem(body, 400)["detail"]


async def test_readings_pages_cover_the_range_exactly(api: Api, dataset_conn: Sync) -> None:
    params = {"station": AIR[0], "parameter": "pm25,o3", "from_": "2026-02-25", "to": "2026-03-03"}
    items: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        extra = {"cursor": cursor} if cursor else {}
        status, body, _ = await api.get("/api/v1/readings", limit=50, **params, **extra)
        assert status == 200, body
        page: dict[str, Any] = body  # type: ignore[assignment]
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    rows = dataset_conn.execute(
        "SELECT parameter, ts, value, flag FROM reading WHERE station_id = %s"
        " AND parameter IN ('pm25', 'o3') AND ts >= '2026-02-25' AND ts < '2026-03-03'"
        " ORDER BY parameter, period, ts",
        (AIR[0],),
    ).fetchall()
    assert len(items) == len(rows) > 200 and pages == -(-len(rows) // 50) + (len(rows) % 50 == 0)
    for item, (p, ts, value, flag) in zip(items, rows, strict=True):
        assert (item["parameter"], item["value"], item["flag"]) == (p, value, flag)
        assert datetime.fromisoformat(item["time"]) == ts
        assert item["time"].endswith("+08:00")
    # A cursor only continues the query it came from.
    first = await api.get("/api/v1/readings", limit=5, **params)
    token = first[1]["next_cursor"]  # type: ignore[index]
    other = {**params, "parameter": "pm25"}
    status, body, _ = await api.get("/api/v1/readings", limit=5, cursor=token, **other)
    assert status == 400 and problem(body, 400)["errors"][0]["parameter"] == "cursor"
    status, body, _ = await api.get("/api/v1/readings", cursor="not-a-cursor", **params)
    assert status == 400


async def test_readings_input_errors(api: Api) -> None:
    status, body, _ = await api.get(
        "/api/v1/readings", station="air-nowhere", from_="2026-02-25", to="2026-02-26"
    )
    assert status == 404 and "air-nowhere" in problem(body, 404)["detail"]
    status, body, _ = await api.get("/api/v1/readings", from_="2026-02-26", to="2026-02-25")
    assert status == 400 and problem(body, 400)["type"].endswith("range-too-large")
    status, body, _ = await api.get("/api/v1/readings", from_="2000-01-01", to="2020-01-01")
    assert status == 400 and "4,018" in problem(body, 400)["detail"]
    status, body, _ = await api.get("/api/v1/readings", from_="yesterday", to="2026-02-25", limit=0)
    errors = {e["parameter"] for e in problem(body, 400)["errors"]}
    assert status == 400 and errors == {"from", "limit"}
    status, body, _ = await api.get(
        "/api/v1/readings", parameter="pm2.5", from_="2026-02-25", to="2026-02-26"
    )
    assert status == 400 and "pm2.5" in problem(body, 400)["errors"][0]["message"]


async def test_aqi_daily_station_and_region(api: Api, dataset_conn: Sync) -> None:
    colour = {c.number: c.colour for c in CATEGORIES}
    status, body, _ = await api.get(
        "/api/v1/aqi", station=AIR[2], from_="2026-02-20", to="2026-03-10"
    )
    assert status == 200
    res: dict[str, Any] = body  # type: ignore[assignment]
    rows = dataset_conn.execute(
        "SELECT day, aqi, category, edition, pm25 FROM air_day WHERE station_id = %s"
        " AND day >= '2026-02-20' AND day < '2026-03-10' ORDER BY day",
        (AIR[2],),
    ).fetchall()
    assert [(i["day"], i["aqi"], i["category"], i["edition"], i["pm25"]) for i in res["items"]] == [
        (d.isoformat(), a, c, e, p)
        for d, a, c, e, p in rows  # type: ignore[attr-defined]
    ]
    assert {i["edition"] for i in res["items"]} == {2012, 2026}  # across 2026-03-01
    for i in res["items"]:
        if i["category"] is not None:
            assert i["colour"] == colour[i["category"]]
    status, body, _ = await api.get(
        "/api/v1/aqi", region="xinzhou", from_="2026-02-20", to="2026-03-10"
    )
    zone: dict[str, Any] = body  # type: ignore[assignment]
    n = dataset_conn.execute(
        "SELECT count(*) FROM region_day WHERE region = 'xinzhou' AND day >= '2026-02-20'"
        " AND day < '2026-03-10'"
    ).fetchone()
    assert status == 200 and zone["scope"] == "region" and len(zone["items"]) == n[0]  # type: ignore[index]
    assert all(i["region"] == "xinzhou" and i["n_stations"] == 1 for i in zone["items"])


async def test_aqi_hourly_and_limits(api: Api) -> None:
    status, body, _ = await api.get(
        "/api/v1/aqi",
        resolution="hourly",
        station=AIR[0],
        from_="2026-02-28T22:00",
        to="2026-03-01T02:00",
    )
    assert status == 200
    items = body["items"]  # type: ignore[index]
    assert [i["time"] for i in items][:2] == [
        "2026-02-28T22:00:00+08:00",
        "2026-02-28T23:00:00+08:00",
    ]
    assert [i["edition"] for i in items] == [2012, 2012, 2026, 2026]
    status, body, _ = await api.get(
        "/api/v1/aqi", resolution="hourly", region="zone", from_="2026-03-01", to="2026-03-02"
    )
    assert status == 400 and problem(body, 400)["errors"][0]["parameter"] == "resolution"
    status, body, _ = await api.get(
        "/api/v1/aqi", resolution="hourly", from_="2025-01-01", to="2026-01-01"
    )
    assert status == 400 and "26 station(s) × 8,760 hour(s)" in problem(body, 400)["detail"]
    status, body, _ = await api.get(
        "/api/v1/aqi", station=AIR[0], region="zone", from_="2026-03-01", to="2026-03-02"
    )
    assert status == 400


async def test_water_classes(api: Api, dataset_conn: Sync) -> None:
    status, body, _ = await api.get(
        "/api/v1/water", station=WATER_SIM, from_="2026-01", to="2026-04"
    )
    assert status == 200
    items = body["items"]  # type: ignore[index]
    rows = dataset_conn.execute(
        "SELECT month, class, meets_target FROM water_section_month WHERE station_id = %s"
        " ORDER BY month",
        (WATER_SIM,),
    ).fetchall()
    assert [(i["month"], i["class"], i["meets_target"]) for i in items] == [
        (m.strftime("%Y-%m"), c, t)
        for m, c, t in rows  # type: ignore[attr-defined]
    ]
    assert items and items[0]["roman"] in ("Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", "Ⅴ", "劣Ⅴ")
    assert "nh3n" in items[0]["parameters"] and items[0]["parameters"]["nh3n"]["n_days"] > 0
    status, body, _ = await api.get("/api/v1/water", station=AIR[0], from_="2026-01", to="2026-04")
    assert status == 404  # an air station is not a water section


async def test_targets_is_evaluate_year(api: Api, dataset_url: str) -> None:
    status, body, _ = await api.get("/api/v1/targets", year=2026, region="zone", as_of="2026-03-09")
    assert status == 200
    targets = load_targets(Path(api.server.settings.targets_file))  # type: ignore[arg-type]
    async with await psycopg.AsyncConnection.connect(dataset_url) as conn:
        want = await evaluate_year(conn, 2026, "zone", targets, as_of=date(2026, 3, 9))  # type: ignore[arg-type]
    assert body == json.loads(json.dumps(want, ensure_ascii=False))
    status, body, _ = await api.get("/api/v1/targets", year=2026, as_of="2025-12-31")
    assert status == 400
    status, body, _ = await api.get("/api/v1/targets", year=2026, edition=2020)
    assert status == 400


async def test_trend_of_a_known_slope(api: Api) -> None:
    for method in ("seasonal_kendall", "anomalies", "none"):
        status, body, _ = await api.get(
            "/api/v1/trends",
            parameter="nh3n",
            station=WATER_TREND,
            from_="2023-01",
            to="2026-01",
            method=method,
        )
        assert status == 200, body
        t = body["trend"]  # type: ignore[index]
        assert t["status"] == "ok" and t["n_months"] == 36 and t["n_valid_months"] == 35
        assert t["excluded_months"] == [
            {"month": "2024-02", "n_days": 20, "reason": "20 valid days < 25"}
        ]
        assert t["slope_per_year"] == pytest.approx(TREND_SLOPE, rel=0.1), method
        assert t["mann_kendall"]["trend"] == "increasing" and t["mann_kendall"]["significant"]
    status, body, _ = await api.get("/api/v1/trends", parameter="nh3n", region="zone")
    assert status == 400
    status, body, _ = await api.get(
        "/api/v1/trends", parameter="pm25", station=AIR[0], region="zone"
    )
    assert status == 400
    status, body, _ = await api.get("/api/v1/trends", parameter="pm25", station=WATER_SIM)
    assert status == 404  # pm25 of a water section
    status, body, _ = await api.get(
        "/api/v1/trends", parameter="pm25", region="zone", from_="2026-01", to="2026-04"
    )
    assert status == 200 and body["trend"]["status"] == "insufficient_data"  # type: ignore[index]


async def test_annual_statistics(api: Api) -> None:
    status, body, _ = await api.get("/api/v1/annual", year=2026, as_of="2026-03-09")
    assert status == 200
    res: dict[str, Any] = body  # type: ignore[assignment]
    assert res["editions"] == [2012, 2026] and set(res["by_edition"]) == {"2012", "2026"}
    zone12 = res["by_edition"]["2012"]["regions"][0]
    zone26 = res["by_edition"]["2026"]["regions"][0]
    assert zone12["id"] == "zone" and zone12["limit_set"] == "2012"
    assert zone26["limit_set"] == "2026-transitional"
    # Concentrations do not depend on the edition; the PM limits do.
    assert zone12["pollutants"]["pm25"]["mean"] == zone26["pollutants"]["pm25"]["mean"]
    assert (
        zone12["pollutants"]["pm25"]["limit_annual"] == 35
        and zone26["pollutants"]["pm25"]["limit_annual"] == 30
    )
    status, body, _ = await api.get("/api/v1/annual", year=2026, edition=2026)
    assert status == 200 and body["editions"] == [2026]  # type: ignore[index]


async def test_alerts_list_ack_silence(fresh_api: Api) -> None:
    api = fresh_api
    async with api.app.pool.connection() as conn:
        row = await (
            await conn.execute(
                "INSERT INTO alert_event (rule, subject, station_id, city, severity, state, route,"
                " started_at, message) VALUES ('pm25-high', %s, %s, '太原市', 'warning',"
                " 'firing', 'default', now(), 'PM2.5 高') RETURNING id",
                (AIR[0], AIR[0]),
            )
        ).fetchone()
    assert row is not None
    event_id = int(row[0])
    status, body, _ = await api.get("/api/v1/alerts")
    assert status == 200 and body["count"] == 1  # type: ignore[index]
    item = body["items"][0]  # type: ignore[index]
    assert (item["id"], item["rule"], item["state"], item["open"]) == (
        event_id,
        "pm25-high",
        "firing",
        True,
    )
    assert item["silenced"] is False
    admin = api.headers(ADMIN)
    url = f"{api.url}/api/v1/alerts/{event_id}/ack"
    async with api.http.post(url, json={"by": "值班员", "note": "已通知站点"}, headers=admin) as r:
        assert r.status == 200
        assert (await r.json())["acknowledged"] is True
    async with api.app.pool.connection() as conn:
        acked = await (
            await conn.execute(
                "SELECT acked_by, ack_note, acked_at IS NOT NULL FROM alert_event WHERE id = %s",
                (event_id,),
            )
        ).fetchone()
    assert acked == ("值班员", "已通知站点", True)
    async with api.http.post(f"{api.url}/api/v1/alerts/999999/ack", headers=admin) as r:
        assert r.status == 404
    payload = {"station": AIR[0], "duration_minutes": 120, "comment": "校准"}
    async with api.http.post(f"{api.url}/api/v1/alerts/silences", json=payload, headers=admin) as r:
        assert r.status == 201
        created = await r.json()
    ends = datetime.fromisoformat(created["ends_at"]) - datetime.fromisoformat(created["starts_at"])
    assert ends.total_seconds() == 7200 and created["created_by"] == "api"
    async with api.app.pool.connection() as conn:
        silence = await (
            await conn.execute(
                "SELECT station_id, comment FROM alert_silence WHERE id = %s", (created["id"],)
            )
        ).fetchone()
    assert silence == (AIR[0], "校准")
    # The open alert of that station is covered by the silence now (issue 19).
    status, body, _ = await api.get("/api/v1/alerts")
    assert status == 200 and body["items"][0]["silenced"] is True  # type: ignore[index]
    for bad, field in (
        ({"rule": "pm25-*", "duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": 30}, "rule"),
        ({"station": "air-nowhere", "duration_minutes": 30}, "station"),
        ({"rule": "x", "ends_at": "2020-01-01T00:00"}, "ends_at"),
        ({"rule": "x", "duration_minutes": 30, "colour": "red"}, "colour"),
    ):
        async with api.http.post(f"{api.url}/api/v1/alerts/silences", json=bad, headers=admin) as r:
            assert r.status == 400, bad
            assert field in {e["parameter"] for e in (await r.json())["errors"]}
    async with api.http.post(
        f"{api.url}/api/v1/alerts/silences", data=b"{not json", headers=admin
    ) as r:
        assert r.status == 400
