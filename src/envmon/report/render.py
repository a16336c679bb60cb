"""``envmon report --year Y --format html|pdf --out F``: the annual assessment report.

One self-contained HTML file (figures embedded as PNG data URIs, no scripts, no
network) in Chinese, or the same page printed to PDF by WeasyPrint (pango,
fontconfig; Noto Sans CJK for the text). Every number of the targets section
is taken from ``evaluate_year`` and carries ``data-eval``/``data-value``
attributes, so a test can read them back and compare.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal

import jinja2
from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from envmon.catalog.geography import BOUNDARY_SOURCE
from envmon.catalog.model import CONTROL_LEVEL_NAMES
from envmon.errors import ConfigError, EnvmonError
from envmon.evaluate.annual import limit_set_of
from envmon.evaluate.assessment import STATUS_ZH
from envmon.evaluate.regions import REGION_NAMES, REGIONS
from envmon.evaluate.targets import Target, load_targets
from envmon.evaluate.trends import CAPTURE_RULE, MIN_VALID_MONTHS
from envmon.parameters import BY_CODE
from envmon.report import plots
from envmon.report.data import CATEGORY_COLOURS, TREND_YEARS, ReportData, collect, days_of
from envmon.standards import aqi as aqi_std
from envmon.standards import water as water_std
from envmon.timeutil import now, to_beijing

logger = logging.getLogger(__name__)

Conn = AsyncConnection[TupleRow]
ReportFormat = Literal["html", "pdf"]

EDITION_ZH: Final = {
    2012: "HJ 633-2012 / GB 3095-2012 / HJ 663-2013",
    2026: "HJ 633-2026 / GB 3095-2026 / HJ 663-2026",
}
LIMIT_SET_ZH: Final = {
    "2012": "GB 3095-2012 二级",
    "2026-transitional": "GB 3095-2026 二级（过渡期限值）",
    "2026-final": "GB 3095-2026 二级（最终限值）",
}
POLLUTANT_ZH: Final = {
    "so2": "SO₂",
    "no2": "NO₂",
    "pm10": "PM₁₀",
    "pm25": "PM₂.₅",
    "co": "CO",
    "o3": "O₃",
}


class ReportError(EnvmonError):
    """The report cannot be produced (unknown format, PDF engine missing …)."""


def _f(value: float | None, nd: int = 1) -> str:
    return "—" if value is None else f"{value:.{nd}f}"


def _pct(value: float | None, nd: int = 2) -> str:
    return "—" if value is None else f"{value * 100:.{nd}f}%"


def _roman(cls: int | None) -> str:
    return "—" if not cls else water_std.roman(cls)


def _bj(moment: datetime) -> str:
    return to_beijing(moment).strftime("%Y-%m-%d %H:%M")


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("envmon.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(f=_f, pct=_pct, roman=_roman, bj=_bj)
    env.globals.update(
        STATUS_ZH=STATUS_ZH,
        CONTROL_LEVEL_NAMES=CONTROL_LEVEL_NAMES,
        EDITION_ZH=EDITION_ZH,
        LIMIT_SET_ZH=LIMIT_SET_ZH,
        POLLUTANT_ZH=POLLUTANT_ZH,
        REGION_NAMES=REGION_NAMES,
        REGIONS=REGIONS,
        BY_CODE=BY_CODE,
        CATEGORIES=aqi_std.CATEGORIES,
        CATEGORY_COLOURS=CATEGORY_COLOURS,
        WATER_COLOURS=plots.WATER_COLOURS,
        WATER_STATUS=water_std.STATUS,
        CAPTURE_RULE=CAPTURE_RULE,
        MIN_VALID_MONTHS=MIN_VALID_MONTHS,
        BOUNDARY_SOURCE=BOUNDARY_SOURCE,
        limit_set_of=limit_set_of,
        TREND_YEARS=TREND_YEARS,
    )
    return env


def _calendar(data: ReportData) -> list[dict[str, Any]]:
    months: list[dict[str, Any]] = [{"month": m, "days": []} for m in range(1, 13)]
    for d in days_of(data.year):
        aqi, cat = data.calendar.get(d, (None, None))
        months[d.month - 1]["days"].append(
            {
                "day": d.day,
                "date": d.isoformat(),
                "aqi": aqi,
                "colour": CATEGORY_COLOURS.get(cat) if cat else None,
                "dark": cat in (4, 5, 6),
                "future": d >= data.cutoff,
            }
        )
    return months


def _figures(data: ReportData) -> dict[str, str]:
    water_class = data.section_classes or {
        d["id"]: d.get("class") for d in data.evaluations["zone"]["water"]["sections_detail"]
    }
    out = {
        "monthly": _uri(
            plots.monthly_chart(
                [m.pm25 for m in data.months],
                [m.good_days for m in data.months],
                [m.aqi_days for m in data.months],
                f"{REGION_NAMES['zone']} {data.year} 年逐月 PM2.5 与优良天数",
            )
        ),
        "map": _uri(plots.map_chart(data.stations, water_class)),
        "trend": _uri(
            plots.trend_chart(
                data.zone_pm25_series,
                data.zone_pm25_trend,
                f"{REGION_NAMES['zone']} PM2.5 月均值与趋势",
            )
        ),
    }
    nm = data.normalised
    if nm is not None and nm["status"] == "ok":
        out["normalised"] = _uri(
            plots.normalised_chart(
                nm["months"], f"{REGION_NAMES['zone']} PM2.5 观测值与气象归一化值（月均）"
            )
        )
    return out


def render_html(data: ReportData, *, generated: datetime | None = None) -> str:
    """The report page for the gathered data (pure: no database)."""
    template = _env().get_template("annual.html.j2")
    return template.render(
        d=data,
        figures=_figures(data),
        calendar=_calendar(data),
        generated=(generated or now()).strftime("%Y-%m-%d %H:%M"),
        editions=data.annual["editions"],
    )


def _write_pdf(html: str, out: Path) -> None:
    try:
        import weasyprint  # type: ignore[import-untyped]
    except (ImportError, OSError) as err:  # OSError: pango libraries missing
        raise ReportError(
            f"PDF needs WeasyPrint and Debian's pango libraries "
            f"(apt-get install libpango-1.0-0 libpangoft2-1.0-0): {err}"
        ) from err
    weasyprint.HTML(string=html, base_url=str(out.parent)).write_pdf(str(out))


async def render_report(
    conn: Conn,
    year: int,
    fmt: ReportFormat = "html",
    out: Path = Path("report.html"),
    *,
    targets: list[Target] | Path | None = None,
    as_of: date | None = None,
) -> Path:
    """Write the annual assessment report of ``year`` to ``out`` as HTML or PDF.

    ``targets``: the targets (or their YAML file; default ``config/targets.yaml``).
    ``as_of``: data up to and including this Beijing day (default today); a year
    not yet over is reported to date, with the targets' projections.
    """
    if fmt not in ("html", "pdf"):
        raise ReportError(f"unknown report format {fmt!r}; expected html or pdf")
    if targets is None or isinstance(targets, Path):
        targets = load_targets(targets or Path("config/targets.yaml"))
    as_of = as_of or now().date()
    if as_of < date(year, 1, 1):
        raise ConfigError(f"{year} has not begun on {as_of}")
    data = await collect(conn, year, targets, as_of=as_of)
    html = await asyncio.to_thread(render_html, data)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        await asyncio.to_thread(out.write_text, html, encoding="utf-8")
    else:
        await asyncio.to_thread(_write_pdf, html, out)
    logger.info("report written year=%d format=%s path=%s", year, fmt, out)
    return out
