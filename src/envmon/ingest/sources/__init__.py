"""Pull sources: one module per platform kind, registered here by kind.

A new kind = one module with a :class:`~envmon.ingest.sources.base.Source`
subclass, one line in :data:`REGISTRY`, its fixtures under
``tests/ingest/sources/fixtures/`` and a sample block in ``config/sources.yaml``.
"""

from __future__ import annotations

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
]
