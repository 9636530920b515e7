"""A run's realtime streams in its detail screen: one section per stream key, live.

Each key is followed by its own reader (`read_stream`: server-sent events from the daemon,
from the first chunk, ending once the run has finished and every chunk arrived). String chunks
are shown as text, run together as an LLM's tokens read (control characters as escapes:
`visible`); any other chunk as a line of JSON.
New keys are found when the screen loads and whenever the run records one (`run.stream`)."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from trigger_local.display import visible

#: characters kept per stream (the start is dropped past it: the newest text matters most)
MAX_CHARS = 20_000


class StreamText:
    """What one stream shows so far."""

    def __init__(self) -> None:
        self.text = ""
        self.count = 0

    def add(self, chunk: Any) -> None:
        self.count += 1
        if isinstance(chunk, str):
            self.text += chunk
        else:
            if self.text and not self.text.endswith("\n"):
                self.text += "\n"
            self.text += json.dumps(chunk, default=str) + "\n"
        if len(self.text) > MAX_CHARS:
            self.text = "…" + self.text[-MAX_CHARS:]


class StreamsView:
    """Every stream of one run, in the order their keys were found."""

    def __init__(self) -> None:
        self.streams: dict[str, StreamText] = {}

    def new_keys(self, keys: list[str]) -> list[str]:
        """The keys not followed yet (now followed)."""
        fresh = [k for k in keys if k not in self.streams]
        for key in fresh:
            self.streams[key] = StreamText()
        return fresh

    def add(self, key: str, chunk: Any) -> None:
        self.streams.setdefault(key, StreamText()).add(chunk)

    def render(self) -> Text:
        out = Text()
        for key, stream in self.streams.items():
            out.append(f"stream {key} ", style="bold")
            out.append(f"({stream.count} chunks)\n", style="dim")
            out.append(visible(stream.text.rstrip("\n")) + "\n")
        out.rstrip()
        return out
