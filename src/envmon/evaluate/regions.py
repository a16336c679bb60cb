"""The regions envmon reports on: the two cities and the whole zone.

Their names and spellings live with the catalog (:mod:`envmon.catalog.names`).
"""

from __future__ import annotations

from envmon.catalog.names import CITY_REGION, REGION_NAMES, REGIONS, region_of

__all__ = ["CITY_REGION", "REGIONS", "REGION_NAMES", "region_of"]
