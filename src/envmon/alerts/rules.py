"""The alert rules file (``config/alerts.yaml``): rules, channels, routes, maintenance.

A bureau edits this file, so every problem is reported at once, each naming the
rule (or channel, route) and what is wrong with it. Secrets are never in the
file: a channel names the environment variable that holds its secret
(``secret_env``, ``key_env``, ``password_env``), read when the file is loaded.

Rule kinds:

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

The first four evaluate in the ingest path (threshold, spike) or on a schedule
(flatline, offline, data quality, target risk).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeAlias

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from envmon.alerts.errors import AlertConfigError
from envmon.catalog import CITIES, COUNTIES, Catalog, Station
from envmon.durations import Duration
from envmon.parameters import BY_CODE, PERIODS
from envmon.settings import environment
from envmon.standards import water as water_std
from envmon.timeutil import to_beijing

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


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_listify)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- stations


class StationSelector(_Model):
    """Which stations a rule watches; every condition given must hold."""

    kind: Annotated[list[Literal["air", "water", "weather"]], BeforeValidator(_listify)] = Field(
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


class _Rule(_Model):
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
_RULE: Final = TypeAdapter(Rule)
RULE_KINDS: Final = ("threshold", "spike", "flatline", "offline", "data_quality", "target_risk")

# --------------------------------------------------------------------------- channels


class _Channel(_Model):
    per_minute: int | None = Field(
        default=None, ge=1, description="At most this many messages a minute."
    )
    timeout: Duration | None = None


class LogChannel(_Channel):
    type: Literal["log"]
    level: Literal["info", "warning", "error"] = "warning"


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: str
    secret_env: str | None = Field(
        default=None, description="Env var with the HMAC-SHA256 key (X-Envmon-Signature)."
    )
    headers: dict[str, str] = Field(default_factory=dict)


class EmailChannel(_Channel):
    type: Literal["email"]
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    verify: bool = True
    ca_file: Path | None = None
    username: str | None = None
    password_env: str | None = None
    sender: str = Field(alias="from")
    to: StrList
    subject_prefix: str = "[envmon]"

    @model_validator(mode="after")
    def _shape(self) -> EmailChannel:
        if not self.to:
            raise ValueError("email needs at least one address in 'to'")
        if self.password_env and not self.username:
            raise ValueError("password_env needs username")
        return self


class WecomChannel(_Channel):
    """WeCom (企业微信) group robot."""

    type: Literal["wecom"]
    url: str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
    key_env: str = Field(description="Env var holding the robot's key (the webhook's ?key=).")
    msgtype: Literal["markdown", "text"] = "markdown"
    mentioned_mobiles: StrList = Field(default_factory=list)
    mentioned_users: StrList = Field(default_factory=list)
    per_minute: int | None = 20  # the robot's own limit: 20 messages a minute


class DingtalkChannel(_Channel):
    """DingTalk (钉钉) custom group robot, optionally with the signed webhook (加签)."""

    type: Literal["dingtalk"]
    url: str = "https://oapi.dingtalk.com/robot/send"
    access_token_env: str
    secret_env: str | None = Field(default=None, description="Env var with the SEC… secret.")
    msgtype: Literal["markdown", "text"] = "markdown"
    at_mobiles: StrList = Field(default_factory=list)
    at_all: bool = False
    per_minute: int | None = 20  # the robot's own limit: 20 messages a minute


ChannelConfig: TypeAlias = Annotated[
    LogChannel | WebhookChannel | EmailChannel | WecomChannel | DingtalkChannel,
    Field(discriminator="type"),
]
_CHANNEL: Final = TypeAdapter(ChannelConfig)

# --------------------------------------------------------------------------- routes


class RouteMatch(_Model):
    severity: Annotated[list[Severity], BeforeValidator(_listify)] = Field(default_factory=list)
    city: StrList = Field(default_factory=list)
    rules: StrList = Field(default_factory=list, description="Rule ids or patterns (pm25-*).")

    @property
    def catch_all(self) -> bool:
        return not (self.severity or self.city or self.rules)

    def matches(self, rule: str, severity: str, city: str | None) -> bool:
        return (
            (not self.severity or severity in self.severity)
            and (not self.city or city in self.city)
            and (not self.rules or any(fnmatch.fnmatchcase(rule, p) for p in self.rules))
        )


class Route(_Model):
    name: str
    match: RouteMatch = Field(default_factory=RouteMatch)
    channels: StrList
    escalate_after: Duration | None = None
    escalate_to: str | None = None
    escalation_only: bool = Field(
        default=False, description="Only a target of escalate_to, never matched directly."
    )

    @model_validator(mode="after")
    def _shape(self) -> Route:
        if (self.escalate_after is None) != (self.escalate_to is None):
            raise ValueError("give both escalate_after and escalate_to, or neither")
        if not self.channels:
            raise ValueError("a route needs at least one channel")
        return self


class MaintenanceWindow(_Model):
    """A declared maintenance visit: no new alerts for these stations meanwhile."""

    stations: StrList = Field(default_factory=list)
    city: StrList = Field(default_factory=list)
    starts: datetime
    ends: datetime
    note: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> MaintenanceWindow:
        if to_beijing(self.ends) <= to_beijing(self.starts):
            raise ValueError("ends must be after starts")
        return self


class Flapping(_Model):
    """A subject whose episodes start this often is flapping: one message, held resolution."""

    window: Duration = timedelta(hours=2)
    max_episodes: int = Field(default=3, ge=2)


class Defaults(_Model):
    suppress_flags: StrList = Field(
        default_factory=lambda: ["M", "C"],
        description="HJ 212 flags meaning maintenance (M) and calibration (C).",
    )
    maintenance_hold: Duration = Field(
        default=timedelta(hours=2),
        description="After an M/C reading the station may stay silent this long.",
    )
    flapping: Flapping = Field(default_factory=Flapping)


# --------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class AlertConfig:
    """The validated rules file, secrets resolved."""

    rules: tuple[AnyRule, ...]
    channels: Mapping[str, ChannelConfig]
    routes: tuple[Route, ...]
    maintenance: tuple[MaintenanceWindow, ...]
    defaults: Defaults
    secrets: Mapping[str, SecretStr]  # env var name → value, for the channels that name one
    path: Path | None = None

    def rule(self, rule_id: str) -> AnyRule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    @property
    def by_id(self) -> dict[str, AnyRule]:
        return {r.id: r for r in self.rules}

    def route_for(self, rule: str, severity: str, city: str | None) -> Route:
        for route in self.routes:
            if not route.escalation_only and route.match.matches(rule, severity, city):
                return route
        return self.routes[-1]  # validated: the last route catches everything

    def route(self, name: str) -> Route:
        for route in self.routes:
            if route.name == name:
                return route
        raise KeyError(name)

    def secret(self, env_name: str | None) -> str | None:
        if env_name is None:
            return None
        value = self.secrets.get(env_name)
        return value.get_secret_value() if value is not None else None


_TAGS: Final = frozenset(
    {*RULE_KINDS, "log", "webhook", "email", "wecom", "dingtalk"}
)  # a tagged union's member name, first in an error's location


def _errors(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = list(e["loc"])
        if where and where[0] in _TAGS:
            where = where[1:]
        loc = ".".join(str(x) for x in where if not isinstance(x, int) or len(where) == 1)
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _secret_envs(channel: ChannelConfig) -> list[tuple[str, str]]:
    """(field, env var) pairs a channel needs."""
    out = []
    for field in ("secret_env", "key_env", "password_env", "access_token_env"):
        name = getattr(channel, field, None)
        if name:
            out.append((field, name))
    return out


def parse_config(
    data: Any,
    catalog: Catalog,
    *,
    env: Mapping[str, str] | None = None,
    where: str = "alerts.yaml",
    path: Path | None = None,
    require_secrets: bool = True,
) -> AlertConfig:
    """Validate the rules file's content; every problem is reported at once.

    ``require_secrets=False`` (generating Grafana rules, a CI check): a secret's
    environment variable may be unset.
    """
    env = environment() if env is None else env
    if not isinstance(data, dict):
        raise AlertConfigError(f"{where}: expected a mapping with 'rules:', 'routes:', 'channels:'")
    unknown = sorted(set(data) - {"defaults", "channels", "routes", "rules", "maintenance"})
    problems: list[str] = [f"unknown section '{k}'" for k in unknown]

    defaults = Defaults()
    try:
        defaults = Defaults.model_validate(data.get("defaults") or {})
    except ValidationError as err:
        problems.append(f"defaults: {_errors(err)}")

    channels: dict[str, ChannelConfig] = {}
    raw_channels = data.get("channels") or {}
    if not isinstance(raw_channels, dict):
        problems.append("channels: expected a mapping of channel name → settings")
        raw_channels = {}
    secrets: dict[str, SecretStr] = {}
    for name, item in raw_channels.items():
        try:
            ch = _CHANNEL.validate_python(item)
        except ValidationError as err:
            problems.append(f"channel '{name}': {_errors(err)}")
            continue
        channels[str(name)] = ch
        for field, var in _secret_envs(ch):
            if env.get(var):
                secrets[var] = SecretStr(env[var])
            elif require_secrets:
                problems.append(
                    f"channel '{name}': {field} names the environment variable {var}, "
                    "which is not set (secrets never go into the rules file)"
                )
    if "log" not in channels:
        channels["log"] = LogChannel(type="log")

    routes: list[Route] = []
    raw_routes = data.get("routes") or [{"name": "default", "channels": ["log"]}]
    if not isinstance(raw_routes, list):
        problems.append("routes: expected a list")
        raw_routes = []
    for i, item in enumerate(raw_routes, 1):
        label = item.get("name", f"#{i}") if isinstance(item, dict) else f"#{i}"
        try:
            routes.append(Route.model_validate(item))
        except ValidationError as err:
            problems.append(f"route '{label}': {_errors(err)}")
    names = [r.name for r in routes]
    problems += [
        f"route '{n}': defined twice" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    for r in routes:
        problems += [
            f"route '{r.name}': unknown channel '{c}' (defined: {', '.join(sorted(channels))})"
            for c in r.channels
            if c not in channels
        ]
        problems += [
            f"route '{r.name}': unknown city '{c}'" for c in r.match.city if c not in CITIES
        ]
        if r.escalate_to is not None and r.escalate_to not in names:
            problems.append(f"route '{r.name}': escalate_to names no route ('{r.escalate_to}')")
        if r.escalate_to == r.name:
            problems.append(f"route '{r.name}': escalates to itself")
    if routes and (not routes[-1].match.catch_all or routes[-1].escalation_only):
        problems.append(
            f"routes: the last route ('{routes[-1].name}') must match everything (no 'match:',"
            " not escalation_only), so that no alert goes unrouted"
        )

    rules: list[AnyRule] = []
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        problems.append("rules: expected a list")
        raw_rules = []
    for i, item in enumerate(raw_rules, 1):
        label = f"rule '{item['id']}'" if isinstance(item, dict) and "id" in item else f"rule #{i}"
        if isinstance(item, dict) and item.get("kind") not in RULE_KINDS:
            problems.append(f"{label}: kind must be one of {', '.join(RULE_KINDS)}")
            continue
        try:
            rule = _RULE.validate_python(item)
        except ValidationError as err:
            problems.append(f"{label}: {_errors(err)}")
            continue
        problems += [f"{label}: {p}" for p in rule_problems(rule, catalog)]
        rules.append(rule)
    ids = [r.id for r in rules]
    problems += [f"rule '{n}': id used twice" for n in sorted({n for n in ids if ids.count(n) > 1})]

    windows: list[MaintenanceWindow] = []
    for i, item in enumerate(data.get("maintenance") or [], 1):
        try:
            w = MaintenanceWindow.model_validate(item)
        except ValidationError as err:
            problems.append(f"maintenance #{i}: {_errors(err)}")
            continue
        problems += [
            f"maintenance #{i}: unknown station '{s}'" for s in w.stations if s not in catalog.by_id
        ]
        windows.append(w)

    if problems:
        raise AlertConfigError(f"{where}: " + "\n  ".join(["problems:", *problems]))
    return AlertConfig(
        tuple(rules), channels, tuple(routes), tuple(windows), defaults, secrets, path
    )


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


def load_config(
    path: Path,
    catalog: Catalog,
    *,
    env: Mapping[str, str] | None = None,
    require_secrets: bool = True,
) -> AlertConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise AlertConfigError(f"{path}: cannot read the alert rules: {err}") from err
    return parse_config(
        data, catalog, env=env, where=str(path), path=path, require_secrets=require_secrets
    )


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
