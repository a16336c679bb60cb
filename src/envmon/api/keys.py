"""Typed keys of what the API's aiohttp application holds (shared by the route modules)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from envmon.api.config import ApiSettings
from envmon.api.metrics import ApiMetrics
from envmon.app import App

ENVMON: web.AppKey[App] = web.AppKey("envmon", App)
SETTINGS: web.AppKey[ApiSettings] = web.AppKey("api_settings", ApiSettings)
METRICS: web.AppKey[ApiMetrics] = web.AppKey("api_metrics", ApiMetrics)
EXPORTS: web.AppKey[asyncio.Semaphore] = web.AppKey("exports", asyncio.Semaphore)
