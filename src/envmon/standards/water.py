"""Surface-water classes of GB 3838-2002 and the 2011 evaluation method.

Single values are classified against GB 3838-2002 Table 1; a section is
evaluated per 《地表水环境质量评价办法（试行）》 (环办〔2011〕22号, standards.md §6):
single-factor method over 21 indicators, status words, exceedance multiples
over class III and main pollutants. Values are mg/L (pH dimensionless, fecal
coliform 个/L) and are compared exactly through their decimal strings.

Parameter codes: ``temp ph do codmn cod bod5 nh3n tp tn cu zn fluoride se as hg
cd cr6 pb cyanide phenol petroleum las sulfide fecal_coliform``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final, Literal, TypeAlias

from envmon.standards.editions import StandardsError
from envmon.standards.rounding import Number, round_half_even, to_decimal

Waterbody: TypeAlias = Literal["river", "lake", "reservoir"]

WORSE_THAN_V: Final = 6
"""Class number used for 劣Ⅴ类 (worse than class V)."""

# GB 3838-2002 Table 1, class I … V limits (mg/L; fecal coliform 个/L). All are
# upper limits ("≤") except dissolved oxygen ("≥"). DO class I is "饱和率 90 %
# (或 7.5)": the 7.5 mg/L alternative is used because saturation needs the water
# temperature and salinity, which a section record may not carry.
_TABLE1: Final[Mapping[str, tuple[str, str, str, str, str]]] = {
    "do": ("7.5", "6", "5", "3", "2"),
    "codmn": ("2", "4", "6", "10", "15"),
    "cod": ("15", "15", "20", "30", "40"),
    "bod5": ("3", "3", "4", "6", "10"),
    "nh3n": ("0.15", "0.5", "1.0", "1.5", "2.0"),
    "tp": ("0.02", "0.1", "0.2", "0.3", "0.4"),  # rivers
    "tn": ("0.2", "0.5", "1.0", "1.5", "2.0"),  # lakes and reservoirs, as N
    "cu": ("0.01", "1.0", "1.0", "1.0", "1.0"),
    "zn": ("0.05", "1.0", "1.0", "2.0", "2.0"),
    "fluoride": ("1.0", "1.0", "1.0", "1.5", "1.5"),
    "se": ("0.01", "0.01", "0.01", "0.02", "0.02"),
    "as": ("0.05", "0.05", "0.05", "0.1", "0.1"),
    "hg": ("0.00005", "0.00005", "0.0001", "0.001", "0.001"),
    "cd": ("0.001", "0.005", "0.005", "0.005", "0.01"),
    "cr6": ("0.01", "0.05", "0.05", "0.05", "0.1"),
    "pb": ("0.01", "0.01", "0.05", "0.05", "0.1"),
    "cyanide": ("0.005", "0.05", "0.2", "0.2", "0.2"),
    "phenol": ("0.002", "0.002", "0.005", "0.01", "0.1"),
    "petroleum": ("0.05", "0.05", "0.05", "0.5", "1.0"),
    "las": ("0.2", "0.2", "0.2", "0.3", "0.3"),
    "sulfide": ("0.05", "0.1", "0.2", "0.5", "1.0"),
    "fecal_coliform": ("200", "2000", "10000", "20000", "40000"),
}
# GB 3838-2002 Table 1, total phosphorus for lakes and reservoirs (湖、库).
_TP_LAKE: Final = ("0.01", "0.025", "0.05", "0.1", "0.2")
# GB 3838-2002 Table 1: pH 6–9 for every class.
_PH_RANGE: Final = (Decimal(6), Decimal(9))

# 环办〔2011〕22号: Table 1 minus water temperature, TN and fecal coliform.
EVALUATED: Final = (
    "ph", "do", "codmn", "cod", "bod5", "nh3n", "tp", "cu", "zn", "fluoride", "se",
    "as", "hg", "cd", "cr6", "pb", "cyanide", "phenol", "petroleum", "las", "sulfide",
)  # fmt: skip
# Judged apart from the section class (reference indicators).
REFERENCE: Final = ("temp", "tn", "fecal_coliform")
# 超标倍数 is not computed for these (环办〔2011〕22号).
_NO_MULTIPLE: Final = frozenset({"temp", "ph", "do"})
# "氰化物或铅、铬等重金属" are listed first when they exceed class III. Which
# elements count as heavy metals is not spelled out: the Table 1 metals plus
# arsenic (grouped with them in Chinese practice); selenium is not a metal.
_PRIORITY: Final = frozenset({"cyanide", "hg", "cd", "cr6", "pb", "as", "cu", "zn"})

# 环办〔2011〕22号 section status by class.
STATUS: Final[Mapping[int, str]] = {
    1: "优",
    2: "优",
    3: "良好",
    4: "轻度污染",
    5: "中度污染",
    6: "重度污染",
}
_ROMAN: Final = ("Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", "Ⅴ", "劣Ⅴ")


def roman(cls: int) -> str:
    """Class label "Ⅰ" … "Ⅴ", "劣Ⅴ" for 6."""
    if not 1 <= cls <= WORSE_THAN_V:
        raise StandardsError(f"not a GB 3838 class: {cls!r}")
    return _ROMAN[cls - 1]


def _check_waterbody(waterbody: str) -> None:
    if waterbody not in ("river", "lake", "reservoir"):
        raise StandardsError(f"unknown waterbody {waterbody!r}; river, lake or reservoir")


def _limits(parameter: str, waterbody: str) -> tuple[str, str, str, str, str]:
    _check_waterbody(waterbody)
    if parameter == "tp" and waterbody != "river":
        return _TP_LAKE
    try:
        return _TABLE1[parameter]
    except KeyError as err:
        raise StandardsError(f"unknown GB 3838 parameter {parameter!r}") from err


def _value(parameter: str, value: Number | None) -> Decimal:
    d = to_decimal(value)
    if d is None:
        raise StandardsError(f"{parameter}: no value to classify")
    if d < 0:
        raise StandardsError(f"{parameter}: negative value {value!r}")
    return d


def classify(parameter: str, value: Number | None, *, waterbody: str = "river") -> int:
    """GB 3838-2002 Table 1 class of one value: 1–5 for Ⅰ–Ⅴ, 6 for 劣Ⅴ.

    A value belongs to the best class whose limit it meets; limits are inclusive
    and shared limits give the better class (COD 15 → Ⅰ). DO must be ≥ the limit
    (class I: 7.5 mg/L, the alternative to 90 % saturation). pH is pass/fail:
    6–9 → 1, otherwise 6. ``waterbody`` selects the lake/reservoir TP column.
    Water temperature has no class and raises, like unknown parameters.
    """
    _check_waterbody(waterbody)
    if parameter == "temp":
        raise StandardsError("water temperature is not classified (GB 3838-2002 Table 1)")
    if parameter == "ph":
        v = _value(parameter, value)
        return 1 if _PH_RANGE[0] <= v <= _PH_RANGE[1] else WORSE_THAN_V
    limits = _limits(parameter, waterbody)
    v = _value(parameter, value)
    for cls, text in enumerate(limits, start=1):
        lim = Decimal(text)
        if (v >= lim) if parameter == "do" else (v <= lim):
            return cls
    return WORSE_THAN_V


def _multiple(parameter: str, value: Decimal, waterbody: str) -> Fraction | None:
    if parameter in _NO_MULTIPLE:
        return None
    s = Fraction(Decimal(_limits(parameter, waterbody)[2]))
    return (Fraction(value) - s) / s


@dataclass(frozen=True)
class MainPollutant:
    """A main pollutant of a section, e.g. 高锰酸盐指数(1.2)."""

    parameter: str
    cls: int
    multiple: float | None  # over class III; None for pH and DO


@dataclass(frozen=True)
class SectionResult:
    """Single-factor evaluation of one section (环办〔2011〕22号)."""

    cls: int
    classes: dict[str, int]
    main_pollutants: list[MainPollutant]
    exceedance: dict[str, float]
    status: str
    meets_target: bool | None
    reference: dict[str, int | None]

    @property
    def roman(self) -> str:
        """The class as "Ⅰ" … "劣Ⅴ"."""
        return roman(self.cls)


def section_class(
    mapping: Mapping[str, Number | None],
    *,
    waterbody: str = "river",
    target_class: int | None = None,
) -> SectionResult:
    """Evaluate one section's (period-mean) values by the 2011 method.

    * ``cls``: worst class over the 21 evaluated indicators present (``None``
      values are not monitored and skipped); ``classes`` per indicator.
    * ``reference``: TN and fecal coliform classes and water temperature
      (``None``: not classified), judged apart from ``cls``.
    * ``exceedance``: multiples (C − S_Ⅲ)/S_Ⅲ > 0 of the evaluated indicators,
      not for pH and DO.
    * ``main_pollutants``: only when ``cls`` > 3 — up to three indicators worse
      than class III, cyanide and heavy metals first, then by class, then by
      multiple (pH/DO, having none, rank as 0 within their class).
    * ``status`` 优/良好/轻度污染/中度污染/重度污染; ``meets_target`` when a
      ``target_class`` is given.
    """
    unknown = sorted(k for k in mapping if k not in EVALUATED and k not in REFERENCE)
    if unknown:
        raise StandardsError(f"unknown GB 3838 parameters {unknown}")
    if target_class is not None and not 1 <= target_class <= 5:
        raise StandardsError(f"target class must be 1–5, got {target_class!r}")

    classes: dict[str, int] = {}
    exceedance: dict[str, float] = {}
    multiples: dict[str, Fraction] = {}
    for name in EVALUATED:
        raw = mapping.get(name)
        if to_decimal(raw) is None:
            continue
        classes[name] = classify(name, raw, waterbody=waterbody)
        m = _multiple(name, _value(name, raw), waterbody)
        if m is not None:
            multiples[name] = m
            if m > 0:
                exceedance[name] = float(m)
    if not classes:
        raise StandardsError("no evaluated GB 3838 indicator has a value")

    reference: dict[str, int | None] = {}
    for name in REFERENCE:
        raw = mapping.get(name)
        if to_decimal(raw) is None:
            continue
        reference[name] = None if name == "temp" else classify(name, raw, waterbody=waterbody)

    cls = max(classes.values())
    main: list[MainPollutant] = []
    if cls > 3:
        order = {name: i for i, name in enumerate(EVALUATED)}
        worse = [n for n, c in classes.items() if c > 3]
        worse.sort(
            key=lambda n: (
                n not in _PRIORITY,
                -classes[n],
                -multiples.get(n, Fraction(0)),
                order[n],
            )
        )
        main = [
            MainPollutant(n, classes[n], float(multiples[n]) if n in multiples else None)
            for n in worse[:3]
        ]

    return SectionResult(
        cls=cls,
        classes=classes,
        main_pollutants=main,
        exceedance=exceedance,
        status=STATUS[cls],
        meets_target=None if target_class is None else cls <= target_class,
        reference=reference,
    )


# pH to two decimals, temperature to one; every other parameter one decimal finer
# than the finest GB 3838 limit of its column (TP: 0.02 → 3 decimals, Hg: 0.00005
# → 6). GB 3838-2002 gives no reporting precision (UNCERTAIN): this keeps every
# limit exactly representable and a mean on a limit on it.
_REPORTED_PLACES: Final[Mapping[str, int]] = {
    "ph": 2,
    "temp": 1,
    **{
        p: 1 + max(len(x.partition(".")[2]) for x in limits)
        for p, limits in {**_TABLE1, "tp": _TABLE1["tp"] + _TP_LAKE}.items()
    },
}


def reported_places(parameter: str) -> int | None:
    """Decimals a water value is stored and compared with; ``None`` = not rounded."""
    return _REPORTED_PLACES.get(parameter)


def round_reported(parameter: str, value: Number) -> Decimal:
    """An exact water mean rounded per GB/T 8170 to :func:`reported_places`."""
    places = reported_places(parameter)
    d = to_decimal(value)
    if d is None:
        raise StandardsError(f"{parameter}: no value")
    return d if places is None else round_half_even(d, places)
