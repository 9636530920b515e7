"""The CLI's --payload and --data, offline: JSON checked as the daemon would before anything is
sent, files and stdin read as UTF-8 and bounded (no daemon runs: the isolated home of
tests/test_cli_offline.py)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_cli_offline import isolated  # noqa: F401 (the autouse fixture)
from trigger_local.cli.main import app

runner = CliRunner()


def test_malformed_payload_says_where_and_sends_nothing() -> None:
    result = runner.invoke(app, ["trigger", "hello", "--payload", '{"name": Ada}'])
    assert result.exit_code == 1
    assert "--payload is not valid JSON" in result.stderr
    assert "line 1 column 10" in result.stderr
    assert "not running" not in result.stderr  # failed before any request


def test_payload_file_that_does_not_exist(tmp_path: Path) -> None:
    result = runner.invoke(app, ["trigger", "hello", "--payload", f"@{tmp_path / 'missing.json'}"])
    assert result.exit_code == 1
    assert "Cannot read --payload file" in result.stderr


def test_malformed_payload_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  'single': 'quotes'\n}")
    result = runner.invoke(app, ["trigger", "hello", "--payload", f"@{bad}"])
    assert result.exit_code == 1
    assert str(bad) in result.stderr and "line 2" in result.stderr


def test_a_payload_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    # a file, or stdin, of other bytes was a UnicodeDecodeError traceback
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b'{"a": "\xff\xd8"}')
    result = runner.invoke(app, ["trigger", "hello", "--payload", f"@{binary}"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert f"--payload file {binary} is not UTF-8 text (byte 7)" in result.stderr, result.stderr
    result = runner.invoke(app, ["tokens", "complete", "waitpoint_x", "--data", "-"],
                           input=b"\xff")
    assert result.exit_code == 1 and "--data stdin is not UTF-8 text" in result.stderr


def test_a_payload_past_what_any_daemon_takes_is_not_read_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `--payload @/dev/zero` read until memory ran out (a MemoryError traceback); the cap is
    # the largest payload_limit_bytes and its JSON envelope (here made small)
    from trigger_local.cli import common

    monkeypatch.setattr(common, "MAX_ARGUMENT_BYTES", 1000)
    result = runner.invoke(app, ["trigger", "hello", "--payload", "@/dev/zero"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "--payload file /dev/zero holds more than 1,000 bytes, more than any daemon takes" \
        in result.stderr, result.stderr


@pytest.mark.parametrize("given", ["file", "stdin"])
def test_a_small_payload_is_read_under_an_address_space_limit(tmp_path: Path,
                                                              given: str) -> None:
    # the bounded read asked for its whole bound at once (read(512 MiB + 64 KiB + 1)), which
    # allocates it first: under `ulimit -v` below that, `--payload @p.json` of 9 bytes (and
    # `--payload -`) was a MemoryError traceback. A real CLI process with a 450 MiB limit
    payload = tmp_path / "p.json"
    payload.write_text('{"a": 1}\n')
    limit = 450 * 1024 * 1024
    result = subprocess.run(
        [sys.executable, "-m", "trigger_local", "trigger", "hello", "--payload",
         f"@{payload}" if given == "file" else "-"],
        input=payload.read_text(), capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TRIGGER_LOCAL_HOME": str(tmp_path / "home"),
             "TRIGGER_API_URL": "http://127.0.0.1:9"},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr
    # read and parsed: what stops it is the daemon that is not there
    assert result.returncode == 1 and "127.0.0.1:9" in result.stderr, result.stderr


def test_malformed_token_data_from_stdin() -> None:
    result = runner.invoke(app, ["tokens", "complete", "waitpoint_x", "--data", "-"], input="nope")
    assert result.exit_code == 1
    assert "--data is not valid JSON" in result.stderr and "stdin" in result.stderr


@pytest.mark.parametrize(("value", "says"), [
    ('{"a": 1e400}', "a is a number too big to be finite"),
    ('{"a": NaN}', "a is NaN"),
    ('{"a": ' + "9" * 5000 + "}", "more than 4300 digits"),
    ("[" * 50_000 + "]" * 50_000, "nested deeper than 100 levels")])
def test_a_payload_the_daemon_would_refuse_is_an_error_not_a_traceback(value: str,
                                                                      says: str) -> None:
    """Checked by the daemon's own rules before anything is sent: 1e400 was sent as null, and
    a 5,000-digit number or deep nesting ended in a Python traceback."""
    for args in (["trigger", "hello", "--payload", value],
                 ["tokens", "complete", "waitpoint_x", "--data", value]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert says in result.stderr and "Traceback" not in result.output, result.stderr
        assert "not running" not in result.stderr  # refused before the daemon is asked
