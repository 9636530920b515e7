"""`trigger-local runs stream RUN_ID [KEY] [--follow]`: print a run's realtime stream.

String chunks are written as they are, with nothing between them (an LLM's tokens read as
text); any other chunk is printed as one line of JSON. Without KEY, the run's one stream (or
"default" when it has none yet); a run with several streams needs KEY."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from ..sdk.management import is_final
from ..sdk.realtime import blocking, read_stream
from .common import client, err, fail
from .completion import complete_run_id

#: the daemon's longest wait for a chunk before it ends a read (a follow then reads again)
IDLE_S = 600.0


class Printer:
    def __init__(self) -> None:
        self.mid_line = False

    def show(self, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value) + "\n"
        if self.mid_line and not isinstance(value, str):
            text = "\n" + text
        sys.stdout.write(text)
        sys.stdout.flush()
        self.mid_line = not text.endswith("\n")

    def end(self) -> None:
        if self.mid_line:
            sys.stdout.write("\n")


def _key(run_id: str, key: str | None) -> str:
    if key:
        return key
    keys = [s["key"] for s in client().run_streams(run_id)["streams"]]
    if len(keys) > 1:
        fail(f"Run {run_id} has streams {', '.join(keys)}: name one, e.g. "
             f"`trigger-local runs stream {run_id} {keys[0]}`.")
    return keys[0] if keys else "default"


def stream(run_id: str = typer.Argument(..., help="The run id (run_…).",
                                        autocompletion=complete_run_id),
           key: str | None = typer.Argument(None, help="The stream key (default: the run's "
                                                       "only stream)."),
           follow: bool = typer.Option(False, "--follow", "-f",
                                       help="Keep printing until the run ends.")) -> None:
    """Print a run's realtime stream (`streams.pipe` / `streams.append` in the task)."""
    api, printer = client(), Printer()
    key = _key(run_id, key)
    after = -1
    while True:
        page = api.stream_chunks(run_id, key, after)
        for chunk in page["chunks"]:
            printer.show(chunk["value"])
            after = chunk["index"]
        if not page["chunks"] or len(page["chunks"]) < 1000:
            break
    while follow:
        # a read ends once the run has finished and every chunk was sent, or after IDLE_S
        # with no chunk: then read on while the run has not finished
        for value in blocking(read_stream(run_id, key, start_index=after + 1, timeout_s=IDLE_S)):
            printer.show(value)
            after += 1
        if is_final(api.retrieve_run(run_id)):
            break
    printer.end()
    if after < 0 and not follow:
        err().print(f"Stream {key!r} of {run_id} has no chunks.")
