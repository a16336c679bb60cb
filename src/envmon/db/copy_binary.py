"""PostgreSQL binary COPY built with numpy: a whole batch becomes bytes at once.

The staging table holds only fixed-width columns (small integer codes for the
text keys, timestamptz, float8), so each row is one record of a packed numpy
structured array and no Python code runs per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

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


# ``reading`` itself, for the writer's fast path: the text columns first (constant
# for all rows of one station/parameter/period/flag, the source for the batch),
# then ts and value. Each such combination is one prefix of bytes; rows whose
# prefixes have the same length share a packed record type, so a batch is a
# handful of numpy arrays (one per prefix length), whatever its size.
READING_COPY: Final = (
    "COPY reading (station_id, parameter, period, flag, source, ts, value)"
    " FROM STDIN (FORMAT BINARY)"
)
_FIELD_COUNT = (7).to_bytes(2, "big")
_EIGHT = (8).to_bytes(4, "big")


def _text_field(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(4, "big") + data


def reading_rows(
    codes: Sequence[np.ndarray[Any, Any]],
    uniques: Sequence[Sequence[str]],
    source: str,
    ts_utc: np.ndarray[Any, np.dtype[np.datetime64]],
    value: np.ndarray[Any, np.dtype[np.float64]],
) -> bytes:
    """The full binary COPY stream for :data:`READING_COPY`.

    ``codes`` are the factorised station, parameter, period and flag of each row
    (indices into ``uniques``). The rows come out grouped by prefix length, not
    in their given order: a batch holds each key once, so the order is free.
    """
    n = len(value)
    if n == 0:
        return HEADER + TRAILER
    sizes = [len(u) for u in uniques]
    combo = np.zeros(n, dtype=np.int64)
    for c, size in zip(codes, sizes, strict=True):
        combo = combo * size + c
    found, row_combo = np.unique(combo, return_inverse=True)
    fields = [[_text_field(str(x)) for x in u] for u in uniques]
    tail = _text_field(source)
    prefixes = []
    for k in found.tolist():
        parts = []
        for size, f in zip(reversed(sizes), reversed(fields), strict=True):
            k, i = divmod(k, size)
            parts.append(f[i])
        prefixes.append(_FIELD_COUNT + b"".join(reversed(parts)) + tail)
    lengths = np.array([len(p) for p in prefixes])
    row_length = lengths[row_combo]
    ts_us = ts_utc.astype("datetime64[us]").astype(np.int64) - PG_EPOCH_US
    out = [HEADER]
    for size in np.unique(lengths).tolist():
        of_size = np.flatnonzero(lengths == size)
        table = np.array([prefixes[i] for i in of_size.tolist()], dtype=f"V{size}")
        rows_of_size = row_length == size
        local = np.searchsorted(of_size, row_combo[rows_of_size])
        rec = np.empty(
            int(rows_of_size.sum()),
            dtype=[("pre", f"V{size}"), ("lt", ">i4"), ("ts", ">i8"), ("lv", ">i4"), ("v", ">f8")],
        )
        rec["pre"] = table[local]
        rec["lt"] = rec["lv"] = 8
        rec["ts"] = ts_us[rows_of_size]
        rec["v"] = value[rows_of_size]
        out.append(rec.tobytes())
    out.append(TRAILER)
    return b"".join(out)
