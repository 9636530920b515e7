"""doctor's Checkpoints line when the daemon cannot write its checkpoint images: every dump
failed (`TRIGGER_LOCAL_CHECKPOINT_DIR=/proc/nope`, a read-only mount) and the run was held,
while doctor and status said "the daemon checkpoints waiting runs"; only the daemon log told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trigger_local.cli import doctor_criu
from trigger_local.config import DaemonSettings


def _daemon_says(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """The running daemon's `executor.checkpoints` answer (the edge: no daemon is started)."""
    answer: dict[str, Any] = {"available": True, "criu_version": "4.1.1", "count": 0,
                              "bytes": 0, "dir": str(folder)}
    monkeypatch.setattr(doctor_criu, "daemon_checkpoints", lambda settings: answer)


@pytest.mark.parametrize("where", ["a-file/checkpoints", "no-such/deeper/checkpoints"])
def test_a_checkpoint_dir_that_cannot_be_made_is_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "no-such").write_text("a file where a directory should be")
    _daemon_says(monkeypatch, tmp_path / where)
    found = doctor_criu.checkpoint_check(DaemonSettings(home=tmp_path / "home"))
    assert found is not None
    level, detail, fix, _ = found
    assert level == "warn" and "cannot write checkpoints" in detail, detail
    assert "is not a directory" in detail and "TRIGGER_LOCAL_CHECKPOINT_DIR" in fix


def test_an_unwritable_parent_is_a_warning(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(doctor_criu.tempfile, "mkdtemp", refuse)  # root may write anywhere
    _daemon_says(monkeypatch, tmp_path / "checkpoints")
    found = doctor_criu.checkpoint_check(DaemonSettings(home=tmp_path / "home"))
    assert found is not None and found[0] == "warn", found
    assert f"cannot create a directory in {tmp_path}: Permission denied" in found[1]


@pytest.mark.parametrize("exists", [True, False])
def test_a_usable_checkpoint_dir_is_ok_and_left_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exists: bool) -> None:
    folder = tmp_path / "checkpoints"
    if exists:
        folder.mkdir()
    _daemon_says(monkeypatch, folder)
    found = doctor_criu.checkpoint_check(DaemonSettings(home=tmp_path / "home"))
    assert found is not None and found[0] == "ok", found
    assert folder.exists() is exists  # doctor tried a directory of its own and removed it
    assert sorted(p.name for p in tmp_path.iterdir()) == (["checkpoints"] if exists else [])
