"""The shipped catalog, config/stations.yaml: counts, coverage, and the reference's names."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from envmon.catalog import COUNTIES, Catalog, Station, catalog_to_json, county_of, load_catalog

STATIONS_YAML = Path(__file__).resolve().parents[2] / "config" / "stations.yaml"

# Names the reference (shared/reference/standards.md §9.2, §10) marks verified, inside the zone.
VERIFIED_AIR = {"尖草坪": "尖草坪区", "巨轮": "杏花岭区", "开发区": "忻府区", "会展中心": "忻府区"}
VERIFIED_WATER = {
    ("滹沱河", "下茹越"): ("繁峙县", "national"),
    ("滹沱河", "代县桥"): ("代县", "national"),
    ("滹沱河", "定襄桥"): ("忻府区", "national"),
    ("滹沱河", "南庄"): ("定襄县", "national"),
    ("滹沱河", "乔儿沟"): ("繁峙县", "provincial"),
    ("滹沱河", "笔峰村"): ("繁峙县", "provincial"),
    ("滹沱河", "泊水村"): ("代县", "provincial"),
    ("滹沱河", "界河铺村"): ("原平市", "provincial"),
    ("牧马河", "陈家营"): ("定襄县", "national"),
    ("清水河", "坪上桥"): ("五台县", "national"),
    ("潴龙河", "杜里村"): ("繁峙县", "national"),
}
VERIFIED_WEATHER = {
    "53677": ("尖草坪", "尖草坪区"),
    "53678": ("阳曲", "阳曲县"),
    "53763": ("古交", "古交市"),
    "53588": ("五台山", "五台县"),
    "53674": ("忻府", "忻府区"),
    "53673": ("原平", "原平市"),
    "53579": ("代县", "代县"),
    "53681": ("五台", "五台县"),
    "53585": ("繁峙", "繁峙县"),
    "53676": ("定襄", "定襄县"),
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(STATIONS_YAML)


def _named(catalog: Catalog, kind: str, name: str) -> list[Station]:
    return [s for s in catalog.stations if s.kind == kind and s.name == name]


def test_counts(catalog: Catalog) -> None:
    assert catalog.counts() == {"air": 26, "water": 14, "weather": 167}
    assert len(catalog) == 207


def test_every_county_holds_stations(catalog: Catalog) -> None:
    per_county = Counter(s.county for s in catalog.stations)
    assert set(per_county) == set(COUNTIES)
    air = Counter(s.county for s in catalog.of_kind("air"))
    assert set(air) == set(COUNTIES), "an air point in every county"
    urban = ("尖草坪区", "杏花岭区", "迎泽区", "万柏林区")
    assert sum(air[c] for c in urban) >= 10, "most air points in Taiyuan's urban districts"


def test_coordinates_lie_in_the_declared_county(catalog: Catalog) -> None:
    for s in catalog.stations:
        assert county_of(s.lon, s.lat) == s.county, s.id
        assert COUNTIES[s.county].city == s.city, s.id


def test_ids_and_mns_are_unique(catalog: Catalog) -> None:
    ids = [s.id for s in catalog.stations]
    assert len(set(ids)) == len(ids)
    mns = [s.mn.upper() for s in catalog.stations if s.mn]
    assert len(set(mns)) == len(mns)
    assert all(s.mn for s in catalog.stations if s.kind in ("air", "water"))
    assert set(catalog.by_mn) == {s.mn for s in catalog.stations if s.mn}


def test_verified_air_stations_present(catalog: Catalog) -> None:
    for name, county in VERIFIED_AIR.items():
        (station,) = _named(catalog, "air", name)
        assert station.county == county
        assert station.control_level == "national"
        assert station.verified
        assert station.assessed


def test_shanglan_is_a_clean_control_point(catalog: Catalog) -> None:
    (shanglan,) = _named(catalog, "air", "上兰")
    assert shanglan.county == "尖草坪区"
    assert not shanglan.assessed


def test_stations_outside_the_zone_are_absent(catalog: Catalog) -> None:
    names = {s.name for s in catalog.stations}
    for outside in ("小店", "坞城", "晋源", "金胜", "河西村", "川胡屯", "碛塄", "梵王寺", "禹庙"):
        assert outside not in names
    numbers = {s.station_no for s in catalog.stations if s.station_no}
    for outside_no in ("53772", "53679", "53774", "53669", "53577", "53666"):
        assert outside_no not in numbers


def test_verified_water_sections_present(catalog: Catalog) -> None:
    for (river, name), (county, level) in VERIFIED_WATER.items():
        (section,) = [s for s in catalog.of_kind("water") if s.name == name and s.river == river]
        assert (section.county, section.control_level) == (county, level), name
        assert section.verified
        assert section.basin == "海河"
        assert section.waterbody == "river"


def test_water_targets_are_realistic(catalog: Catalog) -> None:
    water = catalog.of_kind("water")
    targets = Counter(s.target_class for s in water)
    assert all(t in (1, 2, 3, 4, 5) for t in targets)
    assert targets[3] >= len(water) // 3, "mostly class III"
    fen = [s for s in water if s.river == "汾河"]
    assert len(fen) == 3
    assert all(s.basin == "黄河" and not s.verified for s in fen)


def test_verified_weather_stations_present(catalog: Catalog) -> None:
    national = {
        s.station_no: s for s in catalog.of_kind("weather") if s.control_level == "national"
    }
    assert set(national) == set(VERIFIED_WEATHER)
    for number, (name, county) in VERIFIED_WEATHER.items():
        station = national[number]
        assert (station.id, station.name, station.county) == (f"wx-{number}", name, county)
        assert station.verified
    assert national["53588"].elevation_m == pytest.approx(2208, abs=1)
    regional = [s for s in catalog.of_kind("weather") if s.control_level == "regional"]
    assert len(regional) == 157
    assert {s.county for s in regional} == set(COUNTIES)


def test_only_reference_names_are_verified(catalog: Catalog) -> None:
    verified = {(s.kind, s.name) for s in catalog.stations if s.verified}
    expected = (
        {("air", n) for n in VERIFIED_AIR}
        | {("water", name) for _, name in VERIFIED_WATER}
        | {("weather", name) for name, _ in VERIFIED_WEATHER.values()}
    )
    assert verified == expected


def test_elevations_are_plausible(catalog: Catalog) -> None:
    taiyuan_basin = [s for s in catalog.stations if s.id in ("air-taiyuan-julun", "wx-53677")]
    assert all(760 <= s.elevation_m <= 850 for s in taiyuan_basin)
    assert 1000 <= catalog.by_id["wx-53763"].elevation_m <= 1200  # 古交
    assert max(s.elevation_m for s in catalog.stations) <= 3061  # 五台山 北台


def test_no_secrets_in_the_file() -> None:
    text = STATIONS_YAML.read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        assert "password" not in line.lower()
        assert " pw:" not in line.lower()


def test_json_export(catalog: Catalog) -> None:
    rows = catalog_to_json(catalog)
    assert len(rows) == 207
    assert set(rows[0]) == set(Station.model_fields)
    json.dumps(rows, ensure_ascii=False)
    water = next(r for r in rows if r["kind"] == "water")
    assert water["target_class"] in (1, 2, 3, 4, 5)


def test_loading_is_fast() -> None:
    load_catalog(STATIONS_YAML)  # warm imports and caches
    start = time.perf_counter()
    load_catalog(STATIONS_YAML)
    assert time.perf_counter() - start < 0.5
