"""GB/T 8170 rounding, edition selection and GB 3095 limits by date."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from envmon.standards import StandardsError, limit_set_for
from envmon.standards.limits import limit
from envmon.standards.rounding import round_half_even, to_decimal, to_fraction


@pytest.mark.parametrize(
    ("value", "places", "want"),
    [
        (35.5, 0, "36"),
        (36.5, 0, "36"),
        (34.5, 0, "34"),
        (35.4, 0, "35"),
        (35.6, 0, "36"),
        ("35.50", 0, "36"),
        ("35.501", 0, "36"),  # more than a half goes up
        ("36.49999", 0, "36"),
        (2.25, 1, "2.2"),
        (2.35, 1, "2.4"),
        (2.15, 1, "2.2"),
        (Decimal("0.05"), 1, "0.0"),
        (0.15, 1, "0.2"),  # the float 0.15 is read as "0.15", not 0.1499999…
        (1234, 0, "1234"),
    ],
)
def test_round_half_even(value: float | str | Decimal, places: int, want: str) -> None:
    assert round_half_even(value, places) == Decimal(want)
    assert str(round_half_even(value, places)) == want


def test_to_decimal_edges() -> None:
    assert to_decimal(None) is None
    assert to_decimal(float("nan")) is None
    assert to_decimal(" 2.2 ") == Decimal("2.2")
    assert to_fraction(2.2) is not None
    assert to_fraction(2.2) * 10 == 22  # type: ignore[operator]
    for bad in (True, "x", float("-inf")):
        with pytest.raises(StandardsError):
            to_decimal(bad)
    with pytest.raises(StandardsError):
        round_half_even(float("nan"))


def test_limit_sets_by_date() -> None:
    assert limit_set_for(date(2026, 2, 28)) == "2012"
    assert limit_set_for(date(2026, 3, 1)) == "2026-transitional"
    assert limit_set_for(date(2030, 12, 31)) == "2026-transitional"
    assert limit_set_for(date(2031, 1, 1)) == "2026-final"
    assert limit_set_for(datetime(2030, 12, 31, 16, 0, tzinfo=UTC)) == "2026-final"


@pytest.mark.parametrize(
    ("stat", "v2012", "v2026t", "v2026f"),
    [
        # GB 3095-2012 Table 1 / GB 3095-2026 Table 1, class II (standards.md §2.1).
        ("so2_annual", 60, 60, 20),
        ("so2_24h", 150, 150, 50),
        ("so2_1h", 500, 500, 150),
        ("no2_annual", 40, 40, 30),
        ("no2_24h", 80, 80, 50),
        ("no2_1h", 200, 200, 200),
        ("co_24h", 4, 4, 4),
        ("co_1h", 10, 10, 10),
        ("o3_8h", 160, 160, 160),
        ("o3_1h", 200, 200, 200),
        ("pm10_annual", 70, 60, 50),
        ("pm10_24h", 150, 120, 100),
        ("pm25_annual", 35, 30, 25),
        ("pm25_24h", 75, 60, 50),
    ],
)
def test_class_ii_limits(stat: str, v2012: float, v2026t: float, v2026f: float) -> None:
    assert limit(stat, date(2026, 2, 28)) == v2012
    assert limit(stat, date(2026, 3, 1)) == v2026t
    assert limit(stat, date(2030, 12, 31)) == v2026t
    assert limit(stat, date(2031, 1, 1)) == v2026f
    assert isinstance(limit(stat, date(2031, 1, 1)), float)


@pytest.mark.parametrize(
    ("stat", "v2012", "v2026t", "v2026f"),
    [
        ("so2_annual", 20, 20, 20),
        ("so2_24h", 50, 50, 50),
        ("so2_1h", 150, 150, 150),
        ("no2_annual", 40, 40, 30),
        ("no2_24h", 80, 80, 50),
        ("no2_1h", 200, 200, 200),
        ("co_24h", 4, 4, 4),
        ("co_1h", 10, 10, 10),
        ("o3_8h", 100, 100, 100),
        ("o3_1h", 160, 160, 160),
        ("pm10_annual", 40, 40, 20),
        ("pm10_24h", 50, 50, 50),
        ("pm25_annual", 15, 15, 10),
        ("pm25_24h", 35, 35, 25),
    ],
)
def test_class_i_limits(stat: str, v2012: float, v2026t: float, v2026f: float) -> None:
    assert limit(stat, date(2020, 1, 1), cls=1) == v2012
    assert limit(stat, date(2027, 1, 1), cls=1) == v2026t
    assert limit(stat, date(2035, 1, 1), cls=1) == v2026f


def test_limit_errors() -> None:
    with pytest.raises(StandardsError):
        limit("pm25_8h", date(2026, 3, 1))
    with pytest.raises(StandardsError):
        limit("pm25_24h", date(2026, 3, 1), cls=3)
