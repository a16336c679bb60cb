"""Decoded data uploads → reading candidates for validation.

| CN   | data (HJ 212-2017 Table 9) | value item | period            |
|------|----------------------------|------------|-------------------|
| 2011 | real-time                  | ``Rtd``    | ``rt``            |
| 2051 | minute                     | ``Avg``    | ``{n}min``        |
| 2061 | hour                       | ``Avg``    | ``1h``            |
| 2031 | day                        | ``Avg``    | ``1d``            |

``ts`` is CP ``DataTime`` as sent: the sampling instant for 2011 and the
*start* of the interval for 2051/2061/2031 (§6.3.3; standards.md §7.5), which
is also how envmon labels periods.  A candidate is not a reading yet: values
that are not numbers, unknown codes, odd flags and unit problems are passed on
(``value`` None, ``problem`` set) for validation to quarantine with a reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from . import errors as e
from .codec import Message
from .codes import convert, default_unit, normalize_unit, parameter_for, to_2017
from .errors import Hj212Error


@dataclass(frozen=True, slots=True)
class _Kind:
    item: str
    period: str | None  # None: minute data, period from the interval


_BY_CN: Final[dict[str, _Kind]] = {
    "2011": _Kind("Rtd", "rt"),
    "2051": _Kind("Avg", None),
    "2061": _Kind("Avg", "1h"),
    "2031": _Kind("Avg", "1d"),
}
DATA_CNS: Final = frozenset(_BY_CN)

# Table 4's Nx.y: optional sign, digits, optional decimals.  An exponent is
# tolerated (some loggers print 1.2E-3); "nan", "inf" and "1_0" are not numbers.
_NUMBER_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,2})?")
# Table 8 data flags; others (vendor codes) are kept verbatim for validation.
DATA_FLAGS: Final = frozenset("NFMSDCTB")
# Table 4: MinInterval ∈ {1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30} minutes.
MIN_INTERVALS: Final = frozenset({1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30})


@dataclass(frozen=True, slots=True)
class ReadingCandidate:
    """One value of one pollutant from one upload.

    ``value`` is in ``unit`` — the parameter's canonical unit when ``parameter``
    is known, else ``unit_in``; ``unit_in`` is the unit the station sent
    (override, else Annex B default).  ``raw_value`` is the text as received.
    ``hj212_code`` is the HJ 212-2017 code (2005 short codes translated).
    """

    mn: str
    parameter: str | None
    hj212_code: str
    period: str
    ts: datetime
    value: float | None
    flag: str
    raw_value: str
    unit_in: str
    unit: str = ""
    problem: str | None = None


def parse_number(raw: str) -> Decimal | None:
    """``raw`` as a number, or None if it is not one (Table 4 Nx.y)."""
    text = raw.strip()
    return Decimal(text) if _NUMBER_RE.fullmatch(text) else None


def minute_period(message: Message, default: int | None = None) -> str:
    """Period label of a 2051 upload.

    The interval comes from CP ``MinInterval`` if the device sent one, else
    ``default`` (the station's configured interval), else 1 minute — the
    standard sets no default and an upload rarely carries the interval, so the
    finest interval is assumed rather than silently merging data.
    """
    raw = message.cp.fields.get("MinInterval")
    if raw is not None:
        number = parse_number(raw)
        if number is None or number != number.to_integral_value() or int(number) <= 0:
            raise Hj212Error(e.BAD_FIELD, f"MinInterval={raw!r} is not a whole number of minutes")
        minutes = int(number)
    else:
        minutes = default if default is not None else 1
    if not 0 < minutes <= 60:
        raise Hj212Error(e.BAD_FIELD, f"minute interval {minutes} outside 1-60")
    return f"{minutes}min"


def readings(
    message: Message,
    *,
    unit_overrides: Mapping[str, str] | None = None,
    minute_interval: int | None = None,
) -> list[ReadingCandidate]:
    """Reading candidates of a 2011/2051/2061/2031 upload; [] for other commands.

    ``unit_overrides`` maps an HJ 212 code to the unit this station actually
    sends (e.g. ``{"a34004": "µg/m³"}``); without one the Annex B default is
    assumed.  Raise :class:`Hj212Error` if the upload has no usable DataTime.
    """
    kind = _BY_CN.get(message.cn)
    if kind is None:
        return []
    ts = message.data_time
    if ts is None:
        raise Hj212Error(e.MISSING_FIELD, f"CN={message.cn} upload without DataTime")
    period = kind.period or minute_period(message, minute_interval)
    overrides = {to_2017(k): v for k, v in (unit_overrides or {}).items()}
    out: list[ReadingCandidate] = []
    for code, items in message.cp.pollutants.items():
        if kind.item not in items and "Flag" not in items:
            # Equipment status (SBxxx-RS), totals only (-Cou), -Info …: not a reading.
            continue
        code17 = to_2017(code)
        param = parameter_for(code17)
        raw = items.get(kind.item, "")
        flag = items.get("Flag", "").strip() or "N"
        declared = overrides.get(code17) or default_unit(code17) or (param.unit if param else "")
        unit_in = normalize_unit(declared) if declared else ""  # "": nobody knows
        unit = param.unit if param is not None else unit_in
        value: float | None = None
        problem: str | None = None
        number = parse_number(raw)
        if kind.item not in items:
            problem = f"no {kind.item} value (flag {flag})"
        elif number is None:
            problem = f"{kind.item}={raw!r} is not a number"
        elif not math.isfinite(float(number)):
            problem = f"{kind.item}={raw!r} is out of range"
        elif param is None:
            value = float(number)
            problem = f"unknown pollutant code {code!r}"
        else:
            try:
                value = convert(number, unit_in, param.unit)
            except Hj212Error as err:
                problem = err.detail
        if flag not in DATA_FLAGS and problem is None:
            problem = f"data flag {flag!r} not in HJ 212-2017 Table 8"
        out.append(
            ReadingCandidate(
                mn=message.mn,
                parameter=param.code if param is not None else None,
                hj212_code=code17,
                period=period,
                ts=ts,
                value=value,
                flag=flag,
                raw_value=raw,
                unit_in=unit_in,
                unit=unit,
                problem=problem,
            )
        )
    return out
