"""Names of regions and stations as people write them: an id, pinyin or the Chinese name.

One place resolves them, for the API, the CLI and file imports alike:

* a region is ``zone``/``taiyuan``/``xinzhou``, or ``太忻经济区``/``太原市``/``忻州市``
  (also without 市: ``太原``);
* a station is its id (``air-taiyuan-jiancaoping``), its Chinese name (``尖草坪``),
  its pinyin — the part of the id after the kind (``taiyuan-jiancaoping``) or the
  last part (``jiancaoping``) — or its HJ 212 MN / CMA station number.

Chinese names repeat across kinds (the 尖草坪 air station and the 尖草坪 weather
station), so a lookup says which kinds it expects; a name that still matches
several stations is an :class:`AmbiguousName` listing them, never a guess.
Pinyin is case-insensitive; surrounding blanks are ignored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType
from typing import Final, Generic, Protocol, TypeVar

from envmon.errors import CatalogError


class Named(Protocol):
    """What the name index reads of a station (``catalog.model.Station`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def mn(self) -> str | None: ...
    @property
    def station_no(self) -> str | None: ...


Station = TypeVar("Station", bound=Named)

CITY_REGION: Final[Mapping[str, str]] = MappingProxyType({"太原市": "taiyuan", "忻州市": "xinzhou"})
REGION_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {"zone": "太忻经济区", "taiyuan": "太原市", "xinzhou": "忻州市"}
)
REGIONS: Final[tuple[str, ...]] = ("zone", "taiyuan", "xinzhou")
_REGION_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{r: r for r in REGIONS},
        **{name: r for r, name in REGION_NAMES.items()},
        "太原": "taiyuan",
        "忻州": "xinzhou",
        "太忻": "zone",
        "太忻一体化经济区": "zone",
    }
)


class UnknownName(CatalogError):
    """No region or station goes by this name."""

    def __init__(self, text: str, what: str, expected: str = "") -> None:
        super().__init__(
            f"unknown {what} '{text}'" + (f" (expected {expected})" if expected else "")
        )
        self.text = text


class AmbiguousName(CatalogError):
    """Several stations go by this name; ``candidates`` are their ids."""

    def __init__(self, text: str, candidates: Iterable[str]) -> None:
        self.candidates = sorted(candidates)
        super().__init__(
            f"'{text}' names several stations ({', '.join(self.candidates)}); give the id"
        )
        self.text = text


def _key(text: str) -> str:
    return text.strip().lower()


def region_of(text: str) -> str:
    """The region id (``zone``, ``taiyuan``, ``xinzhou``) that ``text`` names."""
    found = _REGION_ALIASES.get(_key(text))
    if found is None:
        raise UnknownName(text, "region", "one of " + ", ".join(_REGION_ALIASES))
    return found


def city_of(text: str) -> str:
    """The city (``太原市``/``忻州市``) that ``text`` names: ``太原``, ``taiyuan``, ``太原市``…"""
    region = _REGION_ALIASES.get(_key(text))
    if region is None or region == "zone":
        raise UnknownName(text, "city", "太原市, 忻州市, taiyuan or xinzhou")
    return REGION_NAMES[region]


def region_choices() -> tuple[str, ...]:
    """Every spelling :func:`region_of` accepts (for help texts and the OpenAPI enum)."""
    return tuple(_REGION_ALIASES)


def station_spellings(station: Station) -> list[str]:
    """The names a station is known by, id first."""
    out = [station.id, station.name]
    tail = station.id.split("-", 1)[1] if "-" in station.id else ""
    if tail and station.kind != "weather":
        out += [tail, tail.rsplit("-", 1)[-1]]
    if station.mn:
        out.append(station.mn)
    if station.station_no:
        out.append(station.station_no)
    return list(dict.fromkeys(out))


class StationNames(Generic[Station]):
    """Every spelling of every station, for :meth:`resolve`."""

    __slots__ = ("_by_id", "_by_spelling")

    def __init__(self, stations: Iterable[Station]) -> None:
        by_spelling: dict[str, list[Station]] = defaultdict(list)
        by_id: dict[str, Station] = {}
        for s in stations:
            by_id[s.id] = s
            for spelling in station_spellings(s):
                by_spelling[_key(spelling)].append(s)
        self._by_id = MappingProxyType(by_id)
        self._by_spelling = MappingProxyType({k: tuple(v) for k, v in by_spelling.items()})

    def candidates(self, text: str, kinds: Collection[str] | None = None) -> list[Station]:
        """Every station ``text`` may name (of ``kinds``); an exact id wins outright."""
        exact = self._by_id.get(text.strip())
        if exact is not None:
            return [exact] if kinds is None or exact.kind in kinds else []
        found = self._by_spelling.get(_key(text), ())
        return [s for s in found if kinds is None or s.kind in kinds]

    def resolve(self, text: str, kinds: Collection[str] | None = None) -> Station:
        """The one station ``text`` names; :class:`UnknownName` or :class:`AmbiguousName`."""
        found = self.candidates(text, kinds)
        if not found:
            what = f"{'/'.join(sorted(kinds))} station" if kinds else "station"
            raise UnknownName(text, what)
        if len(found) > 1:
            raise AmbiguousName(text, (s.id for s in found))
        return found[0]

    def lookup(self, text: str, kinds: Collection[str] | None = None) -> str | None:
        """The id ``text`` names, or None when it names none or several."""
        found = self.candidates(text, kinds)
        return found[0].id if len(found) == 1 else None
