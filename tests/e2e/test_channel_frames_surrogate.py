"""A channel frame whose KEY is a lone surrogate closes with 1007 and a reason (review rv8d:
the reason echoes the key, and encoding it raised UnicodeEncodeError: closed 1000, no reason)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .conftest import DaemonProcess
from .test_channel_frames import _close_of


def test_a_lone_surrogate_key_closes_1007(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)})
    d.start()
    try:
        code, reason = asyncio.run(_close_of(d, '{"id": 1, "\\ud800": 1}'))
        assert code == 1007, (code, reason, d.log_text()[-1500:])
        assert "surrogate" in reason
    finally:
        d.close()
