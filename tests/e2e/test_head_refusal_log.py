"""A request head past the daemon's limits (trigger_local/http_limits.py) is answered 431 and
logged in one line saying what was refused — not with uvicorn's "Invalid HTTP request
received." warning, which said the client had sent something broken. A real daemon, raw
sockets."""

from __future__ import annotations

import socket
import time

from trigger_local.http_limits import MAX_HEAD_BYTES, MAX_HEADERS

from .conftest import DaemonProcess, wait_for

INVALID = "Invalid HTTP request received."
REFUSED = "refused a request head past the limits (431)"


def _answer(port: int, pieces: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            for piece in pieces:
                s.sendall(piece)
                time.sleep(0.02)  # each piece its own read on the daemon's side
        except (ConnectionResetError, BrokenPipeError):  # answered and closed before the rest
            pass
        received = b""
        while chunk := s.recv(65536):
            received += chunk
        return received


def test_a_refused_head_is_one_line_saying_what_was_refused(daemon: DaemonProcess) -> None:
    start = b"GET /healthz HTTP/1.1\r\nHost: daemon\r\n"
    many = start + b"".join(b"X-%d: 1\r\n" % n for n in range(MAX_HEADERS * 2)) + b"\r\n"
    # one header line longer than the limit, in pieces: refused before it ends
    long_line = [start + b"X-Long: "] + [b"a" * 4096] * (MAX_HEAD_BYTES // 4096 + 4)
    for pieces in ([many], long_line):
        assert _answer(daemon.port, pieces).startswith(b"HTTP/1.1 431 ")
    # a request uvicorn cannot parse still gets its warning: when it is in the log, so are
    # the lines of the two refusals before it
    assert _answer(daemon.port, [b"NOT HTTP AT ALL\r\n\r\n"]).startswith(b"HTTP/1.1 400 ")
    wait_for(lambda: INVALID in daemon.log_text(), timeout=30)
    lines = daemon.log_text().splitlines()
    assert sum(INVALID in line for line in lines) == 1, lines[-10:]
    refused = [line for line in lines if REFUSED in line]
    assert len(refused) == 2, lines[-10:]
    assert f"why='more than {MAX_HEADERS} headers'" in refused[0], refused
    assert f"why='a head still coming past {MAX_HEAD_BYTES // 1024} KiB'" in refused[1], refused
