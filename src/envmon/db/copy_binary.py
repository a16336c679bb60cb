"""PostgreSQL binary COPY built with numpy: a whole batch becomes bytes at once.

The staging table holds only fixed-width columns (small integer codes for the
text keys, timestamptz, float8), so each row is one record of a packed numpy
structured array and no Python code runs per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
# timestamptz on the wire: microseconds since 2000-01-01 00:00 UTC.
PG_EPOCH_US = 946_684_800_000_000

STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS reading_stage ("
    " si int4 NOT NULL, pi int4 NOT NULL, ri int4 NOT NULL, ts timestamptz NOT NULL,"
    " value float8 NOT NULL, fi int4 NOT NULL) ON COMMIT DELETE ROWS"
)

_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("l_si", ">i4"),
        ("si", ">i4"),
        ("l_pi", ">i4"),
        ("pi", ">i4"),
        ("l_ri", ">i4"),
        ("ri", ">i4"),
        ("l_ts", ">i4"),
        ("ts", ">i8"),
        ("l_v", ">i4"),
        ("v", ">f8"),
        ("l_fi", ">i4"),
        ("fi", ">i4"),
    ]
)


def stage_rows(
    si: np.ndarray[Any, Any],
    pi: np.ndarray[Any, Any],
    ri: np.ndarray[Any, Any],
    ts_utc: np.ndarray[Any, np.dtype[np.datetime64]],
    value: np.ndarray[Any, np.dtype[np.float64]],
    fi: np.ndarray[Any, Any],
) -> bytes:
    """The full binary COPY stream (header, rows, trailer) for ``reading_stage``."""
    n = len(value)
    rows = np.empty(n, dtype=_ROW)
    rows["n"] = 6
    rows["l_si"] = rows["l_pi"] = rows["l_ri"] = rows["l_fi"] = 4
    rows["l_ts"] = rows["l_v"] = 8
    rows["si"] = si
    rows["pi"] = pi
    rows["ri"] = ri
    rows["ts"] = ts_utc.astype("datetime64[us]").astype(np.int64) - PG_EPOCH_US
    rows["v"] = value
    rows["fi"] = fi
    return HEADER + rows.tobytes() + TRAILER
