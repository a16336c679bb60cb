"""Loading the station catalog and the parameter table into the database."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from envmon.catalog import Catalog
from envmon.parameters import PARAMETERS

STATION_COLUMNS = (
    "id",
    "kind",
    "name",
    "city",
    "county",
    "lon",
    "lat",
    "elevation_m",
    "control_level",
    "assessed",
    "verified",
    "river",
    "basin",
    "waterbody",
    "target_class",
    "mn",
    "station_no",
    "active",
    "notes",
    "evaluation_point",
    "clean_control",
    "not_monitored",
    "source",
)

_UPSERT_STATION = (
    "INSERT INTO station ({cols}, updated_at) VALUES ({ph}, now()) "
    "ON CONFLICT (id) DO UPDATE SET {sets}, updated_at = now() "
    "WHERE ({old}) IS DISTINCT FROM ({new}) "
    "RETURNING (xmax = 0)"
).format(
    cols=", ".join(STATION_COLUMNS),
    ph=", ".join(["%s"] * len(STATION_COLUMNS)),
    sets=", ".join(f"{c} = EXCLUDED.{c}" for c in STATION_COLUMNS[1:]),
    old=", ".join(f"station.{c}" for c in STATION_COLUMNS[1:]),
    new=", ".join(f"EXCLUDED.{c}" for c in STATION_COLUMNS[1:]),
)


@dataclass
class SyncResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0


async def sync_parameters(conn: AsyncConnection[TupleRow]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO parameter (code, hj212_code, name, unit, kind, low, high)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (code) DO UPDATE SET hj212_code = EXCLUDED.hj212_code,"
            " name = EXCLUDED.name, unit = EXCLUDED.unit, kind = EXCLUDED.kind,"
            " low = EXCLUDED.low, high = EXCLUDED.high",
            [(p.code, p.hj212 or None, p.name, p.unit, p.kind, p.low, p.high) for p in PARAMETERS],
        )


async def sync_catalog(conn: AsyncConnection[TupleRow], catalog: Catalog) -> SyncResult:
    """Upsert every station; stations no longer in the file are deactivated, never deleted
    (their readings stay valid history)."""
    result = SyncResult()
    async with conn.transaction():
        await sync_parameters(conn)
        # MNs move between stations when a logger is swapped: clear the ones
        # about to be reassigned so the unique constraint holds mid-update.
        new_mn = {s.mn: s.id for s in catalog.stations if s.mn}
        await conn.execute(
            "UPDATE station SET mn = NULL WHERE mn = ANY(%s) AND id <> ALL(%s)",
            (list(new_mn), list(new_mn.values())),
        )
        async with conn.cursor() as cur:
            for s in catalog.stations:
                await cur.execute(
                    _UPSERT_STATION,
                    tuple(getattr(s, c) for c in STATION_COLUMNS),
                )
                row = await cur.fetchone()
                if row is None:
                    result.unchanged += 1
                elif row[0]:
                    result.inserted += 1
                else:
                    result.updated += 1
            await cur.execute(
                "UPDATE station SET active = false, updated_at = now()"
                " WHERE active AND id <> ALL(%s)",
                ([s.id for s in catalog.stations],),
            )
            result.deactivated = cur.rowcount
    return result
