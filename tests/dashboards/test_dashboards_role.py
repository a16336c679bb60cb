"""grafana_reader (migration 0006): SELECT on exactly what the panels read, nothing else."""

from __future__ import annotations

import re
from importlib import resources

import psycopg
import pytest

from envmon.dashboards.boards import READ_TABLES, all_boards
from envmon.evaluate.targets import load_targets

from .conftest import REPO

ROLE = "grafana_reader"


def _granted(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, set[str]]:
    rows = conn.execute(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
        " WHERE grantee = %s AND table_schema = current_schema()",  # not TimescaleDB's internals
        (ROLE,),
    ).fetchall()
    out: dict[str, set[str]] = {}
    for table, privilege in rows:
        out.setdefault(str(table), set()).add(str(privilege))
    return out


def _tables(conn: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    return {str(r[0]) for r in rows}


def _panel_sql() -> list[str]:
    targets = load_targets(REPO / "config" / "targets.yaml")
    out: list[str] = []
    for board in all_boards(targets):
        out += [q.sql for p in board.panels for q in p.queries]
        model = board.builder.build()
        for var in (model.templating.list_val if model.templating else None) or []:
            if var.type_val == "query" and isinstance(var.query, str):
                out.append(var.query)
    return out


def test_reader_gets_select_on_exactly_the_tables_the_panels_read(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        tables = _tables(conn)
        granted = _granted(conn)
        role = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication"
            " FROM pg_roles WHERE rolname = %s",
            (ROLE,),
        ).fetchone()
    assert role == (True, False, False, False, False)
    expected = set(READ_TABLES) & tables
    assert granted == {t: {"SELECT"} for t in expected}
    # What the panels and variables read, found in their SQL, is what is granted.
    read: set[str] = set()
    for sql in _panel_sql():
        read |= {m for m in re.findall(r"\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)", sql)}
    assert read & tables == expected


def test_reader_cannot_write_or_read_anything_else(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("SET ROLE grafana_reader")
        assert conn.execute("SELECT count(*) FROM station").fetchone() is not None
        for sql in (
            "INSERT INTO station (id, kind, name, city, county, lon, lat, control_level)"
            " VALUES ('x', 'air', 'x', 'x', 'x', 112, 38, 'national')",
            "DELETE FROM reading",
            "UPDATE rejected SET reason = 'x'",
            "SELECT * FROM derive_dirty",
            "SELECT * FROM schema_migration",
            "TRUNCATE air_day",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
            conn.rollback()
            conn.execute("SET ROLE grafana_reader")


def _role_settings(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    row = conn.execute(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
        " JOIN pg_database d ON d.oid = s.setdatabase"
        " WHERE r.rolname = %s AND d.datname = current_database()",
        (ROLE,),
    ).fetchone()
    return list(row[0]) if row else []  # type: ignore[call-overload]


def test_migration_can_run_again(db_url: str) -> None:
    """Idempotent; and it sets the role's defaults for the database it runs in (a test
    database is a clone of the migrated template, which does not copy role settings)."""
    text = (
        resources.files("envmon.db")
        .joinpath("migrations", "0006_grafana_reader.sql")
        .read_text(encoding="utf-8")
    )
    # 0006 revokes and re-grants its list; the review tables of 0014 (issue 14) are
    # granted by 0014, whose grant block runs after it as in a fresh migration.
    later = (
        resources.files("envmon.db")
        .joinpath("migrations", "0014_revision_review.sql")
        .read_text(encoding="utf-8")
        .split("-- The data-health dashboard reads the revision and review counts.")[1]
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        before = _granted(conn)
        conn.execute(text.encode())
        conn.execute(text.encode())
        conn.execute(later.encode())
        assert _granted(conn) == before
        assert {"default_transaction_read_only=on", "statement_timeout=30s"} <= set(
            _role_settings(conn)
        )
