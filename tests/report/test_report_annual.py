"""HJ 663 annual statistics (``envmon.evaluate.annual``): a small unit computed by hand, the
ranking rule, and agreement with ``evaluate_year`` on the session's dataset."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest

from envmon.evaluate.annual import Day, annual_report, annual_statistics, editions_of_year, rank
from envmon.evaluate.assessment import evaluate_year

from .conftest import TARGETS

Conn = psycopg.AsyncConnection[tuple[object, ...]]


def four_days() -> list[Day]:
    cols = {
        "so2": [10, 20, 30, 40],
        "no2": [20, 20, 40, 40],
        "pm10": [55, 65, 75, 90],
        "pm25": [70, 30, 30, 60],
        "co": [0.5, 1.0, 1.5, 2.0],
        "o3_8h_max": [100, 120, 140, 160],
        "o3_1h_max": [150, 150, 150, 150],
    }
    return [
        Day(
            date(2025, 5, 1) + timedelta(days=i),
            {k: float(v[i]) for k, v in cols.items()},
            dust=(i == 3),
        )
        for i in range(4)
    ]


def test_four_days_by_hand_2012() -> None:
    st = annual_statistics(four_days(), year=2025, edition=2012, days_elapsed=4)
    p = st["pollutants"]
    assert p["so2"]["mean"] == 25 and p["so2"]["p98"] == pytest.approx(39.4)  # k = 3.94
    assert p["no2"]["mean"] == 30 and p["no2"]["p98"] == pytest.approx(40.0)
    # Dust day 4 is left out of PM statistics (CNEMC): PM10 [55, 65, 75], PM2.5 [70, 30, 30].
    assert p["pm10"]["mean"] == 65 and p["pm10"]["mean_measured"] == 71.25
    assert p["pm10"]["p95"] == pytest.approx(74.0)  # k = 2.9: 65 + 10 × 0.9
    assert p["pm25"]["mean"] == pytest.approx(130 / 3) and p["pm25"]["mean_measured"] == 47.5
    assert p["pm25"]["p95"] == pytest.approx(66.0)  # 30 + 40 × 0.9
    assert p["co"]["p95"] == pytest.approx(1.925)  # k = 3.85: 1.5 + 0.5 × 0.85
    assert p["o3"]["p90"] == pytest.approx(154.0)  # k = 3.7: 140 + 20 × 0.7
    # Σ C/S = 25/60 + 30/40 + 65/70 + (130/3)/35 + 1.925/4 + 154/160
    assert st["comprehensive_index"] == pytest.approx(4.7770833, abs=1e-6)
    assert p["pm10"]["attains"] is True and p["pm25"]["attains"] is False
    assert st["attains"] is False
    assert p["pm25"]["valid_year"] is False  # 4 days < 324
    # Every day 良 or better under HJ 633-2012 (day 1: PM2.5 70 → IAQI 94); dust days kept.
    assert st["good_days"]["good"] == 4 and st["good_days"]["valid"] == 4
    assert st["dust_days"] == 1 and st["invalid_days"] == 0


def test_four_days_by_hand_2026() -> None:
    st = annual_statistics(four_days(), year=2025, edition=2026, days_elapsed=4)
    # GB 3095-2026 transitional limits: PM10 annual 60 < 65.
    assert st["limit_set"] == "2026-transitional"
    assert st["pollutants"]["pm10"]["attains"] is False
    # HJ 633-2026: PM2.5 70 → IAQI 120 (轻度污染) on day 1; the rest stay 良.
    assert st["good_days"]["good"] == 3 and st["good_days"]["valid"] == 4
    assert st["good_days"]["by_category"]["轻度污染"] == 1
    # The same denominators (HJ 663-2026 unread): the same index.
    assert st["comprehensive_index"] == pytest.approx(4.7770833, abs=1e-6)


def test_missing_pollutant_means_no_index() -> None:
    days = [Day(d.day, {**d.values, "co": None}, d.dust) for d in four_days()]
    st = annual_statistics(days, year=2025, edition=2012, days_elapsed=4)
    assert st["comprehensive_index"] is None and "co" in st["index_note"]
    assert st["attains"] is None


def test_rank_ties_at_two_decimals() -> None:
    assert rank([("a", 1.234), ("b", 1.2349), ("c", 2.0), ("d", None), ("e", 0.5)]) == {
        "e": 1,
        "a": 2,
        "b": 2,
        "c": 4,
        "d": None,
    }


def test_editions_of_year() -> None:
    assert editions_of_year(2025) == [2012]
    assert editions_of_year(2026) == [2012, 2026]
    assert editions_of_year(2027) == [2026]


async def test_agrees_with_evaluate_year(report_conn: Conn) -> None:
    for year, as_of in ((2025, date(2026, 1, 5)), (2026, date(2027, 1, 10))):
        annual = await annual_report(report_conn, year, as_of=as_of)  # type: ignore[arg-type]
        for ed in annual["editions"]:
            for unit in annual["by_edition"][str(ed)]["regions"]:
                ev = await evaluate_year(
                    report_conn,  # type: ignore[arg-type]
                    year,
                    unit["id"],
                    TARGETS,
                    as_of=as_of,
                    edition=ed,
                )
                pm = unit["pollutants"]["pm25"]
                assert round(pm["mean"], 1) == ev["pm25"]["mean"]
                assert round(pm["mean_measured"], 1) == ev["pm25"]["mean_measured"]
                assert pm["valid_days"] == ev["pm25"]["valid_days"]
                assert unit["good_days"]["good"] == ev["good_days"]["good"]
                assert unit["good_days"]["valid"] == ev["good_days"]["valid"]
                assert unit["dust_days"] == ev["pm25"]["dust_days"]
        # Stations and counties are ranked; the clean-control point is not.
        stations = {
            s["id"]: s for s in annual["by_edition"][str(annual["editions"][-1])]["stations"]
        }
        assert stations["air-taiyuan-jiancaoping"]["rank"] in (1, 2)
        if year == 2026:
            assert stations["air-taiyuan-shanglan"]["rank"] is None


async def test_evaluate_table_speaks_chinese_and_json_keeps_tokens(report_conn: Conn) -> None:
    """`envmon evaluate` prints 按进度可完成, 存在风险…; `--json` keeps the tokens (issue 13)."""
    from envmon.evaluate.assessment import STATUS_ZH, render_table

    res = await evaluate_year(
        report_conn,  # type: ignore[arg-type]
        2026,
        "zone",
        TARGETS,
        as_of=date(2026, 6, 30),
    )
    text = render_table(res)
    statuses = [res["pm25"]["status"], res["good_days"]["status"], res["water"]["status"]]
    assert all(s in STATUS_ZH for s in statuses)
    for s in statuses:
        assert f"→ {STATUS_ZH[s]}" in text
    for token in ("on_track", "off_track", "at_risk", "not_met", "no_target", " met"):
        assert token not in text
    assert "PM2.5 年均浓度" in text and "优良天数" in text and "国控断面" in text
