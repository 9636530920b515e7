"""`/docs`: every route of the API on one self-contained HTML page, that works offline.

FastAPI's Swagger UI loads its JavaScript and CSS from a CDN, so on a machine without network
it is a blank page; it stays off. This page is built from the same OpenAPI document (served at
`/openapi.json` for tools and code generators) and needs nothing but the daemon."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse

router = APIRouter()

#: path prefix -> heading, most specific first
SECTIONS = (
    ("/api/v1/local/", "Local routes (trigger-local's own: projects, versions, the event stream)"),
    ("/engine/", "Worker protocol (task processes; docs/worker-protocol.md)"),
    ("/api/", "Trigger.dev's management API (what @trigger.dev/sdk calls)"),
    ("/", "Other"),
)
STYLE = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em}"
         "table{border-collapse:collapse;width:100%}td{padding:.2em .6em;vertical-align:top;"
         "border-bottom:1px solid #ddd}code{font-size:.95em}.m{font-weight:bold;width:4.5em}")


def _section(path: str) -> str:
    return next(title for prefix, title in SECTIONS if path.startswith(prefix))


def _operations(schema: dict[str, Any]) -> dict[str, list[tuple[str, str, str]]]:
    """Section title -> (METHOD, path, one-line summary), in path order."""
    sections: dict[str, list[tuple[str, str, str]]] = {title: [] for _, title in SECTIONS}
    for path, methods in sorted(schema.get("paths", {}).items()):
        for method, operation in methods.items():
            description = str(operation.get("description") or "").strip().splitlines()
            summary = description[0] if description else str(operation.get("summary") or "")
            sections[_section(path)].append((method.upper(), path, summary))
    return {title: ops for title, ops in sections.items() if ops}


def render(schema: dict[str, Any]) -> str:
    info = schema.get("info", {})
    parts = ["<!doctype html><html><head><meta "
             f"charset='utf-8'><title>{escape(str(info.get('title')))} API"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>{escape(str(info.get('title')))} {escape(str(info.get('version')))} API</h1>",
             f"<p>{escape(str(info.get('description', '')))}</p>",
             "<p>Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>, the key being "
             "the file <code>$TRIGGER_LOCAL_HOME/secret_key</code> (default "
             "<code>~/.trigger-local/secret_key</code>). The whole description, for tools and "
             "code generators: <a href='/openapi.json'><code>/openapi.json</code></a>.</p>"]
    for title, operations in _operations(schema).items():
        parts.append(f"<h2>{escape(title)}</h2><table>")
        parts.extend(f"<tr><td class='m'>{escape(method)}</td><td><code>{escape(path)}</code></td>"
                     f"<td>{escape(summary)}</td></tr>" for method, path, summary in operations)
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(render(request.app.openapi()))
