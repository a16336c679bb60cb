"""The shipped catalog, config/stations.yaml: counts, coverage, and the reference's names."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from envmon.catalog import COUNTIES, Catalog, Station, catalog_to_json, county_of, load_catalog

STATIONS_YAML = Path(__file__).resolve().parents[2] / "config" / "stations.yaml"

REFERENCE = Path("/work/shared/reference/stations")  # used only when present
# The real stations (shared/reference/stations/*.csv, issue 15), inside the zone.
# Air: CNEMC code → (name, county); the 9 published in the CNEMC feed in 2026 are the
# city evaluation points; 上兰 and 涧河 are clean-control points (对照点).
VERIFIED_AIR = {
    "1081A": ("尖草坪", "尖草坪区"),
    "1088A": ("南寨", "尖草坪区"),
    "4010A": ("育英中学", "杏花岭区"),
    "4074A": ("西矿街336号", "万柏林区"),
    "4075A": ("迎宾北路9号", "尖草坪区"),
    "4076A": ("迎泽大街248号", "迎泽区"),
    "1083A": ("上兰", "尖草坪区"),
    "1086A": ("桃园", "杏花岭区"),
    "3185A": ("巨轮", "杏花岭区"),
    "3661A": ("坝陵桥", "杏花岭区"),
    "1082A": ("涧河", "杏花岭区"),
    "2181A": ("开发区", "忻府区"),
    "2182A": ("会展中心", "忻府区"),
    "3208A": ("市政府", "忻府区"),
    "2180A": ("机引", "忻府区"),
}
EVALUATION_POINTS = {
    "1081A",
    "1088A",
    "4010A",
    "4074A",
    "4075A",
    "4076A",
    "2181A",
    "2182A",
    "3208A",
}
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
    ("青羊河", "茨沟营桥"): ("繁峙县", "provincial"),
    ("汾河", "上兰"): ("尖草坪区", "national"),
    ("汾河", "迎泽桥"): ("迎泽区", "national"),
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
    by_code = {s.station_no: s for s in catalog.of_kind("air") if s.station_no}
    assert set(by_code) == set(VERIFIED_AIR)
    for code, (name, county) in VERIFIED_AIR.items():
        station = by_code[code]
        assert (station.name, station.county) == (name, county), code
        assert station.control_level == "national"
        assert station.verified and station.source
        assert station.evaluation_point == (code in EVALUATION_POINTS), code
    assert not by_code["2180A"].active  # 机引 stopped 2019-03-13


def test_city_evaluation_points(catalog: Catalog) -> None:
    points = {s.station_no for s in catalog.of_kind("air") if s.evaluation_point}
    assert points == EVALUATION_POINTS
    assert all(not s.evaluation_point for s in catalog.stations if s.kind != "air")


def test_shanglan_is_a_clean_control_point(catalog: Catalog) -> None:
    for name in ("上兰", "涧河"):
        (point,) = _named(catalog, "air", name)
        assert point.clean_control and not point.assessed and not point.evaluation_point


def test_placeholders_are_named_as_such(catalog: Catalog) -> None:
    for s in catalog.stations:
        if not s.verified and s.name not in ("古交城区", "阳曲县环保局"):
            assert "占位" in s.name and "未核实" in s.name, s.id
            assert s.station_no is None and "PLACEHOLDER" in (s.notes or ""), s.id


def _rows(name: str) -> list[dict[str, str]]:
    with (REFERENCE / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_verified_entries_match_the_reference(catalog: Catalog) -> None:
    """Every verified air code and weather id, with its coordinates, is in the reference CSVs."""
    if not REFERENCE.is_dir():
        pytest.skip("shared/reference/stations/ is not on this machine")
    air = {r["code"]: r for r in _rows("air.csv")}
    for s in catalog.of_kind("air"):
        if s.station_no:
            row = air[s.station_no]
            assert (s.lon, s.lat) == (float(row["lon"]), float(row["lat"])), s.id
    wx = {r["station_id"]: r for r in _rows("weather.csv")}
    for s in catalog.of_kind("weather"):
        if s.station_no:
            assert s.elevation_m == float(wx[s.station_no]["elevation_m"]), s.id


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
        assert section.basin == ("黄河" if river == "汾河" else "海河")
        assert section.waterbody == "river"


def test_water_targets_are_configurable_placeholders(catalog: Catalog) -> None:
    # Target classes are not public: every section carries the documented placeholder Ⅲ.
    water = catalog.of_kind("water")
    assert {s.target_class for s in water} == {3}
    assert all("target_class NOT PUBLIC" in (s.notes or "") for s in water)
    fen = [s for s in water if s.river == "汾河"]
    assert {s.name for s in fen} == {"上兰", "迎泽桥"}
    assert all(s.basin == "黄河" and s.verified for s in fen)


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
    # 12 regional automatic stations and 五台山中台顶 are real; the rest placeholders.
    assert sum(s.verified for s in regional) == 13


def test_only_reference_names_are_verified(catalog: Catalog) -> None:
    verified = {(s.kind, s.name) for s in catalog.stations if s.verified}
    assert {("air", n) for n, _ in VERIFIED_AIR.values()} <= verified
    assert {("water", name) for _, name in VERIFIED_WATER} <= verified
    assert {("weather", name) for name, _ in VERIFIED_WEATHER.values()} <= verified
    assert len(verified) == 15 + 14 + 23
    assert all(s.source for s in catalog.stations if s.verified)


def test_elevations_are_plausible(catalog: Catalog) -> None:
    assert 760 <= (catalog.by_id["wx-53677"].elevation_m or 0) <= 850
    assert 1000 <= (catalog.by_id["wx-53763"].elevation_m or 0) <= 1200  # 古交
    known = [s.elevation_m for s in catalog.stations if s.elevation_m is not None]
    assert max(known) <= 3061  # 五台山 北台
    # Elevations come from a source or are absent: no placeholder has one.
    assert all(s.elevation_m is None for s in catalog.stations if not s.verified)


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


def test_cnemc_poller_maps_stations_by_cnemc_code(catalog: Catalog) -> None:
    """config/sources.yaml: the national feed's StationCode is the catalog's station_no."""
    from envmon.ingest.sources import load_sources
    from envmon.ingest.sources.base import StationMap

    config = load_sources(STATIONS_YAML.parent / "sources.yaml")
    (cnemc,) = [s for s in config.sources if s.name == "cnemc-air"]
    codes = StationMap.build(cnemc, catalog, ["air"]).codes
    assert codes["1081A"] == "air-taiyuan-jiancaoping"
    assert codes["4076A"] == "air-taiyuan-yingzedajie248"
    assert codes["3208A"] == "air-xinzhou-shizhengfu"
    active = {s.station_no for s in catalog.of_kind("air") if s.station_no and s.active}
    assert set(codes) == active
