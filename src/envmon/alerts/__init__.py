"""Alerts for on-call staff: rules on every batch and on a schedule, episodes,
escalation, silences, and delivery to webhooks, e-mail, WeCom and DingTalk robots.

Entry points: :class:`AlertService` (``async with AlertService(app, settings)``,
registers itself as the app's batch listener), :class:`AlertSettings` (nested
in ``Settings`` as ``alerts``), :func:`load_config` (``config/alerts.yaml``),
:mod:`envmon.alerts.cli` (``envmon alerts …``) and :func:`envmon.alerts.grafana.build`.

Names are imported lazily: ``envmon.settings`` imports
``envmon.alerts.settings``, and the service imports ``envmon.app``, which
imports ``envmon.settings``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envmon.alerts.engine import AlertEngine
    from envmon.alerts.rules import AlertConfig, load_config, parse_config
    from envmon.alerts.service import (
        AlertService,
        add_maintenance,
        add_silence,
        alert_status,
        expire_silence,
    )
    from envmon.alerts.settings import AlertSettings

_WHERE = {
    "AlertConfig": "rules",
    "load_config": "rules",
    "parse_config": "rules",
    "AlertEngine": "engine",
    "AlertService": "service",
    "add_maintenance": "service",
    "add_silence": "service",
    "alert_status": "service",
    "expire_silence": "service",
    "AlertSettings": "settings",
}

__all__ = [
    "AlertConfig",
    "AlertEngine",
    "AlertService",
    "AlertSettings",
    "add_maintenance",
    "add_silence",
    "alert_status",
    "expire_silence",
    "load_config",
    "parse_config",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'envmon.alerts' has no attribute {name!r}")
    return getattr(importlib.import_module(f"envmon.alerts.{module}"), name)
