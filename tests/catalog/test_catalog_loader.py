"""Bad catalogs are rejected with one error that names every offending entry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from envmon.catalog import Catalog, Station, load_catalog
from envmon.errors import CatalogError, ConfigError


def air(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "air-taiyuan-julun",
        "kind": "air",
        "name": "巨轮",
        "city": "太原市",
        "county": "杏花岭区",
        "lon": 112.585,
        "lat": 37.905,
        "elevation_m": 800,
        "control_level": "national",
        "verified": True,
        "mn": "140107220000000000000001",
    }
    entry.update(overrides)
    return entry


def water(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "water-hutuo-daixianqiao",
        "kind": "water",
        "name": "代县桥",
        "city": "忻州市",
        "county": "代县",
        "lon": 112.955,
        "lat": 39.045,
        "elevation_m": 868,
        "control_level": "national",
        "verified": True,
        "river": "滹沱河",
        "basin": "海河",
        "waterbody": "river",
        "target_class": 3,
        "mn": "140923320000000000000001",
    }
    entry.update(overrides)
    return entry


def weather(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "wx-53588",
        "kind": "weather",
        "name": "五台山",
        "city": "忻州市",
        "county": "五台县",
        "lon": 113.52,
        "lat": 38.95,
        "elevation_m": 2208,
        "control_level": "national",
        "verified": True,
        "station_no": "53588",
    }
    entry.update(overrides)
    return entry


def write(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "stations.yaml"
    text = yaml.safe_dump({"stations": list(entries)}, allow_unicode=True, sort_keys=False)
    path.write_text("# test catalog\n" + text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    return str(info.value)


def line_of(path: Path, station_id: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line == f"- id: {station_id}")


def test_a_valid_file_loads(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, air(), water(), weather()))
    assert catalog.counts() == {"air": 1, "water": 1, "weather": 1}
    assert catalog.by_id["wx-53588"].station_no == "53588"
    assert catalog.by_mn["140923320000000000000001"].name == "代县桥"
    assert catalog.by_id["air-taiyuan-julun"].assessed is True  # default
    assert catalog.by_id["air-taiyuan-julun"].active is True


def test_catalog_error_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_catalog(write(tmp_path, air(county="小店区")))


def test_duplicate_id(tmp_path: Path) -> None:
    path = write(tmp_path, air(), air(mn="140107220000000000000002", lon=112.59))
    message = load_error(path)
    assert "station 'air-taiyuan-julun'" in message
    assert "duplicate id" in message
    first = line_of(path, "air-taiyuan-julun")
    assert f"first used at line {first}" in message


def test_duplicate_mn(tmp_path: Path) -> None:
    second = air(id="air-taiyuan-jianhe", name="涧河", lon=112.615, lat=37.925)
    message = load_error(write(tmp_path, air(), second))
    assert "station 'air-taiyuan-jianhe'" in message
    assert "already used by station 'air-taiyuan-julun'" in message


def test_duplicate_mn_ignores_case(tmp_path: Path) -> None:
    second = air(id="air-taiyuan-jianhe", lon=112.615, lat=37.925, mn="140107220000000000000001")
    first = air(mn="140107220000000000000001".lower())
    assert "already used" in load_error(write(tmp_path, first, second))


def test_unknown_county(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(id="air-taiyuan-xiaodian", county="小店区")))
    assert "station 'air-taiyuan-xiaodian'" in message
    assert "unknown county '小店区'" in message


def test_coordinates_outside_the_county(tmp_path: Path) -> None:
    # 忻州 city coordinates under a Taiyuan district
    message = load_error(write(tmp_path, air(lon=112.73, lat=38.42)))
    assert "station 'air-taiyuan-julun'" in message
    assert "outside 杏花岭区" in message


def test_swapped_coordinates(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(lon=37.905, lat=112.585)))
    assert "outside 杏花岭区" in message


def test_missing_field(tmp_path: Path) -> None:
    entry = air()
    del entry["lat"]
    message = load_error(write(tmp_path, entry))
    assert "station 'air-taiyuan-julun'" in message
    assert "missing field 'lat'" in message


def test_missing_verified_flag(tmp_path: Path) -> None:
    entry = air()
    del entry["verified"]
    assert "missing field 'verified'" in load_error(write(tmp_path, entry))


def test_county_city_mismatch(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(city="忻州市")))
    assert "station 'air-taiyuan-julun'" in message
    assert "county '杏花岭区' belongs to 太原市, not 忻州市" in message


def test_city_outside_the_zone(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(city="晋中市")))
    assert "city '晋中市' is not in the zone" in message


def test_water_station_without_target_class(tmp_path: Path) -> None:
    entry = water()
    del entry["target_class"]
    message = load_error(write(tmp_path, entry))
    assert "station 'water-hutuo-daixianqiao'" in message
    assert "needs target_class" in message


def test_water_station_without_river_or_basin(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, water(river=None, basin=None)))
    assert "needs river, basin" in message


def test_water_fields_on_an_air_station(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(river="汾河")))
    assert "river only apply to water sections" in message


def test_target_class_out_of_range(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, water(target_class=6)))
    assert "target_class" in message


def test_unknown_field(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(operator="某公司")))
    assert "unknown field 'operator'" in message


@pytest.mark.parametrize("key", ["password", "pw_hash", "secret", "api_token"])
def test_passwords_are_refused(tmp_path: Path, key: str) -> None:
    message = load_error(write(tmp_path, air(**{key: "123456"})))
    assert f"field '{key}' is not allowed" in message
    assert "never" in message
    assert "123456" not in message


def test_mn_must_be_24_hex(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(mn="88888880000001")))
    assert "mn: HJ 212 MN must be exactly 24 hexadecimal characters" in message


def test_unquoted_digits_are_explained(tmp_path: Path) -> None:
    path = tmp_path / "stations.yaml"
    text = write(tmp_path, weather()).read_text(encoding="utf-8")
    path.write_text(text.replace("station_no: '53588'", "station_no: 53588"), encoding="utf-8")
    assert "station_no: write it in quotes" in load_error(path)


def test_bad_kind_and_level(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(kind="noise", control_level="county")))
    assert "kind:" in message
    assert "control_level:" in message


def test_id_prefix_must_match_kind(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(id="water-julun")))
    assert "id of a air station must start with 'air-'" in message


def test_id_must_be_a_slug(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(id="Air Julun")))
    assert "id: must be a slug" in message


def test_national_weather_station_needs_its_number(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, weather(station_no=None)))
    assert "station 'wx-53588'" in message
    assert "5-digit CMA station_no" in message
    message = load_error(write(tmp_path, weather(station_no="53677")))
    assert "must be 'wx-53677'" in message


def test_elevation_out_of_range(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, air(elevation_m=7950)))
    assert "elevation_m 7950" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad_water = water()
    del bad_water["target_class"]
    path = write(
        tmp_path,
        air(county="小店区"),
        bad_water,
        weather(lon=112.73, lat=38.42, mn="xyz"),
    )
    message = load_error(path)
    assert "4 problems" in message
    for station_id in ("air-taiyuan-julun", "water-hutuo-daixianqiao", "wx-53588"):
        assert f"station '{station_id}' (line {line_of(path, station_id)})" in message
    # a field error and a cross-field problem of the same entry, in one pass
    assert "mn: HJ 212 MN" in message
    assert "outside 五台县" in message


def test_entry_without_id_is_named_by_position(tmp_path: Path) -> None:
    entry = water()
    del entry["id"]
    message = load_error(write(tmp_path, air(), entry))
    assert re.search(r"station #2 \(line \d+\): missing field 'id'", message)


def test_field_given_twice(tmp_path: Path) -> None:
    path = write(tmp_path, air())
    text = path.read_text(encoding="utf-8").replace(
        "  lat: 37.905\n", "  lat: 37.905\n  lat: 37.9\n"
    )
    path.write_text(text, encoding="utf-8")
    assert "field 'lat' is given twice" in load_error(path)


def test_entry_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "stations.yaml"
    path.write_text("stations:\n  - air-taiyuan-julun\n", encoding="utf-8")
    assert "station #1 (line 2): expected a mapping" in load_error(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- just a list\n", "expected a mapping with a 'stations:' list"),
        ("", "expected a mapping with a 'stations:' list"),
        ("stations: 3\n", "'stations:' must be a list"),
        ("stations: []\n", "'stations:' is empty"),
        ("stations: [\n", "not valid YAML"),
        ("station:\n  - {}\n", "must be a list"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "stations.yaml"
    path.write_text(text, encoding="utf-8")
    assert expected in load_error(path)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, air())
    path.write_text(path.read_text(encoding="utf-8") + "sources: []\n", encoding="utf-8")
    assert "top-level key 'sources'" in load_error(path)


def test_missing_file(tmp_path: Path) -> None:
    message = load_error(tmp_path / "nope.yaml")
    assert "cannot read the station catalog" in message


def test_catalog_rejects_duplicates_built_in_code() -> None:
    station = Station.model_validate(air())
    with pytest.raises(CatalogError, match="station 'air-taiyuan-julun': duplicate id"):
        Catalog([station, station])


def test_station_is_immutable() -> None:
    station = Station.model_validate(air())
    with pytest.raises(ValueError, match="frozen"):
        station.lon = 113.0  # type: ignore[misc]


def test_catalog_views() -> None:
    stations = [Station.model_validate(e) for e in (air(), water(), weather())]
    catalog = Catalog(stations)
    assert [s.id for s in catalog.of_kind("water")] == ["water-hutuo-daixianqiao"]
    assert catalog.of_kind("air") == (stations[0],)
    assert list(catalog) == stations
    assert Catalog(stations[:1]).counts() == {"air": 1, "water": 0, "weather": 0}
    with pytest.raises(TypeError):
        catalog.by_id["x"] = stations[0]  # type: ignore[index]
