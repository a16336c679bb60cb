"""``/metrics``: Prometheus text exposition (format 0.0.4), written by hand.

Two kinds of figures:

* counters kept in this process — readings and batches stored through
  ``App.store`` per source (the API registers a batch listener; Prometheus'
  ``rate()`` turns them into ingest rates), and the API's own requests;
* gauges read from the database at scrape time — lag per source and station
  from ``ingest_cursor``, rejects per source over the last hour and day, the
  derive queue, and the alert engine's open episodes, outbox and delivery
  attempts when its tables exist.

All database figures come from small indexed queries so a scrape stays cheap
however large ``reading`` grows.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from envmon.schemas.readings import ReadingBatch

logger = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Exposition:
    """Builds the text: one HELP/TYPE block per metric family, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_num(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        self.total += seconds
        self.n += 1
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1


class ApiMetrics:
    """In-process counters (one per API server)."""

    def __init__(self) -> None:
        self.started = time.time()
        self.readings: Counter[str] = Counter()
        self.batches: Counter[str] = Counter()
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.latency: dict[str, _Histogram] = defaultdict(_Histogram)

    async def on_batch(self, batch: ReadingBatch) -> None:
        """A batch listener for ``App.listeners``: count what was stored, by source."""
        self.readings[batch.source] += len(batch)
        self.batches[batch.source] += 1

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests[route, method, str(status)] += 1
        self.latency[route].observe(seconds)

    def write(self, out: Exposition) -> None:
        out.family(
            "envmon_ingest_readings_total",
            "counter",
            "Readings stored through this process since it started, by source.",
            (({"source": s}, n) for s, n in sorted(self.readings.items())),
        )
        out.family(
            "envmon_ingest_batches_total",
            "counter",
            "Batches stored through this process since it started, by source.",
            (({"source": s}, n) for s, n in sorted(self.batches.items())),
        )
        out.family(
            "envmon_api_requests_total",
            "counter",
            "HTTP API requests, by route, method and status.",
            (
                ({"route": r, "method": m, "status": s}, n)
                for (r, m, s), n in sorted(self.requests.items())
            ),
        )
        name = "envmon_api_request_duration_seconds"
        out.lines.append(f"# HELP {name} HTTP API request durations (to the last byte), by route.")
        out.lines.append(f"# TYPE {name} histogram")
        for route, h in sorted(self.latency.items()):
            for bound, c in zip(BUCKETS, h.counts, strict=True):
                labels = _labels({"route": route, "le": _num(bound)})
                out.lines.append(f"{name}_bucket{labels} {c}")
            out.lines.append(f"{name}_bucket{_labels({'route': route, 'le': '+Inf'})} {h.n}")
            out.lines.append(f"{name}_sum{_labels({'route': route})} {_num(h.total)}")
            out.lines.append(f"{name}_count{_labels({'route': route})} {h.n}")
        out.family(
            "envmon_process_start_time_seconds",
            "gauge",
            "When this process's API started (Unix time).",
            [({}, self.started)],
        )


async def _table_exists(conn: AsyncConnection[TupleRow], name: str) -> bool:
    row = await (await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))).fetchone()
    return bool(row and row[0])


