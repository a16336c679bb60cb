"""The sources' state in the database: ``ingest_cursor`` and ``source_health``.

Shared by the pollers and the HJ 212 receiver (both keep per-station cursors),
and read by ``envmon status``.

* ``ingest_cursor (source, '')`` — a poller's *fetched-until* mark;
* ``ingest_cursor (source, station)`` — the latest period received from that
  station, when, and the last error that concerned it alone;
* ``source_health`` — a poller's state as ``envmon status`` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg

from envmon import timeutil
from envmon.ingest.sources_config import SourceConfig
from envmon.timeutil import HOUR

State = Literal["starting", "ok", "down", "disabled"]

SOURCE_CURSOR = """
INSERT INTO ingest_cursor AS c (source, station_id, last_ts, last_success_at, updated_at)
VALUES (%(source)s, '', %(ts)s, %(at)s, now())
ON CONFLICT (source, station_id) DO UPDATE
    SET last_ts = GREATEST(c.last_ts, EXCLUDED.last_ts),
        last_success_at = EXCLUDED.last_success_at, updated_at = now()
"""
STATION_CURSORS = """
INSERT INTO ingest_cursor AS c (source, station_id, last_ts, last_success_at, updated_at)
SELECT %(source)s, s, t, %(at)s, now()
FROM unnest(%(stations)s::text[], %(ts)s::timestamptz[]) AS u(s, t)
ON CONFLICT (source, station_id) DO UPDATE
    SET last_ts = GREATEST(c.last_ts, EXCLUDED.last_ts),
        last_success_at = EXCLUDED.last_success_at, updated_at = now()
"""
STATION_ERRORS = """
INSERT INTO ingest_cursor AS c (source, station_id, last_error_at, last_error, updated_at)
SELECT %(source)s, s, %(at)s, e, now()
FROM unnest(%(stations)s::text[], %(errors)s::text[]) AS u(s, e)
ON CONFLICT (source, station_id) DO UPDATE
    SET last_error_at = EXCLUDED.last_error_at, last_error = EXCLUDED.last_error,
        updated_at = now()
"""
SOURCE_ERROR = """
INSERT INTO ingest_cursor AS c (source, station_id, last_error_at, last_error, updated_at)
VALUES (%(source)s, '', %(at)s, %(error)s, now())
ON CONFLICT (source, station_id) DO UPDATE
    SET last_error_at = EXCLUDED.last_error_at, last_error = EXCLUDED.last_error,
        updated_at = now()
"""
LOAD_CURSORS = """
SELECT station_id, last_ts, last_error FROM ingest_cursor WHERE source = %(source)s
"""
LOAD_HEALTH = """
SELECT state, state_since, failures, last_success_at, last_error_at, last_error
FROM source_health WHERE source = %(source)s
"""
SAVE_HEALTH = """
INSERT INTO source_health AS h (source, kind, state, state_since, failures, last_attempt_at,
    last_success_at, last_error_at, last_error, next_attempt_at, stale_after, period, details,
    updated_at)
VALUES (%(source)s, %(kind)s, %(state)s, %(state_since)s, %(failures)s, %(last_attempt_at)s,
    %(last_success_at)s, %(last_error_at)s, %(last_error)s, %(next_attempt_at)s,
    %(stale_after)s, %(period)s, %(details)s, now())
ON CONFLICT (source) DO UPDATE SET kind = EXCLUDED.kind, state = EXCLUDED.state,
    state_since = EXCLUDED.state_since, failures = EXCLUDED.failures,
    last_attempt_at = EXCLUDED.last_attempt_at, last_success_at = EXCLUDED.last_success_at,
    last_error_at = EXCLUDED.last_error_at, last_error = EXCLUDED.last_error,
    next_attempt_at = EXCLUDED.next_attempt_at, stale_after = EXCLUDED.stale_after,
    period = EXCLUDED.period, details = EXCLUDED.details, updated_at = now()
