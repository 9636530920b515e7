"""The README's quickstart, read from README.md itself so the tests cannot drift from it, and
run line by line the way a user pastes it: each line through `bash -c`, checked against what
the README says it does."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
#: what the block's lines must print (stdout + stderr); a README line not listed here fails the
#: test, so a new quickstart line gets an expectation
EXPECTED: list[tuple[str, list[str]]] = [
    ("export PATH=", []),
    ("trigger-local trigger hello ", ['"message": "Hello, Ada!"']),
    ("trigger-local trigger parent ", ['"shouted": "HELLO, GRACE!"']),
    ("trigger-local trigger flaky ",
     ["attempt 1 failed: RuntimeError: attempt 1 failed (on purpose)",
                                      "attempt 2 failed: RuntimeError: attempt 2 failed (on "
                                      "purpose)",
                                      '"succeeded_on_attempt": 3']),
    ("trigger-local runs ls", ["flaky", "COMPLETED"]),
    ("trigger-local runs show RUN_ID", ["Attempt 3", "RuntimeError: attempt 1 failed (on purpose)",
                                        "succeeded_on_attempt"]),
    ("trigger-local runs logs RUN_ID --follow", ["trying attempt=1", "trying attempt=3",
                                                 "ended: COMPLETED"]),
    ("trigger-local queues pause hello && trigger-local queues resume hello",
     ["Paused hello", "Resumed hello"]),
]


def quickstart_blocks() -> tuple[str, list[str]]:
    """The install-and-dev line, and the lines of the block to paste "in another terminal"."""
    section = README.read_text().split("## Try it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "README's Try it section: one install line, then one block of commands"
    first = [line for line in blocks[0].splitlines() if line.strip()]
    assert len(first) == 1, "the first command must be one copy-paste line"
    return first[0], [line for line in blocks[1].splitlines() if line.strip()]


def expected_for(line: str) -> list[str]:
    for prefix, wanted in EXPECTED:
        if line.startswith(prefix):
            return wanted
    raise AssertionError(f"README quickstart line with no expectation in {__file__}: {line}")


@dataclass
class Ran:
    line: str
    code: int
    output: str
    seconds: float


def run_block(lines: list[str], env: dict[str, str], cwd: Path,
              on_line: Callable[[Ran], None] | None = None) -> list[Ran]:
    """Run each line as pasted, RUN_ID being the newest run `runs ls` listed (the README says
    to take an id from it), asserting exit code 0 and the expected text."""
    import time

    ran: list[Ran] = []
    run_id = ""
    session: list[str] = []  # `export`/`cd` lines: they last for the rest of the terminal session
    for line in lines:
        command = line.replace("RUN_ID", run_id) if "RUN_ID" in line else line
        assert "RUN_ID" not in line or run_id, "RUN_ID is used before `runs ls` listed one"
        started = time.monotonic()
        done = subprocess.run(["bash", "-c", "\n".join([*session, command])], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)
        if line.startswith(("export ", "cd ")):
            session.append(line)
        result = Ran(line, done.returncode, done.stdout + done.stderr, time.monotonic() - started)
        ran.append(result)
        if on_line is not None:
            on_line(result)
        assert result.code == 0, f"{line!r} exited {result.code}:\n{result.output}"
        for wanted in expected_for(line):
            assert wanted in result.output, f"{line!r} did not print {wanted!r}:\n{result.output}"
        if line.startswith("trigger-local runs ls"):
            run_id = re.findall(r"\brun_[a-z0-9]+\b", done.stdout)[0]
    return ran