async def database_metrics(conn: AsyncConnection[TupleRow], out: Exposition) -> None:
    """Gauges read from the database at scrape time."""
    rows = await (
        await conn.execute(
            "SELECT source, station_id,"
            " extract(epoch FROM now() - last_ts)::float8,"
            " extract(epoch FROM now() - last_success_at)::float8,"
            " (last_error_at IS NOT NULL AND (last_success_at IS NULL"
            "  OR last_error_at > last_success_at))"
            " FROM ingest_cursor ORDER BY source, station_id"
        )
    ).fetchall()
    out.family(
        "envmon_ingest_lag_seconds",
        "gauge",
        "Now minus the newest reading's time, per source and station (ingest_cursor).",
        (({"source": r[0], "station": r[1]}, r[2]) for r in rows if r[2] is not None),
    )
    out.family(
        "envmon_ingest_last_success_age_seconds",
        "gauge",
        "Seconds since the source last succeeded, per source and station.",
        (({"source": r[0], "station": r[1]}, r[3]) for r in rows if r[3] is not None),
    )
    out.family(
        "envmon_ingest_failing",
        "gauge",
        "1 when the source's last attempt failed (an error newer than its last success).",
        (({"source": r[0], "station": r[1]}, 1.0 if r[4] else 0.0) for r in rows),
    )
    rej = await (
        await conn.execute(
            "SELECT source, count(*) FILTER (WHERE received_at > now() - interval '1 hour'),"
            " count(*) FROM rejected WHERE received_at > now() - interval '1 day'"
            " GROUP BY source ORDER BY source"
        )
    ).fetchall()
    out.family(
        "envmon_rejected_readings",
        "gauge",
        "Readings rejected by validation, per source, in the trailing window (1h, 24h).",
        [({"source": s, "window": "1h"}, float(h)) for s, h, _ in rej]
        + [({"source": s, "window": "24h"}, float(d)) for s, _, d in rej],
    )
    dirty = await (
        await conn.execute(
            "SELECT count(*), extract(epoch FROM now() - min(marked_at))::float8 FROM derive_dirty"
        )
    ).fetchone()
    out.family(
        "envmon_derive_queue_station_days",
        "gauge",
        "Station-days waiting to be derived (derive_dirty).",
        [({}, float(dirty[0] if dirty else 0))],
    )
    out.family(
        "envmon_derive_queue_oldest_seconds",
        "gauge",
        "Age of the oldest station-day waiting to be derived (0 when none).",
        [({}, float(dirty[1]) if dirty and dirty[1] is not None else 0.0)],
    )
    await _alert_metrics(conn, out)


async def _alert_metrics(conn: AsyncConnection[TupleRow], out: Exposition) -> None:
    """Alert episodes, the notification outbox and delivery attempts (migration 0004).

    Skipped where the alert tables do not exist (a database not migrated that far).
    """
    if not await _table_exists(conn, "alert_event"):
        return
    rows = await (
        await conn.execute(
            "SELECT severity, state, count(*) FROM alert_event WHERE resolved_at IS NULL"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        )
    ).fetchall()
    out.family(
        "envmon_alerts_open",
        "gauge",
        "Open alert episodes by severity and state.",
        (({"severity": str(sev), "state": str(st)}, float(n)) for sev, st, n in rows),
    )
    rows = await (
        await conn.execute("SELECT state, count(*) FROM alert_notification GROUP BY 1 ORDER BY 1")
    ).fetchall()
    out.family(
        "envmon_alert_notifications",
        "gauge",
        "Alert notifications in the outbox by state (pending, sent, dead).",
        (({"state": str(st)}, float(n)) for st, n in rows),
    )
    rows = await (
        await conn.execute(
            "SELECT channel, count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok)"
            " FROM alert_delivery GROUP BY 1 ORDER BY 1"
        )
    ).fetchall()
    out.family(
        "envmon_alert_deliveries_total",
        "counter",
        "Alert delivery attempts by channel and result (alert_delivery).",
        [({"channel": str(c), "result": "ok"}, float(ok)) for c, ok, _ in rows]
        + [({"channel": str(c), "result": "failed"}, float(bad)) for c, _, bad in rows],
    )


def render(metrics: ApiMetrics, spool_pending_files: int) -> Exposition:
    """The in-process figures; the database's are added by :func:`database_metrics`."""
    out = Exposition()
    metrics.write(out)
    out.family(
        "envmon_spool_pending_files",
        "gauge",
        "Batches spooled to disk while the database was unavailable.",
        [({}, float(spool_pending_files))],
    )
    return out


def database_up(out: Exposition, up: bool) -> None:
    out.family(
        "envmon_database_up",
        "gauge",
        "1 when the database answered this scrape.",
        [({}, 1.0 if up else 0.0)],
    )
