"""The data review (审核): invalidating and restoring readings, and their history.

Official statistics rest on reviewed data: an operator marks hours invalid
(instrument fault, calibration, maintenance, abnormal values) with a reason
and a name. A mark never edits the reading: it is a row of ``review_mark``
beside it, opened by an ``invalidate`` action and closed by a ``restore``
(``review_action`` logs both), so every action is reversible and the data as
it stood at any time can be told (``envmon evaluate --as-of``). The versions a
reading went through are in ``reading_revision`` (kept by the writer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from psycopg import AsyncConnection

from envmon.catalog.model import Catalog, Station
from envmon.catalog.names import AmbiguousName, UnknownName
from envmon.errors import EnvmonError
from envmon.parameters import BY_CODE, Kind
from envmon.timeutil import BEIJING, to_beijing

Conn = AsyncConnection[Any]
Action = Literal["invalidate", "restore"]

# Readings of one reading-key (a station, parameter and hour) may come at several
# periods; a review names the hour and covers every period starting in the range.
MAX_RANGE_DAYS: Final = 366


class ReviewError(EnvmonError):
    """A review request that is refused; nothing was changed."""


@dataclass(frozen=True)
class Selector:
    """A station, a parameter and a half-open range [start, end)."""

    station: Station
    parameter: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class ActionResult:
    id: int
    action: Action
    station_id: str
    parameter: str
    start: datetime
    end: datetime
    readings: int
    reason: str
    by: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "station_id": self.station_id,
            "parameter": self.parameter,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "readings": self.readings,
            "reason": self.reason,
            "by": self.by,
            "at": self.at.isoformat(),
        }


def find_station(catalog: Catalog, text: str, kind: Kind | None = None) -> Station:
    """The station ``text`` names: its id, pinyin or Chinese name (of ``kind``)."""
    try:
        return catalog.resolve(text.strip(), kind)
    except UnknownName as err:
        raise ReviewError(f"unknown station '{text}' ({err})") from err
    except AmbiguousName as err:
        raise ReviewError(str(err)) from err


def parse_time(text: str, what: str) -> datetime:
    """An ISO time; without an offset it is Beijing time."""
    try:
        return to_beijing(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError as err:
        raise ReviewError(f"{what}: not an ISO time: '{text}'") from err


def selector(
    catalog: Catalog,
    station: str,
    parameter: str,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
) -> Selector:
    """Check a request: a known station and parameter of its kind, a real past range."""
    p = BY_CODE.get(parameter.strip().lower())
    if p is None:
        raise ReviewError(f"unknown parameter '{parameter}'")
    try:
        st = find_station(catalog, station, p.kind)
    except ReviewError:
        other = find_station(catalog, station)  # of another kind: say so
        raise ReviewError(
            f"parameter '{p.code}' is not measured at {other.kind} station '{other.id}'"
        ) from None
    if p.kind != st.kind:
        raise ReviewError(f"parameter '{p.code}' is not measured at {st.kind} station '{st.id}'")
    for t, name in ((start, "--from"), (end, "--to")):
        if t.tzinfo is None:
            raise ReviewError(f"{name} needs a time zone (or is read as Beijing time)")
    if end <= start:
        raise ReviewError(
            f"empty range: --to ({end.isoformat()}) must be after --from ({start.isoformat()})"
        )
    if start > now:
        raise ReviewError(f"range in the future: --from ({start.isoformat()}) is after now")
    if (end - start).days > MAX_RANGE_DAYS:
        raise ReviewError(f"range longer than {MAX_RANGE_DAYS} days: review a year at a time")
    return Selector(st, p.code, start, end)


_INVALIDATE = """
WITH a AS (
    INSERT INTO review_action (action, station_id, parameter, ts_from, ts_to, reason, by_name,
                               at, readings)
    VALUES ('invalidate', %(s)s, %(p)s, %(lo)s, %(hi)s, %(reason)s, %(by)s, %(at)s, 0)
    RETURNING id
), m AS (
    INSERT INTO review_mark (station_id, parameter, period, ts, invalidated_by, invalidated_at)
    SELECT r.station_id, r.parameter, r.period, r.ts, a.id, %(at)s
    FROM reading r, a
    WHERE r.station_id = %(s)s AND r.parameter = %(p)s AND r.ts >= %(lo)s AND r.ts < %(hi)s
      AND NOT EXISTS (
          SELECT 1 FROM review_mark o
          WHERE o.station_id = r.station_id AND o.parameter = r.parameter
            AND o.period = r.period AND o.ts = r.ts AND o.restored_at IS NULL)
    RETURNING ts
)
SELECT (SELECT id FROM a), count(*) FROM m
"""

_RESTORE = """
WITH a AS (
    INSERT INTO review_action (action, station_id, parameter, ts_from, ts_to, reason, by_name,
                               at, readings)
    VALUES ('restore', %(s)s, %(p)s, %(lo)s, %(hi)s, %(reason)s, %(by)s, %(at)s, 0)
    RETURNING id
), m AS (
    UPDATE review_mark o SET restored_by = a.id, restored_at = %(at)s
    FROM a
    WHERE o.station_id = %(s)s AND o.parameter = %(p)s AND o.ts >= %(lo)s AND o.ts < %(hi)s
      AND o.restored_at IS NULL
    RETURNING o.ts
)
SELECT (SELECT id FROM a), count(*) FROM m
"""

_MARK_DIRTY = """
INSERT INTO derive_dirty (station_id, day)
SELECT DISTINCT %(s)s, bj_day(d)
FROM generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - interval '1 microsecond',
                     interval '1 hour') AS d
