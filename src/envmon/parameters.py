"""The parameters envmon stores, in canonical units (one table, used everywhere).

Canonical units: µg/m³ for gases and particles, mg/m³ for CO, mg/L for water
chemistry (standards.md §5, §7.8). ``hj212`` is the HJ 212-2017 Annex B code
(HJ 524/525 codes where Annex B has none: O3 a05024, turbidity w01003).
``low``/``high`` bound physically plausible values; outside them a reading is
quarantined, not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["air", "water", "weather"]


@dataclass(frozen=True, slots=True)
class Parameter:
    code: str
    hj212: str
    name: str
    unit: str
    kind: Kind
    low: float
    high: float
    is_concentration: bool = True


PARAMETERS: tuple[Parameter, ...] = (
    # Ambient air (GB 3095 basic items). Gases at 298.15 K reference state,
    # particles at actual conditions (GB 3095-2012 amendment 2018, GB 3095-2026 §4.3).
    Parameter("pm25", "a34004", "PM2.5", "µg/m³", "air", 0.0, 2000.0),
    Parameter("pm10", "a34002", "PM10", "µg/m³", "air", 0.0, 5000.0),
    Parameter("so2", "a21026", "二氧化硫", "µg/m³", "air", 0.0, 5000.0),
    Parameter("no2", "a21004", "二氧化氮", "µg/m³", "air", 0.0, 3000.0),
    Parameter("o3", "a05024", "臭氧", "µg/m³", "air", 0.0, 1500.0),
    Parameter("co", "a21005", "一氧化碳", "mg/m³", "air", 0.0, 150.0),
    # Surface water (GB 3838-2002 Table 1 and the 9+X automatic-station set).
    Parameter("ph", "w01001", "pH", "1", "water", 0.0, 14.0, is_concentration=False),
    Parameter("do", "w01009", "溶解氧", "mg/L", "water", 0.0, 25.0),
    Parameter("codmn", "w01019", "高锰酸盐指数", "mg/L", "water", 0.0, 200.0),
    Parameter("cod", "w01018", "化学需氧量", "mg/L", "water", 0.0, 2000.0),
    Parameter("bod5", "w01017", "五日生化需氧量", "mg/L", "water", 0.0, 1000.0),
    Parameter("nh3n", "w21003", "氨氮", "mg/L", "water", 0.0, 200.0),
    Parameter("tp", "w21011", "总磷", "mg/L", "water", 0.0, 50.0),
    Parameter("tn", "w21001", "总氮", "mg/L", "water", 0.0, 200.0),
    Parameter("temp", "w01010", "水温", "°C", "water", -5.0, 45.0, is_concentration=False),
    Parameter(
        "conductivity",
        "w01014",
        "电导率",
        "µS/cm",
        "water",
        0.0,
        20000.0,
        is_concentration=False,
    ),
    Parameter("turbidity", "w01003", "浊度", "NTU", "water", 0.0, 10000.0, is_concentration=False),
    # Weather (CMA surface observations; HJ 212 met items a010xx).
    Parameter("air_temp", "a01001", "气温", "°C", "weather", -50.0, 50.0, is_concentration=False),
    Parameter("rh", "a01002", "相对湿度", "%", "weather", 0.0, 100.0, is_concentration=False),
    # HJ 212 sends pressure in kPa (Annex B); stored in hPa. 2208 m 五台山 sits near 770 hPa.
    Parameter(
        "pressure", "a01006", "气压", "hPa", "weather", 500.0, 1100.0, is_concentration=False
    ),
    Parameter("wind_speed", "a01007", "风速", "m/s", "weather", 0.0, 75.0, is_concentration=False),
    Parameter("wind_dir", "a01008", "风向", "°", "weather", 0.0, 360.0, is_concentration=False),
    Parameter("precip", "", "降水量", "mm", "weather", 0.0, 300.0, is_concentration=False),
    Parameter("visibility", "", "能见度", "m", "weather", 0.0, 100000.0, is_concentration=False),
)

BY_CODE: dict[str, Parameter] = {p.code: p for p in PARAMETERS}

# Decimals a value is published with (exports round to them, GB/T 8170). Air:
# whole µg/m³, CO 0.1 mg/m³ (HJ 663-2013 §4.2, standards.md §1.4). Water: the
# reference has no publication rule; enough decimals to show every GB 3838 class
# limit (TP of lakes 0.025 mg/L, NH3-N 0.15 mg/L, DO 7.5 mg/L). Weather: the CMA
# resolutions (0.1 °C, whole %, 0.1 hPa, 0.1 m/s, whole degrees, 0.1 mm, whole m).
PUBLISHED_DECIMALS: dict[str, int] = {
    **{p: 0 for p in ("pm25", "pm10", "so2", "no2", "o3")},
    "co": 1,
    "ph": 2,
    "do": 2,
    "codmn": 1,
    "cod": 1,
    "bod5": 1,
    "nh3n": 3,
    "tp": 3,
    "tn": 2,
    "temp": 1,
    "conductivity": 0,
    "turbidity": 1,
    "air_temp": 1,
    "rh": 0,
    "pressure": 1,
    "wind_speed": 1,
    "wind_dir": 0,
    "precip": 1,
    "visibility": 0,
}
BY_HJ212: dict[str, Parameter] = {p.hj212: p for p in PARAMETERS if p.hj212}

# Periods a reading may be labelled with; the timestamp is the start of the
# period, as HJ 212 labels DataTime (standards.md §7.5).
PERIODS: tuple[str, ...] = ("rt", "1min", "5min", "1h", "4h", "1d")
