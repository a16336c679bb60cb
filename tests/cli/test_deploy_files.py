"""docker-compose.yml, Dockerfile and .env.example (issue 12 item 6): the faults found on
a real deployment, checked in the committed files."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]


def test_timescaledb_image_is_pinned_to_the_datasource_postgres_version() -> None:
    ds = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/envmon.yaml").read_text(encoding="utf-8")
    )
    version = ds["datasources"][0]["jsonData"]["postgresVersion"]
    for name in ("db", "grafana-role"):
        image = SERVICES[name]["image"]
        m = re.fullmatch(r"timescale/timescaledb:(\d+\.\d+\.\d+)-pg(\d+)", image)
        assert m, f"{name}: {image} is not pinned"
        assert int(m.group(2)) * 100 == version


def test_envmon_listens_inside_its_container_and_connects_as_its_own_role() -> None:
    for name in ("envmon", "simulator"):
        env = SERVICES[name]["environment"]
        url = env["ENVMON_DATABASE_URL"]
        # The password is a separate setting: nothing in it can break the URL.
        assert "${" not in url and ":" not in url.split("@")[0].removeprefix("postgresql://")
        assert url.startswith("postgresql://envmon_app@")
        assert "ENVMON_DATABASE_PASSWORD" in env
    assert SERVICES["envmon"]["environment"]["ENVMON_API__HOST"] == "0.0.0.0"
    assert SERVICES["envmon"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    migrate = SERVICES["migrate"]["environment"]
    assert migrate["ENVMON_DATABASE_APP_ROLE"] == "envmon_app"
    assert SERVICES["envmon"]["healthcheck"]["test"] == ["CMD", "envmon", "status", "--health"]


def test_env_example_and_image() -> None:
    env = (REPO / ".env.example").read_text(encoding="utf-8")
    for key in ("ENVMON_API__READ_TOKEN=", "ENVMON_API__ADMIN_TOKEN=", "ENVMON_DB_APP_PASSWORD="):
        assert re.search(rf"^{re.escape(key)}", env, re.M), key
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "fonts-noto-cjk" in dockerfile and "libpango-1.0-0" in dockerfile
