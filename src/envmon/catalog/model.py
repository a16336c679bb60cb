"""The station catalog: one ``Station`` per monitoring point, and the ``Catalog`` of them.

A station belongs to exactly one of the zone's 12 counties (see ``geography``)
and its coordinates must lie inside that county's boundary, so a swapped
lon/lat or a typo in a digit is caught when the file is loaded rather than on a
map months later. Device passwords (HJ 212 ``PW``) are secrets and have no field
here: they live in the settings, never in the catalog.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from envmon.catalog.geography import CITIES, COUNTIES
from envmon.catalog.names import StationNames
from envmon.errors import CatalogError

Kind = Literal["air", "water", "weather"]
ControlLevel = Literal["national", "provincial", "municipal", "regional"]
Basin = Literal["黄河", "海河"]
Waterbody = Literal["river", "lake"]
Pollutant = Literal["so2", "no2", "co", "o3", "pm10", "pm25"]

KINDS: Final[tuple[Kind, ...]] = ("air", "water", "weather")
CONTROL_LEVEL_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {"national": "国控", "provincial": "省控", "municipal": "市控", "regional": "区域站"}
)
ID_PREFIX: Final[Mapping[Kind, str]] = MappingProxyType(
    {"air": "air-", "water": "water-", "weather": "wx-"}
)
# The zone runs from about 600 m (Hutuo valley, south-east Wutai) to 3061 m (五台山 北台).
ELEVATION_RANGE_M: Final = (400.0, 3100.0)

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# HJ 212-2017 §6.3.2: MN is the device's unique id; this network uses 24 hex characters.
_MN = re.compile(r"[0-9A-Fa-f]{24}")
_CMA_STATION_NO = re.compile(r"\d{5}")
_STATION_NO = re.compile(r"[0-9A-Za-z-]{1,16}")
_WATER_ONLY = ("river", "basin", "waterbody", "target_class")


class Station(BaseModel):
    """One monitoring point: an air-quality station, a water section or a weather station."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str
    kind: Kind
    name: str = Field(min_length=1)
    city: str
    county: str
    lon: float
    lat: float
    elevation_m: float | None = None
    control_level: ControlLevel
    assessed: bool = True
    verified: bool
    river: str | None = None
    basin: Basin | None = None
    waterbody: Waterbody | None = None
    target_class: int | None = Field(default=None, ge=1, le=5)
    mn: str | None = None
    station_no: str | None = None
    active: bool = True
    notes: str | None = None
    # Air only (issue 15). clean_control: a clean-control point (清洁对照点, e.g. 上兰),
    # never in a city value. evaluation_point: one of the points whose mean is the
    # city value (HJ 663 城市点); default = a national, assessed, non-control air point.
    clean_control: bool = False
    evaluation_point: bool = False
    # Pollutants outside the station's programme ("/" in the national feed): the
    # hourly AQI neither counts nor misses them (HJ 633-2026 §5.3.2).
    not_monitored: list[Pollutant] = Field(default_factory=list)
    # Where the name, code and position come from (every verified station has one).
    source: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_evaluation_point(cls, data: Any) -> Any:
        if isinstance(data, dict) and "evaluation_point" not in data:
            data = {
                **data,
                "evaluation_point": data.get("kind") == "air"
                and data.get("control_level") == "national"
                and data.get("assessed", True) is True
                and data.get("clean_control", False) is False
                and data.get("active", True) is True,
            }
        return data

    @field_validator("mn", "station_no", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("write it in quotes: unquoted digits are read as a number")
        return value

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.fullmatch(value):
            raise ValueError("must be a slug of lower-case letters, digits and single dashes")
        return value

    @field_validator("mn")
    @classmethod
    def _mn(cls, value: str | None) -> str | None:
        if value is not None and not _MN.fullmatch(value):
            raise ValueError("HJ 212 MN must be exactly 24 hexadecimal characters")
        return value

    @field_validator("station_no")
    @classmethod
    def _station_no(cls, value: str | None) -> str | None:
        if value is not None and not _STATION_NO.fullmatch(value):
            raise ValueError("must be 1-16 letters, digits or dashes")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Station:
        problems = station_problems({f: getattr(self, f) for f in type(self).model_fields})
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def station_problems(entry: Mapping[str, Any]) -> list[str]:
    """Cross-field problems of one catalog entry (a validated ``Station`` or a raw mapping).

    Each check runs only when the fields it needs are present and of the right type,
    so the loader can report these alongside per-field errors.
    """
    problems: list[str] = []
    kind: Any = entry.get("kind")
    ident: Any = entry.get("id")
    city: Any = entry.get("city")
    county_name: Any = entry.get("county")
    lon: Any = entry.get("lon")
    lat: Any = entry.get("lat")
    elevation: Any = entry.get("elevation_m")
    if kind in ID_PREFIX and isinstance(ident, str) and not ident.startswith(ID_PREFIX[kind]):
        problems.append(f"id of a {kind} station must start with '{ID_PREFIX[kind]}'")
    if isinstance(city, str) and city not in CITIES:
        problems.append(f"city '{city}' is not in the zone (expected one of {', '.join(CITIES)})")
    if isinstance(county_name, str):
        county = COUNTIES.get(county_name)
        if county is None:
            problems.append(
                f"unknown county '{county_name}' (expected one of {', '.join(COUNTIES)})"
            )
        elif isinstance(city, str) and county.city != city:
            problems.append(f"county '{county_name}' belongs to {county.city}, not {city}")
        elif _number(lon) and _number(lat) and not county.contains(lon, lat):
            problems.append(
                f"coordinates (lon {lon}, lat {lat}) lie outside {county_name}"
                " (lon/lat swapped, or a digit wrong?)"
            )
    low, high = ELEVATION_RANGE_M
    if _number(elevation) and not low <= elevation <= high:
        problems.append(
            f"elevation_m {elevation} is outside the zone's range {low:.0f}-{high:.0f} m"
        )
    if kind == "water":
        missing = [f for f in _WATER_ONLY if entry.get(f) is None]
        if missing:
            problems.append("a water section needs " + ", ".join(missing))
    elif kind in ID_PREFIX:
        present = [f for f in _WATER_ONLY if entry.get(f) is not None]
        if present:
            problems.append(f"{', '.join(present)} only apply to water sections")
    if kind != "air":
        present = [
            f for f in ("clean_control", "evaluation_point", "not_monitored") if entry.get(f)
        ]
        if present:
            problems.append(f"{', '.join(present)} only apply to air stations")
    if entry.get("clean_control") is True and entry.get("evaluation_point") is True:
        problems.append("a clean-control point (对照点) is never a city evaluation point")
    if kind == "weather" and entry.get("control_level") == "national":
        number = entry.get("station_no")
        if not isinstance(number, str) or not _CMA_STATION_NO.fullmatch(number):
            problems.append("a national weather station needs its 5-digit CMA station_no (区站号)")
        elif isinstance(ident, str) and ident != f"wx-{number}":
            problems.append(f"a national weather station's id must be 'wx-{number}'")
    return problems


class Catalog:
    """The stations of the zone, indexed by id and by HJ 212 MN. Immutable."""

    __slots__ = ("_by_id", "_by_mn", "_names", "stations")

    def __init__(self, stations: Iterable[Station]) -> None:
        self.stations: tuple[Station, ...] = tuple(stations)
        ids = Counter(s.id for s in self.stations)
        mns = Counter(s.mn for s in self.stations if s.mn is not None)
        dup_ids = sorted(i for i, n in ids.items() if n > 1)
        dup_mns = sorted(m for m, n in mns.items() if n > 1)
        if dup_ids or dup_mns:
            raise CatalogError(
                "; ".join(
                    [f"station '{i}': duplicate id" for i in dup_ids]
                    + [f"mn '{m}': used by more than one station" for m in dup_mns]
                )
            )
        self._by_id: Mapping[str, Station] = MappingProxyType({s.id: s for s in self.stations})
        self._by_mn: Mapping[str, Station] = MappingProxyType(
            {s.mn: s for s in self.stations if s.mn is not None}
        )
        self._names = StationNames(self.stations)

    @property
    def by_id(self) -> Mapping[str, Station]:
        return self._by_id

    @property
    def by_mn(self) -> Mapping[str, Station]:
        """Stations by HJ 212 MN (upper- or lower-case as written in the catalog)."""
        return self._by_mn

    @property
    def names(self) -> StationNames[Station]:
        """Stations by id, Chinese name or pinyin (see :mod:`envmon.catalog.names`)."""
        return self._names

    def resolve(self, text: str, kind: Kind | None = None) -> Station:
        """The station ``text`` names (id, 中文名 or pinyin), of ``kind`` if given."""
        return self._names.resolve(text, None if kind is None else (kind,))

    def of_kind(self, kind: Kind) -> tuple[Station, ...]:
        return tuple(s for s in self.stations if s.kind == kind)

    def counts(self) -> dict[str, int]:
        """Number of stations per kind, every kind present (zero when none)."""
        found = Counter(s.kind for s in self.stations)
        return {kind: found.get(kind, 0) for kind in KINDS}

    def __len__(self) -> int:
        return len(self.stations)

    def __iter__(self) -> Iterator[Station]:
        return iter(self.stations)

    def __repr__(self) -> str:
        return f"Catalog({self.counts()})"
