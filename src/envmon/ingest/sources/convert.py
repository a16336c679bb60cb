"""Platform cell → envmon value: missing-value markers, HTML wrappers, units, dotted paths.

Canonical units are those of :mod:`envmon.parameters` (µg/m³, CO in mg/m³,
mg/L, hPa, m, µS/cm). Gas mixing ratios (ppb/ppm) are converted at the
reference state of GB 3095-2012 as amended in 2018 (and GB 3095-2026 §4.3):
298.15 K and 101.325 kPa, where one mole of gas takes 24.465 L.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from envmon.parameters import BY_CODE

# What platforms write for "no value": CNEMC "—", the water system "--", blanks…
MISSING_MARKERS: Final = frozenset(
    {"", "—", "–", "-", "--", "---", "——", "na", "n/a", "null", "none", "nan", "*", "/"}
)
_TAG = re.compile(r"<[^>]*>")
MOLAR_VOLUME_L: Final = 24.465  # L/mol at 298.15 K, 101.325 kPa
MOLAR_MASS: Final = {"so2": 64.066, "no2": 46.0055, "o3": 47.997, "co": 28.010}


class Missing:
    """The platform said 'no value' (kept apart from values that are wrong)."""


MISSING: Final = Missing()


def strip_tags(text: str) -> str:
    """``<span title='原始值'>0.12</span>`` → ``0.12`` (the water system wraps its cells)."""
    if "<" in text:
        text = _TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    return text.strip()


def cell(value: Any, *, markers: frozenset[str] = MISSING_MARKERS) -> float | str | Missing:
    """A number, :data:`MISSING`, or the text as sent (the validator rejects it with the reason)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return float(value) if not math.isnan(value) else MISSING
    text = strip_tags(str(value))
    if text.lower() in markers:
        return MISSING
    try:
        return float(text)
    except ValueError:
        return text


# (from unit, to unit) → factor, for units that do not depend on the gas.
_FACTORS: Final[dict[tuple[str, str], float]] = {
    ("µg/m³", "µg/m³"): 1.0,
    ("mg/m³", "µg/m³"): 1000.0,
    ("mg/m³", "mg/m³"): 1.0,
    ("µg/m³", "mg/m³"): 0.001,
    ("mg/L", "mg/L"): 1.0,
    ("µg/L", "mg/L"): 0.001,
    ("hPa", "hPa"): 1.0,
    ("kPa", "hPa"): 10.0,
    ("Pa", "hPa"): 0.01,
    ("m", "m"): 1.0,
    ("km", "m"): 1000.0,
    ("µS/cm", "µS/cm"): 1.0,
    ("mS/cm", "µS/cm"): 1000.0,
    ("mS/m", "µS/cm"): 10.0,
    ("°C", "°C"): 1.0,
    ("%", "%"): 1.0,
    ("m/s", "m/s"): 1.0,
    ("°", "°"): 1.0,
    ("mm", "mm"): 1.0,
    ("NTU", "NTU"): 1.0,
    ("1", "1"): 1.0,
}
_ALIASES: Final = {
    "ug/m3": "µg/m³",
    "μg/m³": "µg/m³",
    "μg/m3": "µg/m³",
    "µg/m3": "µg/m³",
    "ug/m³": "µg/m³",
    "mg/m3": "mg/m³",
    "ppb": "ppb",
    "ppm": "ppm",
    "mg/l": "mg/L",
    "ug/l": "µg/L",
    "μg/l": "µg/L",
    "µg/l": "µg/L",
    "us/cm": "µS/cm",
    "μs/cm": "µS/cm",
    "µs/cm": "µS/cm",
    "ms/cm": "mS/cm",
    "ms/m": "mS/m",
    "c": "°C",
    "℃": "°C",
    "°c": "°C",
    "deg c": "°C",
    "degc": "°C",
    "deg": "°",
    "degree": "°",
    "degrees": "°",
    "pct": "%",
    "percent": "%",
    "ntu": "NTU",
    "hpa": "hPa",
    "kpa": "kPa",
    "pa": "Pa",
    "mm": "mm",
    "m": "m",
    "km": "km",
    "m/s": "m/s",
    "": "",
    "无量纲": "1",
    "dimensionless": "1",
    "ph": "1",
}


