"""What loggers say about themselves: 3019/3020 device information and logs,
2013 raw data — stored in ``hj212_device_info`` / ``hj212_device_event``
(migration 0007) instead of being dropped.

The session turns such an upload into a :class:`DeviceRecord`; the receiver
hands the records to a :class:`RecordStore`, which writes them in batches
next to (not inside) the readings' pipeline: they are few, and a failure to
write them must never hold up the readings.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .codec import CpData

logger = logging.getLogger(__name__)

INFO_CNS: Final = frozenset({"3019", "3020"})
RECORD_CNS: Final = INFO_CNS | {"2013"}
_MAX_HELD: Final = 10_000

_INFO = """
INSERT INTO hj212_device_info AS d (station_id, pol_id, info_id, value, data_time, mn)
SELECT * FROM unnest(%(station)s::text[], %(pol)s::text[], %(info)s::text[], %(value)s::text[],
                     %(ts)s::timestamptz[], %(mn)s::text[])
ON CONFLICT (station_id, pol_id, info_id) DO UPDATE
    SET value = EXCLUDED.value, data_time = EXCLUDED.data_time, mn = EXCLUDED.mn,
        updated_at = now()
    WHERE d.data_time IS NULL OR EXCLUDED.data_time IS NULL OR EXCLUDED.data_time >= d.data_time
"""
_EVENT = """
INSERT INTO hj212_device_event (station_id, mn, cn, data_time, items, raw)
SELECT * FROM unnest(%(station)s::text[], %(mn)s::text[], %(cn)s::text[],
                     %(ts)s::timestamptz[], %(items)s::jsonb[], %(raw)s::text[])
"""


def cp_items(cp: CpData) -> list[tuple[str, str]]:
    """Every ``key=value`` of the CP area in order, repeated keys included
    (3020 sends one ``PolId`` group after another); list values joined by ','."""
    items: list[tuple[str, str]] = []
    for item in cp.raw.split(";"):
        for part in item.split(","):
            key, sep, value = part.strip().partition("=")
            if sep:
                items.append((key.strip(), value.strip()))
            elif key and items:
                items[-1] = (items[-1][0], f"{items[-1][1]},{key.strip()}")
    return items


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One 3019/3020/2013 upload of an authenticated device."""

    station_id: str
    mn: str
    cn: str
    data_time: datetime | None
    items: tuple[tuple[str, str], ...]  # every key=value in order
    raw: str

    def info(self) -> list[tuple[str, str, str]]:
        """(PolId, info id, value) of a 3019/3020: ``xxxxxx-Info`` / ``-SN`` items,
        each under the ``PolId`` that precedes it ('' for the logger itself)."""
        if self.cn not in INFO_CNS:
            return []
        pol = ""
        out: list[tuple[str, str, str]] = []
        for key, value in self.items:
            if key == "PolId":
                pol = value
            elif key.endswith(("-Info", "-SN")):
                out.append((pol, key, value))
        return out


class RecordStore:
    """Device records → the database, in batches (``flush``)."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool
        self._held: list[DeviceRecord] = []
        self.written = 0

    def put(self, records: list[DeviceRecord]) -> None:
        self._held.extend(records)
        if len(self._held) > _MAX_HELD:
            dropped = len(self._held) - _MAX_HELD
            del self._held[:dropped]
            logger.warning("hj212 device records dropped=%d (database unavailable)", dropped)

    async def flush(self) -> None:
        if not self._held:
            return
        held, self._held = self._held, []
        info = [(r, pol, key, value) for r in held for pol, key, value in r.info()]
        try:
            async with self.pool.connection(timeout=10.0) as conn, conn.transaction():
                if info:
                    await conn.execute(
                        _INFO,
                        {
                            "station": [r.station_id for r, *_ in info],
                            "pol": [pol for _, pol, _, _ in info],
                            "info": [key for _, _, key, _ in info],
                            "value": [value for *_, value in info],
                            "ts": [r.data_time for r, *_ in info],
                            "mn": [r.mn for r, *_ in info],
                        },
                    )
                await conn.execute(
                    _EVENT,
                    {
                        "station": [r.station_id for r in held],
                        "mn": [r.mn for r in held],
                        "cn": [r.cn for r in held],
                        "ts": [r.data_time for r in held],
                        "items": [json.dumps([list(i) for i in r.items]) for r in held],
                        "raw": [r.raw for r in held],
                    },
                )
            self.written += len(held)
        except (psycopg.OperationalError, PoolTimeout) as err:
            # The database is away: kept for the next flush (bounded by _MAX_HELD).
            logger.warning("hj212 device records not written count=%d: %s", len(held), err)
            self._held[:0] = held
        except psycopg.Error as err:
            logger.warning("hj212 device records dropped count=%d: %s", len(held), err)
