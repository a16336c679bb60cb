"""Tokens: none or a wrong one is 401 (never data), a read token on an admin route is 403."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from envmon.api.app import ApiServer
from envmon.api.auth import granted

from .conftest import ADMIN, READ, Api, api_settings

READ_ROUTES = [
    ("/api/v1/stations", {}),
    ("/api/v1/readings", {"from": "2026-02-20", "to": "2026-02-21"}),
    ("/api/v1/export/readings", {"from": "2026-02-20", "to": "2026-02-21"}),
    ("/api/v1/aqi", {"from": "2026-02-20", "to": "2026-02-21"}),
    ("/api/v1/water", {"from": "2026-01", "to": "2026-02"}),
    ("/api/v1/targets", {"year": "2026"}),
    ("/api/v1/trends", {"parameter": "pm25", "region": "zone"}),
    ("/api/v1/annual", {"year": "2026"}),
    ("/api/v1/alerts", {}),
    ("/api/v1/metrics", {}),
]


@pytest.mark.parametrize(("path", "params"), READ_ROUTES, ids=[p for p, _ in READ_ROUTES])
@pytest.mark.parametrize(
    "header",
    [None, "Bearer ", "Bearer wrong-token", f"Basic {READ}", f"Bearer {READ}x", READ],
    ids=["none", "empty", "wrong", "basic-scheme", "suffix", "no-scheme"],
)
async def test_no_or_wrong_token_is_401(
    api: Api, path: str, params: dict[str, str], header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    async with api.http.get(api.url + path, params=params, headers=headers) as r:
        body = await r.json(content_type=None)
        assert r.status == 401
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert set(body) >= {"type", "title", "status", "detail"} and body["status"] == 401
        assert "items" not in body


async def test_token_in_query_string_is_not_accepted(api: Api) -> None:
    async with api.http.get(api.url + "/api/v1/stations", params={"token": READ}) as r:
        assert r.status == 401


@pytest.mark.parametrize("token", [READ, ADMIN], ids=["read", "admin"])
async def test_read_and_admin_tokens_read(api: Api, token: str) -> None:
    status, body, _ = await api.get("/api/v1/stations", token=token, kind="water")
    assert status == 200 and body["count"] == 14  # type: ignore[index]


async def test_admin_routes_need_the_admin_token(api: Api) -> None:
    for path, payload in (
        ("/api/v1/alerts/1/ack", {"note": "seen"}),
        ("/api/v1/alerts/silences", {"rule": "pm25-*", "duration_minutes": 60}),
    ):
        async with api.http.post(api.url + path, json=payload, headers=api.headers(READ)) as r:
            assert r.status == 403, path
            assert (await r.json(content_type=None))["status"] == 403
        async with api.http.post(api.url + path, json=payload) as r:
            assert r.status == 401, path


async def test_health_and_openapi_are_public(api: Api) -> None:
    status, body, _ = await api.get("/api/v1/health", token=None)
    assert status == 200 and body == {  # type: ignore[comparison-overlap]
        "status": "ok",
        "database": "ok",
        "spool_pending_files": 0,
        "version": body["version"],  # type: ignore[index]
    }
    status, _, _ = await api.get("/api/v1/openapi.json", token=None)
    assert status == 200


async def test_unknown_path_and_method_are_problems(api: Api) -> None:
    status, _, r = await api.get("/api/v1/nothing-here")
    assert status == 404 and r.headers["Content-Type"].startswith("application/problem+json")
    async with api.http.delete(api.url + "/api/v1/stations", headers=api.headers()) as r:
        assert r.status == 405
        assert (await r.json(content_type=None))["status"] == 405


def test_granted_roles() -> None:
    read, admin = SecretStr("r"), SecretStr("a")
    assert granted("Bearer r", read, admin) == "read"
    assert granted("bearer a", read, admin) == "admin"
    assert granted("Bearer a", read, None) == "public"
    assert granted("Bearer r", None, None) == "public"
    assert granted(None, read, admin) == "public"
    assert granted("Bearer  r ", read, admin) == "read"


async def test_no_tokens_configured_serves_nothing(fresh_api: Api, tmp_path: Path) -> None:
    # An API started without any token answers 401 to every guess; health stays open.
    settings = api_settings(tmp_path, read_token=None, admin_token=None)
    async with (
        ApiServer(
            fresh_api.app.pool, fresh_api.app.catalog, settings, sink=fresh_api.app.sink
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        for token in ("", "anything", READ):
            async with http.get(
                server.url + "/api/v1/stations", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == 401
        async with http.get(server.url + "/api/v1/health") as r:
            assert r.status == 200
