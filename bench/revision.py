"""Benchmark (issue 14): what the revision history costs ``envmon import``.

Revision history is a row trigger on ``reading`` (migration 0014) that fires
only for rows an upsert really changes; identical re-deliveries are skipped by
the writer's ``WHERE … IS DISTINCT FROM`` before any trigger runs. So the goal
"import throughput with no changes within 10 % of before" is measured here as
the same re-import of an unchanged file with the trigger in place and with it
dropped (envmon as it was before the history), alternated, several times each,
the median of each compared. The run also prints what a re-import that
changes every value costs with and without the history (informative: each
changed reading then writes one ``reading_revision`` row).

``envmon import --no-derive`` runs as the real command in a subprocess, so the
figures include process start-up, as a user sees them.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psycopg

from bench.common import bench_cluster, figure
from bench.ingest import envmon_import, load_stations, write_csv

N = int(os.environ.get("BENCH_REVISION_ROWS", 500_000))
ROUNDS = int(os.environ.get("BENCH_REVISION_ROUNDS", 3))
TRIGGER = "reading_keep_revision"


def _trigger_switch(url: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """Functions that drop the revision trigger and put it back as migrated."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t"
            " WHERE t.tgrelid = 'reading'::regclass AND t.tgname = %s",
            (TRIGGER,),
        ).fetchone()
    assert row is not None, "migration 0014's trigger is missing"
    definition = str(row[0])

    def drop() -> None:
        with psycopg.connect(url) as conn:
            conn.execute(f"DROP TRIGGER {TRIGGER} ON reading")

    def create() -> None:
        with psycopg.connect(url) as conn:
            conn.execute(definition)  # type: ignore[arg-type]

    return drop, create


def _revisions(url: str) -> int:
    with psycopg.connect(url) as conn:
        (n,) = conn.execute("SELECT count(*) FROM reading_revision").fetchone() or (0,)
    return int(n)


def main() -> None:
    print(f"revision benchmark: re-imports of {N:,} readings, {ROUNDS} rounds each way")
    with tempfile.TemporaryDirectory(prefix="envmon-bench-revision-") as tmp:
        path = Path(tmp) / "readings.csv"
        changed = Path(tmp) / "changed.csv"
        write_csv(path, N)
        frame = pd.read_csv(path)
        frame["value"] = (frame["value"] + 0.1).round(1)
        frame.to_csv(changed, index=False)
        del frame
        var = Path(tmp) / "var"
        with bench_cluster() as cluster:
            url = cluster.url()
            load_stations(url)
            drop, create = _trigger_switch(url)
            envmon_import(url, path, var, derive=False)  # the rows the re-imports meet
            with_history: list[float] = []
            without: list[float] = []
            for _ in range(ROUNDS):
                with_history.append(envmon_import(url, path, var, derive=False)[0])
                drop()
                without.append(envmon_import(url, path, var, derive=False)[0])
                create()
            assert _revisions(url) == 0, "an unchanged re-import wrote revisions"
            changed_s = envmon_import(url, changed, var, derive=False)[0]
            revisions = _revisions(url)
            drop()
            changed_bare_s = envmon_import(url, path, var, derive=False)[0]
            create()
        on, off = statistics.median(with_history), statistics.median(without)
        print("  figures:")
        figure("re-import, nothing changed, history kept (median)", N / on, "rows/s")
        figure("re-import, nothing changed, no history (median)", N / off, "rows/s")
        figure(
            "no-change throughput with history / without",
            off / on,
            "×",
            "goal ≥ 0.90",
        )
        print(
            "  rounds (s): with "
            + ", ".join(f"{s:.2f}" for s in with_history)
            + "; without "
            + ", ".join(f"{s:.2f}" for s in without)
        )
        figure("re-import, every value changed, history kept", N / changed_s, "rows/s")
        figure("re-import, every value changed, no history", N / changed_bare_s, "rows/s")
        figure("revision rows written by the changed re-import", revisions, "rows", f"= {N:,}")


if __name__ == "__main__":
    main()
