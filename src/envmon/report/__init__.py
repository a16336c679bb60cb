"""The annual assessment report (HTML and PDF, in Chinese): ``render_report``."""

from envmon.report.render import ReportError, render_html, render_report

__all__ = ["ReportError", "render_html", "render_report"]
