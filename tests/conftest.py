"""Test harness: a real, throwaway PostgreSQL cluster per test session.

It is started from the system's server binaries (never a mock), unless
``ENVMON_TEST_DSN`` names an existing server, in which case fresh databases are
created on that server. Each test that asks for ``db_url`` gets its own
database, cloned from a migrated template in a few milliseconds.
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
from envmon.db.embedded import EmbeddedCluster, free_port

TEMPLATE = "envmon_test_template"
REPO = Path(__file__).resolve().parents[1]
_counter = itertools.count(1)


def _with_db(dsn: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=name)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedCluster | None]:
    """The session's own cluster (None when ENVMON_TEST_DSN names a server)."""
    if os.environ.get("ENVMON_TEST_DSN"):
        yield None
        return
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
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    url = _with_db(admin_dsn, TEMPLATE)
    migrate.migrate(url)
    wait_until_unused(admin_dsn, TEMPLATE)
    return TEMPLATE


def wait_until_unused(admin_dsn: str, name: str, timeout_s: float = 30.0) -> None:
    """Close ``name`` to new connections and wait for its sessions to end.

    CREATE DATABASE … TEMPLATE refuses a template with a session: TimescaleDB's
    background-worker scheduler connects to every database with the extension
    (it was seen holding the template), and a closed connection's backend may
    linger a moment on a loaded host. The template then takes no new connection.
    """
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.05)


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
            pytest.skip("this PostgreSQL server has no timescaledb extension")
    return db_url
