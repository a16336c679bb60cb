"""Test harness: a real, throwaway PostgreSQL cluster per test session.

It is started from the system's server binaries (never a mock), unless
``ENVMON_TEST_DSN`` names an existing server, in which case fresh databases are
created on that server. Each test that asks for ``db_url`` gets its own
database, cloned from a migrated template in a few milliseconds.

``ENVMON_TEST_TIMESCALE`` picks the store: ``auto`` (default) preloads TimescaleDB
when the server binaries have it; ``on`` requires it (the run fails without it);
``off`` runs on plain PostgreSQL even where TimescaleDB is installed. ``.ci/run``
runs the suite with ``on`` and the database tests again with ``off``;
``--db-only`` keeps just the tests that use the database.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from envmon.db import migrate
from envmon.db.embedded import EmbeddedCluster, find_bindir, free_port, has_timescaledb

TEMPLATE = "envmon_test_template"
REPO = Path(__file__).resolve().parents[1]
_counter = itertools.count(1)
_DB_FIXTURES = {"pg_cluster", "admin_dsn", "template_db", "db_url", "timescale"}


def timescale_mode() -> str:
    mode = os.environ.get("ENVMON_TEST_TIMESCALE", "auto").strip().lower()
    if mode not in {"auto", "on", "off"}:
        raise pytest.UsageError(f"ENVMON_TEST_TIMESCALE={mode!r}: use auto, on or off")
    return mode


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db-only",
        action="store_true",
        help="run only the tests that use the database (the plain-PostgreSQL pass of CI)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--db-only"):
        return
    keep = [i for i in items if _DB_FIXTURES & set(getattr(i, "fixturenames", ()))]
    drop = [i for i in items if i not in keep]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config: pytest.Config) -> str:
    return f"envmon store: ENVMON_TEST_TIMESCALE={timescale_mode()}"


def _with_db(dsn: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=name)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedCluster | None]:
    """The session's own cluster (None when ENVMON_TEST_DSN names a server)."""
    if os.environ.get("ENVMON_TEST_DSN"):
        yield None
        return
    mode = timescale_mode()
    if mode == "on" and not has_timescaledb(find_bindir()):
        pytest.exit("ENVMON_TEST_TIMESCALE=on, but this PostgreSQL has no timescaledb", 2)
    root = Path(tempfile.mkdtemp(prefix="envmon-test-pg-"))
    cluster = EmbeddedCluster(
        root,
        free_port(),
        # Throwaway data: durability off for speed (never used for the embedded default).
        # Autovacuum off too: on a loaded host a worker could sit on the template database
        # past CREATE DATABASE … TEMPLATE's 5 s wait ("being accessed by other users").
        tuning=(
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "autovacuum = off",
        ),
        timescaledb=None if mode == "auto" else mode == "on",
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def admin_dsn(pg_cluster: EmbeddedCluster | None) -> str:
    if pg_cluster is None:
        return os.environ["ENVMON_TEST_DSN"]
    return pg_cluster.url("postgres")


@pytest.fixture(scope="session")
def template_db(admin_dsn: str) -> str:
    drop_template(admin_dsn, TEMPLATE)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    url = _with_db(admin_dsn, TEMPLATE)
    migrate.migrate(url)
    if timescale_mode() == "on":
        with psycopg.connect(url) as conn:
            assert migrate.timescale_installed(conn), "ENVMON_TEST_TIMESCALE=on: no extension"
    close_template(admin_dsn, TEMPLATE)
    return TEMPLATE


def close_template(admin_dsn: str, name: str) -> None:
    """Make ``name`` a template nobody connects to.

    TimescaleDB's scheduler connects to every database with the extension, and a
    clone needs its template free of sessions: a template that takes no
    connections is skipped by the scheduler (../shared/timescaledb/README.md).
    Every database the tests clone goes through this once it is filled.
    """
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(name)
            )
        )
        # A closed connection's backend may linger a moment on a loaded host.
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.05)


def drop_template(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(
                sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name))
            )
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def db_url(admin_dsn: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"envmon_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    yield _with_db(admin_dsn, name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def timescale(db_url: str) -> str:
    """A database with TimescaleDB; skipped, with the reason, where the server lacks it."""
    with psycopg.connect(db_url) as conn:
        if not migrate.timescale_installed(conn):
            if timescale_mode() == "on":
                pytest.fail("ENVMON_TEST_TIMESCALE=on, but the test database has no timescaledb")
            pytest.skip("this PostgreSQL server has no timescaledb extension (or it is off)")
    return db_url
