"""The report's figures (matplotlib, Agg, object API: no pyplot state, safe in a worker thread).

Chinese labels need a CJK font: Noto Sans CJK SC (Debian ``fonts-noto-cjk``) or
any of the usual alternatives. Without one the figures are still drawn, with a
warning logged once, and the Chinese glyphs show as boxes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from functools import cache
from itertools import pairwise
from typing import Any, Final

import matplotlib
import numpy as np

matplotlib.use("Agg")

from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from envmon.catalog.geography import COUNTIES
from envmon.evaluate.trends import MonthValue, TrendResult

logger = logging.getLogger(__name__)

CJK_FONTS: Final = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
)
# 环办〔2011〕22号 status colours by class (I–II blue, III green, IV yellow, V orange,
# 劣V red; UNCERTAIN for all but red, standards.md §6.2).
WATER_COLOURS: Final = {
    1: "#1E90FF",
    2: "#1E90FF",
    3: "#00A651",
    4: "#F2C200",
    5: "#FF7E00",
    6: "#E00000",
}
CITY_FILL: Final = {"太原市": "#EEF3F8", "忻州市": "#F6F3EA"}


@cache
def cjk_font() -> str | None:
    """The first installed CJK font family (None, logged once, when there is none)."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for name in CJK_FONTS:
        if name in installed:
            return name
    logger.warning(
        "no CJK font found (install Debian's fonts-noto-cjk): Chinese labels will not render"
    )
    return None


