"""A client that closes its connection mid-body, against a real daemon: not a daemon error
(the log said "unhandled error" with a trace for each one), and the daemon goes on serving."""

from __future__ import annotations

import socket

import pytest

from .conftest import DaemonProcess, wait_for

CLOSED = "request body cut short"


@pytest.mark.parametrize("path", ["/api/v1/tasks/hello/trigger",  # the hot route (hot_routes.py)
                                  "/api/v1/tasks/batch"])  # one of FastAPI's routes
def test_a_client_closing_mid_body_is_no_daemon_error(ready: DaemonProcess, path: str) -> None:
    d = ready
    key = (d.home / "secret_key").read_text().strip()
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
        s.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                   "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                   '{"payload":').encode())
    # the daemon logs the close either way: wait for it, then see how
    wait_for(lambda: CLOSED in d.log_text() or "unhandled error" in d.log_text(), timeout=30)
    assert "unhandled error" not in d.log_text()
    assert CLOSED in d.log_text()
    run_id = d.trigger("hello", {})  # still serving
    d.wait_status(run_id, "COMPLETED")
