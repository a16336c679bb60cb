"""The station catalog: the zone's counties, the ``Station`` model and the YAML loader."""

from envmon.catalog.geography import (
    BOUNDARY_SOURCE,
    CITIES,
    COUNTIES,
    County,
    counties_of,
    county_of,
    point_in_county,
)
from envmon.catalog.loader import catalog_to_json, load_catalog
from envmon.catalog.model import KINDS, Catalog, ControlLevel, Kind, Station, station_problems
from envmon.catalog.names import (
    REGION_NAMES,
    REGIONS,
    AmbiguousName,
    StationNames,
    UnknownName,
    region_of,
)

__all__ = [
    "BOUNDARY_SOURCE",
    "CITIES",
    "COUNTIES",
    "KINDS",
    "REGIONS",
    "REGION_NAMES",
    "AmbiguousName",
    "Catalog",
    "ControlLevel",
    "County",
    "Kind",
    "Station",
    "StationNames",
    "UnknownName",
    "catalog_to_json",
    "counties_of",
    "county_of",
    "load_catalog",
    "point_in_county",
    "region_of",
    "station_problems",
]
