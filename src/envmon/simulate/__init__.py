"""A deterministic simulator of the zone's 207 stations (air, surface water, weather).

``simulate(stations, start, end, seed=…)`` streams validator-ready frames for
backfills, demos and load tests; ``live_values(stations, at, seed=…)`` gives the
current hour from the same generator, so a live feed and a backfill agree.
Models and their calibration are described at the top of :mod:`.air`,
:mod:`.water` and :mod:`.weather`; :mod:`.shared` holds the regional weather
that ties them together.
"""

from envmon.simulate.base import StationLike
from envmon.simulate.generator import COLUMNS, KINDS, live_values, simulate

__all__ = ["COLUMNS", "KINDS", "StationLike", "live_values", "simulate"]
