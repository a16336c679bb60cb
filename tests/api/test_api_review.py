"""The data review over HTTP (issue 14): admin only, logged, refusals change nothing."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import openpyxl
import pyarrow.parquet as pq

from envmon.schemas.readings import RawReading
from envmon.timeutil import BEIJING

from .conftest import ADMIN, AIR, Api

T0 = datetime(2025, 3, 1, 8, tzinfo=BEIJING)


async def test_invalidate_restore_history_over_http(fresh_api: Api) -> None:
    api = fresh_api
    raws = [RawReading(AIR[0], "pm25", T0 + timedelta(hours=h), 40.0, "N", "1h") for h in range(3)]
    await api.app.sink.store(api.app.validator.validate(raws, "logger"))
    await api.app.sink.store(
        api.app.validator.validate([RawReading(AIR[0], "pm25", T0, 41.0, "N", "1h")], "logger")
    )
    body = {
        "station": "jiancaoping",
        "parameter": "pm25",
        "from": T0.isoformat(),
        "to": (T0 + timedelta(hours=2)).isoformat(),
        "reason": "仪器故障",
        "by": "王工",
    }
    async with api.app.pool.connection() as conn:
        # An alert already sent on the first hour: it stays, and says the data went invalid.
        await conn.execute(
            "INSERT INTO alert_event (rule, subject, severity, state, route, started_at, message,"
            " station_id, parameter, first_ts, last_ts)"
            " VALUES ('pm25-high', %s, 'warning', 'firing', 'default', now(), 'PM2.5 高',"
            " %s, 'pm25', %s, %s)",
            (AIR[0], AIR[0], T0, T0),
        )
    url = f"{api.url}/api/v1/review/invalidate"
    async with api.http.post(url, json=body, headers=api.headers()) as r:
        assert r.status == 403  # the read token may not review
    async with api.http.post(url, json=body, headers=api.headers(ADMIN)) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["readings"] == 2
    status, alerts, _ = await api.get("/api/v1/alerts", ADMIN)
    assert status == 200, alerts
    assert [a["data_invalidated"] for a in alerts["items"]] == [True]  # type: ignore[index]
    async with api.http.post(
        f"{api.url}/api/v1/review/restore",
        json=body | {"reason": "复核"},
        headers=api.headers(ADMIN),
    ) as r:
        assert (await r.json())["readings"] == 2
    for bad in ({"station": "nowhere"}, {"to": body["from"]}, {"from": "2099-01-01T00:00:00"}):
        async with api.http.post(url, json=body | bad, headers=api.headers(ADMIN)) as r:
            assert r.status == 400
    status, hist, _ = await api.get(
        "/api/v1/readings/history", ADMIN, station=AIR[0], parameter="pm25", time=T0.isoformat()
    )
    assert status == 200
    entries = hist["history"]  # type: ignore[index]
    assert [(e["kind"], e.get("value"), e.get("by")) for e in entries] == [
        ("version", 40.0, None),
        ("version", 41.0, None),
        ("invalidate", None, "王工"),
        ("restore", None, "王工"),
    ]
    async with api.app.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM review_action")
        assert await cur.fetchone() == (2,)


async def _exported(api: Api) -> dict[str, list[float]]:
    """The values of the station's PM2.5 in each export format and in ``/readings``."""
    window = {"station": AIR[0], "parameter": "pm25", "from_": "2025-03-01", "to": "2025-03-02"}
    out: dict[str, list[float]] = {}
    for fmt in ("csv", "parquet", "xlsx"):
        status, body, _ = await api.get("/api/v1/export/readings", format=fmt, **window)
        assert status == 200 and isinstance(body, bytes)
        if fmt == "csv":
            out[fmt] = [float(r["value"]) for r in csv.DictReader(io.StringIO(body.decode()))]
        elif fmt == "parquet":
            out[fmt] = pq.read_table(io.BytesIO(body)).column("value").to_pylist()
        else:
            wb = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
            out[fmt] = [r[4] for r in list(wb["readings"].iter_rows(values_only=True))[1:]]
            wb.close()
    status, page, _ = await api.get("/api/v1/readings", **window)
    assert status == 200
    out["json"] = [i["value"] for i in page["items"]]  # type: ignore[index]
    return out


async def test_exports_hold_reviewed_data(fresh_api: Api) -> None:
    # Invalidated hours leave every export and the readings API; a restore brings them back.
    api = fresh_api
    raws = [
        RawReading(AIR[0], "pm25", T0 + timedelta(hours=h), 40.0 + h, "N", "1h") for h in range(4)
    ]
    await api.app.sink.store(api.app.validator.validate(raws, "logger"))
    body = {
        "station": AIR[0],
        "parameter": "pm25",
        "from": (T0 + timedelta(hours=1)).isoformat(),
        "to": (T0 + timedelta(hours=3)).isoformat(),
        "reason": "校准",
        "by": "王工",
    }
    everything = {k: [40.0, 41.0, 42.0, 43.0] for k in ("csv", "parquet", "xlsx", "json")}
    assert await _exported(api) == everything
    for action, want in (("invalidate", [40.0, 43.0]), ("restore", [40.0, 41.0, 42.0, 43.0])):
        url = f"{api.url}/api/v1/review/{action}"
        async with api.http.post(url, json=body, headers=api.headers(ADMIN)) as r:
            assert r.status == 200, await r.text()
        assert await _exported(api) == {k: want for k in everything}
