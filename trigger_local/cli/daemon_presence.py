"""Saying that the daemon behind an event stream went away, and that it came back: for
`dev` with a daemon it did not start, `trigger --wait` and `runs logs --follow`, which all
reconnect by themselves (sdk/events.py): without a word, a daemon that is gone looks like a
long wait."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from ..sdk.client import SyncApiClient


class DaemonPresence:
    """An `on_state` callback of `iter_events`. The daemon is said to be gone once a
    reconnection failed too (a stream cut with the daemon up is not news); `while_gone` says
    what that means for the caller and `when_back` what it does once the daemon answers."""

    def __init__(self, api: SyncApiClient, console: Callable[[], Console], while_gone: str,
                 when_back: str) -> None:
        self.api, self.console = api, console
        self.while_gone, self.when_back = while_gone, when_back
        self.lost = 0  # connections lost in a row

    def __call__(self, connected: bool) -> None:
        if connected:
            if self.lost >= 2:
                self.console().print(f"[green]The daemon at {self._url()} answers again[/green]; "
                                     f"{self.when_back}")
            self.lost = 0
            return
        self.lost += 1
        if self.lost == 2:
            self.console().print(f"[yellow]Lost the daemon at {self._url()}[/yellow] (stopped "
                                 f"or killed?): {self.while_gone}")

    def _url(self) -> str:
        return escape(self.api.endpoint.base_url)
