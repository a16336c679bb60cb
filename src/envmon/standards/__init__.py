"""The national standards as pure functions (no I/O).

* :mod:`.editions` — which edition applies to a day; :class:`StandardsError`.
* :mod:`.rounding` — exact values and GB/T 8170 rounding.
* :mod:`.aqi` — HJ 633-2012 / HJ 633-2026 IAQI and AQI reports.
* :mod:`.limits` — GB 3095-2012 / GB 3095-2026 limits by date.
* :mod:`.validity` — GB 3095 Table 4 minimum-data rules, O3 8-h statistics.
* :mod:`.stats` — HJ 663 percentile, comprehensive index, ratios.
* :mod:`.water` — GB 3838-2002 classes and the 2011 section evaluation.
"""

from __future__ import annotations

from envmon.standards.editions import Edition, StandardsError, edition_for, limit_set_for

__all__ = ["Edition", "StandardsError", "edition_for", "limit_set_for"]
