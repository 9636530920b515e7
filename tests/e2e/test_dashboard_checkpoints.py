"""The run detail's trace shows a real CRIU checkpoint and its restore, with timeline bars."""

from __future__ import annotations

import pytest
from textual.widgets import Tree

from trigger_local.sdk.client import ApiClient
from tui.app import Dashboard
from tui.detail import RunDetail
from tui.trace import TraceNode

from .conftest import DaemonProcess
from .criu_support import (
    ck_project,  # noqa: F401 (the ckd fixture)
    complete_token,
    create_token,
    wait_checkpointed,
)
from .test_dashboard import until

pytestmark = pytest.mark.slow


async def test_trace_has_the_checkpoint_and_its_restore_as_nodes(ckd: DaemonProcess) -> None:
    token = create_token(ckd)
    run_id = ckd.trigger("ck-token", {"token": token})
    checkpoint = wait_checkpointed(ckd, run_id)[0]
    app = Dashboard(ApiClient(ckd.url, ckd.key))
    async with app.run_test(size=(200, 50)) as pilot:
        app.push_screen(RunDetail(app.api, run_id))
        found = await until(pilot, lambda: isinstance(app.screen, RunDetail) and
                            list(app.screen.query("#trace-tree").results(Tree)),
                            "the detail screen")
        tree: Tree[TraceNode] = found[0]

        def nodes(kind: str) -> list[TraceNode]:
            root = tree.root.data
            return [n for n in root.walk() if n.kind == kind] if root is not None else []

        suspended = (await until(pilot, lambda: nodes("checkpoint"), "the checkpoint node"))[0]
        assert (checkpoint["id"] in suspended.label and "MiB" in suspended.label
                and "dump" in suspended.label)
        assert suspended.end is None and not nodes("restore")  # still on disk: its bar runs to now
        complete_token(ckd, token, {"n": 7})
        assert ckd.wait_status(run_id)["status"] == "COMPLETED"
        # the run's own stream redraws the tree: the restore appears under its checkpoint
        restore = (await until(pilot, lambda: nodes("restore"), "the restore node"))[0]
        done = nodes("checkpoint")[0]
        assert done.children == [restore] and "restored after" in restore.label
        assert (done.start is not None and done.end is not None
                and done.start < restore.start <= done.end)
        line = next(n for n in tree.root.children if n.data is done)
        # a timeline bar, not the whole width
        assert "█" in str(line.label) and "·" in str(line.label)
