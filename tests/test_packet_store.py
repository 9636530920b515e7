"""The packet files under `$HOME/packets`: names that cannot be packets, and `.meta` files
that are not what the daemon writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from trigger_local import packet_store


@pytest.mark.parametrize("name", ["x.json.meta", "x.json.part", "a.meta/b.json", "a/b.part/c",
                                  # the same files on a case-insensitive disk (macOS's)
                                  "x.json.META", "x.json.Part", "a.mEta/b.json"])
def test_a_name_of_a_packets_own_files_is_no_packet_name(name: str, tmp_path: Path) -> None:
    assert "end in .part or .meta" in (packet_store.name_problem(name) or "")
    with pytest.raises(ValueError, match="end in .part or .meta"):
        packet_store.write(tmp_path, name, b"{}", "application/json")
    assert not (tmp_path / "packets").exists()


@pytest.mark.parametrize("name", ["run_1/payload.json", "metadata.json", "a.meta.json",
                                  "partial", "x.metas"])
def test_names_like_the_sdks_are_packet_names(name: str) -> None:
    assert packet_store.name_problem(name) is None


@pytest.mark.parametrize("meta", ["[]", '"text"', '{"contentType": 5, "project": ["p"]}',
                                  '{"contentType": ""}', '{"content'])
def test_a_meta_that_is_not_the_daemons_reads_as_none(meta: str, tmp_path: Path) -> None:
    """A `.meta` that is not a JSON object of strings (cut short by a full disk, edited by
    hand) leaves the packet readable as JSON of no project, never an error."""
    packet_store.write(tmp_path, "run_1/payload.json", b'{"a": 1}', "text/plain", "proj_a")
    (tmp_path / "packets" / "run_1" / "payload.json.meta").write_text(meta)
    assert packet_store.read(tmp_path, "run_1/payload.json") == (b'{"a": 1}',
                                                                 "application/json")
    assert packet_store.owner(tmp_path, "run_1/payload.json") == (True, None)
