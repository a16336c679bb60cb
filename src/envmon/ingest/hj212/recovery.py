"""Gap recovery: a station that connects is asked for the hours it left out.

When a station's first frame arrives on a connection, its stored hours are
looked up (batched for all stations connecting meanwhile: after a restart of
the receiver every logger reconnects within seconds) and the logger is sent
one 2061 history request per run of missing hours — holes at the start of
the look-back window (``ENVMON_HJ212__GAP_RECOVERY_MAX_HOURS``), in its
middle, and the hours after the last stored one — so that it resends only
what is missing.  The requests go one after the other (the next when the
previous has finished: loggers answer one request at a time), at most
``gap_recovery_max_requests`` per station and connection: beyond that the
runs closest together are merged (the few stored hours between them come
again and are stored once — readings are keyed by station, parameter,
period and time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from envmon.catalog import Catalog
from envmon.db.writer import Pool
from envmon.parameters import PARAMETERS
from envmon.settings import Hj212Settings
from envmon.timeutil import floor_hour

from .auth import normalize_mn
from .connection import Connection
from .pipeline import DB_ERRORS, ServerStats
from .session import SOURCE, RequestFinished, StationSeen

logger = logging.getLogger(__name__)

GAP_MIN_AGE: Final = timedelta(hours=2)
HOUR: Final = timedelta(hours=1)
Span = tuple[datetime, datetime]  # first and last missing hour (interval starts), inclusive

# The last stored hour of many stations at once: the later of the cursor and
# the newest hourly reading of any of the station's parameters (one pair per
# station with a NULL code, so that a station without parameters still gets
# its cursor).
_LAST_HOURS = """
SELECT p.s, GREATEST(max(c.last_ts), max(x.m))
FROM unnest(%(stations)s::text[], %(params)s::text[]) AS p(s, code)
LEFT JOIN ingest_cursor AS c ON c.source = %(source)s AND c.station_id = p.s
LEFT JOIN LATERAL (SELECT max(ts) AS m FROM reading
                   WHERE station_id = p.s AND parameter = p.code AND period = '1h') AS x ON true
GROUP BY p.s
"""
# The runs of hours missing within the look-back, up to each station's last
# stored hour in it: from the start of the window if the station has hours
# stored before it (a hole at the start), else from its first stored hour.
# Per parameter, so that every look-up is a range of the reading key's index.
_HOLES = """
WITH p AS (
    SELECT * FROM unnest(%(stations)s::text[], %(params)s::text[]) AS p(s, code)
), stored AS (
    SELECT DISTINCT p.s, r.ts
    FROM p CROSS JOIN LATERAL (
        SELECT ts FROM reading
        WHERE station_id = p.s AND parameter = p.code AND period = '1h'
          AND ts >= %(since)s AND ts <= %(until)s) AS r
), span AS (
    SELECT stored.s, max(ts) AS last,
           CASE WHEN EXISTS (
                    SELECT 1 FROM p AS q CROSS JOIN LATERAL (
                        SELECT 1 FROM reading
                        WHERE station_id = q.s AND parameter = q.code AND period = '1h'
                          AND ts < %(since)s LIMIT 1) AS o
                    WHERE q.s = stored.s)
                THEN %(since)s ELSE min(ts) END AS first
    FROM stored GROUP BY stored.s
), missing AS (
    SELECT span.s, h.h
    FROM span CROSS JOIN LATERAL generate_series(span.first, span.last, interval '1 hour') AS h(h)
    WHERE NOT EXISTS (SELECT 1 FROM stored AS x WHERE x.s = span.s AND x.ts = h.h)
)
SELECT s, min(h), max(h)
FROM (SELECT s, h, h - row_number() OVER (PARTITION BY s ORDER BY h) * interval '1 hour' AS run
      FROM missing) AS m
