"""``config/sources.yaml``: the HTTP platforms envmon pulls, as pydantic models.

The file has three parts::

    defaults:            # merged into every source entry (an entry's own keys win)
      interval: 5m
    sources:             # the real platforms (disabled until a bureau fills them in)
      - name: cnemc-air
        kind: cnemc_air
        base_url: https://…
    simulator:           # envmon's own fake platforms on localhost (envmon.simulate.platforms)
      enabled: true
      port: 18765
      sources: [ … ]     # the same entries, without base_url: they point at the simulator

Durations are written ``90s``, ``5m``, ``3h``, ``1d`` (or a number of seconds).
Every error names the file, the source and the field, and all of them are
reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from envmon.durations import Duration
from envmon.errors import ConfigError

_NAME = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")


MatchField = Literal["id", "station_no", "mn", "name"]


class RateLimit(BaseModel):
    """At most ``requests`` requests per ``per`` (spread evenly)."""

    model_config = ConfigDict(extra="forbid")

    requests: int = Field(ge=1)
    per: Duration = timedelta(seconds=1)

    @property
    def interval_s(self) -> float:
        return self.per.total_seconds() / self.requests


class SourceConfig(BaseModel):
    """One platform to pull: where it is, how often, how to map its stations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Unique; recorded as the reading's source.")
    kind: str = Field(description="A registered source kind (envmon.ingest.sources.REGISTRY).")
    enabled: bool = True
    base_url: str | None = Field(default=None, description="http(s)://host[:port][/prefix]")
    interval: Duration = timedelta(minutes=5)
    timeout: Duration = Field(default=timedelta(seconds=20), description="Per HTTP request.")
    # Each poll asks again for this much before the cursor: platforms correct and
    # publish late (an hour's value may appear or change an hour or two later).
    overlap: Duration = timedelta(hours=3)
    chunk: Duration = Field(
        default=timedelta(days=1), description="Backfills and catch-ups go chunk by chunk."
    )
    initial_lookback: Duration = Field(
        default=timedelta(days=1), description="How far back the very first poll reaches."
    )
    max_catchup: Duration = Field(
        default=timedelta(days=7),
        description="After a longer outage the poller catches up this much; `envmon backfill` "
        "fetches the rest.",
    )
    stale_after: Duration | None = Field(
        default=None, description="Data older than this is stale (default: derived from period)."
    )
    concurrency: int = Field(default=4, ge=1, le=64)
    rate_limit: RateLimit | None = None
    retries: int = Field(
        default=3, ge=1, le=20, description="Attempts per window (chunk) within a poll."
    )
    request_retries: int = Field(
        default=2, ge=0, le=10, description="Quick retries of one failed request first."
    )
    backoff_base: Duration = timedelta(seconds=2)
    backoff_max: Duration = timedelta(minutes=15)
    payload_retries: int = Field(
        default=3,
        ge=1,
        description="Polls in a row a chunk may come back unreadable before its raw page is "
        "quarantined in `rejected` and the cursor moves on.",
    )
    headers: dict[str, str] = Field(default_factory=dict)
    api_key: SecretStr | None = Field(
        default=None,
        description="Only for test/simulator keys; real keys go in ENVMON_COLLECT__SECRETS.",
    )
    stations: dict[str, str] = Field(
        default_factory=dict, description="Platform station code → catalog station id."
    )
    match: list[MatchField] = Field(
        default_factory=list,
        description="Also accept a platform code equal to one of these catalog fields.",
    )
    timezone: str | None = Field(
        default=None,
        description="Zone of the platform's times without an offset (default: the kind's "
        "own, Beijing for Chinese platforms).",
    )
    ignore_time_offset: bool = Field(
        default=False,
        description="The platform's offsets are wrong (a mirror that writes Beijing time "
        "with a 'Z'): its times are read as wall-clock time in `timezone`.",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Kind-specific settings.")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as err:
                raise ValueError(f"unknown time zone '{value}' (e.g. Asia/Shanghai)") from err
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("lower-case letters, digits, '-' or '_' (e.g. cnemc-air)")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must start with http:// or https:// and name a host")
        return value.rstrip("/") if value else value

    @field_validator("stations", mode="before")
    @classmethod
    def _codes_as_text(cls, value: Any) -> Any:
        # YAML reads 53677: wx-53677 as an int key; station codes are text.
        if isinstance(value, Mapping):
            return {str(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _durations(self) -> SourceConfig:
        for field in ("interval", "timeout", "chunk", "initial_lookback", "backoff_base"):
            if getattr(self, field) <= timedelta(0):
                raise ValueError(f"{field} must be positive")
        if self.overlap < timedelta(0):
            raise ValueError("overlap must not be negative")
        if self.chunk < timedelta(hours=1):
            raise ValueError("chunk must be at least 1h")
        return self

    def secret(self, secrets: Mapping[str, SecretStr]) -> str | None:
        """The source's key/password: from the settings' secrets by name, else ``api_key``."""
        found = secrets.get(self.name) or self.api_key
        return found.get_secret_value() if found is not None else None


class SimulatorConfig(BaseModel):
    """envmon's fake platforms (``envmon.simulate.platforms``) and the sources that use them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=18765, ge=0, le=65535, description="0 = any free port.")
    seed: int = 2025
    fault_rate: float = Field(default=0.02, ge=0.0, le=1.0)
    sources: list[SourceConfig] = Field(default_factory=list)


class SourcesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[SourceConfig] = Field(default_factory=list)
    simulator: SimulatorConfig | None = None
    path: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique(self) -> SourcesConfig:
        names = [s.name for s in self.sources]
        if self.simulator is not None:
            names += [s.name for s in self.simulator.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique: {', '.join(dup)} used twice")
        return self

    @property
    def simulated(self) -> bool:
        return self.simulator is not None and self.simulator.enabled

    def bind_simulator(self, base_url: str) -> SourcesConfig:
        """A copy whose simulator sources (without their own base_url) point at ``base_url``."""
        if self.simulator is None:
            return self
        bound = [
            s if s.base_url else s.model_copy(update={"base_url": base_url.rstrip("/")})
            for s in self.simulator.sources
        ]
        sim = self.simulator.model_copy(update={"sources": bound})
        return self.model_copy(update={"simulator": sim})

    def all_sources(self) -> list[SourceConfig]:
        return list(self.sources) + (list(self.simulator.sources) if self.simulator else [])

    def active(self) -> list[SourceConfig]:
        """The enabled sources: the real ones, plus the simulator's when it is enabled."""
        out = [s for s in self.sources if s.enabled]
        if self.simulator is not None and self.simulator.enabled:
            out += [s for s in self.simulator.sources if s.enabled]
        return out

    def get(self, name: str) -> SourceConfig:
        for s in self.all_sources():
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.all_sources()) or "none"
        raise ConfigError(f"no source named '{name}' in {self.path or 'sources.yaml'} ({known})")


def _where(path: str, raw: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    """'source 'cnemc-air' (sources[0]).interval' from a pydantic error location."""
    if len(loc) >= 2 and loc[0] in ("sources",) and isinstance(loc[1], int):
        entries = raw.get("sources") or []
        name = _entry_name(entries, loc[1])
        rest = ".".join(str(x) for x in loc[2:])
        return f"source {name} (sources[{loc[1]}])" + (f": {rest}" if rest else "")
    if len(loc) >= 3 and loc[:2] == ("simulator", "sources") and isinstance(loc[2], int):
        sim = raw.get("simulator") or {}
        name = _entry_name(sim.get("sources") or [], loc[2])
        rest = ".".join(str(x) for x in loc[3:])
        return f"source {name} (simulator.sources[{loc[2]}])" + (f": {rest}" if rest else "")
    return ".".join(str(x) for x in loc) or "file"


def _entry_name(entries: Any, i: int) -> str:
    try:
        name = entries[i].get("name")
    except (IndexError, AttributeError, TypeError):
        name = None
    return f"'{name}'" if name else "(unnamed)"


def _with_defaults(entries: Any, defaults: Mapping[str, Any]) -> Any:
    if not isinstance(entries, list):
        return entries
    return [{**defaults, **e} if isinstance(e, Mapping) else e for e in entries]


def parse_schema(raw: Any, *, path: str = "sources.yaml") -> SourcesConfig:
    """Validate the parsed YAML's shape; every problem is reported, each naming its source.

    The kinds and their options are checked by
    :func:`envmon.ingest.sources.parse_sources`, which knows the registry.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping with 'sources' and/or 'simulator'")
    data = dict(raw)
    defaults = data.pop("defaults", None) or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{path}: 'defaults' must be a mapping")
    data["sources"] = _with_defaults(data.get("sources") or [], defaults)
    if isinstance(data.get("simulator"), Mapping):
        sim = dict(data["simulator"])
        sim["sources"] = _with_defaults(sim.get("sources") or [], defaults)
        data["simulator"] = sim
    try:
        config = SourcesConfig.model_validate({**data, "path": path})
    except ValidationError as err:
        problems = [f"{_where(path, data, tuple(e['loc']))}: {e['msg']}" for e in err.errors()]
        raise ConfigError(f"{path}: " + "; ".join(problems)) from err
    return config


def read_yaml(path: Path) -> Any:
    """The parsed YAML of ``config/sources.yaml`` (validated by ``sources.load_sources``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read the sources file {path}: {err}") from err
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return raw


def names(sources: Iterable[SourceConfig]) -> list[str]:
    return [s.name for s in sources]
