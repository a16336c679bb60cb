"""The rules file: the shipped one is valid; mistakes are reported all at once, each
naming its rule, channel or route; secrets only come from the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from envmon.alerts.errors import AlertConfigError
from envmon.alerts.rules import ThresholdRule, load_config, parse_config, stations_of
from envmon.durations import format_duration, parse_duration

from .conftest import CATALOG, PM25_RULE, REPO


def _problems(data: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(AlertConfigError) as err:
        parse_config(data, CATALOG, env=env or {})
    return str(err.value)


def test_shipped_rules_file_is_valid() -> None:
    cfg = load_config(REPO / "config" / "alerts.yaml", CATALOG, env={})
    ids = {r.id for r in cfg.rules}
    assert {
        "pm25-hourly-high",
        "aqi-hourly-heavy",
        "city-aqi-daily-heavy",
        "water-worse-than-target",
        "water-do-low",
        "offline-air-water",
        "offline-weather",
        "data-quality-station",
        "target-good-days",
    } <= ids
    pm25 = cfg.rule("pm25-hourly-high")
    assert isinstance(pm25, ThresholdRule) and pm25.threshold == 115
    assert len(stations_of(pm25, CATALOG)) == 25  # active air points (机引 stopped 2019)
    offline = cfg.rule("offline-air-water")
    assert {s.kind for s in stations_of(offline, CATALOG)} == {"air", "water"}
    assert offline.after == timedelta(minutes=90)  # type: ignore[union-attr]
    assert cfg.rule("offline-weather").after == timedelta(hours=3)  # type: ignore[union-attr]
    assert [r.name for r in cfg.routes] == ["planning", "default"]
    assert cfg.routes[-1].channels == ["log"]
    # Planning (target-risk) alerts go to their own daily digest, never to on-call (issue 19).
    for rule in cfg.rules:
        route = cfg.route_for(rule.id, rule.severity, None)
        if rule.kind == "target_risk":
            assert route.name == "planning" and route.digest == "08:30"
            assert route.escalate_to is None and "log" not in route.channels
        else:
            assert route.name == "default"


def test_every_problem_named_at_once() -> None:
    text = _problems(
        {
            "rules": [
                {**PM25_RULE, "id": "a", "parameter": "pm2.5"},
                {**PM25_RULE, "id": "b", "threshold": 100, "clear": 120},
                {**PM25_RULE, "id": "c", "for": "soon"},
                {**PM25_RULE, "id": "a"},
                {"id": "d", "kind": "threshhold"},
                {**PM25_RULE, "id": "e", "stations": {"city": "北京市"}},
                {"id": "f", "kind": "offline", "after": "90m"},
                {**PM25_RULE, "id": "g", "stations": {"kind": "water"}},
            ],
            "channels": {"hook": {"type": "webhook", "url": "http://x", "secret_env": "NOPE"}},
            "routes": [
                {"name": "r1", "match": {"severity": "critical"}, "channels": ["hook", "sms"],
                 "escalate_after": "30m", "escalate_to": "leaders"},
            ],
        }
    )  # fmt: skip
    for expected in (
        "rule 'a': unknown parameter 'pm2.5'",
        "rule 'b': clear (120) must not be above threshold",
        "rule 'c': for: 'soon' is not a duration",
        "rule 'a': id used twice",
        "rule 'd': kind must be one of threshold, spike",
        "rule 'e': unknown city '北京市'",
        "rule 'f': offline needs 'stations' or 'sources'",
        "rule 'g': parameter of air stations, but stations.kind is water",
        "channel 'hook': secret_env names the environment variable NOPE, which is not set",
        "route 'r1': unknown channel 'sms'",
        "route 'r1': escalate_to names no route ('leaders')",
        "routes: the last route ('r1') must match everything",
    ):
        assert expected in text, expected


def test_secrets_come_from_the_environment() -> None:
    data: dict[str, Any] = {
        "rules": [PM25_RULE],
        "channels": {
            "ding": {"type": "dingtalk", "access_token_env": "DT_TOKEN", "secret_env": "DT_SEC"}
        },
        "routes": [{"name": "d", "channels": ["ding"]}],
    }
    cfg = parse_config(data, CATALOG, env={"DT_TOKEN": "tok", "DT_SEC": "SECxyz"})
    assert cfg.secret("DT_SEC") == "SECxyz"
    assert "SECxyz" not in repr(cfg.secrets)  # SecretStr: never printed
    ding = {"type": "dingtalk", "access_token_env": "DT_TOKEN", "secret": "x"}
    text = _problems({**data, "channels": {"ding": ding}})
    assert "channel 'ding': secret: Extra inputs are not permitted" in text
    # Generating Grafana rules needs no secrets.
    assert parse_config(data, CATALOG, env={}, require_secrets=False).secret("DT_SEC") is None


def test_durations() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration(45) == timedelta(seconds=45)
    assert parse_duration("0") == timedelta(0)
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    for bad in ("3 hours", "h", "-5m", True, -1):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_rule_shapes() -> None:
    text = _problems(
        {
            "rules": [
                {"id": "a", "kind": "threshold", "metric": "aqi", "window": "8h", "threshold": 1},
                {"id": "b", "kind": "threshold", "metric": "water_class",
                 "parameters": ["cod", "ss"]},
                {"id": "c", "kind": "threshold", "threshold": 1},
                {"id": "d", "kind": "spike", "parameter": "pm25", "rise": 50, "clear": 60},
                {"id": "e", "kind": "data_quality", "max_share": 1.5},
                {"id": "f", "kind": "target_risk", "measure": "good_day_budget", "below": 5,
                 "clear": 1},
                {"id": "Bad Id", "kind": "offline", "after": "1h", "sources": ["hj212"]},
            ]
        }
    )  # fmt: skip
    for expected in (
        "rule 'a': metric aqi: window is 1h (hourly AQI) or 24h (rolling daily)",
        "rule 'b': not GB 3838 classified parameters: ['ss']",
        "rule 'c': a threshold on a value needs 'parameter'",
        "rule 'd': clear must not exceed rise",
        "rule 'e': max_share: Input should be less than 1",
        "rule 'f': clear must not be below 'below'",
        "rule 'Bad Id': id: must be lower-case letters",
    ):
        assert expected in text, expected


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(AlertConfigError, match="cannot read the alert rules"):
        load_config(bad, CATALOG)
