"""A `TRIGGER_LOCAL_*` variable that nothing reads is named, with the setting it is closest to,
by `up`, `dev`, `down`, `migrate` (a `Warning:` line) and `doctor` (a `Settings` warning): a
misspelled setting (`TRIGGER_LOCAL_CONCURENCY=50`) was ignored without a word and the daemon ran
on the default."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trigger_local.cli.main import app
from trigger_local.config import DaemonSettings

ROOT = Path(__file__).resolve().parent.parent
TYPO = "TRIGGER_LOCAL_CONCURENCY"


def test_down_and_doctor_name_a_misspelled_setting(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(TYPO, "50")
    result = CliRunner().invoke(app, ["down"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    warning = [line for line in result.stderr.splitlines() if TYPO in line]
    assert len(warning) == 1, result.stderr
    assert warning[0].startswith("Warning:"), warning
    assert "did you mean TRIGGER_LOCAL_CONCURRENCY?" in warning[0], warning
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert "Traceback" not in result.output, result.output
    assert '"Settings"' in result.stdout and TYPO in result.stdout, result.stdout


def test_an_unknown_name_far_from_any_setting_has_no_guess() -> None:
    from trigger_local.config import ignored_variables

    lines = ignored_variables({"TRIGGER_LOCAL_ZZZZZZZZ": "1", "PATH": "/bin"})
    assert lines == ["TRIGGER_LOCAL_ZZZZZZZZ is not a setting and is ignored: "
                     "docs/configuration.md lists them"]


def test_a_setting_in_lower_case_is_named_in_upper_case() -> None:
    # the names are case-sensitive: TRIGGER_LOCAL_concurrency is ignored, and had no guess
    from trigger_local.config import ignored_variables

    assert ignored_variables({"TRIGGER_LOCAL_concurrency": "50"}) == [
        "TRIGGER_LOCAL_concurrency is not a setting and is ignored: did you mean "
        "TRIGGER_LOCAL_CONCURRENCY? docs/configuration.md lists them"]


def test_every_setting_and_every_variable_read_is_known() -> None:
    from trigger_local.config import ignored_variables
    from trigger_local.settings_checks import OTHER_VARIABLES

    env = {f"TRIGGER_LOCAL_{f.name.upper()}": "x" for f in fields(DaemonSettings)}
    env.update({f"TRIGGER_LOCAL_{name}": "x" for name in OTHER_VARIABLES})
    assert ignored_variables(env) == []


def test_the_known_list_holds_every_name_the_code_docs_and_tests_use() -> None:
    # a variable someone adds later must be added to OTHER_VARIABLES, or users setting it
    # are told it is ignored
    from trigger_local.config import ignored_variables

    names = set()
    for folder in ("trigger_local", "tui", "scripts", "tests", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".sh", ".md") and path.name != Path(__file__).name:
                names |= set(re.findall(r"(?<![A-Z_])TRIGGER_LOCAL_([A-Z0-9_]*[A-Z0-9])\b",
                                        path.read_text(errors="replace")))
    names |= set(re.findall(r"(?<![A-Z_])TRIGGER_LOCAL_([A-Z0-9_]*[A-Z0-9])\b",
                            (ROOT / "README.md").read_text()))
    assert names, "the scan found nothing"
    assert ignored_variables({f"TRIGGER_LOCAL_{n}": "x" for n in names}) == []
