"""Reading candidates, codes and unit conversion."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envmon.ingest.hj212 import (
    LEGACY_CODES,
    CpData,
    Hj212Error,
    Message,
    convert,
    normalize_unit,
    parameter_for,
    readings,
    to_2017,
)
from envmon.ingest.hj212.codes import DEFAULT_UNITS, scale_exponent, scale_text
from envmon.ingest.hj212.mapping import upload_rows
from envmon.parameters import BY_HJ212
from envmon.timeutil import BEIJING

MN = "010000A8900016F000169DC0"


def upload(cn: str, pollutants: dict[str, dict[str, str]], **fields: str) -> Message:
    fields.setdefault("DataTime", "20240115080000")
    return Message(
        qn="20240115090012345",
        st="22",
        cn=cn,
        pw="123456",
        mn=MN,
        flag=4,
        cp=CpData(dict(fields), pollutants),
    )


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (0.035, "mg/m³", "µg/m³", 35.0),
        ("0.012", "mg/m3", "ug/m3", 12.0),
        (41300, "ng/m³", "µg/m³", 41.3),
        (35.2, "μg/m³", "µg/m³", 35.2),  # Greek mu
        (92.35, "kPa", "hPa", 923.5),
        (101325, "Pa", "hPa", 1013.25),
        (1.2, "mS/cm", "µS/cm", 1200.0),
        (20, "µg/L", "mg/L", 0.02),
        (7.2, "无量纲", "1", 7.2),
        (12.5, "℃", "°C", 12.5),
    ],
)
def test_convert(value: float | str, source: str, target: str, expected: float) -> None:
    assert convert(value, source, target) == expected


@pytest.mark.parametrize(
    ("source", "target"), [("mg/m³", "mg/L"), ("ppb", "µg/m³"), ("kPa", "furlong")]
)
def test_convert_refuses(source: str, target: str) -> None:
    with pytest.raises(Hj212Error) as info:
        convert(1.0, source, target)
    assert info.value.reason == "unit"


def test_codes() -> None:
    assert to_2017("011") == "w01018"
    assert to_2017("060") == "w21003"
    assert to_2017("101") == "w21011"
    assert to_2017("065") == "w21001"
    assert to_2017("02") == "a21026"
    assert to_2017("a34004") == "a34004"
    assert LEGACY_CODES["B01"] == "w00000"
    cod = parameter_for("011")
    assert cod is not None
    assert cod.code == "cod"
    assert normalize_unit(" UG/M3 ") == "µg/m³"
    # Every parameter envmon stores from HJ 212 has a known default unit.
    assert set(BY_HJ212) <= set(DEFAULT_UNITS)
    for code, param in BY_HJ212.items():
        assert convert(1, DEFAULT_UNITS[code], param.unit) > 0


def test_hourly_annex_b_defaults_and_overrides() -> None:
    m = upload(
        "2061",
        {
            "a34004": {"Avg": "35200", "Flag": "N"},
            "a21026": {"Avg": "0.012", "Flag": "N"},
            "a21005": {"Avg": "0.8"},
            "a01006": {"Avg": "92.35"},
        },
    )
    default = {r.hj212_code: r for r in readings(m)}
    assert default["a34004"].value == 35.2
    assert default["a34004"].unit_in == "ng/m³"
    assert default["a21026"].value == 12.0
    assert default["a21026"].unit == "µg/m³"
    assert default["a21005"].value == 0.8
    assert default["a21005"].unit == "mg/m³"
    assert default["a01006"].value == 923.5
    assert default["a01006"].unit == "hPa"
    r = default["a34004"]
    assert (r.mn, r.parameter, r.period, r.flag, r.raw_value) == (MN, "pm25", "1h", "N", "35200")
    assert r.ts == datetime(2024, 1, 15, 8, tzinfo=BEIJING)

    vendor = {"a34004": "ug/m3", "a21026": "µg/m³"}
    overridden = {r.hj212_code: r for r in readings(m, unit_overrides=vendor)}
    assert overridden["a34004"].value == 35200.0  # the station said µg/m³: taken as sent
    assert overridden["a21026"].value == 0.012
    assert overridden["a21026"].unit_in == "µg/m³"


def test_periods() -> None:
    pol = {"a34004": {"Rtd": "30", "Avg": "31"}}
    assert [(r.period, r.raw_value) for r in readings(upload("2011", pol))] == [("rt", "30")]
    assert [r.period for r in readings(upload("2051", pol))] == ["1min"]
    assert [r.period for r in readings(upload("2051", pol), minute_interval=5)] == ["5min"]
    assert [r.period for r in readings(upload("2051", pol, MinInterval="10"))] == ["10min"]
    assert [r.period for r in readings(upload("2061", pol))] == ["1h"]
    assert [r.period for r in readings(upload("2031", pol, DataTime="20240115000000"))] == ["1d"]
    assert readings(upload("1062", pol)) == []
    assert readings(upload("2041", pol)) == []
    with pytest.raises(Hj212Error, match="bad_field"):
        readings(upload("2051", pol, MinInterval="x"))
    with pytest.raises(Hj212Error, match="bad_field"):
        readings(upload("2051", pol), minute_interval=90)


def test_upload_without_datatime() -> None:
    m = Message(qn=None, st="22", cn="2061", pw=None, mn=MN, flag=4, cp=CpData({}, {"a": {}}))
    with pytest.raises(Hj212Error) as info:
        readings(m)
    assert info.value.reason == "missing_field"


@pytest.mark.parametrize("cn", ["2051", "2061", "2031"])
def test_rtd_items_in_a_period_upload_are_rejected_with_the_reason(cn: str) -> None:
    # Issue 18: a period upload carrying only -Rtd items yielded nothing, not
    # even a reject. An instantaneous value is not the period's value.
    m = upload(
        cn,
        {
            "a34004": {"Rtd": "35.0", "Flag": "N"},
            "a21005": {"Rtd": "0.6"},
            "a34002": {"Avg": "80", "Rtd": "81", "Flag": "N"},  # Avg wins
            "SB1": {"RS": "1"},  # status: still not a reading
        },
        DataTime="20240115000000",
    )
    got = {r.hj212_code: r for r in readings(m)}
    assert set(got) == {"a34004", "a21005", "a34002"}
    for code, raw in (("a34004", "35.0"), ("a21005", "0.6")):
        assert got[code].value is None
        assert got[code].raw_value == raw
        assert got[code].problem == (
            f"Rtd={raw!r} in a CN={cn} upload: an instantaneous value is not the period's Avg"
        )
    assert got["a34002"].raw_value == "80" and got["a34002"].problem is None


def test_values_flags_and_problems() -> None:
    m = upload(
        "2061",
        {
            "a34004": {"Avg": "--", "Flag": "D"},
            "a34002": {"Flag": "F"},
            "a21026": {"Avg": "1.2E-2", "Flag": "Z"},
            "a21004": {"Avg": "nan"},
            "a21005": {"Avg": "1e99"},
            "a05024": {"Avg": "0.1", "Flag": "N"},
            "x99999": {"Avg": "5"},
            "w00000": {"Cou": "12"},
            "SB1": {"RS": "1"},
        },
    )
    got = {r.hj212_code: r for r in readings(m, unit_overrides={"a05024": "ppb"})}
    assert set(got) == {"a34004", "a34002", "a21026", "a21004", "a21005", "a05024", "x99999"}
    assert got["a34004"].value is None
    assert got["a34004"].problem == "Avg='--' is not a number"
    assert got["a34004"].flag == "D"
    assert got["a34002"].value is None
    assert got["a34002"].problem == "no Avg value (flag F)"
    assert got["a21026"].value == 12.0
    assert got["a21026"].flag == "Z"
    assert got["a21026"].problem == "data flag 'Z' not in HJ 212-2017 Table 8"
    assert got["a21004"].value is None
    assert got["a21004"].flag == "N"
    assert got["a21005"].value == 1e99  # absurd but a number: plausibility is downstream
    assert got["a05024"].value is None
    assert got["a05024"].problem == "unknown unit 'ppb'"
    assert got["x99999"].parameter is None
    assert got["x99999"].value == 5.0
    assert got["x99999"].unit_in == ""
    assert got["x99999"].problem == "unknown pollutant code 'x99999'"


def test_2005_codes_map_to_parameters() -> None:
    m = upload("2011", {"011": {"Rtd": "231.0", "Flag": "N"}, "060": {"Rtd": "1.803"}})
    got = [(r.parameter, r.hj212_code, r.value, r.unit_in) for r in readings(m)]
    assert got == [("cod", "w01018", 231.0, "mg/L"), ("nh3n", "w21003", 1.803, "mg/L")]
    # Overrides may name the 2005 code too.
    (cod, _) = readings(m, unit_overrides={"011": "µg/L"})
    assert cod.value == 0.231


# ------------------------------------------------------------------ fast conversion

UNITS = ["ng/m³", "µg/m³", "mg/m³", "ng/L", "µg/L", "mg/L", "Pa", "hPa", "kPa", "µS/cm", "mS/cm"]
# Table 4 numbers as loggers print them: sign, integer part, decimals, an exponent now and then.
NUMBERS = st.builds(
    lambda sign, whole, decimals, exponent: f"{sign}{whole}{decimals}{exponent}",
    st.sampled_from(["", "-", "+"]),
    st.from_regex(r"[0-9]{1,9}", fullmatch=True),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{0,9}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"[eE][+-]?[0-9]{1,2}", fullmatch=True)),
)


@given(NUMBERS, st.sampled_from(UNITS), st.sampled_from(UNITS))
def test_scaled_text_equals_the_decimal_conversion(text: str, source: str, target: str) -> None:
    try:
        exponent = scale_exponent(source, target)
    except Hj212Error:
        return  # incompatible units: convert() refuses them the same way
    assert exponent is not None
    assert scale_text(text, exponent) == convert(Decimal(text), source, target)


@pytest.mark.parametrize(
    ("text", "source", "target", "expected"),
    [
        ("0.035", "mg/m³", "µg/m³", 35.0),  # not 35.00000000000001
        ("0.007", "mg/m³", "µg/m³", 7.0),
        ("3.5E-2", "mg/m³", "µg/m³", 35.0),
        ("35200", "ng/m³", "µg/m³", 35.2),
        ("0.1", "kPa", "hPa", 1.0),
        ("1013.25", "hPa", "hPa", 1013.25),
        ("-0.5", "µg/L", "mg/L", -0.0005),
        ("1.", "mg/m³", "µg/m³", 1000.0),
        (".5", "mg/m³", "µg/m³", 500.0),
    ],
)
def test_scaled_text_is_exact(text: str, source: str, target: str, expected: float) -> None:
    exponent = scale_exponent(source, target)
    assert exponent is not None
    assert scale_text(text, exponent) == expected


def test_scale_exponent_refuses_like_convert() -> None:
    with pytest.raises(Hj212Error, match="unknown unit 'ppb'"):
        scale_exponent("ppb", "µg/m³")
    with pytest.raises(Hj212Error, match="cannot convert mg/m³ to mg/L"):
        scale_exponent("mg/m3", "mg/L")
    assert scale_exponent("ug/m3", "µg/m³") == 0


def test_cached_code_resolution_keeps_each_stations_unit() -> None:
    # The same code with and without a station's override, in alternation: the
    # cache is keyed by (code, unit), so neither answer leaks into the other.
    m = upload("2061", {"a34004": {"Avg": "0.035", "Flag": "N"}, "02": {"Avg": "0.012"}})
    for _ in range(3):
        default = {r.hj212_code: r.value for r in readings(m)}
        assert default == {"a34004": 0.000035, "a21026": 12.0}  # Annex B: ng/m³, mg/m³
        vendor = readings(m, unit_overrides={"a34004": "mg/m3", "02": "µg/m³"})
        assert {r.hj212_code: r.value for r in vendor} == {"a34004": 35.0, "a21026": 0.012}
        assert [r.unit_in for r in vendor] == ["mg/m³", "µg/m³"]


def test_upload_rows_match_the_candidates() -> None:
    m = upload(
        "2061",
        {
            "a34004": {"Avg": "35200", "Flag": "N"},
            "a21005": {"Avg": "x"},
            "a34002": {"Flag": "F"},
            "SB1": {"RS": "1"},
        },
    )
    upload_ = upload_rows(m)
    assert upload_ is not None
    ts, period, rows = upload_
    assert (ts, period) == (datetime(2024, 1, 15, 8, tzinfo=BEIJING), "1h")
    assert rows == [
        (c.parameter, c.hj212_code, c.value, c.flag, c.raw_value, c.unit_in, c.unit, c.problem)
        for c in readings(m)
    ]
    assert upload_rows(upload("1062", {})) is None


def test_misaligned_periods_rejected_or_aligned() -> None:
    # Issue 17: an hourly value labelled 17:57:59, a daily one at 18:27:04.
    pol = {"a34004": {"Avg": "31"}}
    with pytest.raises(Hj212Error, match="not the start of a 1h period") as info:
        readings(upload("2061", pol, DataTime="20240115175759"))
    assert info.value.reason == "bad_datatime"
    with pytest.raises(Hj212Error, match="not the start of a 1d period"):
        readings(upload("2031", pol, DataTime="20240115182704"))
    # A logger that labels the period end: 17:57:59 and 18:00:05 are the hour 17-18.
    for label in ("20240115175759", "20240115180005", "20240115180000"):
        (r,) = readings(upload("2061", pol, DataTime=label), period_end=True)
        assert r.ts == datetime(2024, 1, 15, 17, tzinfo=BEIJING)
    (d,) = readings(upload("2031", pol, DataTime="20240116000000"), period_end=True)
    assert d.ts == datetime(2024, 1, 15, tzinfo=BEIJING)


def test_2005_short_code_units_are_its_edition() -> None:
    # HJ/T 212-2005 "02" (SO2) is mg/m³: the ambient µg/m³ override of a21026
    # does not apply to it, unless the station's edition_units say so.
    m = upload("2061", {"02": {"Avg": "0.012"}, "a21026": {"Avg": "12"}})
    over = {"a21026": "µg/m³"}
    by_code = {r.raw_value: r for r in readings(m, unit_overrides=over)}
    assert by_code["0.012"].value == pytest.approx(12.0)
    assert by_code["0.012"].unit_in == "mg/m³"
    assert by_code["12"].value == 12.0
    (legacy, _) = readings(m, unit_overrides=over, edition_units={"02": "µg/m³"})
    assert legacy.value == pytest.approx(0.012)
