"""The episode tracker alone: no database, no service — observations and a clock in,
transitions out. Every rule of the state machine: for-durations, hysteresis and
clear_for, out-of-order data, flapping damping, silences, maintenance windows,
escalation unless acknowledged, a restart restored from the episodes, removed rules,
digest routes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from envmon.alerts.model import Episode, Observation, Transition
from envmon.alerts.rules import AlertConfig, parse_config
from envmon.alerts.tracker import EpisodeTracker, Silence, Window, next_digest
from envmon.timeutil import BEIJING

from .conftest import AIR, AIR2, CATALOG, PM25_RULE

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=BEIJING)
H = 3600


def _config(rule: dict[str, Any] | None = None, **data: Any) -> AlertConfig:
    return parse_config({"rules": [{**PM25_RULE, **(rule or {})}], **data}, CATALOG, env={})


def _obs(
    value: float, hours: float, *, subject: str = AIR, level: float = 115, clear: float = 100
) -> Observation:
    """PM2.5 at T0 + hours: a breach over ``level``, cleared at or under ``clear``."""
    return Observation(
        subject,
        T0.timestamp() + hours * H,
        value,
        value > level,
        value <= clear,
        station_id=subject,
        city="太原市",
        threshold=level,
        parameter="pm25",
        unit="µg/m³",
        details={"value_text": f"{value:g} µg/m³"},
    )


def _feed(
    tr: EpisodeTracker, cfg: AlertConfig, values: list[float], start: float = 0.0
) -> list[Transition]:
    """One value an hour, the clock five minutes after each hour; the transitions."""
    rule = cfg.rules[0]
    for i, v in enumerate(values):
        hours = start + i
        tr.step(rule, _obs(v, hours), T0 + timedelta(hours=hours, minutes=5), in_data_time=True)
    return tr.take()


def _kinds(transitions: list[Transition]) -> list[tuple[str | None, bool]]:
    return [(t.notice, t.new) for t in transitions]


def test_fires_once_and_resolves_below_the_clear_level() -> None:
    cfg = _config()
    tr = EpisodeTracker(cfg)
    out = _feed(tr, cfg, [150, 160, 110, 101])
    # One firing notice; 110 and 101 are under the threshold but above the clear level.
    assert _kinds(out) == [("firing", True)]
    ep = out[0].episode
    assert ep.value == 150 and ep.last_value == 101 and ep.details["last_text"] == "101 µg/m³"
    assert out[0].channels == [("default", "log")] and out[0].held == {}
    out = _feed(tr, cfg, [100], start=4)
    assert _kinds(out) == [("resolved", False)]
    assert ep.state == "resolved" and ep.resolved_at == T0 + timedelta(hours=4, minutes=5)
    assert tr.open_episodes() == []


def test_for_duration_counts_data_time_and_a_dip_starts_again() -> None:
    cfg = _config({"for": "2h"})
    tr = EpisodeTracker(cfg)
    assert _feed(tr, cfg, [150, 150, 90, 150, 150]) == []  # the dip at hour 2 restarts the count
    out = _feed(tr, cfg, [150], start=5)  # hours 3, 4, 5: three values = 2 h of data time
    assert _kinds(out) == [("firing", True)]
    assert out[0].episode.first_ts == T0 + timedelta(hours=3)


def test_clear_for_needs_a_quiet_run() -> None:
    cfg = _config({"clear_for": "2h"})
    tr = EpisodeTracker(cfg)
    assert _kinds(_feed(tr, cfg, [150, 50, 50, 130])) == [("firing", True)]
    assert _feed(tr, cfg, [50, 50], start=4) == []  # hours 4, 5: only 1 h of clear data
    assert _kinds(_feed(tr, cfg, [50], start=6)) == [("resolved", False)]


def test_older_observations_are_ignored() -> None:
    cfg = _config()
    tr = EpisodeTracker(cfg)
    _feed(tr, cfg, [150], start=3)
    # A late value for hour 1 (a logger's backlog) cannot end what hour 3 started.
    assert _feed(tr, cfg, [20], start=1) == []
    assert len(tr.open_episodes()) == 1


def test_flapping_is_announced_once_and_its_end_is_held() -> None:
    cfg = _config({"clear": None}, defaults={"flapping": {"window": "2h", "max_episodes": 3}})
    tr = EpisodeTracker(cfg)
    rule = cfg.rules[0]
    kinds = []
    for i, v in enumerate([130, 90, 130, 90, 130, 90, 130]):
        now = T0 + timedelta(minutes=5 * (i + 1))  # the service clock: minutes apart
        tr.step(rule, _obs(v, i), now, in_data_time=True)
        kinds += [(t.notice, t.episode.flapping) for t in tr.take()]
    assert kinds == [
        ("firing", False),
        ("resolved", False),
        ("firing", False),
        ("resolved", False),
        ("firing", True),  # the third start within 2 h: flapping, and held open
    ]
    (ep,) = tr.open_episodes()
    assert ep.clearing_since is None  # the last value (130) was a breach again
    tr.step(rule, _obs(90, 7), T0 + timedelta(minutes=45), in_data_time=True)
    assert tr.take() == [] and ep.clearing_since == T0 + timedelta(minutes=45)
    tr.housekeep(T0 + timedelta(hours=2, minutes=44))
    assert tr.take() == []  # not yet a whole quiet window
    tr.housekeep(T0 + timedelta(hours=2, minutes=45))
    assert [t.notice for t in tr.take()] == ["resolved"]


def test_silence_holds_the_firing_notice_until_it_ends() -> None:
    cfg = _config()
    tr = EpisodeTracker(cfg)
    ends = T0 + timedelta(hours=3)
    tr.set_controls([Silence(1, "pm25-*", AIR, None, T0.timestamp(), ends.timestamp())], [], {})
    (opened,) = _feed(tr, cfg, [150])
    assert opened.new and opened.notice is None and opened.channels == []
    assert opened.episode.silenced and not opened.episode.notified
    tr.housekeep(ends - timedelta(seconds=1))
    assert tr.take() == []
    tr.housekeep(ends)
    (announced,) = tr.take()
    assert announced.notice == "firing" and announced.episode.notified
    # An episode announced late is resolved like any other.
    assert [t.notice for t in _feed(tr, cfg, [50], start=4)] == ["resolved"]


def test_a_silence_for_another_station_does_not_hold() -> None:
    cfg = _config()
    tr = EpisodeTracker(cfg)
    tr.set_controls([Silence(1, None, AIR2, None, 0.0, 2e9)], [], {})
    assert _kinds(_feed(tr, cfg, [150])) == [("firing", True)]


def test_maintenance_window_prevents_a_new_episode() -> None:
    cfg = _config()
    tr = EpisodeTracker(cfg)
    window = Window(None, "太原市", T0.timestamp(), T0.timestamp() + 2 * H)
    tr.set_controls([], [window], {})
    assert _feed(tr, cfg, [150, 150]) == []  # data times 10:00 and 11:00 are inside
    assert _kinds(_feed(tr, cfg, [150], start=2)) == [("firing", True)]


def test_escalation_unless_acknowledged() -> None:
    routes = [
        {"name": "duty", "channels": ["log"], "escalate_after": "30m", "escalate_to": "chiefs"},
        {"name": "chiefs", "channels": ["chiefs-log"], "escalation_only": True},
        {"name": "default", "channels": ["log"]},
    ]
    channels = {"chiefs-log": {"type": "log", "level": "error"}}
    cfg = _config(routes=routes, channels=channels)
    tr = EpisodeTracker(cfg)
    (fired,) = _feed(tr, cfg, [150])
    assert fired.channels == [("duty", "log")]
    tr.housekeep(T0 + timedelta(minutes=34))
    assert tr.take() == []
    tr.housekeep(T0 + timedelta(minutes=35))
    (up,) = tr.take()
    assert up.notice == "escalated" and up.channels == [("chiefs", "chiefs-log")]
    # Its end is told to both routes.
    (end,) = _feed(tr, cfg, [50], start=1)
    assert end.channels == [("duty", "log"), ("chiefs", "chiefs-log")]

    tr = EpisodeTracker(cfg)
    (fired,) = _feed(tr, cfg, [150])
    fired.episode.id = 7
    tr.ack(7, T0 + timedelta(minutes=10), "值班员")
    tr.housekeep(T0 + timedelta(hours=5))
    assert tr.take() == [] and fired.episode.acked_by == "值班员"


def _stored(**over: Any) -> Episode:
    base: dict[str, Any] = {
        "rule": "pm25-high",
        "subject": AIR,
        "severity": "warning",
        "route": "default",
        "started_at": T0,
        "message": "PM2.5",
        "station_id": AIR,
        "city": "太原市",
        "value": 150.0,
        "last_value": 150.0,
        "notified": True,
        "id": 3,
    }
    return Episode(**{**base, **over})


def test_a_restart_restores_state_and_is_neither_a_flap_nor_a_recovery() -> None:
    cfg = _config({"clear": None}, defaults={"flapping": {"window": "2h", "max_episodes": 3}})
    tr = EpisodeTracker(cfg)
    acked = _stored(acked_at=T0 + timedelta(minutes=20), acked_by="李四")
    tr.restore([acked], [("pm25-high", AIR, T0)])
    # Still high after the restart: the same episode goes on, nothing is announced.
    assert _feed(tr, cfg, [150, 140], start=1) == []
    assert tr.open_episodes() == [acked] and acked.acked_by == "李四" and acked.last_value == 140
    assert tr.dirty() == [acked]  # its latest value is written on the next pass
    tr.housekeep(T0 + timedelta(hours=5))
    assert tr.take() == []
    # Two more restarts (two more restores from the same rows) change nothing either.
    for _ in range(2):
        tr = EpisodeTracker(cfg)
        tr.restore([acked], [("pm25-high", AIR, T0)])
        assert _feed(tr, cfg, [150], start=3) == [] and not acked.flapping
    # A real recovery is announced once, as the end of that same episode (#3).
    (end,) = _feed(tr, cfg, [40], start=4)
    assert end.notice == "resolved" and end.episode.id == 3 and not end.new


def test_a_restored_silenced_episode_stays_quiet() -> None:
    cfg = _config()
    tr = EpisodeTracker(cfg)
    held = _stored(silenced=True, notified=False)
    tr.restore([held], [])
    tr.set_controls(
        [Silence(1, None, AIR, None, 0.0, (T0 + timedelta(days=1)).timestamp())], [], {}
    )
    tr.housekeep(T0 + timedelta(hours=2))
    assert _feed(tr, cfg, [150], start=2) == [] and tr.take() == []
    # No resolution notice for what was never announced.
    (end,) = _feed(tr, cfg, [40], start=3)
    assert end.notice is None and end.episode.state == "resolved"


def test_removed_rules_end_their_episodes() -> None:
    cfg = _config()
    tr = EpisodeTracker(cfg)
    tr.restore([_stored(rule="gone-rule")], [])
    assert tr.retire({"pm25-high"}, T0) == 1
    (end,) = tr.take()
    assert (
        end.notice == "resolved" and ["说明", "该规则已停用或删除"] in end.episode.details["extra"]
    )


def test_digest_route_holds_its_notices_until_its_hour() -> None:
    routes = [
        {"name": "digest", "match": {"rules": ["pm25-*"]}, "channels": ["log"], "digest": "08:30"},
        {"name": "default", "channels": ["log"]},
    ]
    cfg = _config(routes=routes)
    tr = EpisodeTracker(cfg)
    (fired,) = _feed(tr, cfg, [150])  # fired at 10:05 Beijing time
    assert fired.held == {"digest": datetime(2026, 12, 8, 8, 30, tzinfo=BEIJING)}
    assert next_digest(datetime(2026, 12, 8, 8, 30, tzinfo=BEIJING), "08:30") == datetime(
        2026, 12, 8, 8, 30, tzinfo=BEIJING
    )
    assert next_digest(datetime(2026, 12, 8, 0, 29, tzinfo=BEIJING), "08:30").day == 8
