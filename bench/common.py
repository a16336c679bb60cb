"""Shared bench plumbing: a throwaway cluster with the durable defaults of the embedded one."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from envmon.db import migrate
from envmon.db.embedded import EmbeddedCluster, free_port

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def bench_cluster() -> Iterator[EmbeddedCluster]:
    root = Path(tempfile.mkdtemp(prefix="envmon-bench-"))
    cluster = EmbeddedCluster(root, free_port())
    cluster.start()
    try:
        migrate.migrate(cluster.url())
        yield cluster
    finally:
        cluster.stop("fast")
        shutil.rmtree(root, ignore_errors=True)


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0


def figure(name: str, value: float, unit: str, goal: str = "") -> None:
    print(f"  {name:<52} {value:>14,.2f} {unit:<10} {goal}")
