"""``/api/v1/trends/normalised`` and its export over the session's dataset (the method
itself is tested on data of known trend in tests/evaluate/test_normalise.py)."""

from __future__ import annotations

import csv
import io

from .conftest import Api


async def test_too_little_data_is_said_not_faked(api: Api) -> None:
    status, body, _ = await api.get(
        "/api/v1/trends/normalised", region="太原市", year="2026", baseline_year="2025"
    )
    assert status == 200, body
    res: dict[str, object] = body  # type: ignore[assignment]
    assert res["status"] == "insufficient_data" and "valid days" in str(res["reason"])
    assert res["id"] == "taiyuan" and res["months"] == [] and res["unit"] == "µg/m³"
    status, body, _ = await api.get(
        "/api/v1/trends/normalised", station="尖草坪", year="2026", baseline_year="2025"
    )
    assert status == 200 and body["id"] == "air-taiyuan-jiancaoping"  # type: ignore[index]


async def test_input_errors(api: Api) -> None:
    status, body, _ = await api.get("/api/v1/trends/normalised", year="2025", baseline_year="2025")
    assert status == 400 and body["errors"][0]["parameter"] == "baseline_year"  # type: ignore[index]
    status, body, _ = await api.get(
        "/api/v1/trends/normalised", station="尖草坪", region="zone", year="2025"
    )
    assert status == 400
    status, body, _ = await api.get("/api/v1/trends/normalised", station="air-nowhere", year="2025")
    assert status == 404


async def test_export_has_units_in_its_headers(api: Api) -> None:
    status, body, _ = await api.get(
        "/api/v1/export/normalised", region="zone", year="2026", baseline_year="2025", lang="en"
    )
    assert status == 200 and isinstance(body, bytes)
    header = next(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert header == [
        "id",
        "month",
        "PM2.5 observed (µg/m³)",
        "PM2.5 weather-normalised (µg/m³)",
    ]
