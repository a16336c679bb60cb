"""What the receiver knows about each data logger: ``config/hj212.yaml`` and
the :class:`Directory` that joins it with the catalog and the secrets by MN.

Per station (``stations: <station-id>:``) the file says what the logger really
sends — the units (``unit_overrides``, and ``edition_units`` for the codes of
an older edition), the minute interval — and how it frames them: the CRC
variant (``crc: annex_a | modbus | modbus_swapped | auto``), the length field
(``length: standard | plus6``), the protocol edition it speaks (``edition``),
whether it encrypts (``encryption: sm4``) and whether its period times label
the end of the period (``period_time: end``).  Devices without a block are
held to the standard (Annex A CRC, exact length, period start), unless the
receiver's ``crc_auto`` setting lets every device use any CRC variant.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from envmon.catalog import KINDS, Catalog
from envmon.errors import ConfigError

from .auth import normalize_mn
from .codes import convert, parameter_for, to_2017
from .crc import ANNEX_A, VARIANTS
from .errors import Hj212Error
from .mapping import MIN_INTERVALS

AUTO: Final = "auto"
CRC_CHOICES: Final = (*VARIANTS, AUTO)
LENGTHS: Final = {"standard": 0, "plus6": 6}
EDITIONS: Final = {"2005": 0, "2017": 1, "2025": 2}
PERIOD_TIMES: Final = ("start", "end")
_STATION_KEYS: Final = frozenset(
    {
        "unit_overrides",
        "edition_units",
        "minute_interval",
        "crc",
        "length",
        "edition",
        "encryption",
        "period_time",
    }
)


@dataclass(frozen=True, slots=True)
class StationConfig:
    """One station's block of ``config/hj212.yaml``."""

    unit_overrides: Mapping[str, str] = field(default_factory=dict)
    minute_interval: int | None = None
    crc: str | None = None  # None: the receiver's default
    length_offset: int = 0
    edition: int | None = None  # Flag version bits the logger sends (0 2005, 1 2017, 2 2025)
    encryption: str | None = None  # "sm4": the logger encrypts its data uploads
    period_end: bool = False  # DataTime of 2051/2061/2031 labels the end of the period
    # Units of the codes of an edition (HJ/T 212-2005 short codes …), by code as sent.
    edition_units: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hj212Config:
    """Units the loggers send, by station kind and per station (HJ 212 code → unit),
    and the stations' protocol profiles.  Per-station units are merged over
    their kind's defaults."""

    kind_units: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    stations: Mapping[str, StationConfig] = field(default_factory=dict)

    def unit_overrides(self, station_id: str, kind: str) -> dict[str, str]:
        merged = dict(self.kind_units.get(kind, {}))
        block = self.stations.get(station_id)
        if block is not None:
            merged.update(block.unit_overrides)
        return merged

    def minute_interval(self, station_id: str) -> int | None:
        block = self.stations.get(station_id)
        return None if block is None else block.minute_interval

    def station(self, station_id: str) -> StationConfig:
        return self.stations.get(station_id) or StationConfig()


def load_config(path: Path, catalog: Catalog | None = None) -> Hj212Config:
    """Read ``config/hj212.yaml``; a missing file means no overrides.

    Raise :class:`ConfigError` listing every problem: unknown keys or kinds,
    unknown units or units that cannot be converted to the parameter's unit,
    station ids not in ``catalog``, minute intervals not in Table 4's list,
    unknown CRC variants, length modes, editions.
    """
    if not path.exists():
        return Hj212Config()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the HJ 212 config: {err}") from err
    return parse_config(data or {}, catalog, where=str(path))


