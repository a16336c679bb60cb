"""The zone's 12 county polygons: codes, validity, tiling, and known places."""

from __future__ import annotations

import itertools

import pytest

from envmon.catalog import geography
from envmon.catalog.geography import (
    BOUNDARY_SOURCE,
    CITIES,
    COUNTIES,
    County,
    counties_of,
    county_of,
    point_in_county,
)

Point = tuple[float, float]

# GB/T 2260 codes, as carried in the DataV source files (adcode).
EXPECTED = {
    "尖草坪区": ("140108", "太原市"),
    "杏花岭区": ("140107", "太原市"),
    "迎泽区": ("140106", "太原市"),
    "万柏林区": ("140109", "太原市"),
    "古交市": ("140181", "太原市"),
    "阳曲县": ("140122", "太原市"),
    "忻府区": ("140902", "忻州市"),
    "定襄县": ("140921", "忻州市"),
    "原平市": ("140981", "忻州市"),
    "繁峙县": ("140924", "忻州市"),
    "代县": ("140923", "忻州市"),
    "五台县": ("140922", "忻州市"),
}


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _proper_cross(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """Segments cross at a point interior to both (shared endpoints do not count)."""
    if {p1, p2} & {q1, q2}:
        return False
    d1, d2 = _orient(q1, q2, p1), _orient(q1, q2, p2)
    d3, d4 = _orient(p1, p2, q1), _orient(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def _edges(county: County) -> list[tuple[Point, Point]]:
    return list(itertools.pairwise(county.ring))


def test_twelve_counties_with_codes_and_cities() -> None:
    assert CITIES == ("太原市", "忻州市")
    assert {name: (c.code, c.city) for name, c in COUNTIES.items()} == EXPECTED
    assert len(counties_of("太原市")) == 6
    assert len(counties_of("忻州市")) == 6
    assert counties_of("晋中市") == ()
    for county in COUNTIES.values():
        assert county.pinyin and county.english
        assert county.code.startswith("1401" if county.city == "太原市" else "1409")


def test_boundaries_come_from_a_recorded_source() -> None:
    assert "DataV" in BOUNDARY_SOURCE
    assert "GeoMapData_CN" in BOUNDARY_SOURCE
    for county in COUNTIES.values():
        assert county.approximate is False
        assert 0 < county.tolerance_m <= 1500


@pytest.mark.parametrize("name", list(EXPECTED))
def test_ring_is_closed_small_and_simple(name: str) -> None:
    county = COUNTIES[name]
    ring = county.ring
    assert ring[0] == ring[-1]
    assert 4 <= len(ring) - 1 <= 60
    assert len(set(ring[:-1])) == len(ring) - 1, "a vertex repeats"
    edges = _edges(county)
    for (i, e1), (j, e2) in itertools.combinations(enumerate(edges), 2):
        assert not _proper_cross(*e1, *e2), f"{name}: edges {i} and {j} cross"
    lon0, lat0, lon1, lat1 = county.bbox
    assert 111.5 < lon0 < lon1 < 114.1
    assert 37.5 < lat0 < lat1 < 39.5


def test_no_two_counties_cross() -> None:
    for a, b in itertools.combinations(COUNTIES.values(), 2):
        ax0, ay0, ax1, ay1 = a.bbox
        bx0, by0, bx1, by1 = b.bbox
        if ax1 < bx0 or bx1 < ax0 or ay1 < by0 or by1 < ay0:
            continue
        for e1 in _edges(a):
            for e2 in _edges(b):
                assert not _proper_cross(*e1, *e2), f"{a.name} and {b.name} cross at {e1}"


def test_neighbours_share_their_border() -> None:
    def shared(a: str, b: str) -> int:
        return len(set(COUNTIES[a].ring) & set(COUNTIES[b].ring))

    for a, b in [
        ("忻府区", "定襄县"),
        ("忻府区", "原平市"),
        ("原平市", "代县"),
        ("代县", "繁峙县"),
        ("五台县", "繁峙县"),
        ("五台县", "定襄县"),
        ("阳曲县", "忻府区"),
        ("阳曲县", "尖草坪区"),
        ("尖草坪区", "万柏林区"),
        ("迎泽区", "杏花岭区"),
        ("古交市", "万柏林区"),
    ]:
        assert shared(a, b) >= 2, (a, b)


def test_counties_do_not_overlap_on_a_grid() -> None:
    lon0 = min(c.bbox[0] for c in COUNTIES.values())
    lat0 = min(c.bbox[1] for c in COUNTIES.values())
    lon1 = max(c.bbox[2] for c in COUNTIES.values())
    lat1 = max(c.bbox[3] for c in COUNTIES.values())
    steps = 120
    inside = 0
    for i, j in itertools.product(range(steps), range(steps)):
        lon = lon0 + (lon1 - lon0) * (i + 0.5) / steps
        lat = lat0 + (lat1 - lat0) * (j + 0.5) / steps
        hits = [c.name for c in COUNTIES.values() if c.contains(lon, lat)]
        assert len(hits) <= 1, (lon, lat, hits)
        inside += len(hits)
    assert inside > steps * steps // 4


@pytest.mark.parametrize(
    ("lon", "lat", "county"),
    [
        (112.49, 37.94, "尖草坪区"),  # Taiyuan, 尖草坪
        (112.73, 38.42, "忻府区"),  # Xinzhou city
        (112.71, 38.73, "原平市"),
        (112.96, 39.07, "代县"),
        (113.26, 39.19, "繁峙县"),
        (112.96, 38.47, "定襄县"),
        (113.25, 38.73, "五台县"),
        (112.17, 37.91, "古交市"),
        (112.67, 38.06, "阳曲县"),
        (112.56, 37.86, "迎泽区"),
        (112.52, 37.86, "万柏林区"),
        (112.57, 37.89, "杏花岭区"),
        (113.59, 39.01, "五台县"),  # 台怀, 五台山 scenic area
    ],
)
def test_known_places_fall_in_their_county(lon: float, lat: float, county: str) -> None:
    assert county_of(lon, lat) == county
    assert point_in_county(lon, lat, county)
    assert point_in_county(lon, lat, COUNTIES[county])


@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        (112.57, 37.74),  # 小店区 (Taiyuan, outside the zone)
        (112.48, 37.72),  # 晋源区
        (112.35, 37.60),  # 清徐县
        (111.94, 38.36),  # 静乐县
        (112.30, 39.00),  # 宁武县
        (116.40, 39.90),  # Beijing
        (37.94, 112.49),  # swapped lon/lat
    ],
)
def test_places_outside_the_zone(lon: float, lat: float) -> None:
    assert county_of(lon, lat) is None


def test_seats_lie_in_their_own_county() -> None:
    for county in COUNTIES.values():
        assert county_of(*county.seat) == county.name


def test_unknown_county_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        point_in_county(112.5, 37.9, "小店区")


def test_counties_mapping_is_read_only() -> None:
    with pytest.raises(TypeError):
        geography.COUNTIES["小店区"] = COUNTIES["迎泽区"]  # type: ignore[index]
