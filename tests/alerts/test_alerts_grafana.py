"""Grafana alert-rule provisioning generated from the rules file: the committed file is
up to date, a stale one is caught, and every generated query runs on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from envmon.alerts.errors import AlertConfigError
from envmon.alerts.rules import load_config
from envmon.dashboards.alert_rules import build, render
from envmon.dashboards.sql import DATASOURCE_UID

from .conftest import CATALOG, REPO

RULES = REPO / "config" / "alerts.yaml"
SHIPPED = REPO / "deploy" / "grafana" / "provisioning" / "alerting" / "envmon-rules.yaml"


def test_committed_file_is_up_to_date() -> None:
    assert build(True, rules_file=RULES, out=SHIPPED, catalog=CATALOG) is False


def test_stale_file_is_caught(tmp_path: Path) -> None:
    out = tmp_path / "alerting" / "envmon-rules.yaml"
    with pytest.raises(AlertConfigError, match="out of date"):
        build(True, rules_file=RULES, out=out, catalog=CATALOG)  # missing
    assert build(False, rules_file=RULES, out=out, catalog=CATALOG) is True
    assert build(True, rules_file=RULES, out=out, catalog=CATALOG) is False
    out.write_text(out.read_text(encoding="utf-8").replace("threshold", "thresh"), "utf-8")
    with pytest.raises(AlertConfigError, match="envmon alerts grafana"):
        build(True, rules_file=RULES, out=out, catalog=CATALOG)


def test_provisioning_format() -> None:
    doc = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    rules = {r["uid"]: r for g in doc["groups"] for r in g["rules"]}
    assert {g["name"] for g in doc["groups"]} == {
        "envmon-air",
        "envmon-water",
        "envmon-weather",
        "envmon-data",
    }
    assert all(g["folder"] == "envmon" and g["interval"] == "1m" for g in doc["groups"])
    pm = rules["envmon-pm25-hourly-high"]
    query, threshold = pm["data"]
    assert query["datasourceUid"] == DATASOURCE_UID and query["model"]["format"] == "table"
    assert "FROM station s" in query["model"]["rawSql"] and "'pm25'" in query["model"]["rawSql"]
    cond = threshold["model"]["conditions"][0]
    assert cond["evaluator"] == {"type": "gt", "params": [115.0]}
    assert cond["unloadEvaluator"] == {"type": "lte", "params": [100.0]}  # hysteresis
    assert pm["condition"] == "C" and pm["labels"]["severity"] == "warning"
    assert rules["envmon-water-worse-than-target"]["for"] == "4h"
    assert (
        "water_section_month"
        in rules["envmon-water-worse-than-target"]["data"][0]["model"]["rawSql"]
    )
    assert "air_hour" in rules["envmon-aqi-hourly-heavy"]["data"][0]["model"]["rawSql"]
    # What needs envmon itself is listed, not generated.
    assert "envmon-target-good-days" not in rules
    assert "#   target-good-days: target risk needs" in SHIPPED.read_text(encoding="utf-8")


def test_every_generated_query_runs(db_url: str) -> None:
    doc = yaml.safe_load(render(load_config(RULES, CATALOG, require_secrets=False)))
    queries = [
        (r["uid"], d["model"]["rawSql"])
        for g in doc["groups"]
        for r in g["rules"]
        for d in r["data"]
        if d["datasourceUid"] == DATASOURCE_UID
    ]
    assert len(queries) >= 12
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO reading (station_id, parameter, period, ts, value, source)"
            " VALUES ('air-taiyuan-jiancaoping', 'pm25', '1h', now() - interval '1 hour', 150,"
            " 'test')"
        )
        # As Grafana's read-only role, where the cluster has it (migration 0006).
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader'").fetchone():
            conn.execute("SET ROLE grafana_reader")
        for uid, text in queries:
            cur = conn.execute(text.encode())
            assert cur.description is not None, uid
            numeric = [
                c.name for c in cur.description if c.type_code in (700, 701, 1700, 20, 21, 23)
            ]
            assert len(numeric) == 1, (uid, [c.name for c in cur.description])
        pm = dict(queries)["envmon-pm25-hourly-high"]
        assert conn.execute(pm.encode()).fetchall() == [
            ("air-taiyuan-jiancaoping", "尖草坪", "太原市", 150.0)
        ]