ON CONFLICT (station_id, day) DO UPDATE SET marked_at = now()
"""


async def apply(
    conn: Conn,
    action: Action,
    sel: Selector,
    *,
    reason: str,
    by: str,
    at: datetime | None = None,
) -> ActionResult:
    """Invalidate or restore the readings ``sel`` covers, in one transaction.

    The action is logged even when it covers no reading (so that the log
    tells what a reviewer asked for); the touched station-days are queued for
    the derived tables.
    """
    reason, by = reason.strip(), by.strip()
    if not reason:
        raise ReviewError("a review needs a reason (--reason)")
    if not by:
        raise ReviewError("a review needs the reviewer's name (--by)")
    params = {
        "s": sel.station.id,
        "p": sel.parameter,
        "lo": sel.start,
        "hi": sel.end,
        "reason": reason,
        "by": by,
    }
    async with conn.transaction():
        if at is None:
            cur = await conn.execute("SELECT now()")
            row0 = await cur.fetchone()
            assert row0 is not None
            at = row0[0]
        params["at"] = at
        cur = await conn.execute(_INVALIDATE if action == "invalidate" else _RESTORE, params)
        row = await cur.fetchone()
        assert row is not None
        action_id, n = int(row[0]), int(row[1])
        await conn.execute("UPDATE review_action SET readings = %s WHERE id = %s", (n, action_id))
        if n:
            await conn.execute(_MARK_DIRTY, params)
    assert at is not None
    return ActionResult(
        action_id, action, sel.station.id, sel.parameter, sel.start, sel.end, n, reason, by, at
    )


_HISTORY = """
SELECT 'version' AS kind, received_at AS at, period, value, flag, source, reason, new_source,
       NULL::text AS by_name, NULL::bigint AS action_id, revised_at
FROM reading_revision
WHERE station_id = %(s)s AND parameter = %(p)s AND ts = %(t)s
UNION ALL
SELECT 'version', received_at, period, value, flag, source, NULL, NULL, NULL, NULL, NULL
FROM reading
WHERE station_id = %(s)s AND parameter = %(p)s AND ts = %(t)s
UNION ALL
SELECT a.action, a.at, NULL, NULL, NULL, NULL, a.reason, NULL, a.by_name, a.id, NULL
FROM review_action a
WHERE a.station_id = %(s)s AND a.parameter = %(p)s AND a.ts_from <= %(t)s AND a.ts_to > %(t)s
ORDER BY 2, 1 DESC
"""


async def history(
    conn: Conn, station: Station, parameter: str, ts: datetime
) -> list[dict[str, Any]]:
    """Every version and every review action of one reading, oldest first.

    A version's ``at`` is when it arrived; a superseded one also says when and
    why it was replaced (``replaced_at``, ``replaced_because``, ``replaced_by``).
    """
    cur = await conn.execute(_HISTORY, {"s": station.id, "p": parameter, "t": ts})
    out: list[dict[str, Any]] = []
    for (
        kind,
        at,
        period,
        value,
        flag,
        source,
        reason,
        new_source,
        by,
        action_id,
        revised,
    ) in await cur.fetchall():
        if kind == "version":
            entry: dict[str, Any] = {
                "kind": "version",
                "at": at.isoformat(),
                "period": period,
                "value": value,
                "flag": flag,
                "source": source,
                "current": revised is None,
            }
            if revised is not None:
                entry |= {
                    "replaced_at": revised.isoformat(),
                    "replaced_because": reason,
                    "replaced_by": new_source,
                }
        else:
            entry = {
                "kind": kind,
                "at": at.isoformat(),
                "action_id": action_id,
                "by": by,
                "reason": reason,
            }
        out.append(entry)
    return out


def render_history(
    station: Station, parameter: str, ts: datetime, rows: Sequence[dict[str, Any]]
) -> str:
    """``envmon review history`` as text."""
    head = f"{station.id} ({station.name}) {parameter} {ts.astimezone(BEIJING).isoformat()}"
    if not rows:
        return f"{head}: no reading and no review action"
    lines = [head]
    for r in rows:
        if r["kind"] == "version":
            state = (
                "current"
                if r["current"]
                else (
                    f"replaced {r['replaced_at']} ({r['replaced_because']}, by {r['replaced_by']})"
                )
            )
            lines.append(
                f"  {r['at']}  version  {r['period']:>4} value={r['value']:g} flag={r['flag']}"
                f" source={r['source']}  {state}"
            )
        else:
            lines.append(
                f"  {r['at']}  {r['kind']:<10} #{r['action_id']} by {r['by']}: {r['reason']}"
            )
    return "\n".join(lines)


def invalid_filter(alias: str = "reading") -> str:
    """SQL: the reading ``alias`` is not invalidated now."""
    return (
        f"NOT EXISTS (SELECT 1 FROM review_mark m WHERE m.station_id = {alias}.station_id"
        f" AND m.parameter = {alias}.parameter AND m.period = {alias}.period"
        f" AND m.ts = {alias}.ts AND m.restored_at IS NULL)"
    )
