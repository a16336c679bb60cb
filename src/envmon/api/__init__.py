"""The analysts' HTTP API: stations, readings and exports, AQI, water classes, targets,
trends, annual statistics, alerts, health and Prometheus metrics, with an OpenAPI 3
document at ``/api/v1/openapi.json``. Entry point: :class:`envmon.api.app.ApiServer`;
its settings group is ``envmon.settings.ApiSettings``.
"""