def parse_config(data: Any, catalog: Catalog | None = None, *, where: str = "hj212") -> Hj212Config:
    """Validate the parsed YAML of ``config/hj212.yaml`` (see :func:`load_config`)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with 'unit_overrides:' and 'stations:'")
    for key in data:
        if key not in ("unit_overrides", "stations"):
            problems.append(f"unknown top-level key {key!r}")
    kind_units: dict[str, dict[str, str]] = {}
    defaults = data.get("unit_overrides") or {}
    if not isinstance(defaults, dict):
        problems.append("'unit_overrides' must map a station kind to {code: unit}")
        defaults = {}
    for kind, units in defaults.items():
        if kind not in KINDS:
            problems.append(f"unit_overrides: unknown station kind {kind!r} ({'|'.join(KINDS)})")
            continue
        kind_units[kind] = _units(units, f"unit_overrides.{kind}", problems)
    stations: dict[str, StationConfig] = {}
    blocks = data.get("stations") or {}
    if not isinstance(blocks, dict):
        problems.append("'stations' must map a station id to its block")
        blocks = {}
    for station_id, block in blocks.items():
        label = f"stations.{station_id}"
        if catalog is not None and station_id not in catalog.by_id:
            problems.append(f"{label}: no such station in the catalog")
        if not isinstance(block, dict):
            problems.append(f"{label}: expected a mapping")
            continue
        stations[str(station_id)] = _station(block, label, problems)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return Hj212Config(kind_units, stations)


def _choice(
    block: dict[str, Any], key: str, choices: Iterable[str], label: str, out: list[str]
) -> str | None:
    value = block.get(key)
    if value is None:
        return None
    text = str(value)
    if text not in choices:
        out.append(f"{label}.{key}: {value!r} is not one of {' | '.join(choices)}")
        return None
    return text


def _station(block: dict[str, Any], label: str, problems: list[str]) -> StationConfig:
    for key in block:
        if key not in _STATION_KEYS:
            problems.append(f"{label}: unknown key {key!r}")
    interval = block.get("minute_interval")
    if interval is not None and (
        not isinstance(interval, int) or isinstance(interval, bool) or interval not in MIN_INTERVALS
    ):
        problems.append(
            f"{label}.minute_interval: {interval!r} is not one of "
            f"{sorted(MIN_INTERVALS)} (HJ 212-2017 Table 4 MinInterval)"
        )
        interval = None
    length = _choice(block, "length", LENGTHS, label, problems)
    edition = _choice(block, "edition", EDITIONS, label, problems)
    edition_units: dict[str, str] = {}
    raw_editions = block.get("edition_units") or {}
    if not isinstance(raw_editions, dict):
        problems.append(f"{label}.edition_units: expected a mapping edition → {{code: unit}}")
        raw_editions = {}
    for name, units in raw_editions.items():
        if str(name) not in EDITIONS:
            problems.append(f"{label}.edition_units: unknown edition {name!r}")
            continue
        # Keyed by the code as that edition sends it ("02" is SO2 in 2005).
        edition_units.update(_units(units, f"{label}.edition_units.{name}", problems, keep=True))
    return StationConfig(
        _units(block.get("unit_overrides") or {}, f"{label}.unit_overrides", problems),
        interval,
        crc=_choice(block, "crc", CRC_CHOICES, label, problems),
        length_offset=LENGTHS[length] if length else 0,
        edition=EDITIONS[edition] if edition else None,
        encryption=_choice(block, "encryption", ("sm4",), label, problems),
        period_end=_choice(block, "period_time", PERIOD_TIMES, label, problems) == "end",
        edition_units=edition_units,
    )


def _units(raw: Any, label: str, problems: list[str], *, keep: bool = False) -> dict[str, str]:
    if not isinstance(raw, dict):
        problems.append(f"{label}: expected a mapping HJ 212 code → unit")
        return {}
    out: dict[str, str] = {}
    for code, unit in raw.items():
        if not isinstance(code, str) or not isinstance(unit, str):
            problems.append(f"{label}: {code!r}: {unit!r} must be text (quote codes and units)")
            continue
        param = parameter_for(code)
        try:
            convert(1, unit, param.unit if param is not None else unit)
        except Hj212Error as err:
            problems.append(f"{label}.{code}: {err.detail}")
            continue
        out[code if keep else to_2017(code)] = unit
    return out


# --------------------------------------------------------------------------- directory


@dataclass(frozen=True, slots=True)
class Device:
    """What the receiver knows about the logger with one MN."""

    mn: str
    station_id: str
    kind: str
    password: str | None = field(default=None, repr=False)
    unit_overrides: Mapping[str, str] = field(default_factory=dict)
    minute_interval: int | None = None
    profile: StationConfig = field(default_factory=StationConfig)
    sm4_key: bytes | None = field(default=None, repr=False)
    crc: str = ANNEX_A  # the profile's variant, or the receiver's default


class Directory:
    """Devices by MN (case-insensitive)."""

    def __init__(self, devices: Iterable[Device]) -> None:
        self._by_mn = {normalize_mn(d.mn): d for d in devices}
        # Shared by every connection: the CRC variant each ``auto`` device was
        # seen to use, and the deviations already logged (once per device).
        self.learned: dict[str, str] = {}
        self.noted: set[tuple[str, str]] = set()

    @classmethod
    def build(
        cls,
        catalog: Catalog,
        secrets: Mapping[str, str],
        config: Hj212Config | None = None,
        keys: Mapping[str, bytes] | None = None,
        *,
        crc_auto: bool = False,
    ) -> Directory:
        """``keys``: SM4 keys by MN; ``crc_auto``: devices without a ``crc`` in
        their profile may use any CRC variant (else Annex A only)."""
        config = config or Hj212Config()
        upper = {normalize_mn(k): v for k, v in secrets.items()}
        sm4 = {normalize_mn(k): v for k, v in (keys or {}).items()}
        default = AUTO if crc_auto else ANNEX_A
        devices = []
        for s in catalog.stations:
            if not s.mn:
                continue
            profile = config.station(s.id)
            devices.append(
                Device(
                    mn=s.mn,
                    station_id=s.id,
                    kind=s.kind,
                    password=upper.get(normalize_mn(s.mn)),
                    unit_overrides=config.unit_overrides(s.id, s.kind),
                    minute_interval=config.minute_interval(s.id),
                    profile=profile,
                    sm4_key=sm4.get(normalize_mn(s.mn)),
                    crc=profile.crc or default,
                )
            )
        return cls(devices)

    def get(self, mn: str) -> Device | None:
        return self._by_mn.get(normalize_mn(mn))

    def __len__(self) -> int:
        return len(self._by_mn)

    def __iter__(self) -> Iterator[Device]:
        return iter(self._by_mn.values())

    @functools.cached_property
    def crc_variants(self) -> tuple[str, ...]:
        """Every CRC variant some device may use (what the decoder must accept;
        the devices are fixed at construction: computed once, not per connection)."""
        used = {d.crc for d in self._by_mn.values()}
        if AUTO in used:
            return VARIANTS
        return tuple(v for v in VARIANTS if v == ANNEX_A or v in used)

    @functools.cached_property
    def length_offsets(self) -> tuple[int, ...]:
        return tuple(sorted({0} | {d.profile.length_offset for d in self._by_mn.values()}))

    def without_password(self) -> list[str]:
        """MNs that can never authenticate (for a warning at start-up)."""
        return sorted(mn for mn, d in self._by_mn.items() if d.password is None)
