"""Pollutant codes and units of HJ 212.

* 2005 short codes ("原编码") → HJ 212-2017 codes: the 原编码 column of
  HJ 212-2017 Annex B Tables B.1 (water) and B.2 (gas) (standards.md §7.9).
* Annex B default units, and the conversion to envmon's canonical units
  (:mod:`envmon.parameters`: µg/m³ for gases and particles, mg/m³ for CO, mg/L
  for water, hPa for pressure).

Annex B's units are defaults, not what every station sends: many ambient-air
analysers report µg/m³ where Table B.2 says ng/m³ (PM) or mg/m³ (SO2, NO2).
The receiver therefore takes a per-station override of the unit
(:func:`envmon.ingest.hj212.mapping.readings`), and converts explicitly.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Final

from envmon.parameters import BY_HJ212, Parameter

from . import errors as e
from .errors import Hj212Error

# HJ/T 212-2005 code → HJ 212-2017 code (Annex B 原编码 column). Water codes
# are three digits (or B01), gas codes two (or B02/Sxx), so one table serves both.
LEGACY_CODES: Final = MappingProxyType(
    {
        # Table B.1, water
        "B01": "w00000",  # wastewater flow
        "001": "w01001",  # pH
        "002": "w01002",  # colour
        "003": "w01012",  # suspended solids
        "010": "w01017",  # BOD5
        "011": "w01018",  # COD
        "015": "w01020",  # TOC
        "020": "w20111",  # total mercury
        "021": "w20113",  # alkyl mercury
        "022": "w20115",  # total cadmium
        "023": "w20116",  # total chromium
        "024": "w20117",  # hexavalent chromium
        "026": "w20119",  # total arsenic
        "027": "w20120",  # total lead
        "028": "w20121",  # total nickel
        "029": "w20122",  # total copper
        "030": "w20123",  # total zinc
        "060": "w21003",  # ammonia nitrogen
        "061": "w99001",  # organic nitrogen
        "065": "w21001",  # total nitrogen
        "070": "w21016",  # cyanide
        "071": "w21019",  # sulphide
        "072": "w21017",  # fluoride
        "080": "w22001",  # petroleum
        "101": "w21011",  # total phosphorus
        "110": "w23002",  # volatile phenol
        # Table B.2, gas
        "B02": "a00000",  # flue-gas flow
        "01": "a34013",  # smoke dust
        "02": "a21026",  # SO2
        "03": "a21002",  # NOx
        "04": "a21005",  # CO
        "S01": "a19001",  # O2
        "S02": "a01011",  # flue-gas velocity
        "S03": "a01012",  # flue-gas temperature
        "S04": "a01017",  # flue-gas dynamic pressure
        "S05": "a01014",  # flue-gas humidity
        "S08": "a01013",  # flue-gas pressure
    }
)

# Default concentration units of Annex B (Tables B.1/B.2), canonical spelling.
# a05024 (O3) and w01003 (turbidity) are not in Annex B (standards.md §7.8);
# O3 is given mg/m³ like every other gaseous pollutant of Table B.2, and a
# station that sends µg/m³ must say so with a unit override.
DEFAULT_UNITS: Final = MappingProxyType(
    {
        "a34004": "ng/m³",
        "a34002": "ng/m³",
        "a34001": "ng/m³",
        "a21026": "mg/m³",
        "a21004": "mg/m³",
        "a21002": "mg/m³",
        "a21003": "mg/m³",
        "a21005": "mg/m³",
        "a05024": "mg/m³",
        "a01001": "°C",
        "a01002": "%",
        "a01006": "kPa",
        "a01007": "m/s",
        "a01008": "°",
        "w01001": "1",
        "w01009": "mg/L",
        "w01010": "°C",
        "w01014": "µS/cm",
        "w01003": "NTU",
        "w01017": "mg/L",
        "w01018": "mg/L",
        "w01019": "mg/L",
        "w21001": "mg/L",
        "w21003": "mg/L",
        "w21011": "mg/L",
        "w00000": "L/s",
    }
)

# Spellings seen in configs and vendor manuals → the canonical spelling.
_ALIASES: Final = {
    "ug/m3": "µg/m³",
    "μg/m³": "µg/m³",  # Greek mu (U+03BC) vs micro sign (U+00B5)
    "µg/m3": "µg/m³",
    "微克/立方米": "µg/m³",
    "mg/m3": "mg/m³",
    "毫克/立方米": "mg/m³",
    "ng/m3": "ng/m³",
    "纳克/立方米": "ng/m³",
    "ug/l": "µg/L",
    "µg/l": "µg/L",
    "μg/l": "µg/L",
    "微克/升": "µg/L",
    "mg/l": "mg/L",
    "毫克/升": "mg/L",
    "ng/l": "ng/L",
    "纳克/升": "ng/L",
    "kpa": "kPa",
    "千帕": "kPa",
    "hpa": "hPa",
    "mbar": "hPa",
    "百帕": "hPa",
    "pa": "Pa",
    "帕": "Pa",
    "℃": "°C",
    "摄氏度": "°C",
    "degc": "°C",
    "us/cm": "µS/cm",
    "μs/cm": "µS/cm",
    "µs/cm": "µS/cm",
    "微西门子/厘米": "µS/cm",
    "ms/cm": "mS/cm",
    "ms/m": "mS/m",
    "": "1",
    "无量纲": "1",
    "无": "1",
    "ph": "1",
    "ntu": "NTU",
    "%rh": "%",
    "米/秒": "m/s",
    "deg": "°",
    "度": "°",
}

# Canonical unit → (dimension, factor to the dimension's base unit).
_UNITS: Final = {
    "ng/m³": ("mass/volume air", Decimal("0.001")),
    "µg/m³": ("mass/volume air", Decimal(1)),
    "mg/m³": ("mass/volume air", Decimal(1000)),
    "ng/L": ("mass/volume water", Decimal("0.000001")),
    "µg/L": ("mass/volume water", Decimal("0.001")),
    "mg/L": ("mass/volume water", Decimal(1)),
    "Pa": ("pressure", Decimal("0.01")),
    "hPa": ("pressure", Decimal(1)),
    "kPa": ("pressure", Decimal(10)),
    "µS/cm": ("conductivity", Decimal(1)),
    "mS/cm": ("conductivity", Decimal(1000)),
    "mS/m": ("conductivity", Decimal(10)),
    "°C": ("temperature", Decimal(1)),
    "%": ("fraction", Decimal(1)),
    "1": ("dimensionless", Decimal(1)),
    "NTU": ("turbidity", Decimal(1)),
    "m/s": ("speed", Decimal(1)),
    "°": ("angle", Decimal(1)),
    "L/s": ("flow", Decimal(1)),
}


def normalize_unit(unit: str) -> str:
    """The canonical spelling of ``unit`` (``"ug/m3"`` → ``"µg/m³"``)."""
    text = unit.strip()
    return _ALIASES.get(text, _ALIASES.get(text.lower(), text))


def convert(value: float | Decimal | str, from_unit: str, to_unit: str) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit``.

    Computed in decimal from the value's shortest text, so 0.035 mg/m³ gives
    exactly 35.0 µg/m³ (floats would give 35.00000000000001).  Raise
    :class:`Hj212Error` (reason ``unit``) for unknown or incompatible units.
    """
    source, target = normalize_unit(from_unit), normalize_unit(to_unit)
    if source not in _UNITS or target not in _UNITS:
        unknown = source if source not in _UNITS else target
        raise Hj212Error(e.UNIT, f"unknown unit {unknown!r}")
    (dim_from, factor_from), (dim_to, factor_to) = _UNITS[source], _UNITS[target]
    if dim_from != dim_to:
        raise Hj212Error(e.UNIT, f"cannot convert {source} to {target}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as err:
        raise Hj212Error(e.UNIT, f"{value!r} is not a number") from err
    if source == target:
        return float(number)
    return float(number * factor_from / factor_to)


def scale_exponent(from_unit: str, to_unit: str) -> int | None:
    """The power of ten that takes a value in ``from_unit`` to ``to_unit``.

    Every conversion of :data:`_UNITS` is one (0.035 mg/m³ = 35 × 10⁰ µg/m³), so
    the receiver can shift the decimal point of the text it received instead
    of computing in :class:`Decimal` (see :func:`scale_text`).  None if the
    factor were not a power of ten; :class:`Hj212Error` like :func:`convert`
    for unknown or incompatible units.
    """
    source, target = normalize_unit(from_unit), normalize_unit(to_unit)
    if source not in _UNITS or target not in _UNITS:
        unknown = source if source not in _UNITS else target
        raise Hj212Error(e.UNIT, f"unknown unit {unknown!r}")
    (dim_from, factor_from), (dim_to, factor_to) = _UNITS[source], _UNITS[target]
    if dim_from != dim_to:
        raise Hj212Error(e.UNIT, f"cannot convert {source} to {target}")
    ratio = (factor_from / factor_to).normalize()
    sign, digits, exponent = ratio.as_tuple()
    if sign or digits != (1,) or not isinstance(exponent, int):
        return None
    return exponent


def scale_text(text: str, exponent: int) -> float:
    """``float(Decimal(text) * 10**exponent)`` without Decimal.

    ``text`` is a number as Table 4 writes it (optionally with an exponent).
    Moving the decimal exponent keeps the value exact, and ``float()`` of a
    decimal string is correctly rounded: "0.035" mg/m³ → exactly 35.0 µg/m³.
    """
    if exponent == 0:
        return float(text)
    head, mark, tail = text.lower().partition("e")
    return float(f"{head}e{int(tail) + exponent}" if mark else f"{text}e{exponent}")


def to_2017(code: str) -> str:
    """The HJ 212-2017 code for ``code`` (2005 short codes translated)."""
    return LEGACY_CODES.get(code, code)


def parameter_for(code: str) -> Parameter | None:
    """envmon's canonical parameter for an HJ 212 code (2005 or 2017), if any."""
    return BY_HJ212.get(to_2017(code))


def default_unit(code: str) -> str | None:
    """Annex B's default unit for ``code`` (2005 or 2017), if known."""
    return DEFAULT_UNITS.get(to_2017(code))
