"""Exact numbers and GB/T 8170 rounding.

Concentrations arrive as floats, ``Decimal`` or strings. Binary floats cannot
represent 2.2 mg/m³ and naive float arithmetic ceilings CO 24-h 2.2 to IAQI 56
instead of 55 (standards.md §1.4); 28-digit ``Decimal`` division fails too
(50/35×35 → 51). So every value is taken through its *decimal string*
(``Decimal(str(v))``, the number a person reads) and then computed with exact
rationals (``fractions.Fraction``).

GB/T 8170 rounding (数值修约, "四舍六入五成双") drops digits so that a
dropped part of exactly one half goes to the even neighbour; applied to the
decimal string this is ``ROUND_HALF_EVEN`` (35.5 → 36, 36.5 → 36, 35.51 → 36).
HJ 633-2026 §4.2.2–§4.2.3 requires it on concentrations before the IAQI.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from fractions import Fraction
from typing import Final, TypeAlias

from envmon.standards.editions import StandardsError

Number: TypeAlias = float | int | Decimal | str
"""What the standards functions accept as a measured value."""


def to_decimal(value: Number | None) -> Decimal | None:
    """The value as an exact ``Decimal`` via its decimal string; ``None`` for None/NaN.

    Infinite values, booleans and unparsable strings raise :class:`StandardsError`:
    a concentration of ``True`` or ``inf`` is a data fault, not a reading.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise StandardsError(f"a boolean is not a measured value: {value!r}")
    if isinstance(value, Decimal):
        d = value
    else:
        try:
            d = Decimal(str(value).strip())
        except (InvalidOperation, ValueError) as err:
            raise StandardsError(f"not a number: {value!r}") from err
    if d.is_nan():
        return None
    if d.is_infinite():
        raise StandardsError(f"not a finite number: {value!r}")
    return d


def to_fraction(value: Number | None) -> Fraction | None:
    """The value as an exact ``Fraction`` (through :func:`to_decimal`); ``None`` for None/NaN."""
    d = to_decimal(value)
    return None if d is None else Fraction(d)


def round_half_even(value: Number, places: int = 0) -> Decimal:
    """GB/T 8170 rounding of ``value`` to ``places`` decimals, on its decimal string.

    >>> round_half_even(35.5), round_half_even(36.5), round_half_even("2.25", 1)
    (Decimal('36'), Decimal('36'), Decimal('2.2'))
    """
    d = to_decimal(value)
    if d is None:
        raise StandardsError(f"cannot round a missing value: {value!r}")
    # Enough digits for every digit left of the rounding position: quantize
    # fails instead of rounding when the context is too short.
    context = Context(prec=max(28, d.adjusted() + places + 2), rounding=ROUND_HALF_EVEN)
    return d.quantize(Decimal(1).scaleb(-places), context=context)


# The precision concentrations are published at (HJ 633-2026 §4.2.3, the CNEMC
# platform and bulletins in both editions): µg/m³ to integers, CO (mg/m³) to one
# decimal. Keys are pollutant names; an averaging-time suffix is ignored.
AIR_PUBLISHED_PLACES: Final = {"so2": 0, "no2": 0, "o3": 0, "pm10": 0, "pm25": 0, "co": 1}


def published_places(pollutant: str) -> int:
    """Decimals a concentration of ``pollutant`` (``pm25``, ``co_24h``, …) is published with."""
    name = pollutant.split("_", 1)[0]
    if pollutant.startswith("o3_"):
        name = "o3"
    try:
        return AIR_PUBLISHED_PLACES[name]
    except KeyError as err:
        raise StandardsError(f"no published precision for {pollutant!r}") from err


def round_published(pollutant: str, value: Number | None) -> Decimal | None:
    """GB/T 8170 rounding of an air concentration to its published precision.

    The value a bureau publishes and compares with limits and targets:
    ``round_published("pm25", "75.5") == Decimal("76")``, ``("co", 2.25) → 2.2``.
    ``None``/NaN → ``None``.
    """
    if to_decimal(value) is None:
        return None
    assert value is not None
    return round_half_even(value, published_places(pollutant))
