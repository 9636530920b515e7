"""A client that closes its connection mid-body, against a real daemon: not a daemon error
(the log said "unhandled error" with a trace for each one), and the daemon goes on serving."""

from __future__ import annotations

import re
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


def test_uvicorns_warnings_are_in_the_daemons_log_format(daemon: DaemonProcess) -> None:
    """uvicorn's own lines (here: a request it cannot parse) went to the log in uvicorn's
    format ("WARNING:  Invalid HTTP request received."): now in the daemon's, logger named."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    wait_for(lambda: "Invalid HTTP request received." in daemon.log_text(), timeout=30)
    line = next(line for line in daemon.log_text().splitlines()
                if "Invalid HTTP request received." in line)
    assert not line.startswith("WARNING:"), line
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[warning *\] Invalid HTTP request "
                    r"received\. +\[uvicorn\.error\]$", line), line
