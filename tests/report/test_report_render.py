"""The annual report: its numbers read back out of the HTML equal ``evaluate_year``; it renders
to PDF with the CJK font embedded; headless Chromium opens it without console errors."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from envmon import review
from envmon.catalog import load_catalog
from envmon.evaluate.assessment import evaluate_year
from envmon.evaluate.derive import process_dirty
from envmon.evaluate.regions import REGIONS
from envmon.report import render_report
from envmon.report.data import ReportData, collect
from envmon.report.render import render_html
from envmon.timeutil import BEIJING

from ..conftest import close_template
from .chromium import chromium_binary, open_pages, paper_fraction
from .conftest import REPO, TARGETS

Conn = psycopg.AsyncConnection[tuple[object, ...]]


class EvalNumbers(HTMLParser):
    """Collects (data-eval path, data-value, displayed text) of every marked element."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self._open: list[tuple[str, str]] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-eval" in a:
            self._open.append((a["data-eval"] or "", a.get("data-value") or ""))
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == "span":
            path, value = self._open.pop()
            self.found.append((path, value, "".join(self._text).strip()))


STATUS_ZH = {
    "met": "已完成",
    "not_met": "未完成",
    "on_track": "按进度可完成",
    "at_risk": "存在风险",
    "off_track": "难以完成",
    "no_target": "未设目标",
}


def pdf_objects(data: bytes) -> bytes:
    """The PDF's objects with every Flate stream inflated (object streams hide /Type /Page)."""
    out = [data]
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.DOTALL):
        try:
            out.append(zlib.decompress(m.group(1)))
        except zlib.error:
            continue  # an image or font program: not object text
    return b"\n".join(out)


