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
An ``-Rtd`` item in a 2051/2061/2031 upload without the period's ``Avg`` is such
a problem: an instantaneous value is not the period's value, so it is rejected
with that reason (``rejected``), neither stored as the period's value nor
dropped in silence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Final

from envmon.parameters import Parameter

from . import errors as e
from .codec import Message
from .codes import (
    LEGACY_CODES,
    convert,
    default_unit,
    normalize_unit,
    parameter_for,
    scale_exponent,
    scale_text,
    to_2017,
)
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


# One value of an upload, before it becomes a ReadingCandidate or a reading:
# (parameter, hj212_code, value, flag, raw_value, unit_in, unit, problem).
Row = tuple[str | None, str, float | None, str, str, str, str, str | None]


@dataclass(frozen=True, slots=True)
class _Code:
    """What one (HJ 212 code, unit override) means, worked out once."""

    code17: str
    parameter: Parameter | None
    name: str | None  # the parameter's code
    unit_in: str
    unit: str
    exponent: int | None  # value in unit_in × 10**exponent = value in unit
    problem: str | None  # the unit cannot be converted


# Codes and units come off the wire, so the cache is bounded; a network has a
# few dozen (code, unit) pairs.
@lru_cache(maxsize=4096)
def _code(code: str, override: str | None) -> _Code:
    code17 = to_2017(code)
    param = parameter_for(code17)
    declared = override or default_unit(code17) or (param.unit if param else "")
    unit_in = normalize_unit(declared) if declared else ""  # "": nobody knows
    if param is None:
        return _Code(code17, None, None, unit_in, unit_in, None, None)
    try:
        exponent = scale_exponent(unit_in, param.unit)
    except Hj212Error as err:
        return _Code(code17, param, param.code, unit_in, param.unit, None, err.detail)
    return _Code(code17, param, param.code, unit_in, param.unit, exponent, None)


@lru_cache(maxsize=4096)
def _plain_code(code: str) -> _Code:
    """:func:`_code` without a unit override (one argument: a cheaper cache key)."""
    return _code(code, None)


_PERIOD_SPAN: Final = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}


def period_start(ts: datetime, period: str, *, labels_end: bool = False) -> datetime:
    """The start of the period an hourly or daily DataTime stands for.

    By the standard DataTime is the period's start (§6.3.3), so it must sit on
    the period's boundary (the hour; midnight Beijing for days): a 2061 at
    17:57:59 is rejected rather than stored as one more "hour".  A logger whose
    profile says ``period_time: end`` labels the end: its DataTime is rounded
    to the nearest boundary and one period is taken off.  ``ts`` is a
    Beijing-time aware datetime.
    """
    span = _PERIOD_SPAN.get(period)
    if span is None:
        return ts  # real-time: the sampling instant; minute data are not checked
    on_hour = not (ts.minute or ts.second or ts.microsecond)
    if not labels_end and on_hour and (period == "1h" or not ts.hour):
        return ts  # on the boundary (nearly every upload)
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = ts - day
    if labels_end:
        boundary = day + span * round(offset / span)
        return boundary - span
    if offset % span:
        raise Hj212Error(
            e.BAD_DATATIME,
            f"DataTime {ts:%Y-%m-%d %H:%M:%S} of a {period} value is not the start of a "
            f"{period} period (period_time: end in config/hj212.yaml if the logger labels "
            "the end)",
        )
    return ts


