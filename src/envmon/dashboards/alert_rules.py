"""Grafana alert rules generated from ``config/alerts.yaml`` (file provisioning).

For bureaus that also run Grafana alerting: the same rules, as Grafana-managed
alert rules over the PostgreSQL datasource ``envmon-postgres``, written to
``deploy/grafana/provisioning/alerting/envmon-rules.yaml`` (``apiVersion: 1``,
``groups:`` of ``rules:`` whose ``data`` are a SQL query ``A`` returning one
row per station — a multi-dimensional alert — and a threshold expression
``C`` on it, with the rule's ``clear`` level as Grafana's recovery threshold).

The file is committed and checked (``build(check=True)`` fails when it is out
of date). What Grafana sees differs from envmon's own evaluation where the
database has no equivalent of the in-memory state: AQI comes from the derived
``air_hour``/``region_day`` tables (the latest complete day for a city, not a
rolling 24 h), the water class from the month's ``water_section_month``, and
``for`` is Grafana's pending time (wall clock) rather than data time. Rules
that need envmon itself (target risk, reject shares per source) are listed in
the file's header and not generated.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import yaml
from psycopg import sql

from envmon.alerts.errors import AlertConfigError
from envmon.alerts.rules import (
    SEVERITY_ZH,
    AlertConfig,
    AnyRule,
    DataQualityRule,
    FlatlineRule,
    OfflineRule,
    SpikeRule,
    StationSelector,
    TargetRiskRule,
    ThresholdRule,
    load_config,
)
from envmon.catalog import Catalog, load_catalog
from envmon.dashboards.sql import DATASOURCE_TYPE, DATASOURCE_UID
from envmon.evaluate.regions import CITY_REGION
from envmon.parameters import BY_CODE, PERIODS

FOLDER: Final = "envmon"
INTERVAL: Final = "1m"
OFFLINE_WINDOW: Final = timedelta(days=30)
DEFAULT_OUT: Final = Path("deploy/grafana/provisioning/alerting/envmon-rules.yaml")
_VALID = "flag IN ('N', 'T')"
_OPS: Final = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
# Recovery (unloadEvaluator) matching envmon's "cleared": the opposite comparison.
_RECOVER: Final = {">": "lte", ">=": "lt", "<": "gte", "<=": "gt"}
_GROUP: Final = {"air": "envmon-air", "water": "envmon-water", "weather": "envmon-weather"}


def _lit(value: Any) -> str:
    return sql.Literal(value).as_string(None)


def _interval(d: timedelta) -> str:
    return _lit(f"{int(d.total_seconds())} seconds") + "::interval"


def _grafana_duration(d: timedelta) -> str:
    """Grafana wants ``for`` as a multiple of the group interval (1 minute)."""
    minutes = math.ceil(d.total_seconds() / 60)
    if minutes and minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def selector_sql(sel: StationSelector, kind: str | None, alias: str = "s") -> str:
    """The station selection as a WHERE clause over ``station``."""
    conds = [f"{alias}.active"]
    kinds: list[str] = list(sel.kind) or ([kind] if kind else [])
    if kinds:
        conds.append(f"{alias}.kind = ANY({_lit(kinds)}::text[])")
    for column, values in (
        ("city", sel.city),
        ("county", sel.county),
        ("id", sel.ids),
        ("control_level", sel.control_level),
    ):
        if values:
            conds.append(f"{alias}.{column} = ANY({_lit(list(values))}::text[])")
    if sel.exclude:
        conds.append(f"NOT ({alias}.id = ANY({_lit(list(sel.exclude))}::text[]))")
    if sel.assessed is not None:
        conds.append(f"{alias}.assessed = {_lit(sel.assessed)}")
    return " AND ".join(conds)


def _periods(periods: tuple[str, ...] | list[str]) -> str:
    return f"period = ANY({_lit(list(periods))}::text[])"


def _threshold_sql(rule: ThresholdRule) -> tuple[str, str]:
    """(SQL, what it measures) of a threshold rule."""
    where = selector_sql(rule.stations, rule.station_kind)
    age = _interval(rule.max_age)
    if rule.metric == "aqi":
        if rule.aqi_window >= timedelta(hours=24) or rule.scope == "city":
            regions = sorted({CITY_REGION[c] for c in (rule.stations.city or CITY_REGION)})
            return (
                "SELECT DISTINCT ON (d.region) d.region AS region, d.aqi::float AS aqi\n"
                "FROM region_day d\n"
                f"WHERE d.region = ANY({_lit(regions)}::text[]) AND d.aqi IS NOT NULL\n"
                "  AND d.day >= bj_day(now()) - 2\n"
                "ORDER BY d.region, d.day DESC",
                "城市日 AQI（最近完整日，region_day）",
            )
        return (
            "SELECT s.id AS station, s.name AS name, s.city AS city, h.aqi::float AS aqi\n"
            "FROM station s\n"
            "CROSS JOIN LATERAL (\n"
            "  SELECT aqi FROM air_hour\n"
            f"  WHERE station_id = s.id AND aqi IS NOT NULL AND ts > now() - {age}\n"
            "  ORDER BY ts DESC LIMIT 1) h\n"
            f"WHERE {where}",
            "小时 AQI（air_hour）",
        )
    if rule.metric == "water_class":
        return (
            "SELECT s.id AS station, s.name AS name, s.city AS city,\n"
            "       (w.class - s.target_class)::float AS classes_over_target\n"
            "FROM station s\n"
            "JOIN water_section_month w ON w.station_id = s.id\n"
            " AND w.month = date_trunc('month', bj_time(now()))::date\n"
            f"WHERE {where} AND s.target_class IS NOT NULL",
            "本月断面水质类别高于目标类别的级数（water_section_month）",
        )
    assert rule.parameter is not None
    p = BY_CODE[rule.parameter]
    if rule.window:
        span = _interval(rule.window)
        need = rule.min_count or 1
        inner = (
            f"  SELECT avg(value) AS value FROM reading\n"
            f"  WHERE station_id = s.id AND parameter = {_lit(p.code)}"
            f" AND {_periods(rule.periods)}\n"
            f"    AND {_VALID} AND ts > now() - {span}\n"
            f"  HAVING count(*) >= {need}"
        )
    else:
        inner = (
            f"  SELECT value FROM reading\n"
            f"  WHERE station_id = s.id AND parameter = {_lit(p.code)}"
            f" AND {_periods(rule.periods)}\n"
            f"    AND {_VALID} AND ts > now() - {age}\n"
            f"  ORDER BY ts DESC LIMIT 1"
        )
    if rule.scope == "city":
        return (
            "SELECT s.city AS city, avg(r.value) AS value\n"
            "FROM station s\n"
            f"CROSS JOIN LATERAL (\n{inner}) r\n"
            f"WHERE {where}\n"
            f"GROUP BY s.city HAVING count(*) >= {rule.min_stations}",
            f"{p.name}（{p.unit}），城市均值",
        )
    return (
        f"SELECT s.id AS station, s.name AS name, s.city AS city, r.value\n"
        f"FROM station s\n"
        f"CROSS JOIN LATERAL (\n{inner}) r\n"
        f"WHERE {where}",
        f"{p.name}（{p.unit}）",
    )


def _spike_sql(rule: SpikeRule) -> str:
    p = BY_CODE[rule.parameter]
    where = selector_sql(rule.stations, rule.station_kind)
    return (
        "SELECT s.id AS station, s.name AS name, s.city AS city, x.rise\n"
        "FROM station s\n"
        "CROSS JOIN LATERAL (\n"
        "  SELECT (array_agg(value ORDER BY ts DESC))[1] - min(value) AS rise FROM reading\n"
        f"  WHERE station_id = s.id AND parameter = {_lit(p.code)}"
        f" AND period = {_lit(rule.period)}\n"
        f"    AND {_VALID} AND ts >= now() - {_interval(rule.over + timedelta(hours=1))}\n"
        "  HAVING count(*) >= 2) x\n"
        f"WHERE {where}"
    )


def _flatline_sql(rule: FlatlineRule) -> str:
    where = selector_sql(rule.stations, rule.station_kind)
    return (
        "SELECT s.id AS station, s.name AS name, s.city AS city, p.code AS parameter,"
        " x.spread\n"
        "FROM station s\n"
        f"CROSS JOIN unnest({_lit(list(rule.parameters))}::text[]) AS p(code)\n"
        "CROSS JOIN LATERAL (\n"
        "  SELECT max(value) - min(value) AS spread FROM reading\n"
        f"  WHERE station_id = s.id AND parameter = p.code AND {_periods(rule.period)}\n"
        f"    AND {_VALID} AND ts > now() - {_interval(rule.span)}\n"
        f"  HAVING count(*) >= {rule.min_count}) x\n"
        f"WHERE {where}"
    )


def _offline_sql(rule: OfflineRule) -> str:
    if rule.stations is None:
        return (
            "SELECT source, extract(epoch FROM now() - max(last_success_at)) / 60"
            " AS silent_minutes\n"
            "FROM ingest_cursor\n"
            f"WHERE source = ANY({_lit(list(rule.sources))}::text[])\n"
            "GROUP BY source"
        )
    where = selector_sql(rule.stations, None)
    # Only the last ``window`` of readings is read, so that the query never scans the
    # whole (compressed) history; a station with nothing in it counts as silent for
    # the whole window, which is longer than ``after``: the rule fires all the same.
    window = _interval(max(OFFLINE_WINDOW, 2 * rule.after))
    return (
        "SELECT s.id AS station, s.name AS name, s.city AS city,\n"
        f"       extract(epoch FROM now() - coalesce(max(x.received_at), now() - {window}))"
        " / 60 AS silent_minutes\n"
        "FROM station s\n"
        f"CROSS JOIN unnest({_codes_of_kind()}) AS p(code)\n"
        f"CROSS JOIN unnest({_lit(list(PERIODS))}::text[]) AS r(period)\n"
        "LEFT JOIN LATERAL (\n"
        "  SELECT received_at FROM reading\n"
        "  WHERE station_id = s.id AND parameter = p.code AND period = r.period\n"
        f"    AND ts > now() - {window}\n"
        "  ORDER BY ts DESC LIMIT 1) x ON true\n"
        f"WHERE {where}\n"
        "GROUP BY s.id, s.name, s.city"
    )


def _quality_sql(rule: DataQualityRule) -> str:
    where = selector_sql(rule.stations, None)
    span = _interval(rule.window)
    return (
        "SELECT s.id AS station, s.name AS name, s.city AS city,\n"
        "       j.n::float / (j.n + a.n) AS reject_share\n"
        "FROM station s\n"
        "CROSS JOIN LATERAL (SELECT count(*) AS n FROM rejected\n"
        f"  WHERE station_id = s.id AND received_at > now() - {span}) j\n"
        # Through the reading key (station, parameter, period, ts): one index range each.
        f"CROSS JOIN LATERAL (SELECT count(*) AS n FROM unnest({_codes_of_kind()}) AS p(code)\n"
        f"  CROSS JOIN unnest({_lit(list(PERIODS))}::text[]) AS q(period)\n"
        "  JOIN reading r ON r.station_id = s.id AND r.parameter = p.code"
        " AND r.period = q.period\n"
        f"   AND r.ts > now() - {span} - interval '1 day' AND r.received_at > now() - {span}) a\n"
        f"WHERE {where} AND j.n + a.n >= {rule.min_total}"
    )


def _codes_of_kind(alias: str = "s") -> str:
    """The parameter codes of the station's kind, as an array literal (no join on
    ``parameter``: Grafana's read-only role does not read that table)."""
    cases = " ".join(
        f"WHEN {_lit(kind)} THEN {_lit([p.code for p in BY_CODE.values() if p.kind == kind])}"
        for kind in ("air", "water", "weather")
    )
    return f"(CASE {alias}.kind {cases} END)::text[]"


