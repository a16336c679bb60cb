"""One alert owner across instances: the stored batches of every instance reach it.

Several ``envmon run`` share one database (docs/scaling.md); alerts are
judged by one of them, the holder of the advisory lock ``envmon.alerts``
(:class:`envmon.db.ownership.Ownership`). The others judge nothing: each
batch their writer stores carries its recent rows to the owner with ``NOTIFY
envmon_alerts`` in the same transaction (PostgreSQL delivers notifications on
commit, in commit order, to the sessions listening then; never for a
transaction rolled back), so a batch is forwarded exactly when it is
stored. The owner judges its own batches in-process, as a single instance
does, and the forwarded ones as they arrive — the on-call latency stays one database round trip.

Nothing is lost when the owner changes: the owner regularly sends itself a
*mark* through the same channel; when the mark comes back, every batch
forwarded before it was judged, and the mark's database time is stored as
the *watermark* (``alert_owner.judged_until``). An instance that takes the
lock over (the owner was stopped or killed: its session ended) first listens,
then restores the persisted episodes, then *catches up*: it judges every
reading stored since the watermark, less a margin for the writers'
transactions still open then (a reading's ``received_at`` is its
transaction's start). Rows judged twice are harmless: an open episode is
restored (and unique in ``alert_event``), a notice is unique per episode,
kind and channel, and a subject whose episode ended is not judged again on
data older than its end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

from envmon.alerts.scheduled import LOOKBACK_S
from envmon.db.writer import Pool
from envmon.schemas.readings import ReadingBatch
from envmon.timeutil import now as clock_now

logger = logging.getLogger(__name__)

CHANNEL: Final = "envmon_alerts"
NAMESPACE: Final = "envmon.alerts"  # the advisory lock's namespace (Ownership)
OWNER: Final = "owner"  # the one name held in it
MAX_PAYLOAD: Final = 7000  # bytes of one notification (PostgreSQL's limit is 8000)
_MARK: Final = "mark:"
_PAGE: Final = 20_000  # rows per batch of a catch-up


def announcement(batch: ReadingBatch, instance: str) -> list[tuple[str, str]]:
    """What a writer NOTIFYs in the transaction storing ``batch`` so that the
    alert owner judges it (:attr:`envmon.db.writer.Writer.announce`)."""
    return [(CHANNEL, p) for p in encode(batch, instance, clock_now().timestamp())]


def encode(batch: ReadingBatch, instance: str, now_s: float) -> list[str]:
    """The batch's recent rows as notification payloads of at most :data:`MAX_PAYLOAD` bytes.

    Rows older than :data:`~envmon.alerts.scheduled.LOOKBACK_S` are history for
    every rule (the engine drops them too): they are not sent.
    """
    ts_s = batch.ts.astype("datetime64[s]").astype(np.int64)
    keep = np.flatnonzero(ts_s >= now_s - LOOKBACK_S)
    if not len(keep):
        return []
    rows = zip(
        batch.station_id[keep].tolist(),
        batch.parameter[keep].tolist(),
        batch.period[keep].tolist(),
        ts_s[keep].tolist(),
        batch.value[keep].tolist(),
        batch.flag[keep].tolist(),
        strict=True,
    )
    head = json.dumps({"i": instance, "s": batch.source, "r": []}, ensure_ascii=False)
    room = MAX_PAYLOAD - len(head.encode())
    out: list[str] = []
    part: list[str] = []
    size = 0
    for row in rows:
        text = json.dumps(list(row), ensure_ascii=False, separators=(",", ":"))
        n = len(text.encode()) + 1
        if part and size + n > room:
            out.append(_payload(instance, batch.source, part))
            part, size = [], 0
        part.append(text)
        size += n
    if part:
        out.append(_payload(instance, batch.source, part))
    return out


def _payload(instance: str, source: str, rows: list[str]) -> str:
    head = json.dumps({"i": instance, "s": source}, ensure_ascii=False)[:-1]
    return head + ',"r":[' + ",".join(rows) + "]}"


def decode(payload: str) -> ReadingBatch:
    """A forwarded batch back (see :func:`encode`)."""
    doc = json.loads(payload)
    return _batch(str(doc["s"]), doc["r"])


def mark_time(payload: str) -> datetime | None:
    """The database time of an owner's mark; None for a forwarded batch."""
    if not payload.startswith(_MARK):
        return None
    return datetime.fromisoformat(payload[len(_MARK) :])


async def send_mark(conn: AsyncConnection[TupleRow]) -> None:
    """A mark through the channel, carrying the database's time (see the module docstring)."""
    await conn.execute(
        "SELECT pg_notify(%s, %s || to_char(now() AT TIME ZONE 'UTC',"
        ' \'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\'))',
        (CHANNEL, _MARK),
    )


async def listen(conninfo: str) -> AsyncConnection[TupleRow]:
    """A dedicated session listening on the channel (autocommit)."""
    conn = await AsyncConnection.connect(
        conninfo, autocommit=True, application_name="envmon alerts listener"
    )
    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
    return conn


async def save_watermark(pool: Pool, instance: str, judged_until: datetime) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO alert_owner (id, instance, judged_until, updated_at)"
            " VALUES (true, %s, %s, now()) ON CONFLICT (id) DO UPDATE"
            " SET instance = EXCLUDED.instance,"
            " judged_until = greatest(alert_owner.judged_until, EXCLUDED.judged_until),"
            " updated_at = now()",
            (instance, judged_until),
        )


async def load_watermark(conn: AsyncConnection[TupleRow]) -> tuple[str, datetime] | None:
    """The last owner and how far it judged; None before any owner ran."""
    cur = await conn.execute("SELECT instance, judged_until FROM alert_owner")
    row = await cur.fetchone()
    return None if row is None else (str(row[0]), row[1])


async def stored_since(pool: Pool, since: datetime, now: datetime) -> AsyncIterator[ReadingBatch]:
    """Readings stored (inserted or changed) since ``since`` whose time is recent enough
    to alert on, oldest arrival first, in batches of one source."""
    async with (
        pool.connection() as conn,
        conn.transaction(),
        conn.cursor("alert_catch_up") as cur,
    ):
        await cur.execute(
            "SELECT station_id, parameter, period, extract(epoch FROM ts)::bigint, value, flag,"
            " source FROM reading WHERE received_at >= %s AND ts >= %s"
            " ORDER BY received_at, source",
            (since, now - timedelta(seconds=LOOKBACK_S)),
        )
        while rows := await cur.fetchmany(_PAGE):
            start = 0
            for i in range(1, len(rows) + 1):
                if i == len(rows) or rows[i][6] != rows[start][6]:
                    yield _batch(str(rows[start][6]), rows[start:i])
                    start = i


def _batch(source: str, rows: Sequence[Sequence[Any]]) -> ReadingBatch:
    """Rows of (station, parameter, period, epoch seconds, value, flag, …) as a batch."""
    return ReadingBatch(
        source,
        np.array([r[0] for r in rows], dtype=object),
        np.array([r[1] for r in rows], dtype=object),
        np.array([r[2] for r in rows], dtype=object),
        np.array([int(r[3]) for r in rows], dtype="datetime64[s]").astype("datetime64[us]"),
        np.array([float(r[4]) for r in rows], dtype=np.float64),
        np.array([r[5] for r in rows], dtype=object),
    )
