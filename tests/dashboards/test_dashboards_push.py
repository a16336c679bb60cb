"""``envmon dashboards push`` against a real HTTP server standing in for Grafana 12/13.

The stand-in (aiohttp on 127.0.0.1, port 0) implements the routes push uses the
way Grafana answers them — bearer-token auth, 404 for a missing folder or data
source, numeric-id data source routes disabled as in Grafana 13 — and records
every request, so the tests see exactly what push sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from envmon.dashboards.boards import UIDS
from envmon.dashboards.push import push
from envmon.errors import ConfigError, FatalError, RetriableError
from envmon.settings import GrafanaSettings

from .conftest import REPO

TOKEN = "glsa_test_token"
TARGETS = REPO / "config" / "targets.yaml"


@dataclass
class FakeGrafana:
    version: str = "13.0.1"
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    fail_dashboards_with: int | None = None

    def app(self) -> web.Application:
        @web.middleware
        async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests.append(
                (request.method, request.path, request.headers.get("Authorization"))
            )
            if request.path != "/api/health" and request.headers.get("Authorization") != (
                f"Bearer {TOKEN}"
            ):
                return web.json_response({"message": "Unauthorized"}, status=401)
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[auth])
        app.router.add_get("/api/health", self.health)
        app.router.add_get("/api/frontend/settings", self.frontend_settings)
        app.router.add_get("/api/folders/{uid}", self.get_folder)
        app.router.add_post("/api/folders", self.create_folder)
        app.router.add_get("/api/datasources/uid/{uid}", self.get_datasource)
        app.router.add_put("/api/datasources/uid/{uid}", self.update_datasource)
        app.router.add_post("/api/datasources", self.create_datasource)
        app.router.add_get("/api/datasources/{id:[0-9]+}", self.numeric_id)
        app.router.add_post("/api/dashboards/db", self.save_dashboard)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"database": "ok", "version": self.version, "commit": "abc"})

    async def frontend_settings(self, request: web.Request) -> web.Response:
        # grafana-client reads the version here (works on Amazon Managed Grafana too).
        return web.json_response(
            {"buildInfo": {"version": self.version, "edition": "Open Source", "env": "production"}}
        )

    async def get_folder(self, request: web.Request) -> web.Response:
        folder = self.folders.get(request.match_info["uid"])
        if folder is None:
            return web.json_response({"message": "folder not found"}, status=404)
        return web.json_response(folder)

    async def create_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "version": 1}
        return web.json_response(self.folders[body["uid"]])

    async def get_datasource(self, request: web.Request) -> web.Response:
        ds = self.datasources.get(request.match_info["uid"])
        if ds is None:
            return web.json_response({"message": "Data source not found"}, status=404)
        return web.json_response(ds)

    async def create_datasource(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.datasources[body["uid"]] = body
        return web.json_response({"message": "Datasource added", "datasource": body})

    async def update_datasource(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.datasources[request.match_info["uid"]] = body
        return web.json_response({"message": "Datasource updated", "datasource": body})

    async def numeric_id(self, request: web.Request) -> web.Response:
        # Grafana 13: data source routes by numeric id are disabled by default.
        return web.json_response({"message": "Not found"}, status=404)

    async def save_dashboard(self, request: web.Request) -> web.Response:
        if self.fail_dashboards_with:
            return web.json_response({"message": "unavailable"}, status=self.fail_dashboards_with)
        body = await request.json()
        dash = body["dashboard"]
        if "folderId" in body or body.get("folderUid") not in self.folders:
            return web.json_response({"message": "folder not found"}, status=400)
        if dash.get("id") is not None or not body.get("overwrite"):
            return web.json_response({"message": "version-mismatch"}, status=412)
        version = self.dashboards.get(dash["uid"], {}).get("version", 0) + 1
        self.dashboards[dash["uid"]] = {"dashboard": dash, "version": version, "body": body}
        return web.json_response(
            {
                "id": len(self.dashboards),
                "uid": dash["uid"],
                "url": f"/d/{dash['uid']}/x",
                "status": "success",
                "version": version,
                "slug": "x",
            }
        )


@pytest.fixture
async def grafana() -> AsyncIterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def settings(url: str, **kw: Any) -> GrafanaSettings:
    return GrafanaSettings(url=url, token=SecretStr(TOKEN), timeout_s=5, **kw)


async def test_push_creates_folder_and_data_source_then_dashboards_by_uid(
    grafana: tuple[FakeGrafana, str],
) -> None:
    fake, url = grafana
    cfg = settings(url, db_password=SecretStr("s3cret"), db_host="db.internal:5432")
    result = await asyncio.to_thread(push, cfg, targets_file=TARGETS)
    assert result.grafana_version == "13.0.1"
    assert result.folder_created and result.datasource == "created"
    assert [d.uid for d in result.dashboards] == list(UIDS)
    assert all(d.version == 1 for d in result.dashboards)
    assert fake.folders == {"envmon": {"uid": "envmon", "title": "环境监测", "version": 1}}
    ds = fake.datasources["envmon-postgres"]
    assert ds["user"] == "grafana_reader" and ds["url"] == "db.internal:5432"
    assert ds["type"] == "grafana-postgresql-datasource"
    assert ds["secureJsonData"] == {"password": "s3cret"}
    for uid in UIDS:
        with (REPO / "deploy" / "grafana" / "dashboards" / f"{uid}.json").open() as f:
            committed = json.load(f)
        assert fake.dashboards[uid]["dashboard"] == committed  # the committed JSON, exactly
        assert fake.dashboards[uid]["body"]["folderUid"] == "envmon"
    # UIDs everywhere: nothing went to a numeric-id route, every call carried the token.
    assert not any(path.split("/")[-1].isdigit() for _, path, _ in fake.requests)
    assert all(a == f"Bearer {TOKEN}" for _, p, a in fake.requests if p != "/api/health")

    again = await asyncio.to_thread(push, cfg, targets_file=TARGETS)
    assert not again.folder_created and again.datasource == "updated"
    assert all(d.version == 2 for d in again.dashboards)


async def test_push_without_password_needs_the_provisioned_data_source(
    grafana: tuple[FakeGrafana, str],
) -> None:
    fake, url = grafana
    fake.version = "12.2.0"
    with pytest.raises(ConfigError, match="no data source with uid envmon-postgres"):
        await asyncio.to_thread(push, settings(url), targets_file=TARGETS)
    assert fake.dashboards == {}
    fake.datasources["envmon-postgres"] = {"uid": "envmon-postgres"}  # provisioned
    result = await asyncio.to_thread(push, settings(url), targets_file=TARGETS)
    assert result.datasource == "unchanged" and len(fake.dashboards) == len(UIDS)
    assert fake.datasources["envmon-postgres"] == {"uid": "envmon-postgres"}


async def test_push_errors_say_what_to_do(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    bad = GrafanaSettings(url=url, token=SecretStr("wrong"), timeout_s=5)
    with pytest.raises(FatalError, match="401"):
        await asyncio.to_thread(push, bad, targets_file=TARGETS)
    fake.datasources["envmon-postgres"] = {"uid": "envmon-postgres"}
    fake.fail_dashboards_with = 503
    with pytest.raises(RetriableError, match="dashboard envmon-overview"):
        await asyncio.to_thread(push, settings(url), targets_file=TARGETS)
    with pytest.raises(ConfigError, match="ENVMON_GRAFANA__TOKEN"):
        await asyncio.to_thread(push, GrafanaSettings(url=url), targets_file=TARGETS)


async def test_push_to_an_unreachable_grafana_is_retriable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    with pytest.raises(RetriableError, match="health check"):
        await asyncio.to_thread(push, settings(f"http://127.0.0.1:{port}"), targets_file=TARGETS)
