"""Episodes in the database: ``alert_event`` and the notification outbox.

Every transition (fired, escalated, resolved, announced after a silence) is
written together with its notifications in one transaction: either both are
stored or neither, so a restart in the middle of an episode neither loses a
notification (it is still pending in the outbox) nor repeats one (the episode
says it was announced, the outbox row says it was sent).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from envmon.alerts.message import Message
from envmon.alerts.model import Episode, Notice, NoticeKind, Transition
from envmon.alerts.tracker import Silence, silenced_by

Conn = AsyncConnection[TupleRow]

_COLUMNS = (
    "id, rule, subject, station_id, city, severity, state, route, started_at, first_ts,"
    " escalated_at, resolved_at, acked_at, acked_by, parameter, unit, value, threshold,"
    " last_value, last_ts, message, details, silenced, notified, flapping, clearing_since"
)

_INSERT = """
INSERT INTO alert_event (rule, subject, station_id, city, severity, state, route, started_at,
    first_ts, escalated_at, resolved_at, parameter, unit, value, threshold, last_value, last_ts,
    message, details, silenced, notified, flapping, clearing_since)
VALUES (%(rule)s, %(subject)s, %(station_id)s, %(city)s, %(severity)s, %(state)s, %(route)s,
    %(started_at)s, %(first_ts)s, %(escalated_at)s, %(resolved_at)s, %(parameter)s, %(unit)s,
    %(value)s, %(threshold)s, %(last_value)s, %(last_ts)s, %(message)s, %(details)s,
    %(silenced)s, %(notified)s, %(flapping)s, %(clearing_since)s)
ON CONFLICT (rule, subject) WHERE resolved_at IS NULL DO NOTHING
RETURNING id
"""

_UPDATE = """
UPDATE alert_event SET state = %(state)s, escalated_at = %(escalated_at)s,
    resolved_at = %(resolved_at)s, last_value = %(last_value)s, last_ts = %(last_ts)s,
    details = %(details)s, silenced = %(silenced)s, notified = %(notified)s,
    clearing_since = %(clearing_since)s, updated_at = now()
WHERE id = %(id)s
"""

# Notifications written with their transition are claimed by this process at once
# (it sends them right away); another process may take one over after the claim.
# A notice held for a digest is not claimed: the outbox sweep sends it when due.
_NOTIFY = """
INSERT INTO alert_notification (event_id, kind, channel, route, payload, next_attempt_at,
    claimed_until)
SELECT %(event)s, %(kind)s, %(channel)s, %(route)s, %(payload)s, coalesce(%(at)s, now()),
    CASE WHEN %(at)s::timestamptz IS NULL THEN now() + interval '2 minutes' END
