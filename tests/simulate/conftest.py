"""Stand-in stations shaped like the catalog's (only the attributes the simulator reads)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from envmon import timeutil
from envmon.simulate import simulate


@dataclass(frozen=True)
class FakeStation:
    id: str
    kind: str
    name: str
    city: str
    county: str
    lon: float
    lat: float
    elevation_m: float
    control_level: str = "national"
    assessed: bool = True
    river: str | None = None
    basin: str | None = None
    waterbody: str | None = None
    target_class: int | None = None
    mn: str | None = None


# Shaped like config/stations.yaml: 14 assessed Taiyuan points plus 上兰, 11 in Xinzhou.
_TY_AIR = (
    ("尖草坪", "尖草坪区", 800.0), ("南寨", "尖草坪区", 816.0), ("巨轮", "杏花岭区", 821.0),
    ("涧河", "杏花岭区", 847.0), ("桃园", "迎泽区", 792.0), ("郝庄", "迎泽区", 851.0),
    ("南宫", "迎泽区", 821.0), ("西山", "万柏林区", 906.0), ("长风西", "万柏林区", 835.0),
    ("小井峪", "万柏林区", 853.0), ("古交城区", "古交市", 1101.0), ("古交东曲", "古交市", 1089.0),
    ("阳曲县环保局", "阳曲县", 991.0), ("阳曲大盂", "阳曲县", 1076.0),
)  # fmt: skip
_XZ_AIR = (
    ("开发区", "忻府区", 856.0), ("会展中心", "忻府区", 808.0), ("忻州市监测站", "忻府区", 801.0),
    ("忻府城北", "忻府区", 818.0), ("定襄县城", "定襄县", 790.0), ("原平城区", "原平市", 830.0),
    ("原平崞阳", "原平市", 877.0), ("代县县城", "代县", 882.0), ("繁峙县城", "繁峙县", 1005.0),
    ("五台县城", "五台县", 961.0), ("五台山台怀", "五台县", 1700.0),
)  # fmt: skip
# (name, river, county, target class, elevation)
WATER = (
    ("河西村", "汾河", "静乐县", 3, 1220.0), ("川胡屯", "汾河", "宁武县", 3, 1340.0),
    ("下茹越", "滹沱河", "繁峙县", 2, 1000.0), ("代县桥", "滹沱河", "代县", 3, 870.0),
    ("定襄桥", "滹沱河", "忻府区", 3, 770.0), ("南庄", "滹沱河", "定襄县", 3, 750.0),
    ("陈家营", "牧马河", "定襄县", 4, 760.0), ("坪上桥", "清水河", "五台县", 1, 900.0),
    ("碛塄", "黄河", "保德县", 1, 820.0), ("关河口", "偏关河", "偏关县", 2, 900.0),
    ("花园子", "朱家川河", "保德县", 3, 950.0), ("雷家坪", "岚漪河", "岢岚县", 2, 1200.0),
    ("梵王寺", "桑干河", "宁武县", 1, 1400.0), ("杜里村", "潴龙河", "繁峙县", 1, 1100.0),
)  # fmt: skip


def make_stations() -> list[FakeStation]:
    out = [
        FakeStation(f"air-ty-{i:02d}", "air", n, "太原市", c, 112.55, 37.85, e)
        for i, (n, c, e) in enumerate(_TY_AIR)
    ]
    out.append(FakeStation("air-ty-sl", "air", "上兰", "太原市", "尖草坪区", 112.43, 38.01,
                           880.0, assessed=False))  # fmt: skip
    out += [
        FakeStation(f"air-xz-{i:02d}", "air", n, "忻州市", c, 112.7, 38.45, e)
        for i, (n, c, e) in enumerate(_XZ_AIR)
    ]
    out += [
        FakeStation(f"water-{i:02d}", "water", n, "忻州市", c, 112.5, 38.8, e, river=r,
                    waterbody="river", target_class=k)
        for i, (n, r, c, k, e) in enumerate(WATER)
    ]  # fmt: skip
    for i in range(167):
        city = "太原市" if i < 60 else "忻州市"
        elev = 2208.0 if i == 166 else 700.0 + (i * 37) % 1100
        lat = 37.5 + (i * 0.013) % 1.9
        out.append(FakeStation(f"wx-{i:03d}", "weather", f"气象站{i}", city, "县", 112.5, lat, elev,
                               control_level="regional"))  # fmt: skip
    return out


@pytest.fixture(scope="session")
def stations() -> list[FakeStation]:
    return make_stations()


def year_frame(stations: list[FakeStation], year: int, kind: str) -> pd.DataFrame:
    """One kind's readings for a calendar year (with a parsed local ``ts`` column)."""
    start, end = timeutil.year_bounds(year)
    df = pd.concat(simulate(stations, start, end, kinds=(kind,)), ignore_index=True)
    df["ts"] = pd.to_datetime(df["time"].str.slice(0, 19))
    return df


@pytest.fixture(scope="session")
def air_2020(stations: list[FakeStation]) -> pd.DataFrame:
    return year_frame(stations, 2020, "air")


@pytest.fixture(scope="session")
def air_2025(stations: list[FakeStation]) -> pd.DataFrame:
    return year_frame(stations, 2025, "air")


@pytest.fixture(scope="session")
def water_2024(stations: list[FakeStation]) -> pd.DataFrame:
    return year_frame(stations, 2024, "water")
