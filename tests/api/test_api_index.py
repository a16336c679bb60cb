"""The index of links (``/``, ``/api/v1/``), the docs page, and real requests checked
against the OpenAPI document — end-of-month dates included (issue 13: days 29–31)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from envmon.api.openapi import spec

from .conftest import AIR, WATER_SIM, Api


@pytest.mark.parametrize("path", ["/", "/api/v1/"])
async def test_index_links_without_a_token(api: Api, path: str) -> None:
    status, body, resp = await api.get(path, token=None)
    assert status == 200 and resp.headers["Content-Type"].startswith("application/json")
    links: dict[str, str] = body["links"]  # type: ignore[index]
    assert links["openapi"] == "/api/v1/openapi.json" and links["docs"] == "/api/v1/docs"
    assert links["exportAqi"] == "/api/v1/export/aqi"
    for target in ("/api/v1/openapi.json", "/api/v1/docs", "/api/v1/health"):
        status, _, _ = await api.get(target, token=None)
        assert status == 200, target
    async with api.http.get(api.url + path, headers={"Accept": "text/html,*/*;q=0.8"}) as r:
        html = await r.text()
    assert r.status == 200 and r.content_type == "text/html"
    assert '<a href="/api/v1/docs">' in html and '<a href="/api/v1/export/aqi">' in html


async def test_docs_page_is_rendered_from_the_spec(api: Api) -> None:
    async with api.http.get(api.url + "/api/v1/docs") as r:
        html = await r.text()
    assert r.status == 200 and r.content_type == "text/html"
    for path, ops in spec()["paths"].items():
        for method in ops:
            assert f"<code>{method.upper()} {path}</code>" in html


def _parameter_schema(path: str, name: str) -> dict[str, Any]:
    op = spec()["paths"][path]["get"]
    (param,) = [p for p in op["parameters"] if p["name"] == name]
    schema: dict[str, Any] = param["schema"]
    return schema


# Real requests of an analyst, ending on the last day of a month (and on 29 February).
REQUESTS: list[tuple[str, dict[str, str]]] = [
    ("/api/v1/aqi", {"station": AIR[0], "from": "2026-01-31", "to": "2026-02-28"}),
    ("/api/v1/aqi", {"region": "太原市", "from": "2025-12-31", "to": "2026-03-31"}),
    (
        "/api/v1/readings",
        {"station": "尖草坪", "parameter": "pm25", "from": "2024-02-29", "to": "2026-03-01"},
    ),
    (
        "/api/v1/export/aqi",
        {"region": "太原市", "from": "2025-01-01", "to": "2026-01-01", "format": "xlsx"},
    ),
    (
        "/api/v1/export/statistics",
        {"period": "annual", "from": "2025-01-01", "to": "2025-12-31", "format": "csv"},
    ),
    ("/api/v1/export/water", {"station": WATER_SIM, "from": "2025-12", "to": "2026-03"}),
    ("/api/v1/targets", {"year": "2026", "as_of": "2026-03-31"}),
    ("/api/v1/annual", {"year": "2025", "as_of": "2025-12-31"}),
]


@pytest.mark.parametrize(("path", "params"), REQUESTS, ids=[p for p, _ in REQUESTS])
async def test_real_requests_are_valid_by_the_spec_and_served(
    api: Api, path: str, params: dict[str, str]
) -> None:
    for name, value in params.items():
        schema = _parameter_schema(path, name)
        instance: object = value.split(",") if schema.get("type") == "array" else value
        if schema.get("type") == "integer":
            instance = int(value)
        assert jsonschema_rs.validator_for(schema).is_valid(instance), (path, name, value)
    status, body, _ = await api.get(
        path, **{("from_" if k == "from" else k): v for k, v in params.items()}
    )
    assert status == 200, body


def test_the_spec_still_refuses_what_is_no_date() -> None:
    schema = _parameter_schema("/api/v1/export/statistics", "from")
    valid = jsonschema_rs.validator_for(schema).is_valid
    assert all(valid(d) for d in ("2025-01-29", "2025-01-30", "2025-12-31", "2024-02-29"))
    assert not any(valid(d) for d in ("2025-12-32", "2025-13-01", "2025-00-10", "2025-1-31"))