"""


@dataclass
class SourceHealth:
    source: str
    kind: str
    stale_after: timedelta
    period: timedelta
    state: State = "starting"
    state_since: datetime = field(default_factory=lambda: datetime.now(UTC))
    failures: int = 0
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    fetched_until: datetime | None = None
    stations: dict[str, datetime] = field(default_factory=dict)  # latest period start
    station_errors: dict[str, str] = field(default_factory=dict)
    mapped: list[str] = field(default_factory=list)
    last_poll: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return health_dict(
            source=self.source,
            kind=self.kind,
            state=self.state,
            state_since=self.state_since,
            failures=self.failures,
            last_attempt_at=self.last_attempt_at,
            last_success_at=self.last_success_at,
            last_error_at=self.last_error_at,
            last_error=self.last_error,
            next_attempt_at=self.next_attempt_at,
            fetched_until=self.fetched_until,
            stale_after=self.stale_after,
            period=self.period,
            stations=self.stations,
            station_errors=self.station_errors,
            mapped=self.mapped,
            last_poll=self.last_poll,
            now=now,
        )


def iso(t: datetime | None) -> str | None:
    return timeutil.to_beijing(t).isoformat() if t else None


def health_dict(
    *,
    source: str,
    kind: str,
    state: str,
    state_since: datetime | None,
    failures: int,
    last_attempt_at: datetime | None,
    last_success_at: datetime | None,
    last_error_at: datetime | None,
    last_error: str | None,
    next_attempt_at: datetime | None,
    fetched_until: datetime | None,
    stale_after: timedelta,
    period: timedelta,
    stations: Mapping[str, datetime],
    station_errors: Mapping[str, str],
    mapped: Sequence[str],
    last_poll: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The health of one source as ``envmon status`` shows it (same shape live and from the DB).

    ``lag_s``: seconds since the end of the newest period received from any
    station; a station is stale when its own lag exceeds ``stale_after``; the
    source is stale when it has not succeeded within ``stale_after`` or its
    newest data are older than that.
    """
    newest = max(stations.values(), default=None)
    # 0 while the newest period is still running (a 4-hourly sample taken an hour ago).
    lag = max(0.0, (now - (newest + period)).total_seconds()) if newest else None
    stale_stations = sorted(
        sid
        for sid in (mapped or stations.keys())
        if sid not in stations or now - (stations[sid] + period) > stale_after
    )
    stale = (
        state == "disabled"
        or last_success_at is None
        or now - last_success_at > stale_after
        or lag is None
        or lag > stale_after.total_seconds()
    )
    return {
        "source": source,
        "kind": kind,
        "state": state,
        "since": iso(state_since),
        "failures": failures,
        "last_attempt_at": iso(last_attempt_at),
        "last_success_at": iso(last_success_at),
        "last_error_at": iso(last_error_at),
        "last_error": last_error,
        "next_attempt_at": iso(next_attempt_at),
        "fetched_until": iso(fetched_until),
        "newest_data": iso(newest),
        "lag_s": None if lag is None else round(lag, 1),
        "stale_after_s": stale_after.total_seconds(),
        "stale": stale,
        "stations": {
            "mapped": len(mapped) or len(stations),
            "reporting": sum(1 for s in stations if s not in stale_stations),
            "stale": stale_stations,
            "errors": dict(station_errors),
        },
        "last_poll": dict(last_poll),
    }


def default_stale_after(config: SourceConfig, period: timedelta) -> timedelta:
    return config.stale_after or max(3 * config.interval, 2 * period + HOUR)


async def read_health(
    conn: psycopg.AsyncConnection[Any], *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every source's health as the last ``envmon run`` left it (for ``envmon status``)."""
    now = now or timeutil.now()
    rows = await (
        await conn.execute(
            "SELECT source, kind, state, state_since, failures, last_attempt_at, last_success_at,"
            " last_error_at, last_error, next_attempt_at, stale_after, period, details"
            " FROM source_health ORDER BY source"
        )
    ).fetchall()
    cursors = await (
        await conn.execute(
            "SELECT c.source, c.station_id, c.last_ts, c.last_error FROM ingest_cursor c"
            " JOIN source_health h ON h.source = c.source"
        )
    ).fetchall()
    by_source: dict[str, dict[str, Any]] = {}
    for source, station, last_ts, last_error in cursors:
        d = by_source.setdefault(source, {"until": None, "stations": {}, "errors": {}})
        if station == "":
            d["until"] = last_ts
        else:
            if last_ts is not None:
                d["stations"][station] = last_ts
            if last_error:
                d["errors"][station] = last_error
    out = []
    for (
        source,
        kind,
        state,
        since,
        failures,
        attempt,
        success,
        err_at,
        err,
        next_at,
        stale_after,
        period,
        details,
    ) in rows:
        c = by_source.get(source, {"until": None, "stations": {}, "errors": {}})
        details = details or {}
        out.append(
            health_dict(
                source=source,
                kind=kind,
                state=state,
                state_since=since,
                failures=failures,
                last_attempt_at=attempt,
                last_success_at=success,
                last_error_at=err_at,
                last_error=err,
                next_attempt_at=next_at,
                fetched_until=c["until"],
                stale_after=stale_after,
                period=period,
                stations=c["stations"],
                station_errors=c["errors"],
                mapped=details.get("mapped") or [],
                last_poll=details.get("last_poll") or {},
                now=now,
            )
        )
    return out
