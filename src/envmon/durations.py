"""One duration grammar for every file a bureau edits (sources, alert rules, …).

``45s``, ``250ms``, ``5m`` (or ``5min``), ``3h``, ``2d``, compounds such as
``1h30m``, or a plain number of seconds. Never negative.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Final

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|sec|min|d|h|m|s)", re.IGNORECASE)
_UNIT_SECONDS: Final = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
HOW = "write e.g. 30s, 5m, 3h or 1d, or 1h30m"


def parse_duration(value: Any) -> timedelta:
    """A duration from the grammar above, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration ({HOW})")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip()
        if text == "0":
            return timedelta(0)
        if text and " " not in text:
            pos, total = 0, 0.0
            for m in _PART.finditer(text):
                if m.start() != pos:
                    break
                total += float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
                pos = m.end()
            if pos == len(text):
                return timedelta(seconds=total)
    raise ValueError(f"{value!r} is not a duration ({HOW})")


def format_duration(d: timedelta) -> str:
    """The shortest form :func:`parse_duration` reads back (``90m`` → ``1h30m``)."""
    s = int(d.total_seconds())
    if s == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
