"""The generated Grafana files: up to date, detected when stale, valid for the SDK and Grafana."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from envmon.dashboards._sdk import JSONEncoder, dm
from envmon.dashboards.boards import UIDS
from envmon.dashboards.build import (
    DATASOURCE_FILE,
    PROVIDER_FILE,
    build,
)
from envmon.dashboards.runner import iter_panels
from envmon.dashboards.sql import DATASOURCE_TYPE, DATASOURCE_UID, Dataquery, register
from envmon.standards.aqi import CATEGORIES

from .conftest import REPO

GRAFANA = REPO / "deploy" / "grafana"

# Keys Grafana reads from provisioning files: pkg/services/provisioning/datasources/
# types.go (configsV1, upsertDataSourceFromConfigV1) and …/dashboards/types.go
# (configV1, configs); the file provider's options (path, foldersFromFilesStructure).
DATASOURCE_ROOT_KEYS = {"apiVersion", "datasources", "deleteDatasources", "prune"}
DATASOURCE_KEYS = {
    "orgId", "orgName", "version", "name", "type", "access", "url", "user", "database",
    "basicAuth", "basicAuthUser", "withCredentials", "isDefault", "correlations", "jsonData",
    "secureJsonData", "editable", "uid",
}  # fmt: skip
# sqleng.JsonData of the PostgreSQL data source, plus the keys its config editor saves
# for the UI only (postgresVersion, maxIdleConnsAuto).
POSTGRES_JSON_DATA_KEYS = {
    "maxOpenConns", "maxIdleConns", "connMaxLifetime", "connectionTimeout", "timescaledb",
    "sslmode", "tlsConfigurationMethod", "tlsSkipVerify", "sslRootCertFile", "sslCertFile",
    "sslKeyFile", "timezone", "encrypt", "servername", "timeInterval", "database",
    "enableSecureSocksProxy", "secureSocksProxyUsername", "allowCleartextPasswords",
    "authenticationType", "postgresVersion", "maxIdleConnsAuto",
}  # fmt: skip
PROVIDER_ROOT_KEYS = {"apiVersion", "providers"}
PROVIDER_KEYS = {
    "name", "type", "orgId", "folder", "folderUid", "editable", "options", "disableDeletion",
    "updateIntervalSeconds", "allowUiUpdates",
}  # fmt: skip
FILE_PROVIDER_OPTIONS = {"path", "foldersFromFilesStructure"}


def _dashboard(uid: str) -> dict[str, Any]:
    with (GRAFANA / "dashboards" / f"{uid}.json").open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _yaml(rel: str) -> dict[str, Any]:
    with (GRAFANA / rel).open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def test_committed_files_are_up_to_date() -> None:
    report = build(check=True, root=REPO)
    assert report.ok, "stale: " + ", ".join(str(p) for p in report.stale)
    assert len(report.unchanged) == len(UIDS) + 2


def test_check_mode_names_stale_files_and_build_fixes_them(tmp_path: Path) -> None:
    shutil.copytree(GRAFANA, tmp_path / "deploy" / "grafana")
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "targets.yaml", tmp_path / "config" / "targets.yaml")
    dashboards = tmp_path / "deploy" / "grafana" / "dashboards"
    alerting = tmp_path / "deploy" / "grafana" / "provisioning" / "alerting"
    alerting.mkdir(parents=True, exist_ok=True)
    (alerting / "rules.yaml").write_text("# someone else's\n", encoding="utf-8")

    edited = dashboards / "envmon-water.json"
    edited.write_text(edited.read_text(encoding="utf-8").replace("地表水", "水"), encoding="utf-8")
    (dashboards / "envmon-weather.json").unlink()
    (dashboards / "old-dashboard.json").write_text("{}", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in dashboards.iterdir()}

    report = build(check=True, root=tmp_path)
    assert not report.ok
    assert sorted(p.name for p in report.stale) == [
        "envmon-water.json",
        "envmon-weather.json",
        "old-dashboard.json",
    ]
    assert {p.name: p.read_bytes() for p in dashboards.iterdir()} == before  # check writes nothing

    fixed = build(check=False, root=tmp_path)
    assert sorted(p.name for p in fixed.written) == sorted(p.name for p in report.stale)
    assert build(check=True, root=tmp_path).ok
    assert (alerting / "rules.yaml").read_text(encoding="utf-8") == "# someone else's\n"

    # The targets are baked into the dashboards: editing them makes those stale.
    targets = tmp_path / "config" / "targets.yaml"
    targets.write_text(
        targets.read_text(encoding="utf-8").replace("change: -0.20}", "change: -0.25}"),
        encoding="utf-8",
    )
    stale = {p.name for p in build(check=True, root=tmp_path).stale}
    assert stale == {"envmon-overview.json", "envmon-targets.json"}


@pytest.mark.parametrize("uid", UIDS)
def test_dashboard_json_round_trips_through_the_sdk_models(uid: str) -> None:
    register()
    raw = _dashboard(uid)
    model = dm.Dashboard.from_json(raw)
    assert json.loads(JSONEncoder(sort_keys=True).encode(model)) == raw
    targets = [t for p in model.panels or [] if isinstance(p, dm.Panel) for t in p.targets or []]
    ours = [t for t in targets if isinstance(t, Dataquery)]
    assert targets and ours == targets
    assert all(t.datasource and t.datasource.uid == DATASOURCE_UID for t in ours)


@pytest.mark.parametrize("uid", UIDS)
def test_dashboard_conventions(uid: str) -> None:
    d = _dashboard(uid)
    assert d["uid"] == uid and d["timezone"] == "Asia/Shanghai" and d["schemaVersion"] >= 41
    cjk = re.compile(r"[\u4e00-\u9fff]")
    assert cjk.search(d["title"])
    for p in iter_panels(d):
        assert cjk.search(p["title"]), p["title"]
        assert p["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
        for t in p["targets"]:
            assert t["datasource"]["uid"] == DATASOURCE_UID and t["rawQuery"] is True
            assert t["format"] in ("time_series", "table")
        assert p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    for var in d.get("templating", {}).get("list", []):
        if var["type"] == "query":
            assert var["datasource"]["uid"] == DATASOURCE_UID


def test_aqi_panels_use_the_hj633_colours() -> None:
    hj633 = [c.colour for c in CATEGORIES]
    air = _dashboard("envmon-air-station")
    aqi = next(p for p in iter_panels(air) if p["title"] == "逐时 AQI")
    steps = aqi["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["color"] for s in steps] == hj633
    assert [s["value"] for s in steps] == [None, 51, 101, 151, 201, 301]
    overview = _dashboard("envmon-overview")
    geo = next(p for p in iter_panels(overview) if p["type"] == "geomap")
    override = next(
        o for o in geo["fieldConfig"]["overrides"] if o["matcher"]["options"] == "空气质量类别"
    )
    mapping = next(x["value"] for x in override["properties"] if x["id"] == "mappings")[0]
    assert {int(k): (m["text"], m["color"]) for k, m in mapping["options"].items()} == {
        c.number: (c.level, c.colour) for c in CATEGORIES
    }


def test_datasource_provisioning_matches_grafanas_keys() -> None:
    doc = _yaml(DATASOURCE_FILE)
    assert set(doc) <= DATASOURCE_ROOT_KEYS and doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert set(ds) <= DATASOURCE_KEYS
    assert set(ds["jsonData"]) <= POSTGRES_JSON_DATA_KEYS
    assert ds["uid"] == DATASOURCE_UID and ds["type"] == DATASOURCE_TYPE
    assert ds["user"] == "grafana_reader"
    # Secrets and connection come from Grafana's environment, never from the file.
    assert ds["secureJsonData"] == {"password": "${ENVMON_GRAFANA_DB_PASSWORD}"}
    env = re.compile(r"^\$\{ENVMON_GRAFANA_[A-Z_]+\}$")
    assert env.match(ds["url"]) and env.match(ds["jsonData"]["database"])


def test_dashboard_provider_matches_grafanas_keys() -> None:
    doc = _yaml(PROVIDER_FILE)
    assert set(doc) <= PROVIDER_ROOT_KEYS and doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert set(provider) <= PROVIDER_KEYS and provider["type"] == "file"
    assert set(provider["options"]) <= FILE_PROVIDER_OPTIONS
    assert provider["folderUid"] == "envmon"


def test_compose_mounts_what_the_provider_reads() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana-oss:12.")
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"] if ":" in m}
    provider_path = _yaml(PROVIDER_FILE)["providers"][0]["options"]["path"]
    assert mounts[provider_path] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    env = grafana["environment"]
    for name in re.findall(
        r"\$\{(ENVMON_GRAFANA_[A-Z_]+)\}", (GRAFANA / DATASOURCE_FILE).read_text()
    ):
        assert name in env, f"the Grafana container does not get {name}"


def test_cli_build_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from envmon.dashboards.cli import add_parser, cmd_dashboards
    from envmon.settings import Settings

    parser = argparse.ArgumentParser(prog="envmon")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dashboards", "build", "--check"])
    assert args.func is cmd_dashboards and args.check
    monkeypatch.chdir(REPO)
    assert cmd_dashboards(args, Settings(config_dir=REPO / "config")) == 0
    assert "up to date" in capsys.readouterr().out
