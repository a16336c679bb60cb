"""GB 3838-2002 Table 1 classes and the 2011 section evaluation (环办〔2011〕22号)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envmon.standards import StandardsError
from envmon.standards.water import classify, roman, section_class

# Independent transcription of GB 3838-2002 Table 1 (standards.md §5), class I … V.
TABLE1 = {
    "codmn": ("2", "4", "6", "10", "15"),
    "cod": ("15", "15", "20", "30", "40"),
    "bod5": ("3", "3", "4", "6", "10"),
    "nh3n": ("0.15", "0.5", "1.0", "1.5", "2.0"),
    "tp": ("0.02", "0.1", "0.2", "0.3", "0.4"),
    "tn": ("0.2", "0.5", "1.0", "1.5", "2.0"),
    "cu": ("0.01", "1.0", "1.0", "1.0", "1.0"),
    "zn": ("0.05", "1.0", "1.0", "2.0", "2.0"),
    "fluoride": ("1.0", "1.0", "1.0", "1.5", "1.5"),
    "se": ("0.01", "0.01", "0.01", "0.02", "0.02"),
    "as": ("0.05", "0.05", "0.05", "0.1", "0.1"),
    "hg": ("0.00005", "0.00005", "0.0001", "0.001", "0.001"),
    "cd": ("0.001", "0.005", "0.005", "0.005", "0.01"),
    "cr6": ("0.01", "0.05", "0.05", "0.05", "0.1"),
    "pb": ("0.01", "0.01", "0.05", "0.05", "0.1"),
    "cyanide": ("0.005", "0.05", "0.2", "0.2", "0.2"),
    "phenol": ("0.002", "0.002", "0.005", "0.01", "0.1"),
    "petroleum": ("0.05", "0.05", "0.05", "0.5", "1.0"),
    "las": ("0.2", "0.2", "0.2", "0.3", "0.3"),
    "sulfide": ("0.05", "0.1", "0.2", "0.5", "1.0"),
    "fecal_coliform": ("200", "2000", "10000", "20000", "40000"),
}


def _upper_limit_edges() -> list[tuple[str, str, int]]:
    """(parameter, value, class) at each limit and just above it.

    On a limit: the best class sharing that limit (limits are inclusive). Just
    above (the smallest step the limit's own decimals allow, then one digit more):
    the next class with a larger limit, or 6 (劣Ⅴ) past class V.
    """
    cases: list[tuple[str, str, int]] = []
    for name, limits in TABLE1.items():
        for text in limits:
            lim = Decimal(text)
            best = 1 + limits.index(text)
            cases.append((name, text, best))
            step = Decimal(1).scaleb(lim.as_tuple().exponent - 1)  # type: ignore[operator]
            above = lim + step
            nxt = next((i + 1 for i, t in enumerate(limits) if Decimal(t) >= above), 6)
            cases.append((name, str(above), nxt))
    return cases


@pytest.mark.parametrize(("parameter", "value", "want"), _upper_limit_edges())
def test_table1_edges(parameter: str, value: str, want: int) -> None:
    assert classify(parameter, value) == want


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("0.02", 1), ("0.021", 2), ("0.1", 2), ("0.11", 3), ("0.2", 3),
        ("0.21", 4), ("0.3", 4), ("0.31", 5), ("0.4", 5), ("0.41", 6),
    ],
)  # fmt: skip
def test_tp_river(value: str, want: int) -> None:
    assert classify("tp", value) == want
    assert classify("tp", value, waterbody="river") == want


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("0.01", 1), ("0.011", 2), ("0.025", 2), ("0.026", 3), ("0.05", 3),
        ("0.051", 4), ("0.1", 4), ("0.11", 5), ("0.2", 5), ("0.21", 6),
    ],
)  # fmt: skip
def test_tp_lake_and_reservoir(value: str, want: int) -> None:
    assert classify("tp", value, waterbody="lake") == want
    assert classify("tp", value, waterbody="reservoir") == want


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("9", 1), ("7.5", 1), ("7.49", 2), ("6", 2), ("5.99", 3), ("5", 3),
        ("4.99", 4), ("3", 4), ("2.99", 5), ("2", 5), ("1.99", 6), ("0", 6),
    ],
)  # fmt: skip
def test_do_is_at_least(value: str, want: int) -> None:
    assert classify("do", value) == want


@pytest.mark.parametrize(
    ("value", "want"),
    [("6", 1), ("5.99", 6), ("7.2", 1), ("9", 1), ("9.01", 6), ("0", 6)],
)
def test_ph_pass_fail(value: str, want: int) -> None:
    assert classify("ph", value) == want


def test_floats_compare_by_decimal_string() -> None:
    assert classify("nh3n", 1.0) == 3
    assert classify("hg", 1e-4) == 3  # str(1e-4) == "0.0001"
    assert classify("hg", 5e-05) == 1
    assert classify("tp", 0.1) == 2
    assert classify("do", 7.5) == 1


@pytest.mark.parametrize(
    ("parameter", "value", "kwargs"),
    [
        ("temp", 20, {}),
        ("chlorophyll", 1, {}),
        ("codmn", None, {}),
        ("codmn", float("nan"), {}),
        ("codmn", -1, {}),
        ("tp", 0.1, {"waterbody": "sea"}),
        ("ph", 7, {"waterbody": "sea"}),
    ],
)
def test_classify_errors(parameter: str, value: object, kwargs: dict[str, str]) -> None:
    with pytest.raises(StandardsError):
        classify(parameter, value, **kwargs)  # type: ignore[arg-type]


def test_roman() -> None:
    assert [roman(c) for c in range(1, 7)] == ["Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", "Ⅴ", "劣Ⅴ"]
    with pytest.raises(StandardsError):
        roman(0)


def test_section_main_pollutants_order() -> None:
    r = section_class(
        {
            "ph": 7.2,
            "do": 6,  # Ⅱ
            "codmn": 12,  # Ⅴ, (12 − 6)/6 = 1.0
            "nh3n": 3.0,  # 劣Ⅴ, (3 − 1)/1 = 2.0
            "tp": 0.35,  # Ⅴ, (0.35 − 0.2)/0.2 = 0.75
            "cod": 25,  # Ⅳ, 0.25
            "pb": 0.06,  # Ⅴ (Ⅳ limit 0.05), 0.2 — heavy metal: listed first
            "tn": 3.0,  # reference only, would be 劣Ⅴ
            "temp": 18.5,
        },
        target_class=3,
    )
    assert r.cls == 6
    assert r.roman == "劣Ⅴ"
    assert r.status == "重度污染"
    assert r.meets_target is False
    assert [(m.parameter, m.cls, m.multiple) for m in r.main_pollutants] == [
        ("pb", 5, 0.2),
        ("nh3n", 6, 2.0),
        ("codmn", 5, 1.0),
    ]
    assert r.exceedance == {"codmn": 1.0, "nh3n": 2.0, "tp": 0.75, "cod": 0.25, "pb": 0.2}
    assert r.reference == {"temp": None, "tn": 6}
    assert r.classes["do"] == 2


def test_section_same_class_ranked_by_multiple() -> None:
    # All Ⅳ: COD (28 − 20)/20 = 0.4, BOD5 (5.5 − 4)/4 = 0.375, NH3-N (1.2 − 1)/1 = 0.2,
    # CODMn (7 − 6)/6 = 0.1667.
    r = section_class({"cod": 28, "bod5": 5.5, "nh3n": 1.2, "codmn": 7})
    assert r.cls == 4
    assert r.status == "轻度污染"
    assert [m.parameter for m in r.main_pollutants] == ["cod", "bod5", "nh3n"]


def test_section_do_and_ph_have_no_multiple() -> None:
    r = section_class({"do": 1.5, "ph": 9.5, "codmn": 11})
    assert r.cls == 6
    assert r.exceedance == {"codmn": pytest.approx(5 / 6)}
    mains = [(m.parameter, m.cls, m.multiple) for m in r.main_pollutants]
    assert mains == [("ph", 6, None), ("do", 6, None), ("codmn", 5, pytest.approx(5 / 6))]


def test_section_good() -> None:
    r = section_class(
        {"ph": 7.5, "do": 5.5, "codmn": 5, "nh3n": 0.4, "tp": 0.15, "fecal_coliform": 30000},
        target_class=3,
    )
    assert r.cls == 3
    assert r.status == "良好"
    assert r.main_pollutants == []
    assert r.exceedance == {}
    assert r.meets_target is True
    assert r.reference == {"fecal_coliform": 5}
    assert section_class({"codmn": 2}, target_class=2).status == "优"
    assert section_class({"codmn": 5}, target_class=2).meets_target is False
    assert section_class({"codmn": 5}).meets_target is None


def test_section_lake_tp() -> None:
    assert section_class({"tp": 0.05}, waterbody="lake").cls == 3
    assert section_class({"tp": 0.05}).cls == 2


def test_section_errors() -> None:
    with pytest.raises(StandardsError):
        section_class({"temp": 20, "tn": 1})  # nothing evaluated
    with pytest.raises(StandardsError):
        section_class({"bogus": 1})
    with pytest.raises(StandardsError):
        section_class({"codmn": 1}, target_class=7)


@settings(database=None, max_examples=300, deadline=None)
@given(
    parameter=st.sampled_from(sorted(TABLE1)),
    waterbody=st.sampled_from(["river", "lake"]),
    a=st.decimals(min_value=0, max_value=50000, places=5, allow_nan=False),
    b=st.decimals(min_value=0, max_value=50000, places=5, allow_nan=False),
)
def test_classify_monotone(parameter: str, waterbody: str, a: Decimal, b: Decimal) -> None:
    lo, hi = sorted((a, b))
    assert classify(parameter, lo, waterbody=waterbody) <= classify(
        parameter, hi, waterbody=waterbody
    )
    # DO: more oxygen is never worse.
    lo, hi = lo / 1000, hi / 1000
    assert classify("do", lo) >= classify("do", hi)
