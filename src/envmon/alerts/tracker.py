"""Episodes in memory: the state machine of every (rule, subject), without a database.

Observations and the time go in; transitions (an episode fired, escalated,
resolved, announced after a silence) come out in :attr:`EpisodeTracker.queued`
for the engine to commit with their notices. Nothing here reads or writes the
database, so every rule of the machine is tested with plain values.

Per (rule, subject) a :class:`Track` is quiet, *pending* (breaching, counting
the rule's ``for``), *firing* (an open episode; escalated when nobody
acknowledges it in time) or *clearing* (past the hysteresis level, counting
``clear_for``). A subject whose episodes start ``flapping.max_episodes`` times
within ``flapping.window`` is flapping: its episode is announced once and its
end only after a quiet flapping window.

Time: ``for`` and ``clear_for`` count in data time (the observations' ``ts``);
escalation, silences, flapping and maintenance holds use the service clock.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from envmon.alerts.message import fmt_number
from envmon.alerts.model import Episode, NoticeKind, Observation, Transition, at
from envmon.alerts.rules import AlertConfig, AnyRule, Route

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Track:
    """Per (rule, subject): where it is between quiet, pending, firing and clearing."""

    pending_since: float | None = None  # data time of the first breach in a row
    clear_since: float | None = None  # data time the open episode's condition first cleared
    last_ts: float = -math.inf
    episode: Episode | None = None
    starts: deque[float] = field(default_factory=deque)  # service-clock starts (flapping)


@dataclass(frozen=True, slots=True)
class Window:
    """A declared maintenance window (the rules file or ``alert_maintenance``)."""

    station_id: str | None
    city: str | None
    starts: float
    ends: float

    def covers(self, station_id: str | None, city: str | None, ts: float) -> bool:
        if not self.starts <= ts < self.ends:
            return False
        if self.station_id is not None:
            return station_id == self.station_id
        if self.city is not None:
            return city == self.city
        return True


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    rule: str | None
    station_id: str | None
    city: str | None
    starts: float
    ends: float

    def matches(self, rule: str, station_id: str | None, city: str | None, now: float) -> bool:
        return (
            self.starts <= now < self.ends
            and (self.rule is None or fnmatch.fnmatchcase(rule, self.rule))
            and (self.station_id is None or self.station_id == station_id)
            and (self.city is None or self.city == city)
        )


def silenced_by(silences: Iterable[Silence], ep: Episode, now: float) -> bool:
    """Whether an active silence covers the episode now."""
    return any(s.matches(ep.rule, ep.station_id, ep.city, now) for s in silences)


def config_windows(config: AlertConfig) -> list[Window]:
    """The maintenance windows the rules file declares."""
    out: list[Window] = []
    for w in config.maintenance:
        starts, ends = w.starts.timestamp(), w.ends.timestamp()
        out += [Window(sid, None, starts, ends) for sid in w.stations]
        out += [Window(None, city, starts, ends) for city in w.city]
        if not w.stations and not w.city:
            out.append(Window(None, None, starts, ends))
    return out


def next_digest(now: datetime, clock_time: str) -> datetime:
    """The next ``HH:MM`` (Beijing time) at or after ``now``: when a digest route sends."""
    hh, mm = (int(x) for x in clock_time.split(":"))
    local = at(now.timestamp())
    release = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
    return release if release >= local else release + timedelta(days=1)


class EpisodeTracker:
    """The (rule, subject) state machines of one engine; see the module docstring."""

    def __init__(self, config: AlertConfig) -> None:
        self.config = config
        self.tracks: dict[tuple[str, str], Track] = {}
        self.queued: list[Transition] = []
        self.silences: list[Silence] = []
        self.windows: list[Window] = []  # declared in the database (the CLI, the API)
        self.config_windows = config_windows(config)
        self.flap = config.defaults.flapping

    # ------------------------------------------------------------------ state from outside

    def track(self, rule: str, subject: str) -> Track:
        t = self.tracks.get((rule, subject))
        if t is None:
            t = self.tracks[(rule, subject)] = Track()
        return t

    def restore(
        self, episodes: Iterable[Episode], starts: Iterable[tuple[str, str, datetime]]
    ) -> None:
        """Open episodes and recent starts as a previous run left them (a restart)."""
        for ep in episodes:
            t = self.track(ep.rule, ep.subject)
            t.episode = ep
            if ep.last_ts is not None:
                # Judged up to there: older data (a resend, a catch-up after a takeover)
                # must not end it, as it would not have in the run that opened it.
                t.last_ts = max(t.last_ts, ep.last_ts.timestamp())
        for rule, subject, started in starts:
            self.track(rule, subject).starts.append(started.timestamp())

    def judged(self, rule: str, subject: str, ts: float) -> None:
        """A subject was judged up to data time ``ts`` (an episode of it ended then):
        older data replayed after a takeover says nothing new about it."""
        t = self.track(rule, subject)
        if t.episode is None:
            t.last_ts = max(t.last_ts, ts)

    def set_controls(
        self,
        silences: list[Silence],
        windows: list[Window],
        acks: Mapping[int, tuple[datetime, str | None]],
    ) -> None:
        """Silences, maintenance windows and acknowledgements (written by the CLI, the API)."""
        self.silences = silences
        self.windows = windows
        if acks:
            for ep in self.open_episodes():
                if ep.id is not None and ep.id in acks and ep.acked_at is None:
                    ep.acked_at, ep.acked_by = acks[ep.id]

    def ack(self, event_id: int, when: datetime, by: str | None) -> None:
        for ep in self.open_episodes():
            if ep.id == event_id and ep.acked_at is None:
                ep.acked_at, ep.acked_by = when, by

    def retire(self, active: Iterable[str], now: datetime) -> int:
        """End the episodes of rules that were removed or disabled; how many."""
        keep = set(active)
        gone = 0
        for (rule, _), t in self.tracks.items():
            if t.episode is not None and rule not in keep:
                t.episode.details.setdefault("extra", []).append(["说明", "该规则已停用或删除"])
                self._resolve(t.episode, now)
                t.episode = None
                gone += 1
        return gone

    def reset_pending(self, rule: str, subject: str) -> None:
        """An M/C reading breaks the run a pending alert was counting."""
        t = self.tracks.get((rule, subject))
        if t is not None:
            t.pending_since = None

    # ------------------------------------------------------------------ queries

    def open_episodes(self) -> list[Episode]:
        return [t.episode for t in self.tracks.values() if t.episode is not None]

    def dirty(self) -> list[Episode]:
        """Open, stored episodes whose latest value changed since it was written."""
        return [ep for ep in self.open_episodes() if ep.dirty and ep.id is not None]

    def in_maintenance(self, station_id: str | None, city: str | None, when: float) -> bool:
        return any(w.covers(station_id, city, when) for w in (*self.config_windows, *self.windows))

    def silenced(self, rule: str, station_id: str | None, city: str | None, now: float) -> bool:
        return any(s.matches(rule, station_id, city, now) for s in self.silences)

    def take(self) -> list[Transition]:
        """The queued transitions, in order; the queue is empty afterwards."""
        batch, self.queued = self.queued, []
        return batch

    def put_back(self, batch: list[Transition]) -> None:
        """Transitions that could not be written: first in the queue again, in order."""
        self.queued = batch + self.queued

    # ------------------------------------------------------------------ the machine

    def step(self, rule: AnyRule, ob: Observation, now: datetime, *, in_data_time: bool) -> None:
        """One observation through the (rule, subject) state machine."""
        t = self.track(rule.id, ob.subject)
        if ob.ts < t.last_ts:
            return  # older than what this subject has already been judged on
        t.last_ts = ob.ts
        ep = t.episode
        if ep is not None:
            ep.last_value = ob.value
            ep.last_ts = at(ob.ts)
            ep.details["last_text"] = ob.details.get("value_text")
            ep.dirty = True
            if not ob.cleared:
                t.clear_since = None
                ep.clearing_since = None
                return
            if t.clear_since is None:
                t.clear_since = ob.ts
            if ob.ts - t.clear_since < rule.clear_for.total_seconds():
                return
            if ep.flapping:
                # A flapping episode ends only after a quiet flapping window.
                if ep.clearing_since is None:
                    ep.clearing_since = now
                return
            self._resolve(ep, now)
            t.episode = None
            t.clear_since = None
            t.pending_since = None
            return
        if not ob.breach:
            t.pending_since = None
            return
        when = ob.ts if in_data_time else now.timestamp()
        if self.in_maintenance(ob.station_id, ob.city, when):
            t.pending_since = None
            return
        if t.pending_since is None:
            t.pending_since = ob.ts
        if ob.ts - t.pending_since < rule.for_.total_seconds():
            return
        self._open(rule, ob, t, now)

    def housekeep(self, now: datetime) -> None:
        """Held resolutions, announcements after a silence, escalations."""
        now_s = now.timestamp()
        flap_s = self.flap.window.total_seconds()
        for t in self.tracks.values():
            ep = t.episode
            if ep is None:
                continue
            if (
                ep.clearing_since is not None
                and (now - ep.clearing_since).total_seconds() >= flap_s
            ):
                self._resolve(ep, now)
                t.episode = None
                t.clear_since = None
                continue
            silenced = self.silenced(ep.rule, ep.station_id, ep.city, now_s)
            if not ep.notified and not silenced:
                ep.notified = True
                ep.silenced = False
                route = self.config.route_for(ep.rule, ep.severity, ep.city)
                ep.route = route.name
                self.queued.append(self._announce(ep, "firing", self._channels(route.name), now))
                continue
            if (
                ep.state != "firing"
                or not ep.notified
                or silenced
                or ep.acked_at is not None
                or self.in_maintenance(ep.station_id, ep.city, now_s)
            ):
                continue
            route = self.config.route_for(ep.rule, ep.severity, ep.city)
            if route.escalate_after is None or route.escalate_to is None:
                continue
            if now - ep.started_at < route.escalate_after:
                continue
            ep.state = "escalated"
            ep.escalated_at = now
            channels = self._channels(route.escalate_to)
            self.queued.append(self._announce(ep, "escalated", channels, now))

    def _open(self, rule: AnyRule, ob: Observation, t: Track, now: datetime) -> None:
        now_s = now.timestamp()
        window = self.flap.window.total_seconds()
        while t.starts and now_s - t.starts[0] >= window:
            t.starts.popleft()
        flapping = len(t.starts) + 1 >= self.flap.max_episodes
        t.starts.append(now_s)
        route = self.config.route_for(rule.id, rule.severity, ob.city)
        silenced = self.silenced(rule.id, ob.station_id, ob.city, now_s)
        first = at(t.pending_since if t.pending_since is not None else ob.ts)
        ep = Episode(
            rule=rule.id,
            subject=ob.subject,
            severity=rule.severity,
            route=route.name,
            started_at=now,
            message=f"{rule.title}：{ob.details.get('value_text', fmt_number(ob.value))}",
            station_id=ob.station_id,
            city=ob.city,
            first_ts=first,
            value=ob.value,
            threshold=ob.threshold,
            last_value=ob.value,
            last_ts=at(ob.ts),
            parameter=ob.parameter,
            unit=ob.unit,
            details={**ob.details, **({"period": ob.period} if ob.period else {})},
            silenced=silenced,
            notified=not silenced,
            flapping=flapping,
        )
        t.episode = ep
        t.pending_since = None
        t.clear_since = None
        if flapping:
            logger.warning("alert rule=%s subject=%s is flapping", rule.id, ob.subject)
        if silenced:
            self.queued.append(Transition(ep, new=True))
            return
        transition = self._announce(ep, "firing", self._channels(route.name), now)
        transition.new = True
        self.queued.append(transition)

    def _resolve(self, ep: Episode, now: datetime) -> None:
        ep.state = "resolved"
        ep.resolved_at = now
        channels: list[tuple[str, str]] = []
        if ep.notified:
            channels = self._channels(ep.route)
            if ep.escalated_at is not None:
                route = self.config.route_for(ep.rule, ep.severity, ep.city)
                if route.escalate_to:
                    channels += [c for c in self._channels(route.escalate_to) if c not in channels]
            channels = list(dict.fromkeys(channels))
        if not channels:
            self.queued.append(Transition(ep))
            return
        self.queued.append(self._announce(ep, "resolved", channels, now))

    def _announce(
        self,
        ep: Episode,
        kind: NoticeKind,
        channels: list[tuple[str, str]],
        now: datetime,
    ) -> Transition:
        """A transition with its notices; a digest route's notices wait for its hour."""
        held: dict[str, datetime] = {}
        for name in {r for r, _ in channels}:
            route = self._route(name)
            if route.digest is not None:
                held[name] = next_digest(now, route.digest)
        return Transition(ep, notice=kind, channels=channels, held=held)

    def _route(self, name: str) -> Route:
        try:
            return self.config.route(name)
        except KeyError:
            return self.config.routes[-1]  # a route renamed since the episode began

    def _channels(self, name: str) -> list[tuple[str, str]]:
        route = self._route(name)
        seen: list[tuple[str, str]] = []
        for c in route.channels:
            if all(c != x[1] for x in seen):
                seen.append((route.name, c))
        return seen