def upload_rows(
    message: Message,
    *,
    unit_overrides: Mapping[str, str] | None = None,
    minute_interval: int | None = None,
    period_end: bool = False,
    edition_units: Mapping[str, str] | None = None,
) -> tuple[datetime, str, list[Row]] | None:
    """DataTime, period and one :data:`Row` per value of a data upload; None
    for other commands.  What :func:`readings` returns, as plain tuples (the
    receiver's path: no object per value).

    ``unit_overrides`` are keyed by HJ 212-2017 code; the HJ/T 212-2005 short
    codes ("02" SO2 …) are units of their own edition (Annex B's, mg/m³ for the
    gases) unless ``edition_units`` names them: an ambient µg/m³ override of
    a21026 does not apply to a 2005 logger's "02".
    """
    kind = _BY_CN.get(message.cn)
    if kind is None:
        return None
    ts = message.data_time
    if ts is None:
        raise Hj212Error(e.MISSING_FIELD, f"CN={message.cn} upload without DataTime")
    period = kind.period or minute_period(message, minute_interval)
    ts = period_start(ts, period, labels_end=period_end)
    overrides = {to_2017(k): v for k, v in unit_overrides.items()} if unit_overrides else None
    item = kind.item
    rows: list[Row] = []
    for code, items in message.cp.pollutants.items():
        raw = items.get(item)
        flag = items.get("Flag")
        misplaced = items.get("Rtd") if raw is None and item != "Rtd" else None
        if raw is None and flag is None and misplaced is None:
            # Equipment status (SBxxx-RS), totals only (-Cou), -Info …: not a reading.
            continue
        flag = (flag.strip() or "N") if flag else "N"
        if code in LEGACY_CODES:
            # Named by its own (short) code, or by the edition's units; never
            # by the override of the 2017 code it translates to.
            legacy = (edition_units or {}).get(code) or (unit_overrides or {}).get(code)
            known = _code(code, legacy) if legacy else _plain_code(code)
        elif overrides:
            known = _code(code, overrides.get(to_2017(code)))
        else:
            known = _plain_code(code)
        param = known.parameter
        value: float | None = None
        problem: str | None = None
        if misplaced is not None:
            # An instantaneous value in a period upload is not the period's
            # value: rejected with the reason, never stored as one, never dropped.
            raw = misplaced
            problem = (
                f"Rtd={misplaced!r} in a CN={message.cn} upload: an instantaneous value "
                f"is not the period's {item}"
            )
        elif raw is None:
            raw = ""
            problem = f"no {item} value (flag {flag})"
        else:
            text = raw.strip()
            if _NUMBER_RE.fullmatch(text) is None:
                problem = f"{item}={raw!r} is not a number"
            else:
                number = float(text)
                if not math.isfinite(number):
                    problem = f"{item}={raw!r} is out of range"
                elif param is None:
                    value = number
                    problem = f"unknown pollutant code {code!r}"
                elif known.problem is not None:
                    problem = known.problem
                elif known.exponent == 0:
                    value = number
                elif known.exponent is not None:
                    value = scale_text(text, known.exponent)
                else:  # not a power of ten: computed in decimal
                    value = convert(Decimal(text), known.unit_in, param.unit)
        if problem is None and flag not in DATA_FLAGS:
            problem = f"data flag {flag!r} not in HJ 212-2017 Table 8"
        rows.append(
            (
                known.name,
                known.code17,
                value,
                flag,
                raw,
                known.unit_in,
                known.unit,
                problem,
            )
        )
    return ts, period, rows


def readings(
    message: Message,
    *,
    unit_overrides: Mapping[str, str] | None = None,
    minute_interval: int | None = None,
    period_end: bool = False,
    edition_units: Mapping[str, str] | None = None,
) -> list[ReadingCandidate]:
    """Reading candidates of a 2011/2051/2061/2031 upload; [] for other commands.

    ``unit_overrides`` maps an HJ 212 code to the unit this station actually
    sends (e.g. ``{"a34004": "µg/m³"}``); without one the Annex B default is
    assumed.  Raise :class:`Hj212Error` if the upload has no usable DataTime.
    """
    upload = upload_rows(
        message,
        unit_overrides=unit_overrides,
        minute_interval=minute_interval,
        period_end=period_end,
        edition_units=edition_units,
    )
    if upload is None:
        return []
    ts, period, rows = upload
    return [
        ReadingCandidate(
            mn=message.mn,
            parameter=parameter,
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
        for parameter, code17, value, flag, raw, unit_in, unit, problem in rows
    ]
