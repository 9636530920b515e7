"""cli/dev_lock.py: one `dev` per project and home, with real flocks on real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer

from trigger_local.cli.dev_lock import hold_dev_lock


def test_refs_that_differ_only_in_case_have_lock_files_a_case_insensitive_disk_keeps_apart(
        tmp_path: Path) -> None:
    """`Proj_A` and `proj_a` are two projects to the daemon, but on a case-insensitive file
    system (macOS's default) `Proj_A.lock` and `proj_a.lock` are one file: the dev of one
    refused the dev of the other as if it ran already."""
    home, root = tmp_path / "home", tmp_path / "project"
    held = [hold_dev_lock(home, ref, root).fd for ref in ("Proj_A", "proj_a", "PROJ_A")]
    try:
        names = [p.name for p in (home / "dev").iterdir()]
        assert len({n.casefold() for n in names}) == 3, names
        assert "proj_a.lock" in names  # a lower-case ref (every derived one) keeps its name
        with pytest.raises(typer.Exit):  # and the lock still holds for the same ref
            hold_dev_lock(home, "Proj_A", root)
    finally:
        for fd in held:
            os.close(fd)
    os.close(hold_dev_lock(home, "Proj_A", root).fd)  # released with its descriptor
