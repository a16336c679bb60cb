"""Least privilege (issue 19; issue 12 item 6): envmon's runtime role is not a superuser
and owns its schema; grafana_reader reads only, creates nothing temporary, and cannot
lift its statement timeout for long. Each test tries to break what it proves."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from envmon.db import migrate
from envmon.db.connection import database_url, open_pool
from envmon.db.roles import READER_TIMEOUT_S
from envmon.db.upkeep import cancel_overrunning_readers
from envmon.db.writer import Writer
from envmon.schemas.readings import RawReading, Validator
from envmon.settings import Settings
from envmon.timeutil import BEIJING

# Every character that used to break the compose file's URL.
PASSWORD = "p@ss/w#rd%20 :x"


def _drop_role(admin_url: str, role: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        r = sql.Identifier(role)
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(r))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(r))
        conn.execute(sql.SQL("DROP ROLE {}").format(r))


async def test_runtime_role_owns_its_schema_and_is_no_superuser(
    db_url: str, tmp_path: Path
) -> None:
    role = f"envmon_app_{int(time.time() * 1000) % 10**8}"
    done = migrate.migrate(db_url, migrate.Options(app_role=role, app_password=PASSWORD))
    assert f"role {role} created (login, not a superuser)" in done
    assert any(d.startswith(f"role {role} now owns schema") for d in done)
    try:
        parts = conninfo_to_dict(db_url)
        url = f"postgresql://{role}@{parts['host']}:{parts['port']}/{parts['dbname']}"
        settings = Settings(
            database_url=SecretStr(url),
            database_password=SecretStr(PASSWORD),
            data_dir=tmp_path,
            pool_min_size=0,
        )
        app_url = database_url(settings)
        with psycopg.connect(app_url, autocommit=True) as conn:
            assert conn.execute(
                "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles"
                " WHERE rolname = current_user"
            ).fetchone() == (False, False, False)
            owners = conn.execute(
                "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class"
                " WHERE relnamespace = current_schema()::regnamespace"
                " AND relname IN ('reading', 'rejected', 'air_day', 'schema_migration')"
            ).fetchall()
            assert owners == [(role,)]
            assert conn.execute(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace"
                " WHERE oid = current_schema()::regnamespace"
            ).fetchone() == (role,)
            # The service migrates at start as this role: nothing to do, no error.
            assert migrate.migrate(app_url) == []
            for stmt in (
                "CREATE ROLE intruder",
                "CREATE DATABASE intruder",
                "ALTER ROLE CURRENT_USER SUPERUSER",
                "SELECT rolpassword FROM pg_authid",
                "COPY reading TO PROGRAM 'true'",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(stmt)
        # ... and stores readings (the writer's staging table is a temporary table).
        v = Validator({"air-a": "air"}).validate(
            [RawReading("air-a", "pm25", datetime(2025, 6, 1, tzinfo=BEIJING), 35.0)],
            "test",
        )
        async with open_pool(settings) as pool:
            result, unwritten = await Writer(pool).write_readings(v.batch)
        assert result.inserted == 1 and not unwritten
    finally:
        _drop_role(db_url, role)


def _reader_url(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER ROLE grafana_reader PASSWORD 'test-reader'")
    return make_conninfo(db_url, user="grafana_reader", password="test-reader")


async def test_grafana_reader_reads_only_and_cannot_lift_its_timeout(
    db_url: str, tmp_path: Path
) -> None:
    migrate.migrate(db_url)  # what every deployment's migrate does in its own database
    reader = _reader_url(db_url)
    with psycopg.connect(reader) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW statement_timeout").fetchone() == (f"{READER_TIMEOUT_S}s",)
        assert conn.execute("SELECT count(*) FROM station").fetchone() is not None
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM reading")
        conn.rollback()
        # A read-write transaction asked for explicitly: still no privilege.
        conn.execute("SET TRANSACTION READ WRITE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM reading")
        conn.rollback()
        for stmt in ("CREATE TEMP TABLE t (a int)", "CREATE TEMP VIEW v AS SELECT 1"):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute(stmt)
            conn.rollback()
            # Even read-write: no TEMPORARY privilege on the database.
            conn.execute("SET TRANSACTION READ WRITE")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
            conn.rollback()
        # Its own role default: refused in its read-only transactions.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("ALTER ROLE grafana_reader SET statement_timeout = 0")
        conn.rollback()
    # Lifted for the session: the service's watchdog cancels the statement anyway.
    settings = Settings(data_dir=tmp_path, pool_min_size=0)
    async with open_pool(settings, url=db_url) as pool:

        def sleep_as_reader() -> type[BaseException] | None:
            with psycopg.connect(reader, autocommit=True) as conn:
                conn.execute("SET statement_timeout = 0")
                try:
                    conn.execute("SELECT pg_sleep(60)")
                except psycopg.Error as err:
                    return type(err)
            return None

        sleeper = asyncio.ensure_future(asyncio.to_thread(sleep_as_reader))
        t0 = time.monotonic()
        cancelled = 0
        while not cancelled and time.monotonic() - t0 < 20:
            await asyncio.sleep(0.5)
            cancelled = await cancel_overrunning_readers(pool, limit_s=1.0)
        assert cancelled == 1
        assert await sleeper is psycopg.errors.QueryCanceled
        assert time.monotonic() - t0 < 20
