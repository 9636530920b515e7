"""`/docs` lists every route on one page that needs no network (Swagger UI would fetch its
JavaScript from a CDN: blank offline), and points at `/openapi.json`."""

from __future__ import annotations

import re

import httpx


async def test_docs_page_lists_the_routes_and_loads_nothing_from_outside(
        api: httpx.AsyncClient) -> None:
    r = await api.get("/docs", headers={"Authorization": ""})  # no key needed, like /openapi.json
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    schema = (await api.get("/openapi.json")).json()
    for path in schema["paths"]:
        assert f"<code>{path}</code>" in page, path
    assert "/api/v1/tasks/{task_id}/trigger" in page and "href='/openapi.json'" in page
    assert not re.search(r"<script|<link|(src|href)=['\"]?https?:", page), \
        "the page must work offline"
