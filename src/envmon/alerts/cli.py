"""``envmon alerts list|ack|silence|maintenance|requeue|test|grafana``.

``add_parser(subparsers)`` adds the ``alerts`` command to the CLI's parser;
its ``func`` is :func:`cmd_alerts` ``(args, settings) -> int``, like every
other command. The async functions take the open app and the parsed
arguments and print for people (or JSON with ``--json``).

The service picks up what these commands write (acknowledgements, silences,
maintenance windows, re-queued dead letters) on its next scheduled pass.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from envmon.alerts.model import LIST_LIMIT
from envmon.catalog.names import UnknownName, city_of
from envmon.settings import Settings


def _city(text: str) -> str:
    try:
        return city_of(text)
    except UnknownName as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    """The ``alerts`` command: its implementations load only when it runs (start-up of
    every other ``envmon`` command stays fast)."""
    from envmon.alerts.commands import cmd_alerts as run

    return run(args, settings)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``envmon alerts …`` to the CLI's subparsers."""
    al: argparse.ArgumentParser = sub.add_parser(
        "alerts", help="alert episodes, silences, channels, Grafana rules"
    )
    al_sub = al.add_subparsers(dest="alerts_action", required=True)

    ls = al_sub.add_parser("list", help="open alerts, notifications, dead letters, silences")
    ls.add_argument("--all", action="store_true", help="also resolved alerts")
    ls.add_argument("--limit", type=int, default=LIST_LIMIT)
    ls.add_argument("--json", action="store_true")

    ack = al_sub.add_parser("ack", help="acknowledge an alert (stops its escalation)")
    ack.add_argument("id", type=int)
    ack.add_argument("--by", help="who (default: the user name)")
    ack.add_argument("--note")

    si = al_sub.add_parser("silence", help="silence alerts for a while")
    si_sub = si.add_subparsers(dest="op", required=True)
    si_add = si_sub.add_parser("add")
    si_add.add_argument("--rule", help="rule id or pattern (pm25-*)")
    si_add.add_argument("--station", help="id, Chinese name or pinyin")
    si_add.add_argument("--city", type=_city, help="太原市, 忻州市 (or 太原, taiyuan, …)")
    si_add.add_argument("--for", dest="duration", help="how long (2h, 90m; default 2h)")
    si_add.add_argument("--until", help="until this ISO time (Beijing time)")
    si_add.add_argument("--comment")
    si_add.add_argument("--by")
    si_sub.add_parser("list")
    si_exp = si_sub.add_parser("expire")
    si_exp.add_argument("id", type=int)

    mt = al_sub.add_parser("maintenance", help="declared maintenance windows")
    mt_sub = mt.add_subparsers(dest="op", required=True)
    mt_add = mt_sub.add_parser("add")
    mt_add.add_argument("start", help="ISO time (Beijing time)")
    mt_add.add_argument("end")
    mt_add.add_argument("--station", help="id, Chinese name or pinyin")
    mt_add.add_argument("--city", type=_city, help="太原市, 忻州市 (or 太原, taiyuan, …)")
    mt_add.add_argument("--note")
    mt_add.add_argument("--by")
    mt_sub.add_parser("list")

    rq = al_sub.add_parser("requeue", help="send dead letters again")
    rq.add_argument("ids", nargs="*", type=int, help="notification ids (default: all)")

    te = al_sub.add_parser("test", help="check the rules file and send a test message")
    te.add_argument("--channel", action="append", default=[], help="only this channel")
    te.add_argument("--check", action="store_true", help="only check the rules file")

    gr = al_sub.add_parser("grafana", help="generate the Grafana alert-rule provisioning")
    gr.add_argument("--check", action="store_true", help="fail if the file is out of date")
    gr.add_argument("--out", help=f"default {Path('deploy/grafana/provisioning/alerting')}")

    al.set_defaults(func=cmd_alerts)
    return al
