"""A project header (`x-trigger-local-project`, the one the daemon reads) whose bytes are not
ASCII is a 400 like any other bad ref, and the message shows the bytes as sent: it showed
`\\xff\\xfe` as the Latin-1 letters 'ÿþ', which the client never sent. A real daemon, raw
HTTP/1.1 (an HTTP client would not send such bytes)."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from .conftest import DaemonProcess


def answer(d: DaemonProcess, method: str, path: str, project: bytes) -> tuple[int, dict[str, Any]]:
    body = b'{"payload":"{}","options":{"payloadType":"application/json"}}' \
        if method == "POST" else b""
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
        s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  b"x-trigger-local-project: %s\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                  % (method.encode(), path.encode(), d.key.encode(), project, len(body), body))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(rest)


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/v1/tasks/hello/trigger"),
                                              ("GET", "/api/v1/runs")])
def test_a_project_header_of_bytes_that_are_not_ascii_is_a_400_showing_them(
        ready: DaemonProcess, method: str, path: str) -> None:
    status, body = answer(ready, method, path, b"\xff\xfe")
    assert status == 400, body
    assert body["error"].startswith(
        "Invalid x-trigger-local-project header b'\\xff\\xfe': use 1-64 letters"), body
    status, body = answer(ready, method, path, b"proj_test")  # the same request, a good ref
    assert status < 300, body
