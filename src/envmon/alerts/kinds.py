"""The rule kinds of ``config/alerts.yaml``, each a validated model, and what they watch.

* ``threshold`` — a parameter's value (optionally a rolling mean over
  ``window``), the station's hourly AQI (``metric: aqi``, ``window: 1h``) or a
  rolling 24-h AQI (``window: 24h``, per station or per city), or a water
  section's GB 3838 class against its target class (``metric: water_class``),
  compared with ``op``/``threshold``; ``clear`` is the hysteresis level.
* ``spike`` — a rise of at least ``rise`` within ``over``.
* ``flatline`` — the same value (within ``tolerance``) for ``span``.
* ``offline`` — no data from a station (or a source) for ``after``.
* ``data_quality`` — the share of rejected readings in ``window`` above ``max_share``.
* ``target_risk`` — the year's remaining good-day budget or PM2.5 headroom below a level.

Threshold and spike rules are evaluated in the ingest path; the others on a
schedule. Also here: the duration grammar of the file (``90m``, ``1h30m``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from envmon.catalog import CITIES, COUNTIES, Catalog, Station
from envmon.durations import Duration
from envmon.parameters import BY_CODE, PERIODS
from envmon.standards import water as water_std

Severity: TypeAlias = Literal["info", "warning", "critical"]
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "critical")
SEVERITY_ZH: Final[Mapping[str, str]] = {"info": "提示", "warning": "警告", "critical": "严重"}
Op: TypeAlias = Literal[">", ">=", "<", "<="]
OP_ZH: Final[Mapping[str, str]] = {">": "高于", ">=": "不低于", "<": "低于", "<=": "不高于"}
Region: TypeAlias = Literal["zone", "taiyuan", "xinzhou"]

# GB 3838-2002 classified indicators envmon receives from automatic water stations
# (TN is a reference indicator for rivers, judged apart from the section class).
WATER_CLASS_PARAMETERS: Final = tuple(
    p.code for p in BY_CODE.values() if p.kind == "water" and p.code in water_std.EVALUATED
)

_ID = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")


def listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(listify)]


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- stations


class StationSelector(ConfigModel):
    """Which stations a rule watches; every condition given must hold."""

    kind: Annotated[list[Literal["air", "water", "weather"]], BeforeValidator(listify)] = Field(
        default_factory=list
    )
    city: StrList = Field(default_factory=list)
    county: StrList = Field(default_factory=list)
    ids: StrList = Field(default_factory=list)
    exclude: StrList = Field(default_factory=list)
    control_level: StrList = Field(default_factory=list)
    assessed: bool | None = None

    def problems(self, catalog: Catalog) -> list[str]:
        out = [f"unknown city '{c}'" for c in self.city if c not in CITIES]
        out += [f"unknown county '{c}'" for c in self.county if c not in COUNTIES]
        out += [
            f"unknown station '{i}'" for i in [*self.ids, *self.exclude] if i not in catalog.by_id
        ]
        return out

    def select(self, catalog: Catalog, kind: str | None = None) -> tuple[Station, ...]:
        kinds: list[str] = list(self.kind) or ([kind] if kind else [])
        return tuple(
            s
            for s in catalog.stations
            if s.active
            and (not kinds or s.kind in kinds)
            and (not self.city or s.city in self.city)
            and (not self.county or s.county in self.county)
            and (not self.ids or s.id in self.ids)
            and s.id not in self.exclude
            and (not self.control_level or s.control_level in self.control_level)
            and (self.assessed is None or s.assessed == self.assessed)
        )


# --------------------------------------------------------------------------- rules


class _Rule(ConfigModel):
    id: str
    name: str | None = Field(default=None, description="Shown in messages (Chinese).")
    severity: Severity = "warning"
    enabled: bool = True
    for_: Duration = Field(default=timedelta(0), alias="for")
    clear_for: Duration = timedelta(0)
    description: str | None = None

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError("must be lower-case letters, digits, '-' or '_'")
        return value

    @property
    def scheduled(self) -> bool:
        return False

    @property
    def title(self) -> str:
        return self.name or self.id


class _Compared(_Rule):
    op: Op = ">"
    threshold: float = 0.0
    clear: float | None = None

    @model_validator(mode="after")
    def _hysteresis(self) -> _Compared:
        if self.clear is not None:
            above = self.op in (">", ">=")
            if above and self.clear > self.threshold:
                raise ValueError(f"clear ({self.clear:g}) must not be above threshold")
            if not above and self.clear < self.threshold:
                raise ValueError(f"clear ({self.clear:g}) must not be below threshold")
        return self

    def breach(self, value: float) -> bool:
        return _compare(self.op, value, self.threshold)

    def cleared(self, value: float) -> bool:
        """Past the hysteresis level (``clear``, default the threshold itself)."""
        level = self.threshold if self.clear is None else self.clear
        return not _compare(self.op, value, level)


def _compare(op: str, value: float, level: float) -> bool:
    if op == ">":
        return value > level
    if op == ">=":
        return value >= level
    if op == "<":
        return value < level
    return value <= level


class ThresholdRule(_Compared):
    kind: Literal["threshold"]
    metric: Literal["value", "aqi", "water_class"] = "value"
    parameter: str | None = None
    parameters: StrList = Field(default_factory=list, description="water_class: indicators")
    period: StrList | None = Field(
        default=None,
        description="The readings' period(s) (rt 1min 5min 1h 4h 1d); default 1h, water 1h+4h.",
    )
    window: Duration | None = Field(
        default=None, description="Rolling mean over this window (AQI: 1h or 24h)."
    )
    min_count: int | None = Field(default=None, ge=1)
    scope: Literal["station", "city"] = "station"
    min_stations: int = Field(default=1, ge=1)
    stations: StationSelector = Field(default_factory=StationSelector)
    max_age: Duration = Field(
        default=timedelta(hours=3),
        description="Older readings (late data, imports) are history, not alerts.",
    )

    @model_validator(mode="after")
    def _shape(self) -> ThresholdRule:
        bad_periods = [p for p in self.period or () if p not in PERIODS]
        if bad_periods:
            raise ValueError(f"period {bad_periods} not one of {', '.join(PERIODS)}")
        if self.metric == "value" and not self.parameter:
            raise ValueError("a threshold on a value needs 'parameter'")
        if self.metric == "aqi":
            if self.parameter:
                raise ValueError("metric aqi takes no 'parameter'")
            if self.window not in (None, timedelta(hours=1), timedelta(hours=24)):
                raise ValueError("metric aqi: window is 1h (hourly AQI) or 24h (rolling daily)")
            if self.periods != ("1h",):
                raise ValueError("metric aqi is computed from hourly (1h) readings")
        if self.metric == "water_class":
            if self.parameter:
                raise ValueError("metric water_class takes 'parameters' (default: all classified)")
            bad = [p for p in self.parameters if p not in WATER_CLASS_PARAMETERS]
            if bad:
                raise ValueError(
                    f"not GB 3838 classified parameters: {bad} "
                    f"(use {', '.join(WATER_CLASS_PARAMETERS)})"
                )
            if self.scope != "station":
                raise ValueError("metric water_class is per section (scope: station)")
        if self.scope == "city" and self.metric == "value" and self.parameter:
            p = BY_CODE.get(self.parameter)
            if p is not None and p.kind != "air":
                raise ValueError("scope city is for air parameters")
        return self

    @property
    def periods(self) -> tuple[str, ...]:
        if self.period:
            return tuple(self.period)
        # Automatic water stations report hourly (HJ 212 2061) or every 4 hours.
        return ("1h", "4h") if self.station_kind == "water" else ("1h",)

    @property
    def aqi_window(self) -> timedelta:
        return self.window or timedelta(hours=1)

    @property
    def water_parameters(self) -> tuple[str, ...]:
        return tuple(self.parameters) or WATER_CLASS_PARAMETERS

    @property
    def station_kind(self) -> str | None:
        if self.metric == "aqi":
            return "air"
        if self.metric == "water_class":
            return "water"
        p = BY_CODE.get(self.parameter or "")
        return p.kind if p else None


class SpikeRule(_Rule):
    kind: Literal["spike"]
    parameter: str
    period: str = "1h"
    rise: float = Field(gt=0, description="Fire when the value rose at least this much ...")
    over: Duration = Field(default=timedelta(hours=1), description="... within this time.")
    clear: float | None = Field(default=None, ge=0)
    stations: StationSelector = Field(default_factory=StationSelector)
    max_age: Duration = timedelta(hours=3)

    @model_validator(mode="after")
    def _shape(self) -> SpikeRule:
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}")
        if self.clear is not None and self.clear > self.rise:
            raise ValueError("clear must not exceed rise")
        if self.over <= timedelta(0):
            raise ValueError("over must be positive")
        return self

    @property
    def station_kind(self) -> str | None:
        p = BY_CODE.get(self.parameter)
        return p.kind if p else None


class _Scheduled(_Rule):
    every: Duration = Field(default=timedelta(minutes=1))

    @property
    def scheduled(self) -> bool:
        return True


class FlatlineRule(_Scheduled):
    kind: Literal["flatline"]
    parameters: StrList
    period: StrList = Field(default_factory=lambda: ["1h"])
    span: Duration = Field(description="The same value for this long ...")
    tolerance: float = Field(default=0.0, ge=0, description="... within this much.")
    min_count: int = Field(default=4, ge=2)
    stations: StationSelector = Field(default_factory=StationSelector)
    every: Duration = timedelta(minutes=10)

    @model_validator(mode="after")
    def _shape(self) -> FlatlineRule:
        if not self.parameters:
            raise ValueError("flatline needs 'parameters'")
        kinds = {BY_CODE[p].kind for p in self.parameters if p in BY_CODE}
        if len(kinds) > 1:
            raise ValueError("flatline parameters must be of one station kind")
        return self

    @property
    def station_kind(self) -> str | None:
        p = BY_CODE.get(self.parameters[0])
        return p.kind if p else None


class OfflineRule(_Scheduled):
    kind: Literal["offline"]
    after: Duration = Field(description="Silent for this long → offline.")
    grace: Duration = Field(
        default=timedelta(minutes=15),
        description="Never before this long after start-up or a maintenance visit.",
    )
    stations: StationSelector | None = None
    sources: StrList = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> OfflineRule:
        if self.stations is None and not self.sources:
            raise ValueError("offline needs 'stations' or 'sources'")
        if self.after <= timedelta(0):
            raise ValueError("after must be positive")
        return self


class DataQualityRule(_Scheduled):
    kind: Literal["data_quality"]
    max_share: float = Field(gt=0, lt=1, description="Fire above this share of rejects.")
    clear: float | None = Field(default=None, ge=0, lt=1)
    window: Duration = timedelta(hours=1)
    min_total: int = Field(default=20, ge=1)
    by: Literal["station", "source"] = "station"
    stations: StationSelector = Field(default_factory=StationSelector)
    every: Duration = timedelta(minutes=5)

    @model_validator(mode="after")
    def _shape(self) -> DataQualityRule:
        if self.clear is not None and self.clear > self.max_share:
            raise ValueError("clear must not exceed max_share")
        return self


class TargetRiskRule(_Scheduled):
    kind: Literal["target_risk"]
    regions: list[Region] = Field(default_factory=lambda: list[Region](["zone"]))
    measure: Literal["good_day_budget", "pm25_remaining_max_mean", "pm25_headroom"]
    below: float = Field(description="Fire when the measure falls below this.")
    clear: float | None = None
    every: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _shape(self) -> TargetRiskRule:
        if self.clear is not None and self.clear < self.below:
            raise ValueError("clear must not be below 'below'")
        return self


AnyRule: TypeAlias = (
    ThresholdRule | SpikeRule | FlatlineRule | OfflineRule | DataQualityRule | TargetRiskRule
)
Rule: TypeAlias = Annotated[AnyRule, Field(discriminator="kind")]
RULE_ADAPTER: Final = TypeAdapter(Rule)
RULE_KINDS: Final = ("threshold", "spike", "flatline", "offline", "data_quality", "target_risk")


def rule_problems(rule: Any, catalog: Catalog) -> list[str]:
    """Problems of one rule against the parameter table and the station catalog."""
    out: list[str] = []
    params: list[str] = []
    if isinstance(rule, ThresholdRule | SpikeRule) and rule.parameter:
        params = [rule.parameter]
    elif isinstance(rule, FlatlineRule):
        params = list(rule.parameters)
    for p in params:
        if p not in BY_CODE:
            out.append(f"unknown parameter '{p}' (known: {', '.join(BY_CODE)})")
    selector = getattr(rule, "stations", None)
    if isinstance(selector, StationSelector):
        out += selector.problems(catalog)
        kind = getattr(rule, "station_kind", None)
        if selector.kind and kind and kind not in selector.kind:
            out.append(
                f"parameter of {kind} stations, but stations.kind is {', '.join(selector.kind)}"
            )
        if not out and not selector.select(catalog, kind):
            out.append("the station selection matches no active station")
    return out


def stations_of(rule: Any, catalog: Catalog) -> tuple[Station, ...]:
    selector = getattr(rule, "stations", None)
    if selector is None:
        return ()
    return tuple(selector.select(catalog, getattr(rule, "station_kind", None)))


def parameters_of(rule: Any) -> Iterable[str]:
    if isinstance(rule, ThresholdRule):
        if rule.metric == "aqi":
            return ("so2", "no2", "co", "o3", "pm10", "pm25")
        if rule.metric == "water_class":
            return rule.water_parameters
        return (rule.parameter,) if rule.parameter else ()
    if isinstance(rule, SpikeRule):
        return (rule.parameter,)
    if isinstance(rule, FlatlineRule):
        return tuple(rule.parameters)
    return ()
