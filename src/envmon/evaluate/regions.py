"""The regions envmon reports on: the two cities and the whole zone."""

from __future__ import annotations

from typing import Final

CITY_REGION: Final[dict[str, str]] = {"太原市": "taiyuan", "忻州市": "xinzhou"}
REGION_NAMES: Final[dict[str, str]] = {
    "zone": "太忻经济区",
    "taiyuan": "太原市",
    "xinzhou": "忻州市",
}
REGIONS: Final[tuple[str, ...]] = ("zone", "taiyuan", "xinzhou")
