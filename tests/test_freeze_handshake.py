"""The runtime's side of the freeze handshake (sdk/waits.py `_offer_freeze`): how it stays quiet
until the daemon's done file appears."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from trigger_local.sdk import waits


class _State:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer, self.attempt, self.calls = answer, 1, 0

    async def call(self, method: str, route: str, body: Any, close: bool = False) -> dict[str, Any]:
        assert route == "attempts/1/freeze" and close
        self.calls += 1
        return self.answer


def test_looks_for_the_done_file_early_then_every_50_ms(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    done = tmp_path / "run_1.1"
    steps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        steps.append(seconds)
        if len(steps) == 8:
            done.write_text("held")  # the daemon's answer comes after 8 looks

    monkeypatch.setattr(waits.asyncio, "sleep", fake_sleep)
    asyncio.run(waits._offer_freeze(_State({"freeze": True, "doneFile": str(done),
                                            "pollAfterS": 0.5})))
    # a refused or skipped dump is seen within milliseconds; later looks are 50 ms apart
    assert steps == [0.002, 0.004, 0.008, 0.016, 0.032, 0.05, 0.05, 0.05]
    assert not done.exists()  # consumed


def test_gives_up_after_the_maximum_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        steps.append(seconds)

    monkeypatch.setattr(waits.asyncio, "sleep", fake_sleep)
    asyncio.run(waits._offer_freeze(_State({"freeze": True, "doneFile": str(tmp_path / "never")})))
    assert waits.MAX_FREEZE_QUIET_S <= sum(steps) < waits.MAX_FREEZE_QUIET_S + waits.FREEZE_STEP_S


def test_declined_freeze_returns_at_once() -> None:
    state = _State({"freeze": False})
    asyncio.run(waits._offer_freeze(state))
    assert state.calls == 1
