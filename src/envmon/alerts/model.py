"""What the engine reasons about: observations of a rule's subject, and episodes.

An *episode* is one alert for one (rule, subject) — a station, a city
(``city:太原市``), a source (``source:hj212``) or a region (``region:zone``) —
from firing, through an optional escalation, to its resolution. It is the unit
of notification: one message when it fires, one when it escalates, one when it
is over, however many readings it spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias

from envmon.timeutil import BEIJING

LIST_LIMIT: Final = 100  # alerts listed by `list`, `silence list`, `maintenance list`

State: TypeAlias = Literal["firing", "escalated", "resolved"]
NoticeKind: TypeAlias = Literal["firing", "escalated", "resolved", "test"]
NOTICE_ZH: Final = {"firing": "告警", "escalated": "升级", "resolved": "恢复", "test": "测试"}


def at(ts: float) -> datetime:
    """A data time (epoch seconds) as a Beijing datetime."""
    return datetime.fromtimestamp(ts, BEIJING)


def station_subject(station_id: str) -> str:
    return station_id


def city_subject(city: str) -> str:
    return f"city:{city}"


def source_subject(source: str) -> str:
    return f"source:{source}"


def region_subject(region: str) -> str:
    return f"region:{region}"


@dataclass(slots=True)
class Observation:
    """One evaluation of a rule for one subject at one data time (epoch seconds)."""

    subject: str
    ts: float
    value: float
    breach: bool
    cleared: bool
    station_id: str | None = None
    city: str | None = None
    threshold: float | None = None
    parameter: str | None = None
    unit: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    period: str | None = None  # the readings' period (data time = its start)


@dataclass(slots=True)
class Episode:
    """An alert episode, mirrored in ``alert_event``."""

    rule: str
    subject: str
    severity: str
    route: str
    started_at: datetime
    message: str
    station_id: str | None = None
    city: str | None = None
    first_ts: datetime | None = None
    value: float | None = None
    threshold: float | None = None
    last_value: float | None = None
    last_ts: datetime | None = None
    parameter: str | None = None
    unit: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    state: State = "firing"
    id: int | None = None
    silenced: bool = False
    # The readings it fired on were invalidated by a review since (issue 14): the
    # alert stays sent, the history says so.
    data_invalidated: bool = False
    notified: bool = False
    flapping: bool = False
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None
    clearing_since: datetime | None = None
    dirty: bool = False  # last_value changed since it was written

    @property
    def open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification to send: an episode's transition (or a test) on one channel."""

    id: int
    channel: str
    kind: NoticeKind
    payload: dict[str, Any]
    event_id: int | None = None
    attempts: int = 0


@dataclass
class Transition:
    """One change of an episode, and the notices it announces on (route, channel) pairs.

    ``held``: routes whose notices wait for a set time (a daily digest), route → when.
    """

    episode: Episode
    new: bool = False
    notice: NoticeKind | None = None
    channels: list[tuple[str, str]] = field(default_factory=list)  # (route, channel)
    held: dict[str, datetime] = field(default_factory=dict)
