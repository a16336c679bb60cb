"""The API's index of links and its docs page, both rendered from the OpenAPI document.

No JavaScript and nothing fetched from elsewhere: the page works on an office
network without internet access. Browsers (``Accept: text/html``) get HTML, other
clients the JSON index.
"""

from __future__ import annotations

from html import escape
from typing import Any, Final

from envmon import __version__

OPENAPI_PATH: Final = "/api/v1/openapi.json"
DOCS_PATH: Final = "/api/v1/docs"
_STYLE: Final = (
    "body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;max-width:60rem;margin:2rem auto;"
    "padding:0 1rem;line-height:1.45}code{background:#f3f3f3;padding:0 .2em}"
    "table{border-collapse:collapse;margin:.4rem 0 1rem}td,th{border:1px solid #ccc;"
    "padding:.2rem .5rem;text-align:left;vertical-align:top}h3{margin-bottom:.2rem}"
)


def index(doc: dict[str, Any]) -> dict[str, Any]:
    """Links to the document, the docs page and every GET operation without path parameters."""
    links = {"openapi": OPENAPI_PATH, "docs": DOCS_PATH}
    for path, ops in doc["paths"].items():
        op = ops.get("get")
        if op and "{" not in path and path not in ("/", "/api/v1/"):
            links.setdefault(op["operationId"], path)
    return {"name": doc["info"]["title"], "version": __version__, "links": links}


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def index_html(doc: dict[str, Any]) -> str:
    items = "".join(
        f'<li><a href="{escape(path)}">{escape(path)}</a> — {escape(name)}</li>'
        for name, path in index(doc)["links"].items()
    )
    return _page(
        doc["info"]["title"],
        f"<h1>{escape(doc['info']['title'])}</h1><p>{escape(doc['info']['description'])}</p>"
        f"<ul>{items}</ul>",
    )


def _schema_text(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return f"list of {_schema_text(schema.get('items', {}))} (comma-separated)"
    out = str(schema.get("type", "any"))
    if "pattern" in schema:
        out += f" matching {schema['pattern']}"
    if "minimum" in schema or "maximum" in schema:
        out += f" {schema.get('minimum', '')}–{schema.get('maximum', '')}"
    return out


def docs_html(doc: dict[str, Any]) -> str:
    parts = [
        f"<h1>{escape(doc['info']['title'])} {escape(doc['info']['version'])}</h1>",
        f"<p>{escape(doc['info']['description'])}</p>",
        f'<p>Machine-readable: <a href="{OPENAPI_PATH}">{OPENAPI_PATH}</a> (OpenAPI 3.0).</p>',
    ]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            token = "no token" if op.get("security") == [] else "token"
            parts.append(
                f"<h3><code>{method.upper()} {escape(path)}</code></h3>"
                f"<p>{escape(op.get('summary', ''))} ({token})</p>"
            )
            if op.get("description"):
                parts.append(f"<p>{escape(op['description'])}</p>")
            params = op.get("parameters", [])
            if params:
                rows = "".join(
                    f"<tr><td><code>{escape(p['name'])}</code>{' *' if p.get('required') else ''}"
                    f"</td><td>{escape(_schema_text(p.get('schema', {})))}</td>"
                    f"<td>{escape(p.get('description', ''))}</td></tr>"
                    for p in params
                )
                parts.append(
                    "<table><tr><th>parameter</th><th>value</th><th>meaning</th></tr>"
                    f"{rows}</table>"
                )
            codes = ", ".join(sorted(op.get("responses", {})))
            parts.append(f"<p>Responses: {escape(codes)}</p>")
    return _page(doc["info"]["title"], "".join(parts))


def wants_html(accept: str) -> bool:
    """Whether an ``Accept`` header prefers HTML to JSON (a browser's does)."""
    return "text/html" in accept and "application/json" not in accept.split(",")[0]
