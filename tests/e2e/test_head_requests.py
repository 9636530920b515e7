"""`HEAD` on a GET route is answered as GET without a body (RFC 9110 §9.3.2), by a real
daemon: FastAPI's routes used to answer 405 to it."""

from __future__ import annotations

import httpx

from .conftest import DaemonProcess


def test_head_answers_as_get_without_a_body(ready: DaemonProcess) -> None:
    d = ready
    run_id = d.trigger("hello", {"name": "head"})
    for path, auth in (("/healthz", False), ("/api/v1/local/status", True),
                       (f"/api/v3/runs/{run_id}", True), ("/api/v1/queues", True),
                       ("/openapi.json", False)):
        headers = {"Authorization": f"Bearer {d.key}"} if auth else {}
        get = httpx.get(d.url + path, headers=headers, timeout=30)
        head = httpx.head(d.url + path, headers=headers, timeout=30)
        assert get.status_code == 200, (path, get.text)
        assert head.status_code == 200, (path, head.status_code, head.text)
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
    # what a GET refuses, a HEAD refuses the same way; a POST-only path is still 405
    assert httpx.head(d.url + "/api/v1/local/status", timeout=30).status_code == 401
    assert d.api("HEAD", "/api/v3/runs/run_nope").status_code == 404
    assert d.api("HEAD", "/api/v1/tasks/hello/trigger").status_code == 405


def test_head_of_a_streamed_answer_ends_with_its_head(ready: DaemonProcess) -> None:
    """The event stream (SSE) never ends for a GET; a HEAD of it ends once its head is out,
    and the daemon goes on answering on the same connection."""
    d = ready
    with httpx.Client(base_url=d.url, headers={"Authorization": f"Bearer {d.key}"},
                      timeout=30) as c:
        head = c.head("/api/v1/local/stream")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/event-stream")
        assert c.get("/healthz").status_code == 200