def canonical_unit(unit: str) -> str:
    u = unit.strip()
    return _ALIASES.get(u.lower(), u)


def unit_factor(parameter: str, unit: str | None) -> float:
    """Multiply a value in ``unit`` by this to get ``parameter``'s canonical unit.

    ``None`` or an empty unit means "already canonical". Raises ValueError with a
    reason for a unit that cannot be converted (the record is then rejected).
    """
    p = BY_CODE.get(parameter)
    if p is None or unit is None:
        return 1.0
    u = canonical_unit(unit)
    if u == "" or u == p.unit:
        return 1.0
    if u in ("ppb", "ppm") and parameter in MOLAR_MASS and p.unit in ("µg/m³", "mg/m³"):
        # ppb × M / Vm = µg/m³; ppm × M / Vm = mg/m³.
        per = MOLAR_MASS[parameter] / MOLAR_VOLUME_L
        if u == "ppm":
            per *= 1000.0  # µg/m³
        return per if p.unit == "µg/m³" else per / 1000.0
    factor = _FACTORS.get((u, p.unit))
    if factor is None:
        raise ValueError(f"unit '{unit}' cannot be converted to {p.unit} for {parameter}")
    return factor


def dig(obj: Any, path: str) -> Any:
    """``a.b.0.c`` into nested dicts/lists; None where the path does not lead anywhere."""
    if not path:
        return obj
    cur = obj
    for part in path.split("."):
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            i = int(part)
            cur = cur[i] if -len(cur) <= i < len(cur) else None
        else:
            return None
        if cur is None:
            return None
    return cur


_ASPNET_DATE = re.compile(r"^/?Date\((-?\d+)([+-]\d{4})?\)/?$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?$")


# .NET's DateTime.MinValue (0001-01-01T00:00:00Z) as ASP.NET serialises it: what a
# provincial platform publishes for a station without data (the Liaoning platform's
# GetStationDetailList, see tests/ingest/sources/fixtures/provincial/README.md).
DOTNET_MIN_MS: Final = -62135596800000


def time_problem(value: Any) -> str | None:
    """Why a platform time is not a time, when there is a better word than 'unreadable'."""
    m = _ASPNET_DATE.match(strip_tags(str(value))) if value is not None else None
    if m and int(m.group(1)) == DOTNET_MIN_MS:
        return ".NET DateTime.MinValue (the platform's 'no time': no data for this station)"
    return None


def parse_time(value: Any, tz: tzinfo, *, wall_clock: bool = False) -> datetime | None:
    """A platform's time → aware datetime; a naive time is in ``tz``. None if unreadable.

    Accepts ISO 8601 (``T`` or a space, with or without offset), ``YYYYMMDDHH[MM[SS]]``,
    ASP.NET's ``/Date(1736470800000)/`` and epoch milliseconds/seconds. With
    ``wall_clock`` the platform's own offset (``Z``, ``+00:00``, an epoch) is
    wrong: the digits as written are a wall-clock time in ``tz`` (a mirror that
    writes Beijing time with a ``Z``). Out-of-range times (year 1) are None.
    """
    if time_problem(value) is not None:
        return None
    try:
        out = _parse_time(value, tz)
    except (OverflowError, OSError, ValueError):
        return None
    if out is None:
        return None
    if wall_clock:
        text = strip_tags(value) if isinstance(value, str) else ""
        if isinstance(value, int | float) or _ASPNET_DATE.match(text):
            out = out.astimezone(UTC)  # an epoch: its digits are UTC wall-clock time
        out = out.replace(tzinfo=tz)
    return out


def _parse_time(value: Any, tz: tzinfo) -> datetime | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, int | float):
        if math.isnan(value):
            return None
        seconds = value / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    text = strip_tags(str(value))
    m = _ASPNET_DATE.match(text)
    if m:
        return datetime.fromtimestamp(int(m.group(1)) / 1000.0, UTC)
    m = _COMPACT.match(text)
    if m:
        y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        try:
            return datetime(y, mo, d, h, mi, s, tzinfo=tz)
        except ValueError:
            return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        out = datetime.fromisoformat(text)
    except ValueError:
        return None
    return out if out.tzinfo else out.replace(tzinfo=tz)
