"""The zone's 12 counties: names, administrative codes and boundary polygons.

The Taiyuan–Xinzhou integrated economic zone, as this service covers it, is six
county-level units of 太原市 and six of 忻州市. Boundaries come from
``counties.json`` beside this module: real DataV county outlines, converted from
GCJ-02 to WGS84 and simplified to at most 60 vertices each, with shared borders
kept identical so the counties tile without gaps or overlaps (the file records
source, method and per-county tolerance). They are good enough to check that a
station's coordinates match its declared county, not for legal questions: a
point within ``tolerance_m`` of a border may be placed on the wrong side.

Point-in-polygon is plain ray casting in lon/lat; at this scale (< 200 km) the
planar approximation is far below the simplification error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise
from types import MappingProxyType
from typing import Any, Final

CITIES: Final = ("太原市", "忻州市")

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class County:
    """One county-level unit (区/县/县级市) of the zone."""

    code: str  # GB/T 2260 administrative code, e.g. "140108"
    name: str  # Chinese name as used in the catalog, e.g. "尖草坪区"
    city: str  # "太原市" or "忻州市"
    pinyin: str
    english: str
    seat: Point  # (lon, lat) of the county government, WGS84
    ring: tuple[Point, ...]  # closed boundary ring, first == last, (lon, lat)
    approximate: bool  # True when the outline was drawn by hand, not from a source
    tolerance_m: int  # how far the simplified outline may stray from the source
    bbox: tuple[float, float, float, float]  # min_lon, min_lat, max_lon, max_lat

    def contains(self, lon: float, lat: float) -> bool:
        """Whether (lon, lat) lies inside the boundary polygon."""
        min_lon, min_lat, max_lon, max_lat = self.bbox
        if not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat):
            return False
        return _ray_cast(lon, lat, self.ring)


def _ray_cast(x: float, y: float, ring: tuple[Point, ...]) -> bool:
    inside = False
    for (x1, y1), (x2, y2) in pairwise(ring):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _load() -> tuple[Mapping[str, County], str]:
    raw: dict[str, Any] = json.loads(
        resources.files("envmon.catalog").joinpath("counties.json").read_text(encoding="utf-8")
    )
    counties: dict[str, County] = {}
    for entry in raw["counties"]:
        ring = tuple((float(lon), float(lat)) for lon, lat in entry["ring"])
        if len(ring) < 4 or ring[0] != ring[-1]:
            raise ValueError(f"counties.json: ring of {entry['name']} is not closed")
        lons = [p[0] for p in ring]
        lats = [p[1] for p in ring]
        seat_lon, seat_lat = entry["seat"]
        counties[entry["name"]] = County(
            code=entry["code"],
            name=entry["name"],
            city=entry["city"],
            pinyin=entry["pinyin"],
            english=entry["english"],
            seat=(float(seat_lon), float(seat_lat)),
            ring=ring,
            approximate=bool(entry["approximate"]),
            tolerance_m=int(entry["tolerance_m"]),
            bbox=(min(lons), min(lats), max(lons), max(lats)),
        )
    return MappingProxyType(counties), str(raw["source"])


_LOADED = _load()
COUNTIES: Final[Mapping[str, County]] = _LOADED[0]
BOUNDARY_SOURCE: Final[str] = _LOADED[1]


def counties_of(city: str) -> tuple[str, ...]:
    """Names of the zone's counties in ``city`` (empty for a city outside the zone)."""
    return tuple(name for name, county in COUNTIES.items() if county.city == city)


def point_in_county(lon: float, lat: float, county: County | str) -> bool:
    """Whether (lon, lat) lies inside ``county`` (a ``County`` or its Chinese name).

    Raises ``KeyError`` for a name that is not one of the 12 counties.
    """
    target = COUNTIES[county] if isinstance(county, str) else county
    return target.contains(lon, lat)


def county_of(lon: float, lat: float) -> str | None:
    """The name of the county containing (lon, lat), or None outside the zone."""
    for name, county in COUNTIES.items():
        if county.contains(lon, lat):
            return name
    return None
