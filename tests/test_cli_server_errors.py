"""A 5xx from the daemon reaches the CLI as one line that says where to look, not the
daemon's bare "Something went wrong"."""

from __future__ import annotations

from trigger_local.cli.common import explain
from trigger_local.errors import error_from_response


def test_a_500_is_one_line_naming_the_daemon_log() -> None:
    exc = error_from_response(500, {"error": "Something went wrong", "code": "internal"})
    line = explain(exc)
    assert line.startswith("The daemon failed on this request (500: Something went wrong)")
    assert "logs/daemon.log" in line and "\n" not in line


def test_a_4xx_stays_as_the_daemon_said_it() -> None:
    exc = error_from_response(400, {"error": "BIG is 200,000 bytes", "code": "bad_request"})
    assert explain(exc) == "BIG is 200,000 bytes"
