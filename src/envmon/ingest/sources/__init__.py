"""Pull sources: one module per platform kind, registered here by kind.

A new kind = one module with a :class:`~envmon.ingest.sources.base.Source`
subclass, one line in :data:`REGISTRY`, its fixtures under
``tests/ingest/sources/fixtures/`` and a sample block in ``config/sources.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envmon.errors import ConfigError
from envmon.ingest.sources.base import (
    Fetched,
    Http,
    PayloadError,
    Source,
    SourceFatalError,
    StationMap,
    TransientSourceError,
)
from envmon.ingest.sources.cma_surface import CmaSurface
from envmon.ingest.sources.cnemc_air import CnemcAir
from envmon.ingest.sources.generic_csv import GenericCsv
from envmon.ingest.sources.generic_json import GenericJson
from envmon.ingest.sources.openaq_v3 import OpenAqV3
from envmon.ingest.sources.water_auto import WaterAuto
from envmon.ingest.sources_config import SourcesConfig, parse_schema, read_yaml

REGISTRY: dict[str, type[Source]] = {
    CnemcAir.kind: CnemcAir,
    WaterAuto.kind: WaterAuto,
    CmaSurface.kind: CmaSurface,
    OpenAqV3.kind: OpenAqV3,
    GenericJson.kind: GenericJson,
    GenericCsv.kind: GenericCsv,
}

__all__ = [
    "REGISTRY",
    "Fetched",
    "Http",
    "PayloadError",
    "Source",
    "SourceFatalError",
    "StationMap",
    "TransientSourceError",
    "load_sources",
    "parse_sources",
]


def parse_sources(raw: Any, *, path: str = "sources.yaml") -> SourcesConfig:
    """Validate the parsed YAML: its shape, then every source's kind and options."""
    config = parse_schema(raw, path=path)
    _check_kinds(config, path)
    return config


def load_sources(path: Path) -> SourcesConfig:
    """Read and validate ``config/sources.yaml``."""
    return parse_sources(read_yaml(path), path=str(path))


def _check_kinds(config: SourcesConfig, path: str) -> None:
    problems: list[str] = []
    for src in config.all_sources():
        cls = REGISTRY.get(src.kind)
        if cls is None:
            problems.append(
                f"source '{src.name}': unknown kind '{src.kind}' "
                f"(one of {', '.join(sorted(REGISTRY))})"
            )
            continue
        try:
            cls.parse_options(src)
        except ConfigError as err:
            problems.append(str(err))
    for src in config.sources:
        if src.enabled and not src.base_url:
            problems.append(f"source '{src.name}': base_url is required")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
