"""Least privilege in the database (issues 12 and 19), applied by every ``envmon migrate``.

* ``grafana_reader`` (created by migration 0006): read-only and a 30 s statement
  timeout as *role* defaults (they hold in every database of the cluster, clones
  included); no temporary objects (``TEMPORARY`` on the database is revoked from
  PUBLIC and granted back only to envmon's roles). A session can still ``SET
  statement_timeout`` itself — PostgreSQL lets any role set that — so the service
  cancels reader statements that run past the limit (``envmon.db.upkeep``).
* The runtime role (``ENVMON_DATABASE_APP_ROLE``): when migrate runs as an
  administrator, it creates the role (LOGIN, not superuser, no CREATEDB/CREATEROLE),
  makes it the owner of envmon's schema and of every envmon table, sequence and
  function in it (not the extension's), and lets it cancel grafana_reader's
  statements. The service then connects as that role.

Every step is idempotent; one that needs a privilege the migrating role lacks is
skipped (the first run, as the administrator, does it).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from envmon.log import db_logger as logger

READER = "grafana_reader"
READER_TIMEOUT_S = 30

# envmon's objects in the current schema: everything but the extensions' members.
_OWNED = """
SELECT c.relkind, c.oid::regclass::text FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace
  AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype IN ('e', 'i', 'a'))
  AND pg_get_userbyid(c.relowner) <> %(role)s
UNION ALL
SELECT 'f', p.oid::regprocedure::text FROM pg_proc p
WHERE p.pronamespace = current_schema()::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
  AND pg_get_userbyid(p.proowner) <> %(role)s
"""
_ALTER = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}


def _try(conn: psycopg.Connection[Any], stmt: sql.Composed, what: str) -> bool:
    try:
        with conn.transaction():
            conn.execute(stmt)
        return True
    except psycopg.errors.InsufficientPrivilege as err:
        logger.debug("skipped (%s): %s", what, err)
        return False


def _role_exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def harden_reader(conn: psycopg.Connection[Any]) -> None:
    db = sql.Identifier(str(conn.info.dbname))
    me = sql.Identifier(str(conn.info.user))
    # No temporary objects for PUBLIC (grafana_reader among them); the migrating role
    # keeps the right explicitly (an owner has it anyway).
    _try(conn, sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(db, me), "temp grant")
    _try(conn, sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(db), "temp revoke")
    if not _role_exists(conn, READER):
        return
    r = sql.Identifier(READER)
    for stmt in (
        sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(r),
        sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
            r, sql.Literal(f"{READER_TIMEOUT_S}s")
        ),
        sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM {}").format(db, r),
    ):
        _try(conn, stmt, "grafana_reader defaults")


def ensure_app_role(conn: psycopg.Connection[Any], role: str, password: str | None) -> list[str]:
    """The runtime role owns envmon's schema and objects; returns what changed."""
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if conn.info.user == role or not (row and row[0]):
        return []  # the runtime role itself, or a role that cannot manage roles
    out: list[str] = []
    r = sql.Identifier(role)
    attrs = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
    if not _role_exists(conn, role):
        conn.execute(sql.SQL("CREATE ROLE {} ").format(r) + attrs)
        out.append(f"role {role} created (login, not a superuser)")
    else:
        conn.execute(sql.SQL("ALTER ROLE {} ").format(r) + attrs)
    if password is not None:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(r, sql.Literal(password)))
    row = conn.execute("SELECT current_schema()").fetchone()
    schema_name = str(row[0]) if row else "public"
    db = sql.Identifier(str(conn.info.dbname))
    conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, r))
    conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema_name), r))
    moved = 0
    for kind, name in conn.execute(_OWNED, {"role": role}).fetchall():
        keyword = "ROUTINE" if kind == "f" else _ALTER[str(kind)]
        conn.execute(sql.SQL(f"ALTER {keyword} {{}} OWNER TO {{}}").format(sql.SQL(str(name)), r))
        moved += 1
    if moved:
        out.append(f"role {role} now owns schema {schema_name} and {moved} envmon object(s)")
    if _role_exists(conn, READER):
        # Membership lets the service cancel grafana_reader's overrunning statements.
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(READER), r))
    return out


def apply(conn: psycopg.Connection[Any], app_role: str | None, password: str | None) -> list[str]:
    harden_reader(conn)
    if app_role:
        return ensure_app_role(conn, app_role, password)
    return []


# Statements of a role running past a limit (role name, seconds): cancelled.
CANCEL_OVERRUNNING = (
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
    " WHERE usename = %s AND state = 'active' AND pid <> pg_backend_pid()"
    " AND now() - query_start > make_interval(secs => %s)"
)
