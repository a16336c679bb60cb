"""Bad HTTP input gets a 4xx problem+json, never a 500 (issue 19): NUL bytes, bytes that are
not UTF-8 (percent-encoded and raw), oversized headers — sent to a real server on 127.0.0.1.
An unexpected error is logged once with a request id, the traceback only at DEBUG."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from envmon.api.app import ApiServer
from envmon.app import open_app

from .conftest import READ, Api, api_settings, settings_for

PATHS = [
    "/api/v1/readings",
    "/api/v1/export/readings",
    "/api/v1/aqi",
    "/api/v1/water",
    "/api/v1/export/aqi",
    "/api/v1/export/statistics",
    "/api/v1/export/water",
    "/api/v1/trends",
]
RANGES = {
    "/api/v1/water": "from=2026-01&to=2026-03",
    "/api/v1/export/water": "from=2026-01&to=2026-03",
    "/api/v1/trends": "parameter=pm25&from=2025-01&to=2026-01",
}


async def raw_request(url: str, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line and headers, as bytes) and read the whole answer."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in header_block.split(b"\r\n"):
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        out, rest_b = b"", body
        while rest_b:
            size_s, _, rest_b = rest_b.partition(b"\r\n")
            size = int(size_s, 16)
            if size == 0:
                break
            out, rest_b = out + rest_b[:size], rest_b[size + 2 :]
        body = out
    return int(status_line.split()[1]), headers, body


def assert_problem(status: int, headers: dict[str, str], body: bytes) -> dict[str, object]:
    assert 400 <= status < 500, (status, body[:300])
    assert headers["content-type"].startswith("application/problem+json"), headers
    problem: dict[str, object] = json.loads(body)
    assert problem["status"] == status
    return problem


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info]
    assert not loud, [r.getMessage() for r in loud]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("value", ["%00", "a%00b", "%FF%FE", "%C3%28", "%ED%A0%80", "%1B[31m"])
async def test_hostile_station_values_are_400(
    api: Api, path: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = RANGES.get(path, "from=2026-02-25&to=2026-02-26")
    head = (
        f"GET {path}?station={value}&{rng} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {READ}\r\nConnection: close\r\n\r\n"
    ).encode()
    status, headers, body = await raw_request(api.url, head)
    problem = assert_problem(status, headers, body)
    assert status == 400 and "station" in json.dumps(problem), problem
    no_tracebacks(caplog)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /api/v1/aqi?station=\xff\xfe&from=2026-02-25&to=2026-02-26 HTTP/1.1\r\n",
        b"GET /api/v1/aqi?station=a\x00b HTTP/1.1\r\n",
        b"GET /api/v1/\x00 HTTP/1.1\r\n",
        b"GET /api/v1/aqi HTTP/1.1\r\nX-Bad: \x00\r\n",
        b"GET /api/v1/aqi HTTP/1.1\r\nX-Bad\xff: 1\r\n",
        b"GET /api/v1/aqi HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n",
        b"GET /api/v1/aqi HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)),
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n",
        b"POST /api/v1/alerts/silences HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=[
        "raw-non-utf8-query",
        "raw-nul-query",
        "raw-nul-path",
        "nul-in-header",
        "non-utf8-header-name",
        "huge-header",
        "many-headers",
        "huge-request-line",
        "bad-chunk",
    ],
)
async def test_malformed_requests_get_problem_details(
    api: Api, head: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    if b"\r\n\r\n" not in head:
        head += f"Host: x\r\nAuthorization: Bearer {READ}\r\nConnection: close\r\n\r\n".encode()
    status, headers, body = await raw_request(api.url, head)
    assert_problem(status, headers, body)
    no_tracebacks(caplog)
    # The service is still there for the next client.
    status, _, _ = await api.get("/api/v1/health", token=None)
    assert status == 200


async def test_nul_in_a_json_body_is_a_400(fresh_api: Api) -> None:
    async with fresh_api.http.post(
        fresh_api.url + "/api/v1/alerts/silences",
        json={"station": "air-\u0000", "duration_minutes": 5},
        headers=fresh_api.headers("admin-token-for-the-bureau-9876543210"),
    ) as r:
        assert 400 <= r.status < 500 and r.content_type == "application/problem+json"


async def test_unexpected_error_is_logged_once_with_a_request_id(
    dataset_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="envmon")

    async def boom(request: web.Request) -> web.Response:
        return web.json_response({"n": int("not a number")})  # a ValueError from a library

    async with open_app(settings_for(tmp_path), url=dataset_url) as app:
        server = ApiServer(app.pool, app.catalog, api_settings(tmp_path), sink=app.sink)
        server.web_app.router.add_get("/api/v1/boom", boom)
        async with server, aiohttp.ClientSession() as http:
            async with http.get(
                server.url + "/api/v1/boom", headers={"Authorization": f"Bearer {READ}"}
            ) as r:
                body = await r.json(content_type=None)
                rid = r.headers["X-Request-Id"]
    assert r.status == 500 and r.content_type == "application/problem+json"
    assert rid in body["detail"]
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1 and rid in errors[0].getMessage() and not errors[0].exc_info
    assert "ValueError" in errors[0].getMessage()
    debug = [rec for rec in caplog.records if rec.levelno == logging.DEBUG and rec.exc_info]
    assert any(rid in rec.getMessage() for rec in debug)
