"""The targets file (``config/targets.yaml``): what the zone has to reach, against what."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from envmon.errors import ConfigError

Metric = Literal["pm25_annual_mean", "good_day_ratio", "water_good_ratio"]
Region = Literal["zone", "taiyuan", "xinzhou"]


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Metric
    region: Region = "zone"
    baseline_year: int | None = None
    baseline: float | Literal["from_data"] | None = None
    target_year: int
    change: float | None = None  # pm25: relative (−0.20); good days: absolute fraction (+0.10)
    target: float | None = None  # an absolute target instead of a change

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        if (self.change is None) == (self.target is None):
            raise ValueError("give exactly one of 'change' and 'target'")
        if self.change is not None and (self.baseline is None or self.baseline_year is None):
            raise ValueError("'change' needs 'baseline' and 'baseline_year'")
        if (
            self.metric == "water_good_ratio"
            and self.target is not None
            and not 0 <= self.target <= 1
        ):
            raise ValueError("water_good_ratio target is a fraction 0–1")
        return self

    def value(self, baseline: float | None) -> float:
        """The target value, given the baseline value."""
        if self.target is not None:
            return self.target
        assert self.change is not None
        if baseline is None:
            raise ConfigError(f"target {self.metric}/{self.region} needs its baseline value")
        if self.metric == "pm25_annual_mean":
            return baseline * (1 + self.change)
        return min(baseline + self.change, 1.0)


def load_targets(path: Path) -> list[Target]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read targets: {err}") from err
    items = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a 'targets:' list")
    out = []
    for i, item in enumerate(items, 1):
        try:
            out.append(Target.model_validate(item))
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in err.errors()
            )
            raise ConfigError(f"{path}: target #{i} ({item}): {problems}") from err
    return out


def find(targets: list[Target], metric: str, region: str, year: int) -> Target | None:
    """The target for a metric and region in force for ``year`` (the next target year)."""
    candidates = [
        t for t in targets if t.metric == metric and t.region == region and t.target_year >= year
    ]
    candidates.sort(key=lambda t: t.target_year)
    if candidates:
        return candidates[0]
    past = [t for t in targets if t.metric == metric and t.region == region]
    return max(past, key=lambda t: t.target_year) if past else None
