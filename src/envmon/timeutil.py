"""Beijing time, stated once.

Readings are stored as ``timestamptz`` and handled as aware datetimes. Days,
months and years (natural days for HJ 633 daily reports, assessment years) are
Beijing time (Asia/Shanghai, UTC+8, no daylight saving since 1991).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

BEIJING_TZ_NAME = "Asia/Shanghai"
BEIJING = ZoneInfo(BEIJING_TZ_NAME)


def now() -> datetime:
    """The current time, aware, in Beijing time."""
    return datetime.now(BEIJING)


def to_beijing(ts: datetime) -> datetime:
    """An aware datetime in Beijing time; a naive one is taken to be Beijing time."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=BEIJING)
    return ts.astimezone(BEIJING)


def beijing_day(ts: datetime) -> date:
    """The Beijing natural day a moment falls in."""
    return to_beijing(ts).date()


def day_start(day: date) -> datetime:
    """00:00 Beijing time of ``day``, aware."""
    return datetime.combine(day, time(0), tzinfo=BEIJING)


def year_bounds(year: int) -> tuple[datetime, datetime]:
    """Half-open [start, end) of a Beijing calendar year."""
    return day_start(date(year, 1, 1)), day_start(date(year + 1, 1, 1))


HOUR = timedelta(hours=1)


def floor_hour(ts: datetime) -> datetime:
    """The start of the whole hour ``ts`` falls in (same zone as ``ts``)."""
    return ts.replace(minute=0, second=0, microsecond=0)


def ceil_hour(ts: datetime) -> datetime:
    """``ts`` if on a whole hour, else the start of the next one."""
    f = floor_hour(ts)
    return f if f == ts else f + HOUR


def time_range(start: datetime, end: datetime, step: timedelta = HOUR) -> list[datetime]:
    """``start``, ``start + step``, … before ``end`` (half-open)."""
    out = []
    t = start
    while t < end:
        out.append(t)
        t += step
    return out
