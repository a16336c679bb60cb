"""A small ordered-SQL migration runner with a version table.

Why not Alembic/yoyo: the schema is hand-written SQL that must run unchanged on
plain PostgreSQL and TimescaleDB, with a separate Timescale-only track; an
ordered list of ``.sql`` files, each applied once in its own transaction and
recorded with its checksum, is all that needs (see CHANGES.md).

Two tracks: ``migrations/NNNN_*.sql`` always; ``timescale/NNNN_*.sql`` only
where the ``timescaledb`` extension is available. A changed file that was
already applied is an error, not silently ignored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from envmon.errors import DatabaseError
from envmon.log import db_logger as logger

VERSION_TABLE = "schema_migration"


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


def migrate(url: str) -> list[str]:
    """Apply what is missing; returns the names applied now."""
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        # One migrator at a time (several workers may start together).
        conn.execute("SELECT pg_advisory_lock(hashtext('envmon.migrate'))")
        try:
            if timescale_available(conn) and not timescale_installed(conn):
                try:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                except psycopg.Error as err:  # available but not preloaded
                    logger.warning("timescaledb is available but could not be created: %s", err)
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
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('envmon.migrate'))")
    return applied_now
