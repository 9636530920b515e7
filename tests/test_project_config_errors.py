"""A trigger.toml (or pyproject.toml) that cannot be read, or whose `tool.trigger-local` is not
a table, is one `Error:` line from the CLI with exit code 1: each used to be a traceback. So is
a `.env` that is not UTF-8 or too big for any process to be started with."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from trigger_local.cli.dev import task_env
from trigger_local.cli.main import app
from trigger_local.config import find_project_root, load_project
from trigger_local.errors import ValidationError

runner = CliRunner()


def _project(tmp_path: Path, name: str, content: bytes | None) -> Path:
    root = tmp_path / "proj"
    (root / "trigger").mkdir(parents=True)
    if content is None:
        (root / name).mkdir()  # a directory where the file should be
    else:
        (root / name).write_bytes(content)
    return root


@pytest.mark.parametrize(("name", "content", "words"), [
    ("trigger.toml", b"\xff\xfe = 1\n", "is not UTF-8 text"),
    ("trigger.toml", None, "Cannot read"),
    ("pyproject.toml", b"tool = 5\n", "tool in"),
    ("pyproject.toml", b"[tool]\ntrigger-local = 5\n", "tool.trigger-local in"),
])
def test_an_unreadable_config_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                name: str, content: bytes | None,
                                                words: str) -> None:
    root = _project(tmp_path, name, content)
    monkeypatch.chdir(root)
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["dev"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert words in result.stderr and name in result.stderr, result.stderr
    with pytest.raises(ValidationError):
        load_project(find_project_root(root) or root)


def test_an_unknown_key_in_pyproject_names_pyproject(tmp_path: Path) -> None:
    root = _project(tmp_path, "pyproject.toml", b"[tool.trigger-local]\nbogus = 1\n")
    with pytest.raises(ValidationError) as caught:
        load_project(root)
    assert "[tool.trigger-local] of pyproject.toml" in caught.value.message
    assert "trigger.toml" not in caught.value.message.replace("[tool.trigger-local]", "")


def test_a_dotenv_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"BAD=\xff\xfe\n")
    with pytest.raises(ValidationError) as caught:
        task_env(tmp_path)
    assert ".env is not UTF-8 text" in caught.value.message


@pytest.mark.parametrize("content", ["BIG=" + "v" * 140_000,
                                     "".join(f"V{i}={'w' * 100_000}\n" for i in range(12))],
                         ids=["one-value-over-128KiB", "over-1MiB-in-all"])
def test_a_dotenv_too_big_for_a_process_is_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / ".env").write_text(content)
    with pytest.raises(ValidationError) as caught:
        task_env(tmp_path)
    assert "too big to start a process" in caught.value.message


def test_a_dotenv_of_usual_size_is_taken(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("export A='1'\n# note\nB=" + "v" * 100_000 + "\n")
    env = task_env(tmp_path)
    assert env["A"] == "1" and len(env["B"]) == 100_000


def test_a_boolean_max_duration_says_what_to_give(tmp_path: Path) -> None:
    (tmp_path / "trigger.toml").write_text("max_duration = true\n")
    with pytest.raises(ValidationError) as caught:
        load_project(tmp_path)
    assert "max_duration in trigger.toml true: use a number of seconds" in caught.value.message


@pytest.mark.parametrize(("written", "named"), [
    ("1979-05-27T07:32:00Z", "1979-05-27T07:32:00+00:00"), ("07:32:00", "07:32:00"),
    ("1979-05-27", "1979-05-27")])
def test_a_toml_date_as_max_duration_is_named_as_a_date(tmp_path: Path, written: str,
                                                        named: str) -> None:
    """Not as Python's repr ("datetime.datetime(1979, 5, 27, 7, 32,...", cut mid-way)."""
    (tmp_path / "trigger.toml").write_text(f"max_duration = {written}\n")
    with pytest.raises(ValidationError) as caught:
        load_project(tmp_path)
    assert f"max_duration in trigger.toml {named}: use a number of seconds" \
        in caught.value.message, caught.value.message


@pytest.mark.parametrize("table", [
    'dirs = 3', 'machine = "huge"', 'max_duration = -1', 'executor = "k8s"', 'project = "a b"',
    '[tool.trigger-local.retry]\nmax_attempts = 0', '[tool.trigger-local.build]\nfoo = 1',
    '[tool.trigger-local.build]\napt_packages = "ffmpeg"', 'build = "x"', 'dirs = ["/etc"]',
])
def test_a_bad_value_in_pyproject_names_pyproject(tmp_path: Path, table: str) -> None:
    """Each error about a value of `[tool.trigger-local]` told the user to fix a trigger.toml
    the project does not have."""
    head = "" if table.startswith("[") else "[tool.trigger-local]\n"
    (tmp_path / "pyproject.toml").write_text(head + table + "\n")
    with pytest.raises(ValidationError) as caught:
        load_project(tmp_path)
    assert "[tool.trigger-local] of pyproject.toml" in caught.value.message, caught.value.message
    assert "trigger.toml" not in caught.value.message.replace("[tool.trigger-local]", "")


def test_dotenv_lines_it_cannot_read_are_each_one_warning_and_the_rest_is_taken(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`B`, `=C` and `D="unterminated` were dropped (or taken half) without a word."""
    (tmp_path / ".env").write_text('A=1\nB\n=C\nD="unterminated\n# a comment\n\nexport E="5"\n'
                                   "F='x' # quoted, then a comment\n")
    env = task_env(tmp_path)
    assert env["A"] == "1" and env["E"] == "5" and "D" not in env and "B" not in env
    assert "" not in env and "F" in env
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"Warning: {tmp_path / '.env'}, line 2, has no `=`: write NAME=value; the line is skipped.",
        f"Warning: {tmp_path / '.env'}, line 3, has no name before its `=`; the line is skipped.",
        f"Warning: {tmp_path / '.env'}, line 4, opens a quote (\") it does not close; the line "
        "is skipped."], lines


@pytest.mark.parametrize(("retry", "message"), [
    ("factor = 0", "Retry factor must be a number above 0 and at most 315360000, got 0"),
    ("factor = -1", "Retry factor must be a number above 0 and at most 315360000, got -1"),
    ("min_timeout_s = -1", "Retry min_timeout_s must be a number from 0 to 315360000, got -1"),
    ("min_timeout_s = 5\nmax_timeout_s = 1",
     "Retry max_timeout_s must be at least min_timeout_s, got 1 < 5"),
])
def test_a_retry_value_out_of_range_gets_one_message_with_its_own_range(
        tmp_path: Path, retry: str, message: str) -> None:
    """factor = -1 said "from 0 to …", and factor = 0 then "needs factor > 0": two ranges."""
    (tmp_path / "trigger.toml").write_text(f'project = "proj_x"\n[retry]\n{retry}\n')
    with pytest.raises(ValidationError) as caught:
        load_project(tmp_path)
    assert caught.value.message == f"[retry] in trigger.toml: {message}", caught.value.message
