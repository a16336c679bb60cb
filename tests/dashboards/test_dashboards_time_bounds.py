"""Every panel query and Grafana alert rule reads a bounded time window (issue 12).

A query that reads a time-series table without a lower time bound grows with the
history: "各站最新观测" took 901 ms on a year of compressed TimescaleDB data, because
its join on ``r.ts = l.ts`` let the planner hash-join every chunk. So each
reference to a time-series table must carry, in its own ``WHERE`` or ``JOIN … ON``
(a top-level ``AND`` term, where the planner and TimescaleDB's chunk exclusion
see it before any join), a lower bound on its time column:
``col > e``, ``col >= e``, ``col = e``, ``col BETWEEN e AND …`` (or ``e < col`` …),
where ``e`` reads no column of the same ``FROM`` — a constant once Grafana has
expanded its macros (``$__timeFilter``, ``$__timeTo()``), ``now()``, or a value of
an outer query or lateral row, which the planner hands in per row.

The SQL is that of the committed dashboards, expanded by the project's port of
Grafana's variable and macro expansion (:mod:`envmon.dashboards.runner`), and
that of the generated alert rules; it is read by PostgreSQL's own parser
(``pglast``: libpg_query, the server's grammar), not by regular expressions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType

from envmon.alerts.rules import load_config
from envmon.catalog import load_catalog
from envmon.dashboards.alert_rules import render
from envmon.dashboards.boards import UIDS
from envmon.dashboards.macros import ALL_VALUE, HOUR, Variable, expand
from envmon.dashboards.runner import panel_queries
from envmon.dashboards.sql import DATASOURCE_UID

from .conftest import RANGE, REPO


@dataclass(frozen=True)
class Timed:
    """How a table is bounded in time.

    ``columns``: a lower bound on any of them bounds the scan. ``open_end``: an
    episode table, whose open episodes (this column NULL) must show however old
    they are — there is at most one open per rule and subject (alert_event's
    unique partial index ``alert_event_open_key``).
    """

    columns: tuple[str, ...]
    open_end: str | None = None


# Tables that grow with time, and the columns whose lower bound bounds a read of them:
# readings and rejects, their derived hourly/daily/monthly tables, alert episodes and
# audited dust periods (both intervals).
TIME_SERIES: dict[str, Timed] = {
    "reading": Timed(("ts",)),
    "rejected": Timed(("received_at", "ts")),
    "air_hour": Timed(("ts",)),
    "air_day": Timed(("day",)),
    "region_day": Timed(("day",)),
    "water_day": Timed(("day",)),
    "water_section_month": Timed(("month",)),
    "alert_event": Timed(("started_at", "resolved_at"), open_end="resolved_at"),
    "dust_period": Timed(("ends_at",)),
    # Issue 14: superseded versions, review actions and the review marks on readings.
    "reading_revision": Timed(("revised_at", "ts")),
    "review_action": Timed(("at",)),
    "review_mark": Timed(("ts",)),
}
# Tables that hold state, one row per station or source, not a history.
NOT_TIME_SERIES = {"station", "ingest_cursor", "source_health"}


# -- the checker ----------------------------------------------------------------------------------


def _children(node: Any) -> Iterator[Any]:
    if isinstance(node, tuple | list):
        yield from node
    elif isinstance(node, ast.Node):
        for name in type(node).__slots__:
            yield getattr(node, name)


def _walk(node: Any) -> Iterator[ast.Node]:
    """Every node below ``node``, itself included."""
    if isinstance(node, ast.Node):
        yield node
    for child in _children(node):
        if isinstance(child, ast.Node | tuple | list):
            yield from _walk(child)


@dataclass(frozen=True)
class _Rel:
    table: str
    alias: str


def _from_items(items: Any) -> Iterator[ast.Node]:
    """The relations of one FROM list and the JOIN … ON conditions between them."""
    for item in items or ():
        if isinstance(item, ast.JoinExpr):
            yield from _from_items((item.larg, item.rarg))
            yield item
        else:
            yield item


def _alias(item: ast.Node) -> str | None:
    alias = getattr(item, "alias", None)
    if alias is not None:
        return str(alias.aliasname)
    if isinstance(item, ast.RangeVar):
        return str(item.relname)
    return None


def _conjuncts(expr: Any) -> Iterator[Any]:
    if isinstance(expr, ast.BoolExpr) and expr.boolop == BoolExprType.AND_EXPR:
        for arg in expr.args:
            yield from _conjuncts(arg)
    elif expr is not None:
        yield expr


def _column(expr: Any) -> tuple[str | None, str] | None:
    """``(qualifier, column)`` of a plain column reference."""
    if not isinstance(expr, ast.ColumnRef):
        return None
    names = [f.sval for f in expr.fields if isinstance(f, ast.String)]
    if len(names) == 1:
        return None, names[0]
    if len(names) == 2:
        return names[0], names[1]
    return None


def _reads_local(expr: Any, local: set[str]) -> bool:
    """Whether ``expr`` reads a column of a relation of the same FROM (or an unqualified one)."""
    for node in _walk(expr):
        if isinstance(node, ast.SubLink):
            continue
        col = _column(node)
        if col is not None and (col[0] is None or col[0] in local):
            return True
    return False


_LOWER_LEFT = {">", ">=", "="}  # col > e
_LOWER_RIGHT = {"<", "<=", "="}  # e < col


def _bounds(term: Any, rel: _Rel, timed: Timed, local: set[str], alone: bool) -> bool:
    """Whether one AND term bounds ``rel`` from below in time."""

    def is_time(expr: Any, columns: tuple[str, ...]) -> bool:
        col = _column(expr)
        if col is None or col[1] not in columns:
            return False
        return col[0] == rel.alias or (col[0] is None and alone)

    if isinstance(term, ast.BoolExpr) and term.boolop == BoolExprType.OR_EXPR:
        return all(_bounds(arm, rel, timed, local, alone) for arm in term.args)
    if isinstance(term, ast.NullTest) and timed.open_end is not None:
        return term.nulltesttype == NullTestType.IS_NULL and is_time(term.arg, (timed.open_end,))
    if not isinstance(term, ast.A_Expr):
        return False
    op = term.name[-1].sval if term.name else ""
    if term.kind == A_Expr_Kind.AEXPR_BETWEEN:
        return is_time(term.lexpr, timed.columns) and not _reads_local(term.rexpr[0], local)
    if term.kind != A_Expr_Kind.AEXPR_OP:
        return False
    if op in _LOWER_LEFT and is_time(term.lexpr, timed.columns):
        return not _reads_local(term.rexpr, local)
    if op in _LOWER_RIGHT and is_time(term.rexpr, timed.columns):
        return not _reads_local(term.lexpr, local)
    return False


def unbounded(sql: str) -> list[str]:
    """The time-series tables ``sql`` reads without a lower time bound (``table alias``)."""
    out: list[str] = []
    for stmt in parse_sql(sql):
        for select in _walk(stmt.stmt):
            if not isinstance(select, ast.SelectStmt) or not select.fromClause:
                continue
            items = list(_from_items(select.fromClause))
            local = {a for a in map(_alias, items) if a is not None}
            terms = list(_conjuncts(select.whereClause))
            for item in items:
                if isinstance(item, ast.JoinExpr):
                    terms.extend(_conjuncts(item.quals))
            rels = [
                _Rel(str(i.relname), str(_alias(i)))
                for i in items
                if isinstance(i, ast.RangeVar) and i.relname in TIME_SERIES
            ]
            for rel in rels:
                timed = TIME_SERIES[rel.table]
                if not any(_bounds(t, rel, timed, local, len(rels) == 1) for t in terms):
                    out.append(f"{rel.table} {rel.alias}")
    return out


def tables_read(sql: str) -> set[str]:
    """Every table ``sql`` names (CTE names left out)."""
    names: set[str] = set()
    ctes: set[str] = set()
    for stmt in parse_sql(sql):
        for node in _walk(stmt.stmt):
            if isinstance(node, ast.RangeVar):
                names.add(str(node.relname))
            elif isinstance(node, ast.CommonTableExpr):
                ctes.add(str(node.ctename))
    return names - ctes


# -- what is checked: every panel target, every variable query, every alert rule -----------------


def _static_variables(dashboard: dict[str, Any]) -> dict[str, Variable]:
    """Each variable with "All" (or every option) selected; query variables get a stand-in
    value — the structure of the SQL does not depend on which stations are chosen."""
    out: dict[str, Variable] = {}
    for var in dashboard["templating"]["list"]:
        options = tuple(
            str(o["value"]) for o in var.get("options", []) if o["value"] != ALL_VALUE
        ) or ("stand-in",)
        multi, include_all = bool(var.get("multi")), bool(var.get("includeAll"))
        current: str | list[str] = (
            ALL_VALUE if include_all else list(options) if multi else options[0]
        )
        out[var["name"]] = Variable(
            var["name"],
            current,
            multi=multi,
            include_all=include_all,
            options=options,
            text=current,
        )
    return out


def _dashboard_sql() -> list[tuple[str, str]]:
    """(label, SQL) of every panel target and every query variable, expanded."""
    out: list[tuple[str, str]] = []
    for uid in UIDS:
        with (REPO / "deploy" / "grafana" / "dashboards" / f"{uid}.json").open() as f:
            dashboard = json.load(f)
        variables = _static_variables(dashboard)
        for q in panel_queries(dashboard, variables, RANGE, repeat_limit=1):
            out.append((f"{uid}#{q.panel_id}[{q.ref_id}]", q.sql))
        for var in dashboard["templating"]["list"]:
            if var["type"] == "query":
                sql = expand(var["query"], time_range=RANGE, interval_ns=HOUR, variables=variables)
                out.append((f"{uid}${var['name']}", sql))
    return out


def _alert_sql() -> list[tuple[str, str]]:
    catalog = load_catalog(REPO / "config" / "stations.yaml")
    config = load_config(REPO / "config" / "alerts.yaml", catalog, require_secrets=False)
    doc = yaml.safe_load(render(config))
    return [
        (f"alert-rule:{r['uid']}", d["model"]["rawSql"])
        for g in doc["groups"]
        for r in g["rules"]
        for d in r["data"]
        if d["datasourceUid"] == DATASOURCE_UID
    ]


DASHBOARD_SQL = _dashboard_sql()
ALERT_SQL = _alert_sql()


@pytest.mark.parametrize(
    ("label", "sql"), DASHBOARD_SQL + ALERT_SQL, ids=[x[0] for x in DASHBOARD_SQL + ALERT_SQL]
)
def test_every_query_reads_a_bounded_time_window(label: str, sql: str) -> None:
    assert not unbounded(sql), f"{label}: no lower time bound on {unbounded(sql)}\n{sql}"
    unknown = tables_read(sql) - set(TIME_SERIES) - NOT_TIME_SERIES
    assert not unknown, (
        f"{label} reads {sorted(unknown)}: say in this test whether it is a time series"
        " (and by which column it is bounded) or a table of state"
    )


def test_everything_was_checked() -> None:
    """All six dashboards, each alert-rule kind Grafana gets, and the tables that grow."""
    assert {label.split("#")[0] for label, _ in DASHBOARD_SQL if "#" in label} == set(UIDS)
    assert len(ALERT_SQL) >= 12
    read = set().union(*(tables_read(sql) for _, sql in DASHBOARD_SQL + ALERT_SQL))
    assert {"reading", "air_hour", "air_day", "region_day", "water_day", "rejected"} <= read
    rules = {label.removeprefix("alert-rule:envmon-") for label, _ in ALERT_SQL}
    assert {"pm25-hourly-high", "aqi-hourly-heavy", "water-worse-than-target"} <= rules


# -- the checker catches what it must --------------------------------------------------------------

# "各站最新观测" as it was (weather dashboard, station "All"), after expansion.
OLD_LATEST = """
SELECT s.name, l.ts, max(r.value) FILTER (WHERE r.parameter = 'air_temp')
FROM station s
CROSS JOIN LATERAL (
    SELECT max(r0.ts) AS ts FROM reading r0
    WHERE r0.station_id = s.id AND r0.parameter = 'air_temp' AND r0.period = '1h'
      AND r0.ts <= '2025-03-08T00:00:00Z') l
