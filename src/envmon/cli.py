"""The ``envmon`` command line. Output for people goes to stdout; logs to stderr."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envmon import log
from envmon.errors import EnvmonError
from envmon.settings import Settings
from envmon.statusline import status_line

# Exit codes besides 0 (done), 1 (error) and 2 (usage, argparse's).
EXIT_UNAVAILABLE = 3  # the database cannot be reached (an import spooled what it read)
EXIT_REJECTED = 4  # an import stored its good rows but rejected some (see --allow-rejects)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


# -- db ---------------------------------------------------------------------------------


def _region(text: str) -> str:
    from envmon.catalog.names import UnknownName, region_of

    try:
        return region_of(text)
    except UnknownName as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from envmon.db.connection import database_url, embedded_cluster

    cluster = embedded_cluster(settings)
    if args.action == "url":
        print(database_url(settings))
        return 0
    if not settings.uses_embedded and args.action in ("up", "down"):
        print(
            "ENVMON_DATABASE_URL names an external server; the embedded one is not used.",
            file=sys.stderr,
        )
        return 2
    if args.action == "up":
        cluster.start()
        print(f"embedded PostgreSQL running: {cluster.url()}")
    elif args.action == "down":
        cluster.stop()
        print("embedded PostgreSQL stopped")
    else:
        _print_json(cluster.status())
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from envmon.app import ensure_database
    from envmon.db import migrate

    done = migrate.migrate(
        ensure_database(settings, migrate=False), migrate.Options.from_settings(settings)
    )
    # Migration names ("core/0001_core.sql") were applied; other lines say what was done.
    print(
        "\n".join(f"applied {a}" if a.endswith(".sql") else a for a in done) or "schema up to date"
    )
    return 0


# -- stations ---------------------------------------------------------------------------


def cmd_stations(args: argparse.Namespace, settings: Settings) -> int:
    from envmon.catalog import catalog_to_json, load_catalog

    path = Path(args.file) if getattr(args, "file", None) else settings.stations_path
    catalog = load_catalog(path)
    if args.action == "list":
        stations = [s for s in catalog.stations if not args.kind or s.kind == args.kind]
        if args.json:
            _print_json(
                [d for d in catalog_to_json(catalog) if not args.kind or d["kind"] == args.kind]
            )
        else:
            print(f"{'id':34} {'kind':8} {'name':12} {'county':8} {'level':11} lon       lat")
            for s in stations:
                print(
                    f"{s.id:34} {s.kind:8} {s.name:12} {s.county:8} {s.control_level:11}"
                    f" {s.lon:9.4f} {s.lat:8.4f}"
                )
            print(f"{len(stations)} stations")
        return 0

    async def load() -> int:
        from envmon.app import ensure_database
        from envmon.db.catalog_sync import sync_catalog
        from envmon.db.connection import open_pool

        url = ensure_database(settings)
        async with open_pool(settings, url=url) as pool, pool.connection() as conn:
            r = await sync_catalog(conn, catalog)
        print(
            f"stations loaded from {path}: {len(catalog.stations)} in file; "
            f"{r.inserted} new, {r.updated} updated, {r.unchanged} unchanged, "
            f"{r.deactivated} deactivated"
        )
        return 0

    return asyncio.run(load())


# -- import -----------------------------------------------------------------------------


class _ProgressBar:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total_bytes: int) -> None:
        self.total = max(total_bytes, 1)
        self.enabled = sys.stderr.isatty()
        self.start = time.monotonic()

    def __call__(self, rows: int, bytes_read: int, result: Any) -> None:
        if not self.enabled:
            return
        frac = min(bytes_read / self.total, 1.0)
        bar = "█" * int(frac * 30) + "·" * (30 - int(frac * 30))
        rate = rows / max(time.monotonic() - self.start, 1e-6)
        sys.stderr.write(
            f"\r{bar} {frac:6.1%} {rows:>10,} rows {rate:>9,.0f}/s rejected {result.rejected:,}"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    import functools
    import logging

    from envmon.app import ensure_database, open_app
    from envmon.errors import DatabaseUnavailable
    from envmon.ingest.files import read_chunks
    from envmon.ingest.importer import import_file

    path = Path(args.file)
    size = path.stat().st_size if path.exists() else 0
    reader = functools.partial(read_chunks, encoding=args.encoding)

    async def run() -> int:
        url = None
        down: DatabaseUnavailable | None = None
        try:
            url = ensure_database(settings)
        except DatabaseUnavailable as err:  # the spool takes the batches while it is down
            down = err
            # The pool's retries and each spooled batch would log a line: the summary says it.
            for name in ("psycopg.pool", "envmon.db"):
                logging.getLogger(name).setLevel(logging.ERROR)
        async with open_app(settings, url=url) as app:
            if down is not None:
                # Known down: every batch goes straight to the spool, none waits.
                app.sink.writer.timeout = 0.5
                app.sink.retry_after = float("inf")
            else:
                await app.load_stations()  # the derived tables need the catalog's kinds
            bar = _ProgressBar(size)
            t0 = time.monotonic()
            # The derived tables follow the import as it goes (the days already
            # written), on the cores the import leaves idle, and catch up at the end.
            imported = asyncio.Event()
            deriving = None
            if not args.no_derive and down is None:
                from envmon.evaluate.derive import derive_alongside

                deriving = asyncio.create_task(
                    derive_alongside(app.pool, imported, city_o3=settings.evaluate.city_o3)
                )
            try:
                report = await import_file(
                    path,
                    validator=app.validator,
                    sink=app.sink,
                    source=args.source,
                    on_progress=bar,
                    reader=reader,
                )
            except BaseException:
                if deriving is not None:
                    deriving.cancel()
                raise
            finally:
                bar.close()
                imported.set()
            dt = time.monotonic() - t0
            derived = None
            derive_failed = False
            if deriving is not None and report.result.spooled:
                # The database went away: the derive job follows when the spool is replayed.
                deriving.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await deriving
            elif deriving is not None:
                try:
                    derived = await deriving
                except Exception as err:  # the readings are stored; their days stay queued
                    derive_failed = True
                    logging.getLogger("envmon.evaluate").error("derive failed: %s", err)
                    print(
                        f"envmon: the readings are stored, but the derived tables were not"
                        f" updated ({err}); `envmon derive` or the derive job of `envmon run`"
                        " will do it",
                        file=sys.stderr,
                    )
        r = report.result
        print(
            f"{path}: {report.rows:,} rows in {dt:.1f} s — accepted {r.accepted:,} "
            f"(new {r.inserted:,}, updated {r.updated:,}, unchanged {r.unchanged:,}, "
            f"repeated in file {r.duplicates:,}), rejected {report.rejected_total:,}"
            + (f", spooled {r.spooled:,} (database unavailable)" if r.spooled else "")
            + (
                f" [{report.encoding}]"
                if report.encoding not in (None, "utf-8", "utf-8-sig")
                else ""
            )
        )
        if derived is not None and derived.station_days:
            print(f"derived values updated for {derived.station_days:,} station-days")
        if report.rejects:
            print("rejected rows:")
            for rej in report.rejects[: args.show_rejects]:
                print(f"  line {rej.line}: {rej.reason}  [{rej.raw}]")
            more = report.rejected_total - min(len(report.rejects), args.show_rejects)
            if more > 0:
                print(f"  … and {more:,} more (all kept in the 'rejected' table)")
        if down is not None or r.spooled:
            reason = down or "the database stopped during the import"
            print(
                f"envmon: {reason} — {r.spooled:,} readings spooled to {settings.spool_dir};"
                " they are written when it is back (`envmon spool replay` or `envmon run`)",
                file=sys.stderr,
            )
            return EXIT_UNAVAILABLE
        if derive_failed:
            return 1
        if report.rejected_total and not args.allow_rejects:
            print(
                f"envmon: {report.rejected_total:,} row(s) rejected (kept in the 'rejected'"
                " table); the other rows are stored. --allow-rejects makes this exit 0.",
                file=sys.stderr,
            )
            return EXIT_REJECTED
        return 0

    return asyncio.run(run())


# -- evaluate, derive, dust ---------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import date

    from envmon.app import ensure_database, open_app
    from envmon.evaluate.assessment import evaluate_year, render_table
    from envmon.evaluate.derive import process_dirty
    from envmon.evaluate.targets import load_targets
    from envmon.review import parse_time
    from envmon.review.asof import data_as_of
    from envmon.timeutil import now

    targets = load_targets(Path(args.targets) if args.targets else settings.targets_path)
    # A date: evaluate the year up to it. A time: also the data as it stood then (issue 14).
    data_at = parse_time(args.as_of, "--as-of") if args.as_of and "T" in args.as_of else None
    as_of = (
        data_at.date()
        if data_at
        else (date.fromisoformat(args.as_of) if args.as_of else now().date())
    )

    async def run() -> int:
        url = ensure_database(settings)
        async with open_app(settings, url=url) as app, app.pool.connection() as conn:
            # Bring the derived values up to date first.
            await process_dirty(conn, city_o3=settings.evaluate.city_o3)
            options: dict[str, Any] = {
                "as_of": as_of,
                "edition": args.edition,
                "incomplete": settings.evaluate.incomplete_days,
                "dust_unit": settings.evaluate.dust_unit,
            }
            if data_at is None:
                res = await evaluate_year(conn, args.year, args.region, targets, **options)
            else:
                # The data as it stood at data_at (revision history and review log).
                async with data_as_of(conn, data_at, date(args.year + 1, 1, 1)):
                    await process_dirty(conn, city_o3=settings.evaluate.city_o3)
                    res = await evaluate_year(conn, args.year, args.region, targets, **options)
            res["reviewed_as_of"] = (data_at or now()).isoformat()
        if args.json:
            _print_json(res)
        else:
            print(render_table(res))
            print(f"  reviewed data as of {res['reviewed_as_of']}")
        return 0

    return asyncio.run(run())


def cmd_derive(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import date

    from envmon.app import ensure_database, open_app
    from envmon.evaluate.derive import mark_range, process_dirty

    async def run() -> int:
        url = ensure_database(settings)
        async with open_app(settings, url=url) as app, app.pool.connection() as conn:
            if args.rebuild_from:
                end = date.fromisoformat(args.rebuild_to) if args.rebuild_to else date(9999, 1, 1)
                n = await mark_range(conn, date.fromisoformat(args.rebuild_from), end)
                await conn.commit()
                print(f"queued {n} station-days for recomputation")
            t0 = time.monotonic()
            st = await process_dirty(conn, city_o3=settings.evaluate.city_o3)
        print(
            f"derived in {time.monotonic() - t0:.1f} s: {st.station_days} station-days, "
            f"{st.air_hours} air hours, {st.air_days} air days, {st.region_days} region days, "
            f"{st.water_days} water day-values, {st.water_months} water section-months"
        )
        return 0

    return asyncio.run(run())


def cmd_dust(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime

    from envmon.app import ensure_database, open_app
    from envmon.timeutil import to_beijing

    async def run() -> int:
        url = ensure_database(settings)
        async with open_app(settings, url=url) as app, app.pool.connection() as conn:
            if args.action == "add":
                region = args.region
                start = to_beijing(datetime.fromisoformat(args.start))
                end = to_beijing(datetime.fromisoformat(args.end))
                if end <= start:
                    raise EnvmonError("the dust period must end after it starts")
                await conn.execute(
                    "INSERT INTO dust_period (region, starts_at, ends_at, note)"
                    " VALUES (%s, %s, %s, %s)",
                    (region, start, end, args.note),
                )
                await conn.commit()
                print(f"dust period added: {region} {start.isoformat()} – {end.isoformat()}")
            else:
                cur = await conn.execute(
                    "SELECT id, region, starts_at, ends_at, note"
                    " FROM dust_period ORDER BY starts_at"
                )
                for row in await cur.fetchall():
                    print(
                        f"{row[0]:>4} {row[1]:8} {row[2]:%Y-%m-%d %H:%M} – "
                        f"{row[3]:%Y-%m-%d %H:%M}  {row[4] or ''}"
                    )
        return 0

    return asyncio.run(run())


# -- spool, status, run ----------------------------------------------------------------


def cmd_spool(args: argparse.Namespace, settings: Settings) -> int:
    from envmon.app import ensure_database, open_app
    from envmon.db.spool import Spool

    spool = Spool(settings.spool_dir)
    if args.action == "status":
        print(
            f"{len(spool.pending())} file(s), {spool.pending_readings():,} readings pending "
            f"in {settings.spool_dir}"
        )
        return 0

    async def replay() -> int:
        url = ensure_database(settings)
        async with open_app(settings, url=url) as app:
            r = await app.sink.replay_spool()
        print(f"replayed: {r.as_dict()}")
        return 0

    return asyncio.run(replay())


def _print_status(st: dict[str, Any]) -> None:
    print(
        f"PostgreSQL {st['postgresql']}"
        + (
            f", TimescaleDB {st['timescaledb']}"
            if st["timescaledb"]
            else " (plain PostgreSQL: no TimescaleDB)"
        )
    )
    print("stations:")
    for kind, c in st["stations"].items():
        rec = st["recent_readings"].get(kind, {})
        print(
            f"  {kind:8} {c['active']:>4} active / {c['total']:>4}   "
            f"reporting in 48 h: {rec.get('stations_reporting', 0):>4}   "
            f"latest reading: {rec.get('latest') or '—'}"
        )
    print(f"readings stored: {st['readings_total']:,}")
    if st["rejected_24h"]:
        print("rejected in the last 24 h (top reasons):")
        for reason, n in st["rejected_24h"].items():
            print(f"  {n:>7,}  {reason}")
    noise = st.get("hj212_noise_1h")
    if noise:
        crc, auth = noise["crc_mismatch"], noise["auth_failed"]
        print(
            f"HJ 212 in the last hour: {crc['frames']:,} CRC mismatches from {crc['from']:,} MN(s),"
            f" {auth['frames']:,} authentication failures from {auth['from']:,} MN(s)"
        )
    if st.get("sources"):
        print("sources:")
        for h in st["sources"]:
            stations = h["stations"]
            lag = "—" if h["lag_s"] is None else f"{h['lag_s'] / 60:.0f} min"
            print(
                f"  {h['source']:<18} {h['kind']:<13} {h['state']:<9}"
                f"{' STALE' if h['stale'] else '      '} lag {lag:>8}  stations "
                f"{stations['reporting']}/{stations['mapped']}"
                + (f"  last error: {h['last_error']}" if h["last_error"] else "")
            )
    if st.get("alerts"):
        a = st["alerts"]
        opened = ", ".join(f"{o['count']} {o['severity']} {o['state']}" for o in a["open"])
        n = a["notifications"]
        print(
            f"alerts: open {opened or 'none'}; notifications sent 24 h {n['sent_24h']},"
            f" pending {n['pending']}, dead letters {n['dead']}"
        )
        for d in a["dead_letters"][:5]:
            print(f"  dead letter #{d['notification_id']} {d['channel']}: {d['error']}")
    if st["spool_pending_files"]:
        print(f"spool: {st['spool_pending_files']} batch file(s) waiting for the database")


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from envmon.app import ensure_database, open_app
    from envmon.service import status_summary

    async def run() -> int:
        url = ensure_database(settings)
        async with open_app(settings, url=url) as app:
            st = await status_summary(app)
        if args.json:
            _print_json(st)
        else:
            _print_status(st)
        if args.health:  # the container healthcheck
            from envmon.health import problems

            bad = problems(settings)
            for line in bad:
                print(f"unhealthy: {line}", file=sys.stderr)
            if bad:
                return 1
        return 0

    return asyncio.run(run())


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime

    from envmon.app import ensure_database, open_app
    from envmon.evaluate.derive import process_dirty
    from envmon.ingest.backfill import backfill
    from envmon.ingest.collectors import client_session
    from envmon.ingest.sources import load_sources
    from envmon.simulate.serve import simulated_platforms
    from envmon.timeutil import to_beijing

    start = to_beijing(datetime.fromisoformat(args.start))
    end = to_beijing(datetime.fromisoformat(args.end))
    config = load_sources(settings.sources_path)

    async def run() -> int:
        url = ensure_database(settings)
        async with open_app(settings, url=url) as app, client_session(settings.collect) as s:
            await app.load_stations()
            # A simulator source (the demo's platforms) is served for the duration.
            async with simulated_platforms(config, app.catalog, port=0, force=True) as bound:
                report = await backfill(
                    app.intake, bound, s, args.source, start, end, secrets=settings.collect.secrets
                )
            _print_json(report.as_dict())
            async with app.pool.connection() as conn:
                st = await process_dirty(conn, city_o3=settings.evaluate.city_o3)
            print(f"derived values updated for {st.station_days:,} station-days")
        return 0

    return asyncio.run(run())


def cmd_sources(args: argparse.Namespace, settings: Settings) -> int:
    from envmon.catalog import load_catalog
    from envmon.ingest.backfill import check_sources
    from envmon.ingest.sources import load_sources

    config = load_sources(settings.sources_path)
    rows = check_sources(load_catalog(settings.stations_path), config, settings.collect.secrets)
    for r in rows:
        print(
            f"{r['source']:<18} {r['kind']:<13} {'active' if r['active'] else 'off':<7}"
            f" {r['stations']:>4} stations  {r['base_url'] or '—'}"
            + (f"\n    problem: {r['problem']}" if r["problem"] else "")
        )
    return 1 if any(r["problem"] for r in rows) else 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import date

    from envmon.app import ensure_database, open_app
    from envmon.evaluate.derive import process_dirty
    from envmon.report import render_report

    out = Path(args.out or f"envmon-{args.year}.{args.format}")
    targets = Path(args.targets) if args.targets else settings.targets_path
    as_of = date.fromisoformat(args.as_of) if args.as_of else None

    async def run() -> int:
        url = ensure_database(settings)
        async with open_app(settings, url=url) as app, app.pool.connection() as conn:
            await process_dirty(conn, city_o3=settings.evaluate.city_o3)
            path = await render_report(
                conn, args.year, args.format, out, targets=targets, as_of=as_of
            )
        print(f"report written: {path}")
        return 0

    return asyncio.run(run())


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from envmon.service import run_forever, service, status

    if args.workers is not None:
        if not 1 <= args.workers <= 64:
            raise EnvmonError(f"--workers {args.workers}: from 1 to 64")
        settings.hj212.workers = args.workers
    if args.receiver_worker is not None:
        from envmon.receivers import serve_worker

        if not 0 < args.receiver_worker < settings.hj212.workers:
            raise EnvmonError(
                f"--receiver-worker {args.receiver_worker}: not a worker of "
                f"ENVMON_HJ212__WORKERS={settings.hj212.workers}"
            )
        settings.hj212.worker_index = args.receiver_worker
        asyncio.run(serve_worker(settings))
        return 0

    if args.once:

        async def once() -> int:
            settings.simulator.history_years = []
            settings.simulator.history_current_year = False
            async with service(settings) as parts:
                _print_status(await status(parts))
            return 0

        return asyncio.run(once())

    first = True

    def show(st: dict[str, Any]) -> None:
        nonlocal first
        if first:
            _print_status(st)
            if st.get("api"):
                print(f"HTTP API: {st['api']}/api/v1/  (OpenAPI: {st['api']}/api/v1/openapi.json)")
            if st.get("api_tokens_file"):
                print(
                    f"  demo tokens in {st['api_tokens_file']}; e.g.\n"
                    f'  curl -H "Authorization: Bearer $(grep read_token '
                    f"{st['api_tokens_file']} | cut -d' ' -f2)\" "
                    f"'{st['api']}/api/v1/aqi?region=taiyuan&resolution=daily"
                    f"&from=2025-01-01&to=2026-01-01'"
                )
            print("envmon is running — Ctrl-C to stop. Live status:")
            first = False
        print(status_line(st), flush=True)

    asyncio.run(run_forever(settings, show))
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """``envmon simulate``: stored simulated readings, or simulated HJ 212 loggers."""
    from envmon.simulate.commands import cmd_simulate as run

    return run(args, settings)


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    """``envmon alerts …``; its ``grafana`` action is Grafana code (``envmon.dashboards``)."""
    if args.alerts_action == "grafana":
        from envmon.dashboards.cli import cmd_alert_rules

        return cmd_alert_rules(args, settings)
    from envmon.alerts.cli import cmd_alerts as run

    return run(args, settings)


# -- entry point -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="envmon", description=__doc__)
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING …")
    sub = p.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the embedded PostgreSQL cluster")
    db.add_argument("action", choices=["up", "down", "status", "url"])
    db.set_defaults(func=cmd_db)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    st = sub.add_parser("stations", help="the station catalog")
    st_sub = st.add_subparsers(dest="action", required=True)
    st_load = st_sub.add_parser("load", help="upsert the catalog into the database")
    st_load.add_argument("file", nargs="?")
    st_list = st_sub.add_parser("list", help="print the catalog (no database needed)")
    st_list.add_argument("--kind", choices=["air", "water", "weather"])
    st_list.add_argument("--json", action="store_true")
    st_list.add_argument("--file")
    st.set_defaults(func=cmd_stations)

    im = sub.add_parser("import", help="import a CSV or XLSX file of readings")
    im.add_argument("file")
    im.add_argument("--source", default=None, help="source name recorded with each reading")
    im.add_argument("--show-rejects", type=int, default=50)
    im.add_argument(
        "--no-derive", action="store_true", help="do not update the derived tables afterwards"
    )
    im.add_argument(
        "--encoding",
        help="the CSV's text encoding (default: detected — UTF-8, UTF-16 with a BOM, GB18030/GBK)",
    )
    im.add_argument(
        "--allow-rejects",
        action="store_true",
        help=f"exit 0 even when rows were rejected (default: exit {EXIT_REJECTED})",
    )
    im.set_defaults(func=cmd_import)

    sp = sub.add_parser("spool", help="batches waiting for the database")
    sp.add_argument("action", choices=["status", "replay"])
    sp.set_defaults(func=cmd_spool)

    s = sub.add_parser("status", help="stations, readings, rejects, spool")
    s.add_argument("--json", action="store_true")
    s.add_argument(
        "--health",
        action="store_true",
        help="exit 1 when the spool is stuck or the HJ 212 receiver or the API accepts no "
        "connection (the container healthcheck)",
    )
    s.set_defaults(func=cmd_status)

    ev = sub.add_parser("evaluate", help="the year against the zone's targets")
    ev.add_argument("--year", type=int, required=True)
    ev.add_argument(
        "--region", default="zone", type=_region, help="zone, taiyuan, xinzhou, 太原市, 忻州市…"
    )
    ev.add_argument("--targets", help="targets YAML (default config/targets.yaml)")
    ev.add_argument(
        "--edition",
        type=int,
        choices=[2012, 2026],
        help="force one edition of the standards for every day (comparison)",
    )
    ev.add_argument(
        "--as-of",
        help="evaluate as of this Beijing date (default today); a time (2025-06-30T18:00)"
        " also takes the data as it stood then (revisions and review undone since)",
    )
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    de = sub.add_parser("derive", help="bring the derived tables up to date")
    de.add_argument("--rebuild-from", help="recompute every station-day from this date")
    de.add_argument("--rebuild-to", help="… up to (excluding) this date")
    de.set_defaults(func=cmd_derive)

    du = sub.add_parser("dust", help="dust periods from the audit (PM statistics deduct them)")
    du_sub = du.add_subparsers(dest="action", required=True)
    du_add = du_sub.add_parser("add")
    du_add.add_argument("region", type=_region, help="太原市, 忻州市, taiyuan, xinzhou or zone")
    du_add.add_argument("start", help="ISO time (Beijing time without offset)")
    du_add.add_argument("end")
    du_add.add_argument("--note")
    du_sub.add_parser("list")
    du.set_defaults(func=cmd_dust)

    r = sub.add_parser("run", help="the service: database, catalog, collectors, receiver")
    r.add_argument(
        "--once", action="store_true", help="set everything up, print the status and exit"
    )
    r.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="HJ 212 receiver processes sharing its port (default: ENVMON_HJ212__WORKERS, 1); "
        "each device is always served by the same one",
    )
    r.add_argument("--receiver-worker", type=int, help=argparse.SUPPRESS)
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("report", help="the annual assessment report (Chinese, HTML or PDF)")
    rp.add_argument("--year", type=int, required=True)
    rp.add_argument("--format", choices=["html", "pdf"], default="pdf")
    rp.add_argument("-o", "--out", help="output file (default envmon-YEAR.FORMAT)")
    rp.add_argument("--as-of", help="for the current year: data up to this Beijing date")
    rp.add_argument("--targets", help="targets YAML (default config/targets.yaml)")
    rp.set_defaults(func=cmd_report)

    bf = sub.add_parser("backfill", help="fetch a past range from one HTTP source")
    bf.add_argument("--source", required=True)
    bf.add_argument("--from", dest="start", required=True, help="ISO time (Beijing time)")
    bf.add_argument("--to", dest="end", required=True)
    bf.set_defaults(func=cmd_backfill)

    so = sub.add_parser("sources", help="the HTTP sources of config/sources.yaml")
    so.add_argument("action", choices=["check"])
    so.set_defaults(func=cmd_sources)

    from envmon.alerts.cli import add_parser as add_alerts
    from envmon.dashboards.cli import add_parser as add_dashboards
    from envmon.review.cli import add_parser as add_review

    add_alerts(sub).set_defaults(func=cmd_alerts)
    add_review(sub)

    add_dashboards(sub)

    sim = sub.add_parser("simulate", help="store simulated readings for a time range")
    sim.add_argument("--from", dest="start", required=True, help="ISO time (Beijing time)")
    sim.add_argument("--to", dest="end", required=True)
    sim.add_argument("--kinds", default="air,water,weather")
    sim.add_argument("--seed", type=int, default=2025)
    sim.add_argument("--no-derive", action="store_true")
    sim.add_argument(
        "--hj212",
        metavar="HOST:PORT",
        help="push the air and water stations' hours as HJ 212 data loggers "
        "to this receiver instead of writing to the database (passwords from "
        "the HJ 212 secrets file)",
    )
    sim.set_defaults(func=cmd_simulate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import psycopg
    from psycopg_pool import PoolTimeout

    from envmon.db.availability import OutageLogFilter, is_unavailable, unreachable
    from envmon.db.connection import database_url
    from envmon.errors import DatabaseUnavailable

    args = build_parser().parse_args(argv)
    settings = Settings()
    log.configure(args.log_level or settings.log_level, filters=[OutageLogFilter()])
    try:
        return int(args.func(args, settings))
    except DatabaseUnavailable as err:
        print(f"envmon: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except EnvmonError as err:
        print(f"envmon: error: {err}", file=sys.stderr)
        return 1
    except (psycopg.OperationalError, PoolTimeout) as err:
        # The database went away while the command ran (or refused the login).
        url = database_url(settings)
        if is_unavailable(err):
            print(
                f"envmon: {unreachable(url, err, embedded=settings.uses_embedded)}", file=sys.stderr
            )
            return EXIT_UNAVAILABLE
        print(f"envmon: error: database: {str(err).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
