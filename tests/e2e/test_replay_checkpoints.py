"""Replay as the fallback of CRIU (docs/durability.md): a checkpointed run whose restore fails —
its images deleted while the daemon runs, or by a reboot — resumes by replaying its records:
the step before the wait does not run again and the original token completes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import DaemonProcess
from .criu_support import require_criu, wait_checkpointed
from .replay_support import complete, count, metadata_of, reboot, replay_daemon

pytestmark = pytest.mark.slow  # CRIU dumps and daemon restarts: ~10 s a test


@pytest.fixture
def ckd(tmp_path: Path):
    require_criu()
    daemon = replay_daemon(tmp_path, TRIGGER_LOCAL_CHECKPOINTS="auto",
                           TRIGGER_LOCAL_HOLD_THRESHOLD_S="1")
    yield daemon
    daemon.close()


def _finished(d: DaemonProcess, run_id: str, effects: Path) -> dict:
    run = d.wait_status(run_id, timeout=60)
    assert run["status"] == "COMPLETED", run
    assert run["output"]["effect"] == 1 and run["output"]["data"] == {"n": 5}, run["output"]
    assert count(effects, "effect") == 1
    return run


def test_a_failed_restore_falls_back_to_replay(ckd: DaemonProcess, tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    effects.mkdir()
    run_id = ckd.trigger("rp-token", {"dir": str(effects)})
    token = metadata_of(ckd, run_id, "token")
    images = Path(wait_checkpointed(ckd, run_id)[0]["path"])
    shutil.rmtree(images)  # the restore will fail
    complete(ckd, token, {"n": 5})
    run = _finished(ckd, run_id, effects)
    first = run["attempts"][0]
    assert first["rawStatus"] == "INTERRUPTED", first
    assert "the run resumes by replay" in first["error"]["message"]
    trace = ckd.api("GET", f"/api/v1/runs/{run_id}/trace").json()
    assert [r["how"] for r in trace["resumes"]] == ["replayed"]
    assert trace["checkpoints"][0]["status"] == "failed"


def test_reboot_with_the_checkpoint_images_gone_resumes_by_replay(ckd: DaemonProcess,
                                                                   tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    effects.mkdir()
    run_id = ckd.trigger("rp-token", {"dir": str(effects)})
    token = metadata_of(ckd, run_id, "token")
    images = Path(wait_checkpointed(ckd, run_id)[0]["path"])
    reboot(ckd, delete=images)
    complete(ckd, token, {"n": 5})
    run = _finished(ckd, run_id, effects)
    assert [a["rawStatus"] for a in run["attempts"]] == ["INTERRUPTED", "COMPLETED"]