def _figure(width: float, height: float) -> Figure:
    font = cjk_font()
    fig = Figure(figsize=(width, height), dpi=130)
    FigureCanvasAgg(fig)
    matplotlib.rcParams["axes.unicode_minus"] = False
    if font:
        matplotlib.rcParams["font.family"] = [font, "DejaVu Sans"]
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def monthly_chart(
    pm25: Sequence[float | None], good: Sequence[int], valid: Sequence[int], title: str
) -> bytes:
    """Monthly PM2.5 (bars) and good days (line) of one year."""
    fig = _figure(7.2, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    months = list(range(1, 13))
    ax.bar(months, [v if v is not None else 0 for v in pm25], color="#6C8EBF", label="PM2.5 月均值")
    for m, v in zip(months, pm25, strict=True):
        if v is None:
            ax.text(m, 0.5, "无效", ha="center", va="bottom", fontsize=7, color="#999999")
    ax.set_xticks(months, [f"{m}月" for m in months])
    ax.set_ylabel("PM2.5 (µg/m³)")
    ax.set_title(title, fontsize=10)
    ax2 = ax.twinx()
    ax2.plot(months, good, color="#00A651", marker="o", label="优良天数")
    ax2.plot(months, valid, color="#999999", linestyle="--", marker=".", label="有效天数")
    ax2.set_ylabel("天数")
    ax2.set_ylim(0, 32)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    # Below the axes: inside, it covered the good-days line (near the top in a clean month).
    ax.legend(
        h1 + h2,
        l1 + l2,
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncols=3,
        frameon=False,
    )
    return _png(fig)


def _centroid(ring: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Area centroid of a closed ring (shoelace)."""
    a = cx = cy = 0.0
    for (x1, y1), (x2, y2) in pairwise(ring):
        cross = x1 * y2 - x2 * y1
        a += cross
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    return cx / (3 * a), cy / (3 * a)


# Counties narrower than this (degrees of longitude) are Taiyuan's urban districts: their
# names go in a column east of the city (outside the zone there) with leader lines,
# instead of piling up at the seats.
SMALL_COUNTY_DEG: Final = 0.35


def _county_labels(ax: Any) -> None:
    small = []
    for county in COUNTIES.values():
        x, y = _centroid(county.ring)
        if county.bbox[2] - county.bbox[0] < SMALL_COUNTY_DEG:
            small.append((y, x, county.name))
        else:
            ax.text(x, y, county.name, fontsize=7, ha="center", va="center", color="#444444")
    if not small:
        return
    small.sort(reverse=True)  # north first, so the leader lines do not cross
    east = max(c.bbox[2] for c in COUNTIES.values() if c.name in {n for _, _, n in small})
    top = max(y for y, _, _ in small)
    for i, (y, x, name) in enumerate(small):
        ty = top - i * 0.055
        ax.annotate(
            name,
            xy=(x, y),
            xytext=(east + 0.1, ty),
            fontsize=7,
            ha="left",
            va="center",
            color="#444444",
            arrowprops={"arrowstyle": "-", "color": "#888888", "linewidth": 0.5},
        )


def map_chart(stations: Sequence[dict[str, Any]], water_class: dict[str, int | None]) -> bytes:
    """Air stations and water sections on the zone's 12 county outlines."""
    fig = _figure(6.4, 7.6)
    ax = fig.add_subplot(1, 1, 1)
    for county in COUNTIES.values():
        ax.add_patch(
            Polygon(
                county.ring,
                closed=True,
                facecolor=CITY_FILL.get(county.city, "#F4F4F4"),
                edgecolor="#7A7A7A",
                linewidth=0.7,
            )
        )
    _county_labels(ax)
    air = [s for s in stations if s["kind"] == "air"]
    ax.scatter(
        [s["lon"] for s in air],
        [s["lat"] for s in air],
        marker="^",
        s=28,
        color="#333333",
        label="空气质量监测点",
        zorder=3,
    )
    water = [s for s in stations if s["kind"] == "water"]
    for cls in sorted({water_class.get(s["id"]) or 0 for s in water}):
        group = [s for s in water if (water_class.get(s["id"]) or 0) == cls]
        label = (
            "水质断面（无数据）"
            if cls == 0
            else f"水质断面 {('Ⅰ', 'Ⅱ', 'Ⅲ', 'Ⅳ', 'Ⅴ', '劣Ⅴ')[cls - 1]}类"
        )
        ax.scatter(
            [s["lon"] for s in group],
            [s["lat"] for s in group],
            marker="o",
            s=34,
            color=WATER_COLOURS.get(cls, "#BBBBBB"),
            edgecolors="#333333",
            linewidths=0.5,
            label=label,
            zorder=4,
        )
    lons = [p[0] for c in COUNTIES.values() for p in c.ring]
    lats = [p[1] for c in COUNTIES.values() for p in c.ring]
    ax.set_xlim(min(lons) - 0.05, max(lons) + 0.05)
    ax.set_ylim(min(lats) - 0.05, max(lats) + 0.05)
    ax.set_aspect(1 / 0.79)  # ≈ 1/cos(38°): degrees of longitude are shorter here
    ax.set_xlabel("经度 (°E)")
    ax.set_ylabel("纬度 (°N)")
    # Below the map: inside, the legend hid stations and county lines.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncols=3, frameon=False)
    ax.set_title("监测点位与县区（WGS84）", fontsize=10)
    return _png(fig)


def normalised_chart(months: Sequence[dict[str, Any]], title: str) -> bytes:
    """Observed and weather-normalised monthly PM2.5 (Grange et al. 2018)."""
    fig = _figure(7.2, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    xs = np.array([f"{m['month']}-01" for m in months], dtype="datetime64[D]")
    obs = [np.nan if m["observed"] is None else m["observed"] for m in months]
    norm = [np.nan if m["normalised"] is None else m["normalised"] for m in months]
    ax.plot(xs, obs, marker=".", linewidth=0.8, color="#9AA7B8", label="观测月均值")
    ax.plot(xs, norm, linewidth=1.6, color="#C0392B", label="气象归一化月均值")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("PM2.5 (µg/m³)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2, frameon=False)
    fig.autofmt_xdate()
    return _png(fig)


def trend_chart(series: Sequence[MonthValue], result: TrendResult | None, title: str) -> bytes:
    """Monthly means with the Theil–Sen line (when the trend could be computed)."""
    fig = _figure(7.2, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    xs = np.array([v.month for v in series if v.mean is not None], dtype="datetime64[D]")
    ys = [v.mean for v in series if v.mean is not None]
    ax.plot(xs, ys, marker=".", linewidth=0.8, color="#6C8EBF", label="月均值（有效月）")
    if result is not None and result.status == "ok" and result.slope_per_year is not None:
        t = [i / 12 for i in range(len(series))]
        line = [(result.intercept or 0.0) + result.slope_per_year * x for x in t]
        ax.plot(
            np.array([v.month for v in series], dtype="datetime64[D]"),
            line,
            color="#C0392B",
            linewidth=1.2,
            label=f"Theil–Sen {result.slope_per_year:+.2f}/年",
        )
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("µg/m³")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return _png(fig)
