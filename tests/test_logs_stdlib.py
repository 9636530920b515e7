"""stdlib logging's lines (uvicorn's "Exception in ASGI application", asyncio's) keep their
traceback in the daemon's format: in JSON mode as text under "exception", as the daemon's own
structlog lines have it, not a repr of the traceback object; in console mode as plain text,
without the local variables of every frame (a request's headers, its secret key)."""

from __future__ import annotations

import json
import subprocess
import sys

_SCRIPT = """
import logging, sys
from trigger_local.logs import configure_logging
configure_logging(json_lines=sys.argv[1] == "json")
secret = "sk_do_not_log_me"
try:
    1 / 0
except ZeroDivisionError as exc:
    logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=exc)
"""


def _stderr(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stderr


def test_a_stdlib_traceback_is_text_in_json_lines() -> None:
    lines = [json.loads(line) for line in _stderr("json").splitlines()]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["logger"] == "uvicorn.error" and line["level"] == "error"
    assert "exc_info" not in line
    assert "Traceback (most recent call last)" in line["exception"]
    assert "ZeroDivisionError: division by zero" in line["exception"]


def test_a_stdlib_traceback_in_the_console_shows_no_locals() -> None:
    text = _stderr("console")
    assert "Exception in ASGI application" in text and "[uvicorn.error]" in text
    assert "ZeroDivisionError: division by zero" in text
    assert "sk_do_not_log_me" not in text
