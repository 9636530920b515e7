"""The dashboard's header says `○ connecting` until its event stream first answers, and
`○ disconnected — reconnecting` only when a stream that was live drops (docs/dashboard.md):
before, it said "disconnected" at every start."""

from __future__ import annotations

from textual.app import App, ComposeResult

from tui.common import DaemonHeader


class HeaderOnly(App[None]):
    def compose(self) -> ComposeResult:
        yield DaemonHeader("http://127.0.0.1:8030")


def shown(header: DaemonHeader) -> str:
    return str(header.render())


async def test_the_header_connects_then_goes_live_then_says_a_drop() -> None:
    app = HeaderOnly()
    async with app.run_test(size=(160, 5)) as pilot:
        header = app.query_one(DaemonHeader)
        header.set_status({"version": "0.1.0", "executor": "process"})
        await pilot.pause()
        assert "connecting" in shown(header) and "disconnected" not in shown(header)
        header.set_live(True)
        await pilot.pause()
        assert "● live" in shown(header)
        header.set_live(False)
        await pilot.pause()
        assert "○ disconnected — reconnecting" in shown(header)
    narrow = HeaderOnly()
    async with narrow.run_test(size=(60, 5)) as pilot:
        header = narrow.query_one(DaemonHeader)
        await pilot.pause()
        assert "○ connecting" in shown(header)
