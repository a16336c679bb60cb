"""``envmon review invalidate|restore|history``: the data review from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from envmon import review
from envmon.app import ensure_database, open_app
from envmon.catalog.loader import load_catalog
from envmon.parameters import BY_CODE
from envmon.settings import Settings
from envmon.timeutil import now


def cmd_review(args: argparse.Namespace, settings: Settings) -> int:
    catalog = load_catalog(settings.stations_path)
    if args.review_action == "history":
        parameter = args.parameter.strip().lower()
        kind = BY_CODE[parameter].kind if parameter in BY_CODE else None
        station = review.find_station(catalog, args.station, kind)
        ts = review.parse_time(args.time, "--time")

        async def show() -> int:
            url = ensure_database(settings)
            async with open_app(settings, url=url) as app, app.pool.connection() as conn:
                rows = await review.history(conn, station, parameter, ts)
            if args.json:
                print(json.dumps(rows, ensure_ascii=False, indent=2))
            else:
                print(review.render_history(station, parameter, ts, rows))
            return 0

        return asyncio.run(show())
    sel = review.selector(
        catalog,
        args.station,
        args.parameter,
        review.parse_time(args.start, "--from"),
        review.parse_time(args.end, "--to"),
        now=now(),
    )

    async def act() -> int:
        url = ensure_database(settings)
        async with open_app(settings, url=url) as app, app.pool.connection() as conn:
            res = await review.apply(conn, args.review_action, sel, reason=args.reason, by=args.by)
        if args.json:
            print(json.dumps(res.as_dict(), ensure_ascii=False, indent=2))
        else:
            verb = "invalidated" if res.action == "invalidate" else "restored"
            print(
                f"review #{res.id}: {res.readings} readings of {res.station_id} {res.parameter}"
                f" {verb} in [{res.start.isoformat()}, {res.end.isoformat()}) by {res.by}"
                f" ({res.reason})"
            )
        return 0

    return asyncio.run(act())


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``envmon review …`` to the CLI's subparsers."""
    rv: argparse.ArgumentParser = sub.add_parser(
        "review", help="data review (审核): invalidate, restore, a reading's history"
    )
    rv_sub = rv.add_subparsers(dest="review_action", required=True)
    for name, text in (
        ("invalidate", "mark readings invalid over [--from, --to) (they leave the statistics)"),
        ("restore", "make invalidated readings valid again over [--from, --to)"),
    ):
        p = rv_sub.add_parser(name, help=text)
        p.add_argument("--station", required=True, help="station id or Chinese name")
        p.add_argument("--parameter", required=True, help="parameter code (pm25, so2, …)")
        p.add_argument(
            "--from", dest="start", required=True, help="ISO time (Beijing if no offset)"
        )
        p.add_argument("--to", dest="end", required=True, help="ISO time, exclusive")
        p.add_argument("--reason", required=True)
        p.add_argument("--by", required=True, help="the reviewer's name")
        p.add_argument("--json", action="store_true")
    h = rv_sub.add_parser("history", help="every version and review action of one reading")
    h.add_argument("--station", required=True)
    h.add_argument("--parameter", required=True)
    h.add_argument("--time", required=True, help="the reading's time (ISO, Beijing if no offset)")
    h.add_argument("--json", action="store_true")
    rv.set_defaults(func=cmd_review)
    return rv
