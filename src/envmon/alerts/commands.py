"""What ``envmon alerts …`` does (the parser is :mod:`envmon.alerts.cli`, kept light).

``envmon alerts list|ack|silence|maintenance|requeue|test|grafana``.

``add_parser(subparsers)`` adds the ``alerts`` command to the CLI's parser;
its ``func`` is :func:`cmd_alerts` ``(args, settings) -> int``, like every
other command. The async functions take the open app and the parsed
arguments and print for people (or JSON with ``--json``).

The service picks up what these commands write (acknowledgements, silences,
maintenance windows, re-queued dead letters) on its next scheduled pass.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from datetime import datetime
from typing import Any

from envmon import timeutil
from envmon.alerts import episodes as store_db
from envmon.alerts.delivery import requeue_dead
from envmon.alerts.message import fmt_time, value_label
from envmon.alerts.model import LIST_LIMIT
from envmon.alerts.rules import SEVERITY_ZH, load_config, stations_of
from envmon.alerts.service import (
    AlertService,
    add_maintenance,
    add_silence,
    alert_status,
    expire_silence,
)
from envmon.app import App
from envmon.durations import parse_duration
from envmon.errors import ConfigError
from envmon.settings import AlertSettings, Settings


def _me(app: App) -> str:
    try:
        return app.settings.user or getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "unknown"


def _time(text: str) -> datetime:
    try:
        return timeutil.to_beijing(datetime.fromisoformat(text))
    except ValueError as err:
        raise ConfigError(f"'{text}' is not an ISO time (e.g. 2026-12-01T09:00)") from err


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


# ------------------------------------------------------------------ commands


async def alerts_list(app: App, args: argparse.Namespace) -> int:
    """Open (``--all``: also recent resolved) episodes, the outbox, silences, windows."""
    async with app.pool.connection() as conn:
        events = await store_db.list_events(
            conn, include_resolved=bool(getattr(args, "all", False)), limit=args.limit
        )
        silences = await (
            await conn.execute(
                "SELECT id, rule, station_id, city, starts_at, ends_at, created_by, comment"
                " FROM alert_silence WHERE ends_at > now() ORDER BY ends_at"
            )
        ).fetchall()
        windows = await (
            await conn.execute(
                "SELECT id, station_id, city, starts_at, ends_at, note FROM alert_maintenance"
                " WHERE ends_at > now() ORDER BY starts_at"
            )
        ).fetchall()
    status = await alert_status(app.pool)
    if getattr(args, "json", False):
        _print_json(
            {
                "events": [
                    {
                        "id": e.id,
                        "rule": e.rule,
                        "subject": e.subject,
                        "station_id": e.station_id,
                        "city": e.city,
                        "severity": e.severity,
                        "state": e.state,
                        "started_at": e.started_at,
                        "escalated_at": e.escalated_at,
                        "resolved_at": e.resolved_at,
                        "acked_at": e.acked_at,
                        "acked_by": e.acked_by,
                        "value": e.value,
                        "last_value": e.last_value,
                        "value_text": value_label(e, first=True),
                        "last_text": value_label(e),
                        "threshold": e.threshold,
                        "message": e.message,
                        "silenced": e.silenced,
                        "flapping": e.flapping,
                        "data_invalidated": e.data_invalidated,
                    }
                    for e in events
                ],
                "silences": [dict(zip(("id", "rule", "station_id", "city", "starts_at",
                                       "ends_at", "created_by", "comment"), r, strict=True))
                             for r in silences],
                "maintenance": [dict(zip(("id", "station_id", "city", "starts_at", "ends_at",
                                          "note"), r, strict=True)) for r in windows],
                "status": status,
            }
        )  # fmt: skip
        return 0
    if getattr(args, "all", False):
        print(f"alerts: {len(events)}")
    else:
        total = sum(int(x["count"]) for x in status["open"])
        shown = f" (the newest {len(events)} shown)" if len(events) < total else ""
        print(f"open alerts: {total}{shown}")
    for e in events:
        st = app.catalog.by_id.get(e.station_id or "")
        name = st.name if st is not None else ""
        flags = [
            f
            for f, on in (
                ("silenced", e.silenced),
                ("flapping", e.flapping),
                ("data later invalidated", e.data_invalidated),
            )
            if on
        ]
        ack = f"acked by {e.acked_by} {fmt_time(e.acked_at)}" if e.acked_at else "not acked"
        end = f" → {fmt_time(e.resolved_at)}" if e.resolved_at else ""
        print(
            f"  #{e.id:<5} {SEVERITY_ZH.get(e.severity, e.severity)} {e.state:<9} {e.rule:<26}"
            f" {e.subject} {name}  value {value_label(e)}"
            f" (fired at {value_label(e, first=True)})  since {fmt_time(e.started_at)}{end}  {ack}"
            + (f"  [{', '.join(flags)}]" if flags else "")
        )
    n = status["notifications"]
    print(
        f"notifications: {n['pending']} pending, {n['sent_24h']} sent in 24 h,"
        f" {n['dead']} dead letters"
    )
    for d in status["dead_letters"]:
        print(
            f"  dead letter: notice {d['notification_id']} channel {d['channel']} {d['kind']}"
            f" after {d['attempts']} attempt(s): {d['error']}  — {d['title']}"
        )
    if status["dead_letters"]:
        print("  (send them again: envmon alerts requeue [NOTICE_ID ...])")
    if silences:
        print("silences:")
        for sid, rule, station, city, starts, ends, by, comment in silences:
            print(
                f"  #{sid} rule={rule or '*'} station={station or '*'} city={city or '*'}"
                f" {fmt_time(starts)} → {fmt_time(ends)} by {by or '—'}  {comment or ''}"
            )
    if windows:
        print("maintenance windows:")
        for wid, station, city, starts, ends, note in windows:
            print(
                f"  #{wid} {station or city or 'all stations'}"
                f" {fmt_time(starts)} → {fmt_time(ends)}  {note or ''}"
            )
    return 0


async def alerts_ack(app: App, args: argparse.Namespace) -> int:
    by = args.by or _me(app)
    async with app.pool.connection() as conn:
        ok = await store_db.ack(conn, args.id, by, args.note, timeutil.now())
    if not ok:
        print(f"no alert #{args.id}")
        return 1
    print(f"alert #{args.id} acknowledged by {by}: it will not be escalated")
    return 0


async def alerts_silence(app: App, args: argparse.Namespace) -> int:
    if args.op == "expire":
        ok = await expire_silence(app.pool, args.id)
        print(f"silence #{args.id} " + ("ended" if ok else "was not active"))
        return 0 if ok else 1
    if args.op == "list":
        return await alerts_list(app, argparse.Namespace(all=False, json=False, limit=LIST_LIMIT))
    now = timeutil.now()
    if args.until:
        ends = _time(args.until)
    else:
        try:
            ends = now + parse_duration(args.duration or "2h")
        except ValueError as err:
            raise ConfigError(str(err)) from err
    if args.rule and args.rule not in {r.id for r in _rules(app).rules} and "*" not in args.rule:
        raise ConfigError(f"no rule '{args.rule}' in the rules file")
    station = app.catalog.resolve(args.station).id if args.station else None
    sid = await add_silence(
        app.pool,
        app.catalog,
        ends_at=ends,
        rule=args.rule,
        station_id=station,
        city=args.city,
        created_by=args.by or _me(app),
        comment=args.comment,
    )
    print(
        f"silence #{sid}: rule={args.rule or '*'} station={station or '*'}"
        f" city={args.city or '*'} until {fmt_time(ends)}（北京时间）"
    )
    return 0


async def alerts_maintenance(app: App, args: argparse.Namespace) -> int:
    if args.op == "list":
        return await alerts_list(app, argparse.Namespace(all=False, json=False, limit=LIST_LIMIT))
    if not args.station and not args.city:
        raise ConfigError("give --station or --city")
    station = app.catalog.resolve(args.station).id if args.station else None
    wid = await add_maintenance(
        app.pool,
        app.catalog,
        starts_at=_time(args.start),
        ends_at=_time(args.end),
        station_id=station,
        city=args.city,
        note=args.note,
        created_by=args.by or _me(app),
    )
    print(f"maintenance window #{wid}: {station or args.city} {args.start} → {args.end}")
    return 0


async def alerts_requeue(app: App, args: argparse.Namespace) -> int:
    n = await requeue_dead(app.pool, list(args.ids) or None)
    print(f"{n} dead letter(s) queued again (the running service sends them within a tick)")
    return 0


def _rules(app: App) -> Any:
    return load_config(app.settings.alerts_path, app.catalog, require_secrets=False)


async def alerts_test(app: App, args: argparse.Namespace, settings: AlertSettings) -> int:
    """Check the rules file; unless ``--check``, send a test message to each channel."""
    path = app.settings.alerts_path
    config = load_config(path, app.catalog, require_secrets=not args.check)
    print(f"{path}: {len(config.rules)} rules, {len(config.channels)} channels, "
          f"{len(config.routes)} routes — valid")  # fmt: skip
    for r in config.rules:
        n = len(stations_of(r, app.catalog))
        watched = f"{n} stations" if n else "—"
        print(
            f"  {r.id:<28} {r.kind:<12} {SEVERITY_ZH[r.severity]}  {watched:<13}"
            f" {'' if r.enabled else '(disabled) '}{r.title}"
        )
    if args.check:
        return 0
    quiet = AlertSettings(**{**settings.model_dump(), "tick_s": 0})
    async with AlertService(app.pool, app.catalog, quiet, config=config) as svc:
        results = await svc.send_test(list(args.channel) or None)
    failed = 0
    for name, ok, status in results:
        print(f"  channel {name:<20} {'ok' if ok else 'FAILED'}  {status}")
        failed += not ok
    return 1 if failed else 0


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    """The ``alerts`` command (``func`` of the subparser)."""
    action = args.alerts_action

    async def run() -> int:
        from envmon.app import ensure_database, open_app

        url = ensure_database(settings)
        async with open_app(settings, url=url) as app:
            if action == "list":
                return await alerts_list(app, args)
            if action == "ack":
                return await alerts_ack(app, args)
            if action == "silence":
                return await alerts_silence(app, args)
            if action == "maintenance":
                return await alerts_maintenance(app, args)
            if action == "requeue":
                return await alerts_requeue(app, args)
            return await alerts_test(app, args, settings.alerts)

    return asyncio.run(run())
