"""The alert rules file (``config/alerts.yaml``): rules, channels, routes, maintenance.

A bureau edits this file, so every problem is reported at once, each naming the
rule (or channel, route) and what is wrong with it. Secrets are never in the
file: a channel names the environment variable that holds its secret
(``secret_env``, ``key_env``, ``password_env``), read when the file is loaded.

The rule kinds themselves are in :mod:`envmon.alerts.kinds` (re-exported here).
A route may be a *digest* (``digest: "08:30"``): its notices wait for that hour
of the day (Beijing time) and go out together — for planning alerts
(``target_risk``), which are no business of the people on call.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeAlias

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from envmon.alerts.errors import AlertConfigError
from envmon.alerts.kinds import (
    OP_ZH,
    RULE_ADAPTER,
    RULE_KINDS,
    SEVERITIES,
    SEVERITY_ZH,
    WATER_CLASS_PARAMETERS,
    AnyRule,
    ConfigModel,
    DataQualityRule,
    FlatlineRule,
    OfflineRule,
    Op,
    Region,
    Rule,
    Severity,
    SpikeRule,
    StationSelector,
    StrList,
    TargetRiskRule,
    ThresholdRule,
    listify,
    parameters_of,
    rule_problems,
    stations_of,
)
from envmon.catalog import CITIES, Catalog
from envmon.durations import Duration
from envmon.settings import environment
from envmon.timeutil import to_beijing

__all__ = [
    "OP_ZH",
    "RULE_KINDS",
    "SEVERITIES",
    "SEVERITY_ZH",
    "WATER_CLASS_PARAMETERS",
    "AlertConfig",
    "AnyRule",
    "ChannelConfig",
    "DataQualityRule",
    "Defaults",
    "FlatlineRule",
    "OfflineRule",
    "Op",
    "Region",
    "Route",
    "Rule",
    "Severity",
    "SpikeRule",
    "StationSelector",
    "StrList",
    "TargetRiskRule",
    "ThresholdRule",
    "load_config",
    "parameters_of",
    "parse_config",
    "rule_problems",
    "stations_of",
]

# --------------------------------------------------------------------------- channels


class _Channel(ConfigModel):
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
_CLOCK: Final = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d")
RuleKind: TypeAlias = Literal[
    "threshold", "spike", "flatline", "offline", "data_quality", "target_risk"
]

# --------------------------------------------------------------------------- routes


class RouteMatch(ConfigModel):
    severity: Annotated[list[Severity], BeforeValidator(listify)] = Field(default_factory=list)
    city: StrList = Field(default_factory=list)
    rules: StrList = Field(default_factory=list, description="Rule ids or patterns (pm25-*).")
    kind: Annotated[list[RuleKind], BeforeValidator(listify)] = Field(
        default_factory=list, description="Rule kinds (target_risk: planning alerts)."
    )

    @property
    def catch_all(self) -> bool:
        return not (self.severity or self.city or self.rules or self.kind)

    def matches(self, rule: str, severity: str, city: str | None, kind: str | None = None) -> bool:
        return (
            (not self.severity or severity in self.severity)
            and (not self.city or city in self.city)
            and (not self.rules or any(fnmatch.fnmatchcase(rule, p) for p in self.rules))
            and (not self.kind or kind in self.kind)
        )


class Route(ConfigModel):
    name: str
    match: RouteMatch = Field(default_factory=RouteMatch)
    channels: StrList
    escalate_after: Duration | None = None
    escalate_to: str | None = None
    escalation_only: bool = Field(
        default=False, description="Only a target of escalate_to, never matched directly."
    )
    digest: str | None = Field(
        default=None,
        description="HH:MM (Beijing time): notices wait for this hour of the day and go out"
        " together (a daily digest), instead of at once.",
    )

    @model_validator(mode="after")
    def _shape(self) -> Route:
        if (self.escalate_after is None) != (self.escalate_to is None):
            raise ValueError("give both escalate_after and escalate_to, or neither")
        if self.digest is not None:
            if not _CLOCK.fullmatch(self.digest):
                raise ValueError(f"digest {self.digest!r} is not a time of day such as 08:30")
            if self.escalate_to is not None:
                raise ValueError("a digest route does not escalate (nobody waits for it)")
        if not self.channels:
            raise ValueError("a route needs at least one channel")
        return self


class MaintenanceWindow(ConfigModel):
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


class Flapping(ConfigModel):
    """A subject whose episodes start this often is flapping: one message, held resolution."""

    window: Duration = timedelta(hours=2)
    max_episodes: int = Field(default=3, ge=2)


class Defaults(ConfigModel):
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
        kind = next((r.kind for r in self.rules if r.id == rule), None)
        for route in self.routes:
            if not route.escalation_only and route.match.matches(rule, severity, city, kind):
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
            rule = RULE_ADAPTER.validate_python(item)
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
