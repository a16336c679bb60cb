"""The analysts' HTTP API: stations, readings and exports, AQI, water classes, targets,
trends, annual statistics, alerts, health and Prometheus metrics, with an OpenAPI 3
document at ``/api/v1/openapi.json``.

Names are imported lazily: ``envmon.settings`` imports ``envmon.api.config``
(``ApiSettings``), while the server imports ``envmon.app``, which imports
``envmon.settings``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envmon.api.app import ApiServer, build_app
    from envmon.api.config import ApiSettings

_WHERE = {"ApiServer": "app", "build_app": "app", "ApiSettings": "config"}

__all__ = ["ApiServer", "ApiSettings", "build_app"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'envmon.api' has no attribute {name!r}")
    return getattr(importlib.import_module(f"envmon.api.{module}"), name)
