"""The zone's HTTP publishing platforms, simulated: one aiohttp app on localhost.

Serves the simulated readings (:func:`envmon.simulate.simulate`, the same values
a backfill or ``live_values`` gives) of every catalog station in the shapes of
the real platforms the pull sources read (:mod:`envmon.ingest.sources`):

=============================================  =====================================
``GET /cnemc/air/hourly?TimePoint=…``          CNEMC real-time air JSON, 26 stations
``GET /water/realtime?start=&end=&PageIndex=``  surface-water automatic stations
                                                (thead/tbody, paged), 14 sections
``GET /cma/api?interfaceId=…&timeRange=[…]``   CMA 天擎/CIMISS surface hourly, 167 st.
``GET /openaq/v3/locations[/{id}]``             OpenAQ v3 locations and sensors
``GET /openaq/v3/sensors/{id}/hours``           OpenAQ v3 hourly values (paged)
=============================================  =====================================

with each platform's conventions: CNEMC's end-of-hour ``TimePoint`` and "—";
the water system's year-less ``MM-DD HH:MM``, HTML-wrapped cells and "--";
CMA's UTC ``Year Mon Day Hour``, string values, 999999 (missing), 999990
(trace of rain) and 999017 (calm), and errors as HTTP 200 with a
``returnCode``; OpenAQ's ``meta``/``results`` pages, ``X-API-Key`` and rate
limit headers. Station codes: catalog ids (CNEMC), section names (water),
区站号 ``station_no`` else the id (CMA), location names (OpenAQ, ids 10001…).
Values flagged M/C by the simulator are published as missing, as the public
platforms do. A value with period start ``t`` is published at ``t + 1 h``.

Faults, deterministic by seed: each request may fail (``fault_rate``, or a
rate per platform) as a 500 (CMA: HTTP 200 with ``returnCode`` -1), a 429
with Retry-After, a hang (the client times out), a slow answer or a
truncated JSON page; and each record may be malformed (``record_fault_rate``):
a negative concentration, an impossible time. The k-th request for the same
URL decides by a hash of (seed, URL, k), so a retry sees a fresh draw and
the same run replays the same faults.

One module per platform, named after the pull source that reads it
(:mod:`.cnemc_air`, :mod:`.water_auto`, :mod:`.cma_surface`, :mod:`.openaq_v3`);
:mod:`.base` holds what they share (the simulated data, the faults, how an
answer goes out) and :mod:`.server` puts them in one app.
``python -m envmon.simulate.platforms --port 18765`` runs it on its own.
"""

from __future__ import annotations

from envmon.simulate.platforms.base import (
    DEFAULT_MIX,
    PARAMS,
    PUBLISH_LAG,
    Faults,
    Platform,
    Publisher,
    SimData,
)
from envmon.simulate.platforms.openaq_v3 import OPENAQ_BASE_ID
from envmon.simulate.platforms.server import Platforms, main, serve_platforms

__all__ = [
    "DEFAULT_MIX",
    "OPENAQ_BASE_ID",
    "PARAMS",
    "PUBLISH_LAG",
    "Faults",
    "Platform",
    "Platforms",
    "Publisher",
    "SimData",
    "main",
    "serve_platforms",
]