ON CONFLICT (event_id, kind, channel) WHERE event_id IS NOT NULL DO NOTHING
RETURNING id
"""


def _params(ep: Episode) -> dict[str, Any]:
    return {
        "id": ep.id,
        "rule": ep.rule,
        "subject": ep.subject,
        "station_id": ep.station_id,
        "city": ep.city,
        "severity": ep.severity,
        "state": ep.state,
        "route": ep.route,
        "started_at": ep.started_at,
        "first_ts": ep.first_ts,
        "escalated_at": ep.escalated_at,
        "resolved_at": ep.resolved_at,
        "parameter": ep.parameter,
        "unit": ep.unit,
        "value": ep.value,
        "threshold": ep.threshold,
        "last_value": ep.last_value,
        "last_ts": ep.last_ts,
        "message": ep.message,
        "details": Jsonb(ep.details),
        "silenced": ep.silenced,
        "notified": ep.notified,
        "flapping": ep.flapping,
        "clearing_since": ep.clearing_since,
    }


def episode_from_row(r: Sequence[Any]) -> Episode:
    return Episode(
        id=r[0],
        rule=r[1],
        subject=r[2],
        station_id=r[3],
        city=r[4],
        severity=r[5],
        state=r[6],
        route=r[7],
        started_at=r[8],
        first_ts=r[9],
        escalated_at=r[10],
        resolved_at=r[11],
        acked_at=r[12],
        acked_by=r[13],
        parameter=r[14],
        unit=r[15],
        value=r[16],
        threshold=r[17],
        last_value=r[18],
        last_ts=r[19],
        message=r[20],
        details=dict(r[21] or {}),
        silenced=r[22],
        notified=r[23],
        flapping=r[24],
        clearing_since=r[25],
    )


Render = Callable[[NoticeKind, Episode], Message]


async def write(conn: Conn, transitions: Sequence[Transition], render: Render) -> list[Notice]:
    """Store the transitions and their notifications in one transaction."""
    notices: list[Notice] = []
    async with conn.transaction():
        for t in transitions:
            ep = t.episode
            if t.new:
                cur = await conn.execute(_INSERT, _params(ep))
                row = await cur.fetchone()
                if row is None:
                    # Another process (a second worker over the same stations, a
                    # restart racing its predecessor) holds this open episode and
                    # announced it: take it over instead of announcing it again.
                    cur = await conn.execute(
                        "SELECT id, started_at, notified, silenced, state, escalated_at"
                        " FROM alert_event WHERE rule = %s AND subject = %s"
                        " AND resolved_at IS NULL",
                        (ep.rule, ep.subject),
                    )
                    row = await cur.fetchone()
                    assert row is not None
                    ep.id, ep.started_at, ep.notified, ep.silenced = row[0], row[1], row[2], row[3]
                    ep.state, ep.escalated_at = row[4], row[5]
                    ep.dirty = True
                    continue
                ep.id = int(row[0])
            else:
                await conn.execute(_UPDATE, _params(ep))
            ep.dirty = False
            if t.notice is None:
                continue
            payload = render(t.notice, ep).as_payload()
            for route, channel in t.channels:
                held = t.held.get(route)
                cur = await conn.execute(
                    _NOTIFY,
                    {
                        "event": ep.id,
                        "kind": t.notice,
                        "channel": channel,
                        "route": route,
                        "payload": Jsonb(payload),
                        "at": held,
                    },
                )
                row = await cur.fetchone()
                # None: this notice was already written (a replay); held: sent when due.
                if row is not None and held is None:
                    notices.append(Notice(int(row[0]), channel, t.notice, payload, ep.id))
    return notices


async def flush_values(conn: Conn, episodes: Sequence[Episode]) -> None:
    """Bring the latest values of open episodes up to date (one statement)."""
    if not episodes:
        return
    await conn.execute(
        "UPDATE alert_event e SET last_value = u.v, last_ts = u.t, clearing_since = u.c,"
        " details = u.d, updated_at = now()"
        " FROM unnest(%s::bigint[], %s::float8[], %s::timestamptz[], %s::timestamptz[],"
        " %s::jsonb[]) AS u(id, v, t, c, d) WHERE e.id = u.id",
        (
            [e.id for e in episodes],
            [e.last_value for e in episodes],
            [e.last_ts for e in episodes],
            [e.clearing_since for e in episodes],
            [json.dumps(e.details, ensure_ascii=False) for e in episodes],
        ),
    )
    for e in episodes:
        e.dirty = False


async def load_open(conn: Conn) -> list[Episode]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM alert_event WHERE resolved_at IS NULL ORDER BY id"
    )
    return [episode_from_row(r) for r in await cur.fetchall()]


async def recent_starts(conn: Conn, since: datetime) -> list[tuple[str, str, datetime]]:
    cur = await conn.execute(
        "SELECT rule, subject, started_at FROM alert_event WHERE started_at >= %s"
        " ORDER BY started_at",
        (since,),
    )
    return [(r[0], r[1], r[2]) for r in await cur.fetchall()]


async def recent_ends(conn: Conn, since: datetime) -> list[tuple[str, str, datetime]]:
    """(rule, subject, data time of the last value) of episodes that ended since ``since``."""
    cur = await conn.execute(
        "SELECT rule, subject, max(last_ts) FROM alert_event WHERE resolved_at >= %s"
        " AND last_ts IS NOT NULL GROUP BY 1, 2",
        (since,),
    )
    return [(r[0], r[1], r[2]) for r in await cur.fetchall()]


async def active_silences(
    conn: Conn, now: datetime
) -> list[tuple[int, str | None, str | None, str | None, datetime, datetime]]:
    """Silences not over yet: (id, rule, station, city, starts, ends)."""
    cur = await conn.execute(
        "SELECT id, rule, station_id, city, starts_at, ends_at FROM alert_silence"
        " WHERE ends_at > %s ORDER BY id",
        (now,),
    )
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in await cur.fetchall()]


async def acks(conn: Conn) -> dict[int, tuple[datetime, str | None]]:
    cur = await conn.execute(
        "SELECT id, acked_at, acked_by FROM alert_event"
        " WHERE resolved_at IS NULL AND acked_at IS NOT NULL"
    )
    return {r[0]: (r[1], r[2]) for r in await cur.fetchall()}


async def ack(conn: Conn, event_id: int, by: str | None, note: str | None, at: datetime) -> bool:
    cur = await conn.execute(
        "UPDATE alert_event SET acked_at = coalesce(acked_at, %s), acked_by = coalesce(acked_by,"
        " %s), ack_note = coalesce(%s, ack_note), updated_at = now() WHERE id = %s RETURNING id",
        (at, by, note, event_id),
    )
    return await cur.fetchone() is not None


async def list_events(
    conn: Conn, *, include_resolved: bool = False, limit: int | None = 200
) -> list[Episode]:
    """Episodes, newest first; ``silenced`` is true for an open one a silence covers now."""
    where = "" if include_resolved else "WHERE resolved_at IS NULL"
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM alert_event {where} ORDER BY started_at DESC, id DESC LIMIT %s",
        (limit,),
    )
    events = [episode_from_row(r) for r in await cur.fetchall()]
    now = await _db_now(conn)
    silences = [
        Silence(r[0], r[1], r[2], r[3], r[4].timestamp(), r[5].timestamp())
        for r in await active_silences(conn, now)
    ]
    for ep in events:
        if ep.open and not ep.silenced:
            ep.silenced = silenced_by(silences, ep, now.timestamp())
    await _mark_invalidated(conn, events)
    return events


# Episodes whose readings (station, parameter, first to last data time) a review
# has invalidated since; a database without the review tables has none.
_INVALIDATED = """
SELECT e.id FROM unnest(%s::bigint[]) AS e(id)
JOIN alert_event a ON a.id = e.id
WHERE a.station_id IS NOT NULL AND a.first_ts IS NOT NULL AND EXISTS (
    SELECT 1 FROM review_mark m
    WHERE m.station_id = a.station_id AND (a.parameter IS NULL OR m.parameter = a.parameter)
      AND m.ts >= a.first_ts AND m.ts <= coalesce(a.last_ts, a.first_ts)
      AND m.restored_at IS NULL)
"""


async def _mark_invalidated(conn: Conn, events: list[Episode]) -> None:
    ids = [ep.id for ep in events if ep.id is not None]
    if not ids:
        return
    cur = await conn.execute(_INVALIDATED, (ids,))
    hit = {int(r[0]) for r in await cur.fetchall()}
    for ep in events:
        ep.data_invalidated = ep.id in hit


async def _db_now(conn: Conn) -> datetime:
    row = await (await conn.execute("SELECT now()")).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]
