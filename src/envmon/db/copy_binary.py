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


# ``reading`` itself, for the writer's fast path: the station first, then the
# parameter, period, flag and source (few combinations in any batch), then ts
# and value. A row is two byte prefixes looked up by index (the station's, the
# combination's) and two fixed-width fields; rows whose two prefixes have the
# same lengths share a packed record type, so a batch is a handful of numpy
# arrays whatever its size (1 M rows of an import, or 10,000 readings of 2,000
# HJ 212 loggers).
READING_COPY: Final = (
    "COPY reading (station_id, parameter, period, flag, source, ts, value)"
    " FROM STDIN (FORMAT BINARY)"
)
_FIELD_COUNT = (7).to_bytes(2, "big")


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
    (indices into ``uniques``). The rows come out grouped by prefix lengths, not
    in their given order: a batch holds each key once, so the order is free.
    """
    n = len(value)
    if n == 0:
        return HEADER + TRAILER
    station_code, *rest_codes = codes
    station_uniques, *rest_uniques = uniques
    # The station's prefix: field count and station_id.
    heads = [_FIELD_COUNT + _text_field(str(x)) for x in station_uniques]
    head_len = np.array([len(h) for h in heads])
    # The rest of the text fields, by their combination.
    combo = np.zeros(n, dtype=np.int64)
    for c, u in zip(rest_codes, rest_uniques, strict=True):
        combo = combo * len(u) + c
    found, row_combo = np.unique(combo, return_inverse=True)
    row_combo = row_combo.reshape(-1)
    fields = [[_text_field(str(x)) for x in u] for u in rest_uniques]
    tail = _text_field(source)
    mids = []
    for k in found.tolist():
        parts = []
        for f in reversed(fields):
            k, i = divmod(k, len(f))
            parts.append(f[i])
        mids.append(b"".join(reversed(parts)) + tail)
    mid_len = np.array([len(m) for m in mids])
    row_head = head_len[station_code]
    row_mid = mid_len[row_combo]
    ts_us = ts_utc.astype("datetime64[us]").astype(np.int64) - PG_EPOCH_US
    # One record type per (station prefix length, rest prefix length).
    shape = row_head * (int(mid_len.max()) + 1) + row_mid
    out = [HEADER]
    for key in np.unique(shape).tolist():
        hl, ml = divmod(key, int(mid_len.max()) + 1)
        rows = shape == key
        rec = np.empty(
            int(rows.sum()),
            dtype=[
                ("head", f"V{hl}"),
                ("mid", f"V{ml}"),
                ("lt", ">i4"),
                ("ts", ">i8"),
                ("lv", ">i4"),
                ("v", ">f8"),
            ],
        )
        of_head = np.flatnonzero(head_len == hl)
        rec["head"] = np.array([heads[i] for i in of_head.tolist()], dtype=f"V{hl}")[
            np.searchsorted(of_head, station_code[rows])
        ]
        of_mid = np.flatnonzero(mid_len == ml)
        rec["mid"] = np.array([mids[i] for i in of_mid.tolist()], dtype=f"V{ml}")[
            np.searchsorted(of_mid, row_combo[rows])
        ]
        rec["lt"] = rec["lv"] = 8
        rec["ts"] = ts_us[rows]
        rec["v"] = value[rows]
        out.append(rec.tobytes())
    out.append(TRAILER)
    return b"".join(out)
