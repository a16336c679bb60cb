"""The live status line of ``envmon run``: one line, at most 100 columns.

The details are ``envmon status``'s; this line says what an operator glances
at (stations reporting, open alerts, what came in) and leaves out the least
important parts when it would be wider than a terminal.
"""

from __future__ import annotations

import time
import unicodedata
from typing import Any

STATUS_WIDTH = 100


def short(n: int) -> str:
    """12,345 → 12.3k; 4,567,890 → 4.6M: the live line stays narrow whatever the counts."""
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (10_000, "k")):
        if abs(n) >= size:
            div = size if unit != "k" else 1000
            return f"{n / div:.1f}{unit}"
    return f"{n:,}"


def status_line(st: dict[str, Any], *, width: int = STATUS_WIDTH) -> str:
    """One line of at most ``width`` columns; the details are ``envmon status``'s.

    Parts are listed by importance and the least important are left out when
    the line would be wider (CJK characters count as two columns).
    """
    rec = st["recent_readings"]
    reporting = " ".join(
        f"{k} {rec.get(k, {}).get('stations_reporting', 0)}/{v['active']}"
        for k, v in st["stations"].items()
    )
    rejects = sum(st["rejected_24h"].values())
    alerts = st.get("alerts") or {}
    open_alerts = sum(o["count"] for o in alerts.get("open", []))
    parts = [
        time.strftime("%H:%M:%S"),
        reporting,
        f"alerts {open_alerts}",
        f"in {short(st['ingested_since_start'])}",
        f"rejects/24h {short(rejects)}",
        f"spool {st['spool_pending_files']}",
        f"stored {short(st['readings_total'])}",
    ]
    if st.get("hj212"):
        parts.append(f"HJ212 {st['hj212']['connections']}")
    if st.get("derived_at"):
        parts.append(f"derived {str(st['derived_at'])[11:16]}")
    if st.get("simulator"):
        parts.append(f"sim {st['simulator']}")
    line = parts[0]
    for part in parts[1:]:
        candidate = f"{line} | {part}"
        if columns(candidate) > width:
            break
        line = candidate
    while columns(line) > width:  # only the first parts left and still too wide
        line = line[:-2] + "…"
    return line


def columns(text: str) -> int:
    """Terminal columns of ``text`` (CJK characters are two wide)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