def _query(sql_text: str) -> dict[str, Any]:
    return {
        "refId": "A",
        "relativeTimeRange": {"from": 600, "to": 0},
        "datasourceUid": DATASOURCE_UID,
        "model": {
            "refId": "A",
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "editorMode": "code",
            "format": "table",
            "rawQuery": True,
            "rawSql": sql_text,
            "intervalMs": 60000,
            "maxDataPoints": 43200,
        },
    }


def _threshold(op: str, level: float, clear: float | None) -> dict[str, Any]:
    condition: dict[str, Any] = {"evaluator": {"type": _OPS[op], "params": [level]}}
    if clear is not None and clear != level:
        condition["unloadEvaluator"] = {"type": _RECOVER[op], "params": [clear]}
    return {
        "refId": "C",
        "relativeTimeRange": {"from": 0, "to": 0},
        "datasourceUid": "__expr__",
        "model": {
            "refId": "C",
            "datasource": {"type": "__expr__", "uid": "__expr__"},
            "type": "threshold",
            "expression": "A",
            "conditions": [condition],
        },
    }


def grafana_rule(rule: AnyRule) -> tuple[str, dict[str, Any]] | str:
    """(group, Grafana rule) for one envmon rule, or why it is not generated."""
    if isinstance(rule, TargetRiskRule):
        return "target risk needs envmon's year projection (envmon evaluate)"
    if isinstance(rule, DataQualityRule) and rule.by == "source":
        return "reject share per source needs the counts envmon keeps in memory"
    what: str
    group = "envmon-data"
    if isinstance(rule, ThresholdRule):
        text, what = _threshold_sql(rule)
        data = [_query(text), _threshold(rule.op, rule.threshold, rule.clear)]
        group = _GROUP.get(rule.station_kind or "", group)
    elif isinstance(rule, SpikeRule):
        p = BY_CODE[rule.parameter]
        what = f"{p.name} 上升量（{p.unit}）"
        data = [_query(_spike_sql(rule)), _threshold(">=", rule.rise, rule.clear)]
        group = _GROUP.get(rule.station_kind or "", group)
    elif isinstance(rule, FlatlineRule):
        what = "数据变化幅度"
        data = [
            _query(_flatline_sql(rule)),
            _threshold("<=", rule.tolerance, None),
        ]
    elif isinstance(rule, OfflineRule):
        what = "无数据分钟数"
        minutes = rule.after.total_seconds() / 60
        data = [_query(_offline_sql(rule)), _threshold(">=", minutes, None)]
    else:
        assert isinstance(rule, DataQualityRule)
        what = "拒收比例"
        data = [
            _query(_quality_sql(rule)),
            _threshold(">", rule.max_share, rule.clear),
        ]
    out: dict[str, Any] = {
        "uid": f"envmon-{rule.id}"[:40],
        "title": rule.title,
        "condition": "C",
        "data": data,
        "noDataState": "OK",
        "execErrState": "Error",
        "for": _grafana_duration(rule.for_),
        "annotations": {
            "summary": f"{rule.title}（{SEVERITY_ZH[rule.severity]}）",
            "description": (rule.description or f"envmon 规则 {rule.id}：{what}")
            + "。{{ $labels.name }} {{ $labels.city }} 当前值 {{ $values.A }}",
        },
        "labels": {"severity": rule.severity, "envmon_rule": rule.id, "source": "envmon"},
        "isPaused": False,
    }
    return group, out


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(config: AlertConfig, source: str = "config/alerts.yaml") -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    for rule in config.rules:
        if not rule.enabled:
            skipped.append(f"{rule.id}: disabled")
            continue
        made = grafana_rule(rule)
        if isinstance(made, str):
            skipped.append(f"{rule.id}: {made}")
            continue
        group, grule = made
        groups.setdefault(group, []).append(grule)
    doc = {
        "apiVersion": 1,
        "groups": [
            {"orgId": 1, "name": name, "folder": FOLDER, "interval": INTERVAL, "rules": rules}
            for name, rules in sorted(groups.items())
        ],
    }
    header = [
        f"# Generated by `envmon alerts grafana` from {source} — do not edit by hand;",
        "# change the rules file and generate again (CI checks this file is up to date).",
        f"# Grafana-managed alert rules over the PostgreSQL datasource '{DATASOURCE_UID}'.",
    ]
    if skipped:
        header.append("# Not generated (envmon evaluates these itself):")
        header += [f"#   {s}" for s in skipped]
    body = yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    return "\n".join(header) + "\n" + body


def build(
    check: bool,
    *,
    rules_file: Path | None = None,
    out: Path | None = None,
    catalog: Catalog | None = None,
    stations_file: Path | None = None,
) -> bool:
    """Write the provisioning file; ``check``: raise when it is missing or stale.

    Returns True when the file was (or, with ``check``, would have been) changed.
    """
    rules_file = rules_file or Path("config/alerts.yaml")
    out = out or DEFAULT_OUT
    if catalog is None:
        catalog = load_catalog(stations_file or rules_file.parent / "stations.yaml")
    config = load_config(rules_file, catalog, require_secrets=False)
    text = render(config, f"config/{rules_file.name}")
    current = out.read_text(encoding="utf-8") if out.exists() else None
    if current == text:
        return False
    if check:
        raise AlertConfigError(
            f"{out} is out of date with {rules_file}; run 'envmon alerts grafana' and commit it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return True
