"""A small ordered-SQL migration runner with a version table.

Why not Alembic/yoyo: the schema is hand-written SQL that must run unchanged on
plain PostgreSQL and TimescaleDB, with a separate Timescale-only track; an
ordered list of ``.sql`` files, each applied once in its own transaction and
recorded with its checksum, is all that needs (see CHANGES.md).

Two tracks: ``migrations/NNNN_*.sql`` always; ``timescale/NNNN_*.sql`` only
where the ``timescaledb`` extension is installed in the database. A changed file
that was already applied is an error, not silently ignored.

Around the tracks (:mod:`envmon.db.roles` for the roles):

* TimescaleDB is created when the server can load it (available *and* in
  ``shared_preload_libraries``); available but not preloaded is one warning and
  plain PostgreSQL (or an error with ``timescaledb_required``). A database that
  was set up on plain PostgreSQL is converted: envmon's ``time_bucket`` stand-in
  is dropped, the extension created, and the Timescale track turns ``reading``
  into a compressed hypertable with its data (``migrate_data``).
* On TimescaleDB the pruning of short-lived data (0012_retention.sql) is a job
  with the configured days.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from envmon.errors import DatabaseError
from envmon.log import db_logger as logger

if TYPE_CHECKING:
    from envmon.settings import Settings

VERSION_TABLE = "schema_migration"
PRUNE_JOB = "envmon_prune_job"


@dataclass(frozen=True)
class Retention:
    """Days to keep (0 = for good); see RetentionSettings."""

    minute_days: int = 90
    rejects_days: int = 365
    alert_log_days: int = 365

    def as_config(self) -> dict[str, int]:
        return {
            "minute_days": self.minute_days,
            "rejects_days": self.rejects_days,
            "alert_log_days": self.alert_log_days,
        }


@dataclass(frozen=True)
class Options:
    """What migrate needs from the settings."""

    timescaledb_required: bool = False
    app_role: str | None = None
    app_password: str | None = None
    retention: Retention = field(default_factory=Retention)

    @classmethod
    def from_settings(cls, settings: Settings) -> Options:
        r = settings.retention
        pw = settings.database_app_password
        return cls(
            timescaledb_required=settings.timescaledb_required,
            app_role=settings.database_app_role,
            app_password=pw.get_secret_value() if pw is not None else None,
            retention=Retention(r.minute_days, r.rejects_days, r.alert_log_days),
        )


@dataclass(frozen=True)
class Migration:
    track: str  # "core" or "timescale"
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def _load(track: str, folder: str) -> list[Migration]:
    out = []
    for entry in resources.files("envmon.db").joinpath(folder).iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append(Migration(track, version, entry.name, entry.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    if len({m.version for m in out}) != len(out):
        raise DatabaseError(f"two {track} migrations share a version number")
    return out


def migrations() -> list[Migration]:
    return _load("core", "migrations") + _load("timescale", "timescale")


def timescale_available(conn: psycopg.Connection[object]) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def timescale_installed(conn: psycopg.Connection[object]) -> bool:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row is not None


def timescale_preloaded(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    libs = str(row[0]) if row else ""
    return "timescaledb" in {x.strip().strip('"') for x in libs.split(",")}


# envmon's own time_bucket() functions (0001_core.sql), not the extension's.
_STAND_INS = """
SELECT p.oid::regprocedure::text FROM pg_proc p
WHERE p.proname = 'time_bucket' AND p.pronamespace = current_schema()::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
"""


def _refuse_or_warn(message: str, options: Options) -> list[str]:
    if options.timescaledb_required:
        raise DatabaseError(f"{message}; TimescaleDB is required (ENVMON_TIMESCALEDB_REQUIRED)")
    logger.warning("%s: carrying on as plain PostgreSQL", message)
    return []


def _ensure_timescaledb(url: str, options: Options) -> list[str]:
    """Create the extension where the server can load it; what was done, as lines.

    Its own connection: whatever happens to it (a server that kills the session on
    a failed CREATE EXTENSION), the migration's connection stays usable.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        if timescale_installed(conn):
            return []
        if not timescale_available(conn):
            if options.timescaledb_required:
                return _refuse_or_warn(
                    "this PostgreSQL server has no timescaledb extension", options
                )
            return []
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if not (row and row[0]):
            return _refuse_or_warn(
                "TimescaleDB is available on this server but only a superuser can create it "
                "(run envmon migrate once as an administrator)",
                options,
            )
        if not timescale_preloaded(conn):
            return _refuse_or_warn(
                "TimescaleDB is installed on this server but not preloaded "
                "(add timescaledb to shared_preload_libraries and restart PostgreSQL)",
                options,
            )
        try:
            with conn.transaction():
                stand_ins = [str(r[0]) for r in conn.execute(_STAND_INS).fetchall()]
                for fn in stand_ins:  # they would block the extension's own time_bucket
                    conn.execute(sql.SQL("DROP FUNCTION {}").format(sql.SQL(fn)))
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as err:
            return _refuse_or_warn(f"TimescaleDB could not be created ({err})", options)
        row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
        line = f"timescaledb {row[0] if row else '?'}: extension created"
        if stand_ins:
            line += " (envmon's time_bucket stand-in replaced by TimescaleDB's)"
        logger.info("%s", line)
        return [line]


