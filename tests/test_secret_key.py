"""The home's secret key file: written whole or not at all, and an empty one (left by an older
version whose first start met a full disk) replaced by a real key instead of "" as the secret."""

from __future__ import annotations

import stat
from pathlib import Path

from trigger_local.config import ensure_secret_key


def test_a_key_is_made_once_private_and_read_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = ensure_secret_key(home)
    assert key.startswith("tr_dev_") and len(key) > 20
    assert stat.S_IMODE((home / "secret_key").stat().st_mode) == 0o600
    assert ensure_secret_key(home) == key
    assert sorted(p.name for p in home.iterdir()) == ["secret_key"]  # no partial file left


def test_an_empty_key_file_gets_a_real_key(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("\n")
    key = ensure_secret_key(tmp_path)
    assert key.startswith("tr_dev_") and len(key) > 20
    assert (tmp_path / "secret_key").read_text().strip() == key