GROUP BY s, run
ORDER BY s, min(h)
"""
_CHUNK: Final = 500


# --------------------------------------------------------------------------- what to ask


@dataclass(frozen=True, slots=True)
class StoredHours:
    """What a look-up found for one station."""

    last: datetime | None  # the last stored hour (cursor or readings), any age
    holes: tuple[Span, ...] = ()  # missing runs within the look-back, before its last stored hour


def missing_hours(
    last: datetime | None, now: datetime, *, min_age: timedelta, max_age: timedelta
) -> Span | None:
    """The hours after the last stored one to ask a station for, as
    (BeginTime, EndTime) interval starts, inclusive — or None.

    ``last`` is the start of the last stored hour.  A station is asked when
    that is older than ``min_age`` (it normally sends each hour a few minutes
    after it ends) but not older than ``max_age`` (beyond that the logger's
    memory, or the use of the data, runs out).  The hours asked for run from
    ``last`` + 1 h to the last complete hour before ``now``.
    """
    if last is None:
        return None
    age = now - last
    if age <= min_age or age > max_age:
        return None
    begin = floor_hour(last) + HOUR
    end = floor_hour(now) - HOUR
    if end < begin:
        return None
    return begin, end


def merge_runs(runs: list[Span]) -> list[Span]:
    """Sorted, overlapping or adjacent runs joined."""
    merged: list[Span] = []
    for begin, end in sorted(runs):
        if merged and begin <= merged[-1][1] + HOUR:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def cap_runs(runs: list[Span], most: int) -> list[Span]:
    """At most ``most`` runs: the two separated by the fewest stored hours are
    joined until it fits (every missing hour stays asked for)."""
    runs = list(runs)
    while len(runs) > max(1, most):
        i = min(range(len(runs) - 1), key=lambda k: runs[k + 1][0] - runs[k][1])
        runs[i : i + 2] = [(runs[i][0], runs[i + 1][1])]
    return runs


def gap_runs(
    stored: StoredHours,
    now: datetime,
    *,
    min_age: timedelta,
    max_age: timedelta,
    max_requests: int,
) -> list[Span]:
    """The history requests for a station, oldest first: its holes within the
    look-back and the hours after its last stored one."""
    runs = list(stored.holes)
    tail = missing_hours(stored.last, now, min_age=min_age, max_age=max_age)
    if tail is not None:
        runs.append(tail)
    return cap_runs(merge_runs(runs), max_requests)


# --------------------------------------------------------------------------- look-ups


class LastHours:
    """Each station's stored hours (:class:`StoredHours`), looked up in batches.

    Look-ups that arrive while one is running wait for the next, which
    answers them all (by chunks of ``_CHUNK`` stations): one query per station
    would queue thousands of look-ups in front of the writer's.
    """

    def __init__(
        self,
        pool: Pool,
        catalog: Catalog,
        timeout: float,
        lookback_hours: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.pool = pool
        self.catalog = catalog
        self.timeout = timeout
        self.lookback = timedelta(hours=lookback_hours) if lookback_hours else None
        self.clock = clock
        self._waiting: dict[str, list[asyncio.Future[StoredHours]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, station_id: str) -> StoredHours:
        future: asyncio.Future[StoredHours] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(station_id, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="hj212-gap-lookups")
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for futures in self._waiting.values():
            for future in futures:
                future.cancel()
        self._waiting.clear()

    async def _run(self) -> None:
        while self._waiting:
            stations = list(self._waiting)[:_CHUNK]
            waiting = {s: self._waiting.pop(s) for s in stations}
            try:
                found = await self._query(stations)
            except asyncio.CancelledError:
                for futures in waiting.values():
                    for future in futures:
                        future.cancel()
                raise
            except Exception as err:  # each waiting station's recovery reports it
                for futures in waiting.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(err)
                continue
            for station_id, futures in waiting.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(station_id, StoredHours(None)))

    async def _query(self, station_ids: list[str]) -> dict[str, StoredHours]:
        stations: list[str] = []
        params: list[str | None] = []
        for station_id in station_ids:
            station = self.catalog.by_id.get(station_id)
            codes = [p.code for p in PARAMETERS if station is not None and p.kind == station.kind]
            for code in [None, *codes]:
                stations.append(station_id)
                params.append(code)
        holes: dict[str, list[Span]] = {}
        async with self.pool.connection(timeout=self.timeout) as conn:
            cur = await conn.execute(
                _LAST_HOURS, {"source": SOURCE, "stations": stations, "params": params}
            )
            rows = await cur.fetchall()
            if self.lookback is not None and self.clock is not None:
                now = self.clock()
                # Hours whose start is within the look-back: the first whole one on.
                since = floor_hour(now - self.lookback)
                if since < now - self.lookback:
                    since += HOUR
                pairs = [(s, c) for s, c in zip(stations, params, strict=True) if c is not None]
                cur = await conn.execute(
                    _HOLES,
                    {
                        "stations": [s for s, _ in pairs],
                        "params": [c for _, c in pairs],
                        "since": since,
                        "until": floor_hour(now) - HOUR,
                    },
                )
                for s, begin, end in await cur.fetchall():
                    holes.setdefault(str(s), []).append((begin, end))
        return {
            str(s): StoredHours(ts if isinstance(ts, datetime) else None, tuple(holes.get(s, ())))
            for s, ts in rows
        }


# --------------------------------------------------------------------------- the requests


@dataclass(slots=True)
class _Asking:
    """A station being asked for its gaps: the runs still to request."""

    mn: str
    conn: Connection
    runs: list[Span] = field(default_factory=list)
    looked_up: bool = False


class GapRecovery:
    """Asks each station that connects for its missing hours (see the module doc).

    ``write`` sends bytes to a connection; ``error`` records a failure in
    ``ingest_cursor`` (station id, message, when).
    """

    def __init__(
        self,
        hours: LastHours,
        hj: Hj212Settings,
        stats: ServerStats,
        clock: Callable[[], datetime],
        *,
        write: Callable[[Connection, bytes], None],
        error: Callable[[str, str, datetime], None],
    ) -> None:
        self.hours = hours
        self.hj = hj
        self.stats = stats
        self.clock = clock
        self.write = write
        self.error = error
        self._asking: dict[str, _Asking] = {}  # by station id

    async def close(self) -> None:
        await self.hours.close()

    def seen(self, conn: Connection, event: StationSeen) -> None:
        """A station's first frame on ``conn``: look its gaps up, then ask."""
        if not self.hj.gap_recovery or event.station_id in self._asking:
            return
        self._asking[event.station_id] = _Asking(normalize_mn(event.mn), conn)
        task = asyncio.create_task(self._look_up(conn, event), name=f"hj212-gap-{event.station_id}")
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def _look_up(self, conn: Connection, event: StationSeen) -> None:
        station_id = event.station_id
        try:
            stored = await self.hours.get(station_id)
            runs = gap_runs(
                stored,
                self.clock(),
                min_age=GAP_MIN_AGE,
                max_age=timedelta(hours=self.hj.gap_recovery_max_hours),
                max_requests=self.hj.gap_recovery_max_requests,
            )
            asking = self._asking.get(station_id)
            if asking is None or asking.conn is not conn:
                return
            asking.runs, asking.looked_up = runs, True
            if runs:
                logger.info(
                    "hj212 gap recovery station=%s last=%s requests=%d hours=%d",
                    station_id,
                    stored.last,
                    len(runs),
                    sum(int((end - begin) / HOUR) + 1 for begin, end in runs),
                )
            self._next(station_id, event.mn)
        except DB_ERRORS as err:
            logger.warning("hj212 gap check failed station=%s: %s", station_id, err)
        except Exception:
            logger.exception("hj212 gap recovery failed station=%s", station_id)
        finally:
            asking = self._asking.get(station_id)
            if asking is not None and asking.conn is conn and not asking.looked_up:
                del self._asking[station_id]

    def _next(self, station_id: str, mn: str) -> None:
        """Send the station's next request, or end its recovery."""
        asking = self._asking[station_id]
        if not asking.runs or asking.conn.closing:
            del self._asking[station_id]
            return
        begin, end = asking.runs.pop(0)
        try:
            request = asking.conn.session.request_history(
                mn, begin, end, now=self.clock(), mono=asyncio.get_running_loop().time()
            )
        except ValueError as err:  # the MN is not (or no longer) authenticated there
            logger.warning("hj212 gap recovery stopped station=%s: %s", station_id, err)
            del self._asking[station_id]
            return
        self.stats.history_requests += 1
        logger.info(
            "hj212 gap recovery requested station=%s hours=%s..%s",
            station_id,
            f"{begin:%Y-%m-%d %H:%M}",
            f"{end:%Y-%m-%d %H:%M}",
        )
        self.write(asking.conn, request)

    def finished(self, conn: Connection, event: RequestFinished) -> None:
        """A history request ended (answered, refused, timed out or its
        connection gone): log it, then ask for the next run."""
        span = f"{event.begin:%Y-%m-%d %H:%M}..{event.end:%Y-%m-%d %H:%M}"
        if event.ok:
            logger.info(
                "hj212 gap recovery done station=%s hours=%s uploads=%d %s",
                event.station_id,
                span,
                event.uploads,
                event.detail,
            )
        else:
            logger.warning(
                "hj212 gap recovery failed station=%s hours=%s uploads=%d: %s",
                event.station_id,
                span,
                event.uploads,
                event.detail,
            )
            self.error(
                event.station_id, f"history request {span} failed: {event.detail}", self.clock()
            )
        asking = self._asking.get(event.station_id)
        if (
            asking is not None
            and asking.conn is conn
            and asking.looked_up
            and asking.mn == normalize_mn(event.mn)
        ):
            # Every run is asked for even after a failure: "no data" for one
            # hole (ExeRtn=100) says nothing about the next.
            self._next(event.station_id, event.mn)
