"""The Grafana foundation SDK modules envmon uses, imported in one place.

The SDK's classic dashboard model (``builders.dashboard``/``models.dashboard``)
emits a ``DeprecationWarning`` at import ("prefer dashboardv2"). envmon builds
classic (v1, ``schemaVersion`` 42) dashboards on purpose: file provisioning and
``/api/dashboards/db`` take them on Grafana 12 and 13 alike, whereas v2
dashboards need the new ``/apis`` routes and feature toggles on Grafana 12. The
warning is therefore silenced here, and only here.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import common as common_b
    from grafana_foundation_sdk.builders import dashboard as dash
    from grafana_foundation_sdk.builders import geomap as geomap_b
    from grafana_foundation_sdk.builders import stat as stat_b
    from grafana_foundation_sdk.builders import statetimeline as statetimeline_b
    from grafana_foundation_sdk.builders import statushistory as statushistory_b
    from grafana_foundation_sdk.builders import table as table_b
    from grafana_foundation_sdk.builders import timeseries as timeseries_b
    from grafana_foundation_sdk.cog import builder as cogbuilder
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models import dashboard as dm
    from grafana_foundation_sdk.models import geomap as geomap_m

__all__ = [
    "JSONEncoder",
    "cogbuilder",
    "common",
    "common_b",
    "dash",
    "dm",
    "geomap_b",
    "geomap_m",
    "stat_b",
    "statetimeline_b",
    "statushistory_b",
    "table_b",
    "timeseries_b",
]