LEFT JOIN reading r ON r.station_id = s.id AND r.period = '1h' AND r.ts = l.ts
WHERE s.kind = 'weather'
GROUP BY s.name, l.ts"""


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (OLD_LATEST, ["reading r0", "reading r"]),
        # An upper bound alone, or a bound that reads the same row, bounds nothing.
        ("SELECT max(ts) FROM reading WHERE ts <= now()", ["reading reading"]),
        ("SELECT 1 FROM air_hour a WHERE a.ts > a.ts - interval '1 hour'", ["air_hour a"]),
        # A bound inside an OR with an unbounded arm is no bound.
        (
            "SELECT 1 FROM reading r WHERE r.ts > now() - interval '1 day' OR r.value > 0",
            ["reading r"],
        ),
        # Nor is one in the outer query, or only in a join with another table's column.
        (
            "SELECT * FROM (SELECT * FROM reading r) x WHERE x.ts > now() - interval '1 day'",
            ["reading r"],
        ),
        (
            "SELECT 1 FROM reading r JOIN air_hour a ON a.ts = r.ts"
            " WHERE a.ts > now() - interval '1 day'",
            ["reading r"],
        ),
        # A closed episode table needs a bound; an open episode does not.
        ("SELECT 1 FROM alert_event e WHERE e.started_at <= now()", ["alert_event e"]),
        ("SELECT 1 FROM alert_event e WHERE e.resolved_at IS NOT NULL", ["alert_event e"]),
        ("SELECT 1 FROM alert_event e WHERE e.resolved_at IS NULL", []),
        ("SELECT 1 FROM reading r WHERE r.ts IS NULL", ["reading r"]),
        # Bounded: Grafana's $__timeFilter, a window before the range's end, BETWEEN,
        # a bound on the left, a value of an outer (lateral) row, a CTE, a UNION arm.
        ("SELECT 1 FROM reading r WHERE r.ts BETWEEN '2025-03-01' AND '2025-03-08'", []),
        (
            "SELECT 1 FROM reading r WHERE r.station_id = 'x'"
            " AND r.ts > '2025-03-08T00:00:00Z'::timestamptz - interval '7 days'",
            [],
        ),
        ("SELECT 1 FROM water_day w WHERE '2025-03-01'::date <= w.day", []),
        (
            "SELECT 1 FROM station s CROSS JOIN LATERAL (SELECT max(d.day) FROM region_day d"
            " WHERE d.day >= make_date(s.year, 1, 1)) x",
            [],
        ),
        (
            "WITH x AS (SELECT ts FROM reading WHERE ts > now() - interval '1 hour')"
            " SELECT 1 FROM x UNION ALL SELECT 1 FROM rejected j"
            " JOIN station s ON s.id = j.station_id AND j.received_at > now() - interval '1 day'",
            [],
        ),
    ],
)
def test_the_checker_finds_unbounded_reads(sql: str, expected: list[str]) -> None:
    assert sorted(unbounded(sql)) == sorted(expected)


def test_a_table_nobody_classified_is_reported() -> None:
    assert tables_read("WITH c AS (SELECT 1) SELECT * FROM c, new_hourly_table n") == {
        "new_hourly_table"
    }
