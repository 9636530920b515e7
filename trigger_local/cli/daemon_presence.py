"""Saying that the daemon behind an event stream went away, and that it came back: for
`dev` with a daemon it did not start, `trigger --wait` and `runs logs --follow`, which all
reconnect by themselves (sdk/events.py) and used to wait in silence for a daemon that was gone."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape


class DaemonPresence:
    """An `on_state` callback of `iter_events`. The daemon is said to be gone once a
    reconnection failed too (a stream cut with the daemon up is not news); `while_gone` says
    what that means for the caller and `when_back` what it does once the daemon answers."""

    def __init__(self, url: str, console: Callable[[], Console], while_gone: str,
                 when_back: str) -> None:
        self.url, self.console = url, console
        self.while_gone, self.when_back = while_gone, when_back
        self.lost = 0  # connections lost in a row

    def __call__(self, connected: bool) -> None:
        url = escape(self.url)
        if connected:
            if self.lost >= 2:
                self.console().print(f"[green]The daemon at {url} answers again[/green]; "
                                     f"{self.when_back}")
            self.lost = 0
            return
        self.lost += 1
        if self.lost == 2:
            self.console().print(f"[yellow]Lost the daemon at {url}[/yellow] (stopped or "
                                 f"killed?): {self.while_gone}")
