"""A trigger.toml (or pyproject.toml) that cannot be read, or whose `tool.trigger-local` is not
a table, is one `Error:` line from the CLI with exit code 1: each used to be a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

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
