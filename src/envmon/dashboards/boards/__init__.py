"""The six envmon dashboards, as code: one module per dashboard.

Fixed UIDs: ``envmon-overview`` (zone overview, :mod:`.overview`),
``envmon-air-station`` (:mod:`.air_station`), ``envmon-water`` (:mod:`.water`),
``envmon-weather`` (:mod:`.weather`), ``envmon-targets`` (:mod:`.targets`),
``envmon-data-health`` (:mod:`.data_health`). Titles are Chinese, colours are
the HJ 633 AQI category colours (:data:`envmon.standards.aqi.CATEGORIES`),
times are Beijing time. Their building blocks are shared: :mod:`..panels`
(colours, SQL fragments, panel builders, the panel registry),
:mod:`..variables` (template variables) and :mod:`..goals` (the zone's targets
baked into SQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from envmon.dashboards.boards import air_station, data_health, overview, targets, water, weather
from envmon.dashboards.panels import ALERT_TABLE, SOURCE_HEALTH_TABLE, Board
from envmon.evaluate.targets import Target

UIDS: Final = (
    "envmon-overview",
    "envmon-air-station",
    "envmon-water",
    "envmon-weather",
    "envmon-targets",
    "envmon-data-health",
)
READ_TABLES: Final = (
    "station",
    "reading",
    "rejected",
    "ingest_cursor",
    "air_hour",
    "air_day",
    "region_day",
    "water_day",
    "water_section_month",
    "dust_period",
    "reading_revision",
    "review_action",
    "review_mark",
    SOURCE_HEALTH_TABLE,
    ALERT_TABLE,
)
"""Every table a panel or variable reads: what migration 0006 grants grafana_reader."""


def all_boards(zone_targets: Sequence[Target]) -> list[Board]:
    """The six dashboards, in a fixed order (overview first)."""
    boards = [
        overview.dashboard(zone_targets),
        air_station.dashboard(),
        water.dashboard(),
        weather.dashboard(),
        targets.dashboard(zone_targets),
        data_health.dashboard(),
    ]
    assert tuple(b.uid for b in boards) == UIDS
    return boards
