"""The ``envmon dashboards build|push`` subcommands, ready to be added to ``envmon.cli``.

``envmon.cli.build_parser`` calls :func:`add_parser` with its sub-parsers; the
parsed command runs :func:`cmd_dashboards` (``args.func(args, settings)``).
Output for people goes to stdout, as in the rest of the CLI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from envmon.settings import Settings


def add_parser(sub: Any) -> None:
    """Add ``dashboards build [--check]`` and ``dashboards push`` to the CLI's sub-parsers."""
    d = sub.add_parser("dashboards", help="Grafana dashboards: generate the provisioning, push")
    d_sub = d.add_subparsers(dest="action", required=True)
    b = d_sub.add_parser("build", help="write deploy/grafana/ (dashboards and provisioning)")
    b.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming every stale file"
    )
    d_sub.add_parser("push", help="upload the dashboards (ENVMON_GRAFANA__URL, __TOKEN)")
    d.set_defaults(func=cmd_dashboards)


def cmd_dashboards(args: argparse.Namespace, settings: Settings) -> int:
    targets_file = settings.targets_path
    if args.action == "build":
        from envmon.dashboards.build import build

        report = build(args.check, targets_file=targets_file)
        if args.check:
            for path in report.stale:
                print(f"stale: {path}", file=sys.stderr)
            if not report.ok:
                print(
                    f"{len(report.stale)} generated Grafana file(s) out of date:"
                    " run `envmon dashboards build` and commit the result",
                    file=sys.stderr,
                )
                return 1
            print(f"Grafana files up to date ({len(report.unchanged)} checked)")
            return 0
        for path in report.written:
            print(f"wrote {path}")
        print(f"{len(report.written)} written, {len(report.unchanged)} unchanged")
        return 0

    from envmon.dashboards.push import push

    grafana = settings.grafana
    result = push(grafana, targets_file=targets_file)
    print(f"Grafana {result.grafana_version or '(version unknown)'} at {grafana.url}")
    if result.folder_created:
        print(f"folder created: {grafana.folder_uid}")
    print(f"data source envmon-postgres: {result.datasource}")
    for d in result.dashboards:
        print(f"  {d.uid:<22} v{d.version}  {d.title}  {d.url or ''}")
    return 0


def cmd_alert_rules(args: argparse.Namespace, settings: Settings) -> int:
    """``envmon alerts grafana [--check] [--out DIR]``: the Grafana alert-rule provisioning
    generated from ``config/alerts.yaml`` (Grafana code lives in this package)."""
    from envmon.dashboards.alert_rules import DEFAULT_OUT, build

    out = Path(args.out) if args.out else DEFAULT_OUT
    changed = build(
        args.check,
        rules_file=settings.alerts_path,
        out=out,
        stations_file=settings.stations_path,
    )
    if args.check:
        print(f"{out} is up to date")
    else:
        print(f"{out} {'written' if changed else 'already up to date'}")
    return 0
