"""HJ 633-2012 / HJ 633-2026 IAQI and AQI against worked examples.

Every expected value below was computed by hand from the breakpoint tables
(standards.md §1.1, §1.2) with exact fractions and a final ceiling — never by
calling the code under test. The §1.8 vectors are copied from standards.md.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envmon.standards import StandardsError
from envmon.standards.aqi import (
    CATEGORIES,
    category_of,
    daily_aqi,
    edition_for,
    hourly_aqi,
    iaqi,
)

# standards.md §1.8: (key, concentration, IAQI 2012, IAQI 2026); None = no IAQI.
SECTION_1_8: list[tuple[str, str, int | None, int | None]] = [
    ("pm25_24h", "35", 50, 50),
    ("pm25_24h", "36", 52, 52),
    ("pm25_24h", "60", 82, 100),
    ("pm25_24h", "61", 83, 101),
    ("pm25_24h", "75", 100, 114),
    ("pm25_24h", "76", 102, 115),
    ("pm25_24h", "115", 150, 150),
    ("pm25_24h", "116", 152, 152),
    ("pm25_24h", "251", 301, 301),
    ("pm10_24h", "51", 51, 51),
    ("pm10_24h", "120", 85, 100),
    ("pm10_24h", "121", 86, 101),
    ("pm10_24h", "150", 100, 112),
    ("pm10_24h", "151", 101, 112),
    ("so2_24h", "151", 101, 101),
    ("no2_24h", "81", 101, 101),
    ("co_24h", "2.2", 55, 55),
    ("co_24h", "2.5", 63, 63),
    ("co_24h", "4.1", 101, 101),
    ("co_1h", "1.1", 11, 11),
    ("co_1h", "10.1", 101, 101),
    ("o3_8h", "161", 101, 101),
    ("o3_8h", "266", 201, 201),
    ("o3_1h", "201", 101, 101),
    ("so2_1h", "651", 151, 151),
    ("so2_1h", "801", None, 200),
    ("o3_8h", "801", None, 300),
    ("pm25_24h", "35.4", 51, 50),
]


@pytest.mark.parametrize(("key", "conc", "want_2012", "want_2026"), SECTION_1_8)
def test_reference_vectors(
    key: str, conc: str, want_2012: int | None, want_2026: int | None
) -> None:
    assert iaqi(key, conc, edition=2012) == want_2012
    assert iaqi(key, conc, edition=2026) == want_2026
    # The same numbers as floats: the decimal string is what counts.
    assert iaqi(key, float(conc), edition=2012) == want_2012
    assert iaqi(key, float(conc), edition=2026) == want_2026


# Every breakpoint and breakpoint + 1 (CO: + 0.1 mg/m³), both editions; above the
# top breakpoint: 500, except SO2 1-h / O3 8-h (2012: None, 2026: 200 / 300).
BAND_EDGES: list[tuple[int, str, str, int | None]] = [
    # 2012 so2_24h
    (2012, "so2_24h", "0", 0),
    (2012, "so2_24h", "1", 1),
    (2012, "so2_24h", "50", 50),
    (2012, "so2_24h", "51", 51),
    (2012, "so2_24h", "150", 100),
    (2012, "so2_24h", "151", 101),
    (2012, "so2_24h", "475", 150),
    (2012, "so2_24h", "476", 151),
    (2012, "so2_24h", "800", 200),
    (2012, "so2_24h", "801", 201),
    (2012, "so2_24h", "1600", 300),
    (2012, "so2_24h", "1601", 301),
    (2012, "so2_24h", "2100", 400),
    (2012, "so2_24h", "2101", 401),
    (2012, "so2_24h", "2620", 500),
    (2012, "so2_24h", "2621", 500),
    # 2012 so2_1h
    (2012, "so2_1h", "0", 0),
    (2012, "so2_1h", "1", 1),
    (2012, "so2_1h", "150", 50),
    (2012, "so2_1h", "151", 51),
    (2012, "so2_1h", "500", 100),
    (2012, "so2_1h", "501", 101),
    (2012, "so2_1h", "650", 150),
    (2012, "so2_1h", "651", 151),
    (2012, "so2_1h", "800", 200),
    (2012, "so2_1h", "801", None),
    # 2012 no2_24h
    (2012, "no2_24h", "0", 0),
    (2012, "no2_24h", "1", 2),
    (2012, "no2_24h", "40", 50),
    (2012, "no2_24h", "41", 52),
    (2012, "no2_24h", "80", 100),
    (2012, "no2_24h", "81", 101),
    (2012, "no2_24h", "180", 150),
    (2012, "no2_24h", "181", 151),
    (2012, "no2_24h", "280", 200),
    (2012, "no2_24h", "281", 201),
    (2012, "no2_24h", "565", 300),
    (2012, "no2_24h", "566", 301),
    (2012, "no2_24h", "750", 400),
    (2012, "no2_24h", "751", 401),
    (2012, "no2_24h", "940", 500),
    (2012, "no2_24h", "941", 500),
    # 2012 no2_1h
    (2012, "no2_1h", "0", 0),
    (2012, "no2_1h", "1", 1),
    (2012, "no2_1h", "100", 50),
    (2012, "no2_1h", "101", 51),
    (2012, "no2_1h", "200", 100),
    (2012, "no2_1h", "201", 101),
    (2012, "no2_1h", "700", 150),
    (2012, "no2_1h", "701", 151),
    (2012, "no2_1h", "1200", 200),
    (2012, "no2_1h", "1201", 201),
    (2012, "no2_1h", "2340", 300),
    (2012, "no2_1h", "2341", 301),
    (2012, "no2_1h", "3090", 400),
    (2012, "no2_1h", "3091", 401),
    (2012, "no2_1h", "3840", 500),
    (2012, "no2_1h", "3841", 500),
    # 2012 pm10_24h
    (2012, "pm10_24h", "0", 0),
    (2012, "pm10_24h", "1", 1),
    (2012, "pm10_24h", "50", 50),
    (2012, "pm10_24h", "51", 51),
    (2012, "pm10_24h", "150", 100),
    (2012, "pm10_24h", "151", 101),
    (2012, "pm10_24h", "250", 150),
    (2012, "pm10_24h", "251", 151),
    (2012, "pm10_24h", "350", 200),
    (2012, "pm10_24h", "351", 202),
    (2012, "pm10_24h", "420", 300),
    (2012, "pm10_24h", "421", 302),
    (2012, "pm10_24h", "500", 400),
    (2012, "pm10_24h", "501", 401),
    (2012, "pm10_24h", "600", 500),
    (2012, "pm10_24h", "601", 500),
    # 2012 co_24h
    (2012, "co_24h", "0", 0),
    (2012, "co_24h", "0.1", 3),
    (2012, "co_24h", "2", 50),
    (2012, "co_24h", "2.1", 53),
    (2012, "co_24h", "4", 100),
    (2012, "co_24h", "4.1", 101),
    (2012, "co_24h", "14", 150),
    (2012, "co_24h", "14.1", 151),
    (2012, "co_24h", "24", 200),
    (2012, "co_24h", "24.1", 201),
    (2012, "co_24h", "36", 300),
    (2012, "co_24h", "36.1", 301),
    (2012, "co_24h", "48", 400),
    (2012, "co_24h", "48.1", 401),
    (2012, "co_24h", "60", 500),
    (2012, "co_24h", "60.1", 500),
    # 2012 co_1h
    (2012, "co_1h", "0", 0),
    (2012, "co_1h", "0.1", 1),
    (2012, "co_1h", "5", 50),
    (2012, "co_1h", "5.1", 51),
    (2012, "co_1h", "10", 100),
    (2012, "co_1h", "10.1", 101),
    (2012, "co_1h", "35", 150),
    (2012, "co_1h", "35.1", 151),
    (2012, "co_1h", "60", 200),
    (2012, "co_1h", "60.1", 201),
    (2012, "co_1h", "90", 300),
    (2012, "co_1h", "90.1", 301),
    (2012, "co_1h", "120", 400),
    (2012, "co_1h", "120.1", 401),
    (2012, "co_1h", "150", 500),
    (2012, "co_1h", "150.1", 500),
    # 2012 o3_1h
    (2012, "o3_1h", "0", 0),
    (2012, "o3_1h", "1", 1),
    (2012, "o3_1h", "160", 50),
    (2012, "o3_1h", "161", 52),
    (2012, "o3_1h", "200", 100),
    (2012, "o3_1h", "201", 101),
    (2012, "o3_1h", "300", 150),
    (2012, "o3_1h", "301", 151),
    (2012, "o3_1h", "400", 200),
    (2012, "o3_1h", "401", 201),
    (2012, "o3_1h", "800", 300),
    (2012, "o3_1h", "801", 301),
    (2012, "o3_1h", "1000", 400),
    (2012, "o3_1h", "1001", 401),
    (2012, "o3_1h", "1200", 500),
    (2012, "o3_1h", "1201", 500),
    # 2012 o3_8h
    (2012, "o3_8h", "0", 0),
    (2012, "o3_8h", "1", 1),
    (2012, "o3_8h", "100", 50),
    (2012, "o3_8h", "101", 51),
    (2012, "o3_8h", "160", 100),
    (2012, "o3_8h", "161", 101),
    (2012, "o3_8h", "215", 150),
    (2012, "o3_8h", "216", 151),
    (2012, "o3_8h", "265", 200),
    (2012, "o3_8h", "266", 201),
    (2012, "o3_8h", "800", 300),
    (2012, "o3_8h", "801", None),
    # 2012 pm25_24h
    (2012, "pm25_24h", "0", 0),
    (2012, "pm25_24h", "1", 2),
    (2012, "pm25_24h", "35", 50),
    (2012, "pm25_24h", "36", 52),
    (2012, "pm25_24h", "75", 100),
    (2012, "pm25_24h", "76", 102),
    (2012, "pm25_24h", "115", 150),
    (2012, "pm25_24h", "116", 152),
    (2012, "pm25_24h", "150", 200),
    (2012, "pm25_24h", "151", 201),
    (2012, "pm25_24h", "250", 300),
    (2012, "pm25_24h", "251", 301),
    (2012, "pm25_24h", "350", 400),
    (2012, "pm25_24h", "351", 401),
    (2012, "pm25_24h", "500", 500),
    (2012, "pm25_24h", "501", 500),
    # 2026 so2_24h
    (2026, "so2_24h", "0", 0),
    (2026, "so2_24h", "1", 1),
    (2026, "so2_24h", "50", 50),
    (2026, "so2_24h", "51", 51),
    (2026, "so2_24h", "150", 100),
    (2026, "so2_24h", "151", 101),
    (2026, "so2_24h", "475", 150),
    (2026, "so2_24h", "476", 151),
    (2026, "so2_24h", "800", 200),
    (2026, "so2_24h", "801", 201),
    (2026, "so2_24h", "1600", 300),
    (2026, "so2_24h", "1601", 301),
    (2026, "so2_24h", "2100", 400),
    (2026, "so2_24h", "2101", 401),
    (2026, "so2_24h", "2620", 500),
    (2026, "so2_24h", "2621", 500),
    # 2026 so2_1h
    (2026, "so2_1h", "0", 0),
    (2026, "so2_1h", "1", 1),
    (2026, "so2_1h", "150", 50),
    (2026, "so2_1h", "151", 51),
    (2026, "so2_1h", "500", 100),
    (2026, "so2_1h", "501", 101),
    (2026, "so2_1h", "650", 150),
    (2026, "so2_1h", "651", 151),
    (2026, "so2_1h", "800", 200),
    (2026, "so2_1h", "801", 200),
    # 2026 no2_24h
    (2026, "no2_24h", "0", 0),
    (2026, "no2_24h", "1", 2),
    (2026, "no2_24h", "40", 50),
    (2026, "no2_24h", "41", 52),
    (2026, "no2_24h", "80", 100),
    (2026, "no2_24h", "81", 101),
    (2026, "no2_24h", "180", 150),
    (2026, "no2_24h", "181", 151),
    (2026, "no2_24h", "280", 200),
    (2026, "no2_24h", "281", 201),
    (2026, "no2_24h", "565", 300),
    (2026, "no2_24h", "566", 301),
    (2026, "no2_24h", "750", 400),
    (2026, "no2_24h", "751", 401),
    (2026, "no2_24h", "940", 500),
    (2026, "no2_24h", "941", 500),
    # 2026 no2_1h
    (2026, "no2_1h", "0", 0),
    (2026, "no2_1h", "1", 1),
    (2026, "no2_1h", "100", 50),
    (2026, "no2_1h", "101", 51),
    (2026, "no2_1h", "200", 100),
    (2026, "no2_1h", "201", 101),
    (2026, "no2_1h", "700", 150),
    (2026, "no2_1h", "701", 151),
    (2026, "no2_1h", "1200", 200),
    (2026, "no2_1h", "1201", 201),
    (2026, "no2_1h", "2340", 300),
    (2026, "no2_1h", "2341", 301),
    (2026, "no2_1h", "3090", 400),
    (2026, "no2_1h", "3091", 401),
    (2026, "no2_1h", "3840", 500),
    (2026, "no2_1h", "3841", 500),
    # 2026 pm10_24h
    (2026, "pm10_24h", "0", 0),
    (2026, "pm10_24h", "1", 1),
    (2026, "pm10_24h", "50", 50),
    (2026, "pm10_24h", "51", 51),
    (2026, "pm10_24h", "120", 100),
    (2026, "pm10_24h", "121", 101),
    (2026, "pm10_24h", "250", 150),
    (2026, "pm10_24h", "251", 151),
    (2026, "pm10_24h", "350", 200),
    (2026, "pm10_24h", "351", 202),
    (2026, "pm10_24h", "420", 300),
    (2026, "pm10_24h", "421", 302),
    (2026, "pm10_24h", "500", 400),
    (2026, "pm10_24h", "501", 401),
    (2026, "pm10_24h", "600", 500),
    (2026, "pm10_24h", "601", 500),
    # 2026 co_24h
    (2026, "co_24h", "0", 0),
    (2026, "co_24h", "0.1", 3),
    (2026, "co_24h", "2", 50),
    (2026, "co_24h", "2.1", 53),
    (2026, "co_24h", "4", 100),
    (2026, "co_24h", "4.1", 101),
    (2026, "co_24h", "14", 150),
    (2026, "co_24h", "14.1", 151),
    (2026, "co_24h", "24", 200),
    (2026, "co_24h", "24.1", 201),
    (2026, "co_24h", "36", 300),
    (2026, "co_24h", "36.1", 301),
    (2026, "co_24h", "48", 400),
    (2026, "co_24h", "48.1", 401),
    (2026, "co_24h", "60", 500),
    (2026, "co_24h", "60.1", 500),
    # 2026 co_1h
    (2026, "co_1h", "0", 0),
    (2026, "co_1h", "0.1", 1),
    (2026, "co_1h", "5", 50),
    (2026, "co_1h", "5.1", 51),
    (2026, "co_1h", "10", 100),
    (2026, "co_1h", "10.1", 101),
    (2026, "co_1h", "35", 150),
    (2026, "co_1h", "35.1", 151),
    (2026, "co_1h", "60", 200),
    (2026, "co_1h", "60.1", 201),
    (2026, "co_1h", "90", 300),
    (2026, "co_1h", "90.1", 301),
    (2026, "co_1h", "120", 400),
    (2026, "co_1h", "120.1", 401),
    (2026, "co_1h", "150", 500),
    (2026, "co_1h", "150.1", 500),
    # 2026 o3_1h
    (2026, "o3_1h", "0", 0),
    (2026, "o3_1h", "1", 1),
    (2026, "o3_1h", "160", 50),
    (2026, "o3_1h", "161", 52),
    (2026, "o3_1h", "200", 100),
    (2026, "o3_1h", "201", 101),
    (2026, "o3_1h", "300", 150),
    (2026, "o3_1h", "301", 151),
    (2026, "o3_1h", "400", 200),
    (2026, "o3_1h", "401", 201),
    (2026, "o3_1h", "800", 300),
    (2026, "o3_1h", "801", 301),
    (2026, "o3_1h", "1000", 400),
    (2026, "o3_1h", "1001", 401),
    (2026, "o3_1h", "1200", 500),
    (2026, "o3_1h", "1201", 500),
    # 2026 o3_8h
    (2026, "o3_8h", "0", 0),
    (2026, "o3_8h", "1", 1),
    (2026, "o3_8h", "100", 50),
    (2026, "o3_8h", "101", 51),
    (2026, "o3_8h", "160", 100),
    (2026, "o3_8h", "161", 101),
    (2026, "o3_8h", "215", 150),
    (2026, "o3_8h", "216", 151),
    (2026, "o3_8h", "265", 200),
    (2026, "o3_8h", "266", 201),
    (2026, "o3_8h", "800", 300),
    (2026, "o3_8h", "801", 300),
    # 2026 pm25_24h
    (2026, "pm25_24h", "0", 0),
    (2026, "pm25_24h", "1", 2),
    (2026, "pm25_24h", "35", 50),
    (2026, "pm25_24h", "36", 52),
    (2026, "pm25_24h", "60", 100),
    (2026, "pm25_24h", "61", 101),
    (2026, "pm25_24h", "115", 150),
    (2026, "pm25_24h", "116", 152),
    (2026, "pm25_24h", "150", 200),
    (2026, "pm25_24h", "151", 201),
    (2026, "pm25_24h", "250", 300),
    (2026, "pm25_24h", "251", 301),
    (2026, "pm25_24h", "350", 400),
    (2026, "pm25_24h", "351", 401),
    (2026, "pm25_24h", "500", 500),
    (2026, "pm25_24h", "501", 500),
]

# HJ 633-2026: 1-h PM concentrations use the daily column.
PM_1H_2026: list[tuple[str, str, int]] = [
    ("pm10_1h", "120", 100),
    ("pm10_1h", "121", 101),
    ("pm25_1h", "60", 100),
    ("pm25_1h", "61", 101),
    ("pm25_1h", "501", 500),
]


@pytest.mark.parametrize(("edition", "key", "conc", "want"), BAND_EDGES)
def test_band_edges(edition: int, key: str, conc: str, want: int | None) -> None:
    assert iaqi(key, conc, edition=edition) == want


@pytest.mark.parametrize(("key", "conc", "want"), PM_1H_2026)
def test_pm_1h_uses_daily_breakpoints_2026(key: str, conc: str, want: int) -> None:
    assert iaqi(key, conc, edition=2026) == want


def test_float_hazards_are_exact() -> None:
    # standards.md §1.4: naive float ceilings these one too high.
    for key, conc, want in [
        ("co_24h", 2.2, 55),
        ("co_1h", 1.1, 11),
        ("co_1h", 2.2, 22),
        ("co_1h", 4.4, 44),
        ("co_1h", 4.9, 49),
        ("co_1h", 65.4, 218),
        ("co_1h", 66.9, 223),
        ("co_1h", 129.3, 431),
        ("pm25_24h", 4.9, 7),
        ("pm25_24h", 32.2, 46),
        ("pm25_24h", 128.3, 169),
    ]:
        assert iaqi(key, conc, edition=2012) == want, (key, conc)
        assert iaqi(key, Decimal(str(conc)), edition=2012) == want


@pytest.mark.parametrize(
    ("key", "conc", "want"),
    [
        # GB/T 8170 half-even on the decimal string, then the IAQI (HJ 633-2026 §4.2.3).
        ("pm25_24h", "35.4", 50),  # → 35
        ("pm25_24h", "35.5", 52),  # → 36
        ("pm25_24h", "36.5", 52),  # → 36
        ("pm25_24h", "34.5", 49),  # → 34 → 50·34/35 = 48.57
        ("pm25_24h", "35.51", 52),  # → 36: more than a half
        ("pm25_24h", "60.5", 100),  # → 60
        ("pm25_24h", "61.5", 102),  # → 62 → 100 + 50·2/55 = 101.8
        ("co_24h", "2.25", 55),  # → 2.2
        ("co_24h", "2.35", 60),  # → 2.4
        ("co_24h", "2.05", 50),  # → 2.0
        ("co_1h", "10.05", 100),  # → 10.0
        ("so2_1h", "800.5", 200),  # → 800
        ("o3_8h", "800.5", 300),  # → 800
        ("pm10_24h", "0.5", 0),  # → 0
        ("pm10_24h", "1.5", 2),  # → 2
    ],
)
def test_rounding_before_iaqi_2026(key: str, conc: str, want: int) -> None:
    assert iaqi(key, conc, edition=2026) == want
    assert iaqi(key, float(conc), edition=2026) == want


def test_no_rounding_before_iaqi_2012() -> None:
    assert iaqi("co_1h", "10.05", edition=2012) == 101  # 100.1
    assert iaqi("pm25_24h", "35.5", edition=2012) == 51  # 50.625
    assert iaqi("pm25_24h", "0.1", edition=2012) == 1  # 0.14


@pytest.mark.parametrize("value", [None, float("nan"), Decimal("NaN"), "nan"])
def test_missing_is_none(value: object) -> None:
    assert iaqi("pm25_24h", value, edition=2012) is None  # type: ignore[arg-type]
    assert iaqi("pm25_24h", value, edition=2026) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "value", "edition"),
    [
        ("pm25_24h", -1, 2012),
        ("pm25_24h", "-0.1", 2026),
        ("co_24h", -0.5, 2026),
        ("pm1_24h", 10, 2012),
        ("PM25_24H", 10, 2026),
        ("pm25_24h", "abc", 2026),
        ("pm25_24h", float("inf"), 2026),
        ("pm25_24h", 10, 2020),
    ],
)
def test_bad_input_raises(key: str, value: object, edition: int) -> None:
    with pytest.raises(StandardsError):
        iaqi(key, value, edition=edition)  # type: ignore[arg-type]
    assert issubclass(StandardsError, ValueError)


def test_edition_for_switch_day() -> None:
    assert edition_for(date(2026, 2, 28)) == 2012
    assert edition_for(date(2026, 3, 1)) == 2026
    # Beijing day: 2026-02-28 16:00 UTC is 2026-03-01 00:00 in Beijing.
    assert edition_for(datetime(2026, 2, 28, 15, 59, tzinfo=UTC)) == 2012
    assert edition_for(datetime(2026, 2, 28, 16, 0, tzinfo=UTC)) == 2026
    assert edition_for(datetime(2026, 3, 1, 0, 0)) == 2026  # naive = Beijing


@pytest.mark.parametrize(
    ("aqi", "cat"),
    [
        (0, 1), (1, 1), (50, 1), (51, 2), (100, 2), (101, 3), (150, 3),
        (151, 4), (200, 4), (201, 5), (300, 5), (301, 6), (500, 6),
    ],
)  # fmt: skip
def test_category_edges(aqi: int, cat: int) -> None:
    assert category_of(aqi) == cat


def test_category_table() -> None:
    table = [(c.number, c.level, c.grade, c.colour) for c in CATEGORIES]
    assert table == [
        (1, "优", "一级", "#00E400"),
        (2, "良", "二级", "#FFFF00"),
        (3, "轻度污染", "三级", "#FF7E00"),
        (4, "中度污染", "四级", "#FF0000"),
        (5, "重度污染", "五级", "#99004C"),
        (6, "严重污染", "六级", "#7E0023"),
    ]
    with pytest.raises(StandardsError):
        category_of(-1)


# --- reports -------------------------------------------------------------------

DAILY_2012_CLEAN = {
    "so2_24h": 10,  # 10
    "no2_24h": 20,  # 25
    "pm10_24h": 40,  # 40
    "pm25_24h": 20,  # 50·20/35 = 28.57 → 29
    "co_24h": 0.6,  # 15
    "o3_1h": 80,  # 25
    "o3_8h": 60,  # 30
}


def test_daily_2012_clean_day() -> None:
    r = daily_aqi(DAILY_2012_CLEAN, edition=2012)
    assert r.iaqi == {
        "so2_24h": 10,
        "no2_24h": 25,
        "pm10_24h": 40,
        "pm25_24h": 29,
        "co_24h": 15,
        "o3_1h": 25,
        "o3_8h": 30,
    }
    assert r.aqi == 40
    assert (r.category, r.level, r.grade, r.colour) == (1, "优", "一级", "#00E400")
    assert r.primary == []  # AQI ≤ 50: no primary pollutant
    assert r.exceeding == []
    assert r.complete
    assert r.missing == []
    assert r.edition == 2012


def test_primary_from_51() -> None:
    r = daily_aqi({**DAILY_2012_CLEAN, "pm10_24h": 51}, edition=2012)
    assert r.aqi == 51
    assert r.primary == ["pm10"]
    assert r.category == 2


def test_primary_ties_on_integer_iaqi() -> None:
    # PM10 150 → 100 exactly; PM2.5 74.5 → 50 + 50/40·39.5 = 99.375 → 100.
    r = daily_aqi({**DAILY_2012_CLEAN, "pm10_24h": 150, "pm25_24h": 74.5}, edition=2012)
    assert r.aqi == 100
    assert r.primary == ["pm10", "pm25"]
    assert r.exceeding == []  # IAQI > 100 only
    # 2026: NO2 80, PM10 120, PM2.5 60 are all IAQI 100.
    r = daily_aqi(
        {
            "so2_24h": 10,
            "no2_24h": 80,
            "pm10_24h": 120,
            "pm25_24h": 60,
            "co_24h": 0.6,
            "o3_8h": 60,
        },
        edition=2026,
    )
    assert r.aqi == 100
    assert r.primary == ["no2", "pm10", "pm25"]


def test_exceeding_2012_only() -> None:
    # SO2 151 → 101, NO2 81 → 101, PM2.5 76 → 102 (2012) / 115 (2026).
    values = {**DAILY_2012_CLEAN, "so2_24h": 151, "no2_24h": 81, "pm25_24h": 76}
    r = daily_aqi(values, edition=2012)
    assert r.aqi == 102
    assert r.primary == ["pm25"]
    assert r.exceeding == ["so2", "no2", "pm25"]
    r = daily_aqi(values, edition=2026)
    assert r.aqi == 115
    assert r.exceeding == []  # definition deleted in HJ 633-2026


def test_daily_2026_ignores_o3_1h() -> None:
    r = daily_aqi({**DAILY_2012_CLEAN, "o3_1h": 1000}, edition=2026)
    assert "o3_1h" not in r.iaqi
    assert r.aqi == 40
    assert r.complete


def test_daily_2012_o3_8h_above_800_falls_back_to_1h() -> None:
    # O3 8-h 801: no 8-h IAQI; O3 1-h 801 → 300 + 100/200·1 = 300.5 → 301.
    r = daily_aqi({**DAILY_2012_CLEAN, "o3_8h": 801, "o3_1h": 801}, edition=2012)
    assert "o3_8h" not in r.iaqi
    assert r.iaqi["o3_1h"] == 301
    assert r.aqi == 301
    assert r.primary == ["o3"]
    assert r.category == 6
    assert r.complete


def test_daily_2026_o3_8h_above_800_is_300() -> None:
    r = daily_aqi({**DAILY_2012_CLEAN, "o3_8h": 801}, edition=2026)
    assert r.iaqi["o3_8h"] == 300
    assert r.aqi == 300
    assert (r.level, r.colour) == ("重度污染", "#99004C")


HOURLY_2012 = {
    "so2_1h": 900,  # > 800: use the 24-h IAQI
    "so2_24h": 151,  # 101
    "no2_1h": 50,  # 25
    "co_1h": 1,  # 10
    "o3_1h": 100,  # 31.25 → 32
    "o3_8h": 300,  # not a real-time indicator (the national platform leaves it out)
    "pm10_1h": 50,  # 50: 1-h PM against the 24-h breakpoints
    "pm25_1h": 30,  # 42.86 → 43
    "pm25_24h": 400,  # the 24-h moving mean is not a real-time indicator either
}


def test_hourly_2012_so2_fallback_to_24h() -> None:
    r = hourly_aqi(HOURLY_2012, edition=2012)
    assert r.iaqi == {
        "so2_24h": 101,
        "no2_1h": 25,
        "co_1h": 10,
        "o3_1h": 32,
        "pm10_1h": 50,
        "pm25_1h": 43,
    }
    assert r.aqi == 101
    assert r.primary == ["so2"]
    assert r.exceeding == ["so2"]
    assert r.complete
    assert r.kind == "hourly"


def test_hourly_2012_so2_fallback_missing() -> None:
    values = {k: v for k, v in HOURLY_2012.items() if k != "so2_24h"}
    r = hourly_aqi(values, edition=2012)
    assert r.missing == ["so2_24h"]
    assert not r.complete
    # The real-time report publishes NA for an AQI ≤ 100 with a pollutant missing,
    # in 2012 as well (national platform practice, tests/standards/cnemc_published).
    assert (r.aqi, r.aqi_computed) == (None, 50)


def test_hourly_2012_so2_below_800_ignores_24h() -> None:
    r = hourly_aqi({**HOURLY_2012, "so2_1h": 651}, edition=2012)
    assert r.iaqi["so2_1h"] == 151
    assert "so2_24h" not in r.iaqi
    assert r.aqi == 151


def test_hourly_1138a_published_example() -> None:
    # Issue 15: CNEMC station 1138A, hour ending 2024-12-20 09:00: PM2.5 1-h 223,
    # 24-h moving mean 103 → published AQI 273 (200 + 100/100 × 73), primary PM2.5.
    r = hourly_aqi({"pm25_1h": 223, "pm25_24h": 103}, edition=2012)
    assert r.iaqi == {"pm25_1h": 273}
    assert r.aqi == 273
    assert r.primary == ["pm25"]


def test_hourly_not_monitored_is_not_missing() -> None:
    # Issue 15: 1957A on 2026-03-01 12:00 publishes "/" for SO2 and CO and AQI 80
    # (PM10 1-h 92 → 50 + 50/70 × 42 = 80). The AQI is not NA for 2026.
    values = {"pm10_1h": 92, "pm25_1h": 20, "no2_1h": 18, "o3_1h": 67}
    r = hourly_aqi(values, edition=2026, not_monitored=("so2", "co"))
    assert (r.aqi, r.complete, r.missing) == (80, True, [])
    assert r.not_monitored == ["co", "so2"]
    # Without the declaration the two are missing and §5.3.1 makes AQI ≤ 100 NA.
    r = hourly_aqi(values, edition=2026)
    assert (r.aqi, r.aqi_computed, r.missing) == (None, 80, ["so2_1h", "co_1h"])
    with pytest.raises(StandardsError):
        hourly_aqi(values, edition=2026, not_monitored=("pm1",))


def test_iaqi_cache_does_not_depend_on_call_order() -> None:
    # float32 0.2 reads "0.2" (IAQI 5) but equals, and hashes like, the float
    # 0.20000000298023224 (IAQI 6): a shared cache entry made the answer depend on
    # which came first. Both orders, on fresh values of each kind.
    np = pytest.importorskip("numpy")
    for key, text, exact, as_float in (("co_24h", "0.2", 5, 6), ("pm25_24h", "4.9", 7, 8)):
        f32 = np.float32(text)
        assert iaqi(key, float(f32), edition=2012) == as_float
        assert iaqi(key, f32, edition=2012) == exact
        assert iaqi(key, float(f32), edition=2012) == as_float
        assert iaqi(key, f32, edition=2012) == exact


def test_huge_values_are_capped() -> None:
    assert iaqi("pm25_24h", Decimal("1E+100"), edition=2026) == 500
    assert iaqi("pm25_24h", "1e100", edition=2012) == 500
    assert iaqi("pm25_24h", 1e-30, edition=2026) == 0


def test_hourly_2026() -> None:
    values = {
        "so2_1h": 900,  # > 800 → 200
        "no2_1h": 50,  # 25
        "co_1h": 1,  # 10
        "o3_1h": 100,  # 31.25 → 32
        "pm10_1h": 121,  # 100 + 50/130 → 101
        "pm25_1h": 61,  # 101
    }
    r = hourly_aqi(values, edition=2026)
    assert r.iaqi == {
        "so2_1h": 200,
        "no2_1h": 25,
        "co_1h": 10,
        "o3_1h": 32,
        "pm10_1h": 101,
        "pm25_1h": 101,
    }
    assert r.aqi == 200
    assert r.primary == ["so2"]
    assert r.category == 4
    assert r.exceeding == []


def test_hourly_2026_accepts_pm_24h_key_as_1h() -> None:
    values = {"so2_1h": 5, "no2_1h": 5, "co_1h": 0.2, "o3_1h": 10, "pm10_24h": 121}
    values["pm25_24h"] = 61
    r = hourly_aqi(values, edition=2026)
    assert r.iaqi["pm10_24h"] == 101
    assert r.iaqi["pm25_24h"] == 101
    assert r.complete
    assert r.aqi == 101
    # Only PM has the alias: a 24-h SO2 value is not a 2026 real-time indicator.
    r = hourly_aqi({**values, "so2_24h": 151, "so2_1h": None}, edition=2026)
    assert r.missing == ["so2_1h"]
    assert "so2_24h" not in r.iaqi


def test_na_rule_2026() -> None:
    # HJ 633-2026 §5.3.1: a pollutant missing and AQI ≤ 100 → AQI etc. are NA.
    values = {"so2_24h": 10, "no2_24h": 20, "pm10_24h": 120, "co_24h": 0.6, "o3_8h": 60}
    r = daily_aqi(values, edition=2026)
    assert r.missing == ["pm25_24h"]
    assert not r.complete
    assert r.aqi is None
    assert (r.category, r.level, r.grade, r.colour) == (None, None, None, None)
    assert r.primary == []
    assert r.iaqi["pm10_24h"] == 100  # single values are still published
    # AQI > 100 is published although PM2.5 is missing.
    r = daily_aqi({**values, "pm10_24h": 121, "pm25_24h": None}, edition=2026)
    assert r.missing == ["pm25_24h"]
    assert r.aqi == 101
    assert r.primary == ["pm10"]
    assert r.level == "轻度污染"
    assert not r.complete


def test_missing_2012_computes_from_others() -> None:
    values = {k: v for k, v in DAILY_2012_CLEAN.items() if k != "pm25_24h"}
    r = daily_aqi(values, edition=2012)
    assert r.missing == ["pm25_24h"]
    assert not r.complete
    assert r.aqi == 40


def test_nothing_at_all() -> None:
    r = daily_aqi({}, edition=2026)
    assert r.aqi is None
    assert r.iaqi == {}
    assert len(r.missing) == 6


def test_aqi_range_2026_starts_at_1() -> None:
    zeros = dict.fromkeys(("so2_24h", "no2_24h", "pm10_24h", "pm25_24h", "co_24h", "o3_8h"), 0)
    assert daily_aqi(zeros, edition=2026).aqi == 1
    assert daily_aqi(zeros, edition=2026).iaqi["pm25_24h"] == 0
    assert daily_aqi({**zeros, "o3_1h": 0}, edition=2012).aqi == 0
    # 0.4 µg/m³ rounds to 0 in 2026.
    assert daily_aqi({**zeros, "pm25_24h": 0.4}, edition=2026).aqi == 1


def test_above_top_is_capped_and_flagged() -> None:
    r = daily_aqi({**DAILY_2012_CLEAN, "pm25_24h": 600}, edition=2012)
    assert r.aqi == 500
    assert r.capped == ["pm25_24h"]
    assert r.level == "严重污染"


def test_unknown_key_in_report_raises() -> None:
    with pytest.raises(StandardsError):
        daily_aqi({**DAILY_2012_CLEAN, "pm1_24h": 3}, edition=2012)
    with pytest.raises(StandardsError):
        daily_aqi({**DAILY_2012_CLEAN, "pm25_24h": -3}, edition=2012)


# --- properties ----------------------------------------------------------------

_KEYS_2012 = ["so2_24h", "so2_1h", "no2_24h", "no2_1h", "pm10_24h", "pm25_24h"]
_KEYS_2012 += ["co_24h", "co_1h", "o3_1h", "o3_8h"]
_CONC = st.decimals(min_value=0, max_value=4000, places=2, allow_nan=False, allow_infinity=False)


def _top(key: str, edition: int) -> int:
    # 2012 has no IAQI above 800 for SO2 1-h and O3 8-h.
    return 800 if edition == 2012 and key in ("so2_1h", "o3_8h") else 4000


@settings(database=None, max_examples=300, deadline=None)
@given(
    key=st.sampled_from([*_KEYS_2012, "pm10_1h", "pm25_1h"]),
    edition=st.sampled_from([2012, 2026]),
    a=_CONC,
    b=_CONC,
)
def test_iaqi_monotone(key: str, edition: int, a: Decimal, b: Decimal) -> None:
    if edition == 2012 and key.endswith("_1h") and key.startswith("pm"):
        edition = 2026
    if key.startswith("co"):
        a, b = a / 50, b / 50
    lo, hi = sorted((a, b))
    hi = min(hi, Decimal(_top(key, edition)))
    lo = min(lo, hi)
    i_lo, i_hi = iaqi(key, lo, edition=edition), iaqi(key, hi, edition=edition)
    assert i_lo is not None
    assert i_hi is not None
    assert 0 <= i_lo <= i_hi <= 500


@settings(database=None, max_examples=200, deadline=None)
@given(
    edition=st.sampled_from([2012, 2026]),
    values=st.fixed_dictionaries(
        {
            "so2_24h": st.floats(0, 3000),
            "no2_24h": st.floats(0, 1000),
            "pm10_24h": st.floats(0, 700),
            "pm25_24h": st.floats(0, 600),
            "co_24h": st.floats(0, 70),
            "o3_1h": st.floats(0, 1300),
            "o3_8h": st.floats(0, 790),
        }
    ),
)
def test_aqi_is_max_iaqi(edition: int, values: dict[str, float]) -> None:
    r = daily_aqi(values, edition=edition)
    assert r.complete
    assert r.aqi is not None
    want = max(r.iaqi.values())
    assert r.aqi == (max(want, 1) if edition == 2026 else want)
    for key, value in r.iaqi.items():
        assert value == iaqi(key, values[key], edition=edition)
    if r.aqi > 50:
        assert r.primary
    assert r.category == category_of(r.aqi)
