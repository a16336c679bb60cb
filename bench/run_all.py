"""``make bench``: every benchmark, one after the other, printing their figures."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCHMARKS = [
    "bench.ingest",
    "bench.revision",
    "bench.derive",
    "bench.hj212",
    "bench.poll",
    "bench.alerts",
    "bench.alerts_shared",
    "bench.api",
    "bench.dashboards",
    "bench.normalise",
]

if __name__ == "__main__":
    only = sys.argv[1:]
    for name in BENCHMARKS:
        if only and name.split(".")[-1] not in only:
            continue
        print(f"== {name}")
        importlib.import_module(name).main()
