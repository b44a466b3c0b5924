"""The ``/docs`` page: the API's routes listed from the OpenAPI schema, with no external files.

FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN, so they are blank
on a machine without internet access. This page is plain HTML built from the schema.
"""

from __future__ import annotations

from html import escape
from typing import Any

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def render_docs_page(schema: dict[str, Any]) -> str:
    """Render an HTML page with one table row per route and method of ``schema``."""
    info = schema.get("info", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    rows = "\n".join(_route_rows(schema.get("paths", {})))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} API</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
code {{ font-size: 1.05em; }}
</style>
</head>
<body>
<h1>{title} API</h1>
<p>{escape(str(info.get("description", "")))}</p>
<p>The full schema is at <a href="/openapi.json"><code>/openapi.json</code></a>.
Routes marked "key" need an <code>X-API-Key</code> header.</p>
<table>
<tr><th>method</th><th>path</th><th>summary</th><th>auth</th></tr>
{rows}
</table>
</body>
</html>
"""


def _route_rows(paths: dict[str, Any]) -> list[str]:
    rows = []
    for path, operations in paths.items():
        for method in HTTP_METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            summary = escape(str(operation.get("summary", "")))
            auth = "key" if operation.get("security") else ""
            rows.append(
                f"<tr><td>{method.upper()}</td><td><code>{escape(path)}</code></td>"
                f"<td>{summary}</td><td>{auth}</td></tr>"
            )
    return rows
