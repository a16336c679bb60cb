"""GB/T 8170 rounding in SQL (``gbt8170``, migration 0034) gives the numbers of
``standards.rounding.round_half_even``: the derive job rounds the real-time AQI's
inputs in the database, the rest of envmon in Python."""

from __future__ import annotations

import random
from decimal import Decimal

import psycopg
import pytest

from envmon.standards.rounding import round_half_even

TIES = [
    "35.5", "36.5", "-2.5", "-3.5", "0.5", "1.5", "-0.5", "2.25", "2.35", "0.05", "0.15",
    "99.95", "123456789.5", "74.5", "75.5", "0.45", "0.55",
]  # fmt: skip
NEAR_TIES = [
    "75.49999999999999999", "74.50000000000000001", "35.45000000000000001",
    "2.249999", "2.2500001", "0", "-0.0", "1e-30", "12345678901234567890.5",
]  # fmt: skip


def _random_decimals(n: int) -> list[str]:
    rng = random.Random(8170)
    return [
        str(Decimal(rng.randint(-(10**7), 10**7)) / Decimal(10 ** rng.randint(0, 5)))
        for _ in range(n)
    ]


@pytest.mark.parametrize("places", [0, 1, 2])
def test_gbt8170_in_sql_is_round_half_even(db_url: str, places: int) -> None:
    values = TIES + NEAR_TIES + _random_decimals(5000)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT v, gbt8170(v::numeric, %s) FROM unnest(%s::text[]) AS v", (places, values)
        ).fetchall()
        (null,) = conn.execute("SELECT gbt8170(NULL, %s)", (places,)).fetchone() or (1,)
    wrong = [
        (v, r, round_half_even(Decimal(v), places))
        for v, r in rows
        if r != round_half_even(Decimal(v), places)
    ]
    assert wrong == []
    assert null is None
    if places == 0:  # the ties themselves, as the standard words them
        got = dict(rows)
        assert [got[v] for v in ("35.5", "36.5", "-2.5", "0.5", "1.5")] == [36, 36, -2, 0, 2]
