"""A run CRIU froze that then ends without a restore (canceled) leaves no spool of its process on
disk: the frozen process never runs again (review rv9c: it stayed, with its lines, for good)."""

from __future__ import annotations

from pathlib import Path

from .conftest import wait_for, write_project
from .criu_support import checkpoints, ck_daemon, require_criu, wait_checkpointed

TASK = '''
from trigger_local import logger, task, wait

@task(isolated=True, id="log-then-sleep")
async def log_then_sleep(payload, ctx):
    logger.info("a line before the wait")
    await wait.for_(seconds=120)
    return {}
'''


def test_a_canceled_checkpointed_run_leaves_no_spool(tmp_path: Path) -> None:
    require_criu()
    d = ck_daemon(tmp_path).start()
    try:
        d.register(write_project(tmp_path / "project", TASK))
        run_id = d.trigger("log-then-sleep", {})
        wait_checkpointed(d, run_id)
        spools = list(d.home.rglob("*.spool"))
        assert spools and any(p.stat().st_size for p in spools)
        assert d.api("POST", f"/api/v2/runs/{run_id}/cancel").status_code == 200
        wait_for(lambda: checkpoints(d, run_id)[0]["status"] == "deleted", 30, what="deleted")
        wait_for(lambda: all(not p.exists() or p.stat().st_size == 0 for p in spools), 10,
                 what=f"the spool to go: {[p.read_text()[:200] for p in spools if p.exists()]}")
    finally:
        d.close()
