"""Regions and stations by id, pinyin or Chinese name: one resolver for API, CLI and import."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmon.catalog import AmbiguousName, UnknownName, load_catalog, region_of
from envmon.catalog.names import city_of
from envmon.schemas.readings import RawReading, Validator

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_catalog(REPO / "config" / "stations.yaml")


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("zone", "zone"),
        ("taiyuan", "taiyuan"),
        (" TaiYuan ", "taiyuan"),
        ("太原市", "taiyuan"),
        ("太原", "taiyuan"),
        ("忻州市", "xinzhou"),
        ("太忻经济区", "zone"),
    ],
)
def test_region_spellings(text: str, region: str) -> None:
    assert region_of(text) == region


def test_unknown_region_lists_the_spellings() -> None:
    with pytest.raises(UnknownName, match=r"unknown region '北京市'.*太原市"):
        region_of("北京市")
    assert city_of("taiyuan") == "太原市" and city_of("忻州") == "忻州市"
    with pytest.raises(UnknownName):
        city_of("zone")  # the zone is no city


def test_station_spellings(catalog) -> None:  # type: ignore[no-untyped-def]
    assert catalog.resolve("air-taiyuan-jiancaoping").id == "air-taiyuan-jiancaoping"
    assert catalog.resolve("尖草坪", "air").id == "air-taiyuan-jiancaoping"
    assert catalog.resolve("尖草坪", "weather").id == "wx-53677"
    assert catalog.resolve("JianCaoPing").id == "air-taiyuan-jiancaoping"
    assert catalog.resolve("taiyuan-jiancaoping").id == "air-taiyuan-jiancaoping"
    assert catalog.resolve("代县桥").id == "water-hutuo-daixianqiao"
    assert catalog.resolve("53677").id == "wx-53677"  # the CMA station number


def test_shared_names_are_never_guessed(catalog) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AmbiguousName) as err:
        catalog.resolve("尖草坪")
    assert err.value.candidates == ["air-taiyuan-jiancaoping", "wx-53677"]
    with pytest.raises(AmbiguousName):
        catalog.resolve("shanglan")  # the air station and the 汾河 section
    assert catalog.resolve("shanglan", "water").id == "water-fen-shanglan"
    with pytest.raises(UnknownName):
        catalog.resolve("尖草坪", "water")
    # An exact id of another kind is not taken for a name.
    with pytest.raises(UnknownName):
        catalog.resolve("wx-53677", "air")


def test_validator_stores_names_under_their_ids(catalog) -> None:  # type: ignore[no-untyped-def]
    v = Validator({s.id: s.kind for s in catalog}, names=catalog.names)
    import pandas as pd

    frame = pd.DataFrame(
        {
            "station": ["尖草坪", "尖草坪", "jiancaoping", "上兰", "上兰", "nowhere"],
            "parameter": ["pm25", "air_temp", "pm10", "nh3n", "so2", "pm25"],
            "time": ["2025-01-01T08:00:00"] * 6,
            "value": ["35", "-3.5", "80", "0.5", "9", "1"],
        },
        index=pd.RangeIndex(2, 8),
    )
    res = v.validate_frame(frame, "file")
    assert list(res.batch.station_id) == [
        "air-taiyuan-jiancaoping",
        "wx-53677",
        "air-taiyuan-jiancaoping",
        "water-fen-shanglan",
        "air-taiyuan-shanglan",
    ]
    assert [r.reason for r in res.rejected] == ["unknown station 'nowhere'"]
    # Without names (a source that must send ids), a name stays unknown.
    plain = Validator({s.id: s.kind for s in catalog})
    assert plain.validate_frame(frame, "file").rejected[0].reason == "unknown station '尖草坪'"
    assert RawReading  # the stream path validates ids as before