def _schedule_pruning(conn: psycopg.Connection[Any], retention: Retention) -> None:
    """TimescaleDB: the pruning job exists, once, with the configured days."""
    config = retention.as_config()
    row = conn.execute(
        "SELECT job_id, config FROM timescaledb_information.jobs WHERE proc_name = %s"
        " AND proc_schema = current_schema() ORDER BY job_id LIMIT 1",
        (PRUNE_JOB,),
    ).fetchone()
    if row is None:
        conn.execute(
            "SELECT add_job(%s::regproc, interval '1 day', config => %s)",
            (PRUNE_JOB, Jsonb(config)),
        )
    elif row[1] != config:
        try:
            with conn.transaction():
                conn.execute("SELECT alter_job(%s, config => %s)", (row[0], Jsonb(config)))
        except psycopg.errors.InsufficientPrivilege as err:
            logger.warning(
                "retention days not changed (%s): run envmon migrate as the job's owner",
                str(err).splitlines()[0],
            )


def _hypertable_summary(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE is_compressed)"
        " FROM timescaledb_information.chunks WHERE hypertable_name = 'reading'"
    ).fetchone()
    chunks, compressed = (int(row[0]), int(row[1])) if row else (0, 0)
    return (
        f"reading is a TimescaleDB hypertable: {chunks} chunk(s) ({compressed} compressed);"
        " compression after 30 days and pruning are scheduled TimescaleDB jobs"
    )


def migrate(url: str, options: Options | None = None) -> list[str]:
    """Apply what is missing; returns what was done now (migration names, conversions)."""
    from envmon.db import roles

    options = options or Options()
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        # One migrator at a time (several workers may start together).
        conn.execute("SELECT pg_advisory_lock(hashtext('envmon.migrate'))")
        try:
            applied_now += _ensure_timescaledb(url, options)
            with_ts = timescale_installed(conn)
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (track text NOT NULL, version int NOT NULL,"
                    " name text NOT NULL, checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now(),"
                    " PRIMARY KEY (track, version))"
                ).format(sql.Identifier(VERSION_TABLE))
            )
            done = {
                (t, v): c
                for t, v, c in conn.execute(
                    sql.SQL("SELECT track, version, checksum FROM {}").format(
                        sql.Identifier(VERSION_TABLE)
                    )
                ).fetchall()
            }
            converted = False
            for m in migrations():
                if m.track == "timescale" and not with_ts:
                    continue
                key = (m.track, m.version)
                if key in done:
                    if done[key] != m.checksum:
                        raise DatabaseError(
                            f"migration {m.track}/{m.name} was changed after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {} (track, version, name, checksum)"
                            " VALUES (%s, %s, %s, %s)"
                        ).format(sql.Identifier(VERSION_TABLE)),
                        (m.track, m.version, m.name, m.checksum),
                    )
                logger.info("migration applied track=%s name=%s", m.track, m.name)
                applied_now.append(f"{m.track}/{m.name}")
                converted |= m.track == "timescale" and m.version == 1 and bool(done)
            if with_ts:
                _schedule_pruning(conn, options.retention)
                if converted:
                    applied_now.append(_hypertable_summary(conn))
            applied_now += roles.apply(conn, options.app_role, options.app_password)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('envmon.migrate'))")
    return applied_now
