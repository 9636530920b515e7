"""The task processes' own settings (`TRIGGER_LOCAL_WORKER_CHANNEL`, `TRIGGER_LOCAL_WORKER_TIMERS`,
`TRIGGER_LOCAL_ORPHAN_TIMEOUT_S`, docs/configuration.md) are checked where they are given: a
daemon's environment (`up`, `dev` starting one) and `dev`'s terminal plus `.env`. A value the
runtime could not use was taken as the default in silence: `OFF` left the channel on, `5m` made
the orphan timeout 300 s."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from trigger_local.cli.dev import task_env
from trigger_local.cli.main import app
from trigger_local.config import DaemonSettings
from trigger_local.errors import ValidationError

BAD = [("TRIGGER_LOCAL_WORKER_CHANNEL", "OFF", "must be on or off"),
       ("TRIGGER_LOCAL_WORKER_TIMERS", "perhaps", "must be on or off"),
       ("TRIGGER_LOCAL_ORPHAN_TIMEOUT_S", "5m", "must be a number of seconds"),
       ("TRIGGER_LOCAL_ORPHAN_TIMEOUT_S", "-1", "must be a number of seconds"),
       ("TRIGGER_LOCAL_ORPHAN_TIMEOUT_S", "nan", "must be a number of seconds")]


@pytest.mark.parametrize(("name", "raw", "words"), BAD)
def test_a_daemon_refuses_a_task_setting_it_cannot_use(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path, name: str, raw: str,
                                                       words: str) -> None:
    monkeypatch.setenv(name, raw)
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["up", "--port", "0"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"{name}={raw!r}: {words}" in result.stderr, result.stderr
    # doctor names it among its checks (review rv9b: it printed that one line and no checks)
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "Task processes" in result.stdout and "Python" in result.stdout, result.stdout


@pytest.mark.parametrize(("name", "raw", "words"), BAD[:1])
def test_down_and_migrate_do_not_refuse_a_task_setting(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path, name: str, raw: str,
                                                       words: str) -> None:
    # review rv9b: a daemon started before the check must still be stoppable from that shell
    monkeypatch.setenv(name, raw)
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(tmp_path / "home"))
    DaemonSettings.from_env()
    result = CliRunner().invoke(app, ["down"])
    assert f"{name}={raw!r}" not in result.output, result.output
    assert "Traceback" not in result.output, result.output


@pytest.mark.parametrize(("name", "raw", "words"), BAD)
def test_dev_refuses_one_from_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     name: str, raw: str, words: str) -> None:
    monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(f"{name}={raw}\n")
    with pytest.raises(ValidationError) as caught:
        task_env(tmp_path)
    assert f"{name}={raw!r}: {words}" in caught.value.message


def test_usable_task_settings_are_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    good = {"TRIGGER_LOCAL_WORKER_CHANNEL": "off", "TRIGGER_LOCAL_WORKER_TIMERS": "on",
            "TRIGGER_LOCAL_ORPHAN_TIMEOUT_S": "0.5"}
    for name, raw in good.items():
        monkeypatch.setenv(name, raw)
    DaemonSettings.from_env()
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in good.items()))
    assert {k: task_env(tmp_path)[k] for k in good} == good