def _lookup(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node[part]
    return node


def _parse_shown(text: str, expected: Any) -> Any:
    """The displayed text back to a value of the JSON's kind (percentages → fractions)."""
    if expected is None:
        return None if text == "—" else text
    if isinstance(expected, str):
        return next(k for k, v in STATUS_ZH.items() if v == text)
    if text.endswith("%"):
        return round(float(text[:-1]) / 100, 4)
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


FINISHED = date(2027, 1, 10)  # 2026 is over: final statuses
YEAR_TO_DATE = date(2026, 6, 30)  # mid-year: projections


@pytest.fixture(scope="module")
async def finished_html(report_db: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2026 report (as HTML) after the year's end, rendered once for the module."""
    async with await psycopg.AsyncConnection.connect(report_db) as conn:
        return await render_report(
            conn,
            2026,
            "html",
            tmp_path_factory.mktemp("report") / "report.html",
            targets=TARGETS,
            as_of=FINISHED,
        )


@pytest.mark.parametrize("as_of", [FINISHED, YEAR_TO_DATE], ids=["finished", "ytd"])
async def test_every_target_number_equals_evaluate_year(
    report_conn: Conn, finished_html: Path, tmp_path: Path, as_of: date
) -> None:
    out = finished_html
    if as_of != FINISHED:
        out = await render_report(
            report_conn, 2026, "html", tmp_path / "report.html", targets=TARGETS, as_of=as_of
        )
    parser = EvalNumbers()
    parser.feed(out.read_text(encoding="utf-8"))
    expected = {r: await evaluate_year(report_conn, 2026, r, TARGETS, as_of=as_of) for r in REGIONS}
    assert len(parser.found) >= 3 * 18
    seen = set()
    for path, raw_value, shown in parser.found:
        region, key = path.split(".", 1)
        want = _lookup(expected[region], key)
        got = json.loads(raw_value)
        assert got == want, f"{path}: data-value {got!r} != evaluate_year {want!r}"
        assert _parse_shown(shown, want) == want, f"{path}: shown {shown!r} != {want!r}"
        seen.add(path)
    # The headline numbers of every region are in the report.
    for r in REGIONS:
        for key in (
            "pm25.mean",
            "pm25.baseline",
            "pm25.target",
            "pm25.status",
            "good_days.ratio",
            "good_days.good",
            "good_days.valid",
            "good_days.status",
            "water.ratio",
            "water.status",
        ):
            assert f"{r}.{key}" in seen, f"{r}.{key} missing from the report"
    zone = expected["zone"]
    assert zone["finished"] is (as_of.year == 2027)
    if not zone["finished"]:
        assert "zone.pm25.projection" in seen
    # The dust period (太原市, 10–12 April) is deducted from 太原市's values only: a zone
    # value is deducted for a zone-wide period (days with invalid PM2.5 are not dust days).
    if as_of.month > 4 or as_of.year > 2026:
        assert 1 <= expected["taiyuan"]["pm25"]["dust_days"] <= 3
        assert expected["zone"]["pm25"]["dust_days"] == 0
        assert expected["xinzhou"]["pm25"]["dust_days"] == 0


def test_report_contents(finished_html: Path) -> None:
    html = finished_html.read_text(encoding="utf-8")
    # Both editions side by side for the year of the switch.
    assert "HJ 633-2012 / GB 3095-2012 / HJ 663-2013" in html
    assert "HJ 633-2026 / GB 3095-2026 / HJ 663-2026" in html
    assert "新旧标准对比" in html
    # A calendar cell per day with data, in the HJ 633 colours.
    cells = re.findall(r'<td style="background: (#[0-9A-F]{6})"[^>]*title="2026-', html)
    assert len(cells) >= 300
    assert set(cells) <= {"#00E400", "#FFFF00", "#FF7E00", "#FF0000", "#99004C", "#7E0023"}
    # Ranking, water table, map and trend figures, completeness with the exclusions.
    assert "尖草坪" in html and "开发区" in html and "代县桥" in html
    assert html.count("data:image/png;base64,") == 3
    # Issue 13: the weather-normalised PM2.5 section says why it is missing (this dataset
    # has no weather stations; the method is tested in tests/evaluate/test_normalise.py).
    assert "气象归一化 PM₂.₅" in html and "未做气象归一化" in html and "no weather data" in html
    assert "上兰（清洁对照点）" in html
    # Control levels in Chinese (issue 13: the table printed national/provincial).
    assert '<td class="l">国控</td>' in html and ">national<" not in html
    assert "沙尘过程（测试）" in html
    assert "value out of range" in html or "below" in html or "范围" in html or "n/a" in html
    # 24 months of data: the regional trends are computed, not just "insufficient".
    assert "显著" in html or "无显著趋势" in html


async def test_pdf_and_chromium(report_conn: Conn, finished_html: Path, tmp_path: Path) -> None:
    html = finished_html
    pdf = await render_report(
        report_conn, 2026, "pdf", tmp_path / "r.pdf", targets=TARGETS, as_of=FINISHED
    )
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    objects = pdf_objects(data)
    assert len(re.findall(rb"/Type\s*/Page\b", objects)) >= 4
    # The Chinese text is set in an embedded (subset) CJK font, not left to the reader.
    assert re.search(rb"/FontName\s*/[A-Z]{6}\+Noto-?Sans-?CJK", objects), "CJK font not embedded"
    assert re.search(rb"/FontFile[23]?\s*\d+ 0 R", objects)
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): page not opened")
    shot, shot_pdf = tmp_path / "report.png", tmp_path / "pdf.png"
    page, pdf_page = await open_pages(
        [(html.resolve().as_uri(), shot), (pdf.resolve().as_uri(), shot_pdf)],
        tmp_path / "profile",
    )
    assert page["errors"] == [] and pdf_page["errors"] == []
    assert "年度评估报告" in page["title"]
    assert shot.stat().st_size > 50_000 and page["height"] > 3000
    # The viewer drew the pages (white paper), not just its dark frame.
    white = paper_fraction(shot_pdf.read_bytes())
    assert white > 0.2, f"the PDF pages were not drawn ({white:.0%} white)"


@pytest.fixture
async def report_copy(report_db: str, admin_dsn: str) -> AsyncIterator[str]:
    """A copy of the report dataset, for a test that reviews (changes) its data."""
    source = str(psycopg.conninfo.conninfo_to_dict(report_db)["dbname"])
    name = f"{source}_review"
    close_template(admin_dsn, source)  # TimescaleDB's scheduler holds a session
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(source)
                )
            )
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false ALLOW_CONNECTIONS true").format(
                    sql.Identifier(source)
                )
            )
    yield psycopg.conninfo.make_conninfo(report_db, dbname=name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


async def test_report_rests_on_reviewed_data(report_copy: str) -> None:
    # Issue 14: a day of PM2.5 invalidated by a reviewer leaves the report's figures and the
    # report says so ("审核数据：截至 …"); the restore brings the day back.
    station = "air-taiyuan-jiancaoping"
    day = datetime(2026, 5, 20, tzinfo=BEIJING)
    catalog = load_catalog(REPO / "config" / "stations.yaml")
    sel = review.selector(
        catalog,
        "尖草坪",
        "pm25",
        day,
        day + timedelta(days=1),
        now=datetime(2027, 1, 10, tzinfo=BEIJING),
    )

    async def gathered(conn: Conn) -> tuple[int, ReportData]:
        await process_dirty(conn)
        data = await collect(conn, 2026, TARGETS, as_of=FINISHED)
        [row] = [c for c in data.completeness if c["id"] == station]
        return int(row["pm25_days"]), data

    async with await psycopg.AsyncConnection.connect(report_copy) as conn:
        before, data = await gathered(conn)
        assert data.review is not None and data.review.invalid_readings == 0
        assert "本时段无经审核判为无效的读数" in render_html(data)
        await review.apply(conn, "invalidate", sel, reason="仪器故障", by="王工")
        await conn.commit()
        after, data = await gathered(conn)
        assert after == before - 1
        assert data.review is not None
        assert (data.review.invalid_readings, data.review.invalid_station_hours) == (24, 24)
        assert data.review.actions == 1 and data.review.last_action is not None
        html = render_html(data)
        line = re.search(r'<p class="meta" id="reviewed">(.*?)</p>', html, re.S)
        assert line is not None
        assert "经审核判为无效的读数 24 条（24 个站点小时），未计入统计" in line.group(1)
        assert "审核操作 1 次" in line.group(1)
        await review.apply(conn, "restore", sel, reason="复核", by="王工")
        await conn.commit()
        restored, data = await gathered(conn)
        assert restored == before
        assert data.review is not None and data.review.invalid_readings == 0
        assert data.review.actions == 2
