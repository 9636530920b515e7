"""Ids (`run_…`, `snapshot_…`): 9 characters of milliseconds then 12 random ones, base 36 —
unique, ordered by time, made in ~1 µs (issue #13: a no-op run makes four or five)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from trigger_local import ids
from trigger_local.ids import new_id

ALPHABET = set("0123456789abcdefghijklmnopqrstuvwxyz")


def test_an_id_is_its_prefix_then_21_base36_characters() -> None:
    made = new_id("snapshot")
    prefix, _, body = made.partition("_")
    assert prefix == "snapshot" and len(body) == 21 and set(body) <= ALPHABET


def test_ids_are_unique_and_every_character_is_drawn() -> None:
    made = [new_id("run") for _ in range(100_000)]
    assert len(set(made)) == len(made)
    drawn = Counter(c for m in made[:20_000] for c in m[-12:])
    assert set(drawn) == ALPHABET
    # 256 = 7 × 36 + 4: '0'…'3' a little more often (8/256), none far off (7/256 each)
    expected = 20_000 * 12 / 256
    assert all(6 * expected < n < 9 * expected for n in drawn.values())


def test_ids_sort_by_the_millisecond_they_were_made_in(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    first = [new_id("run") for _ in range(3)]
    assert len({m[:13] for m in first}) == 1  # one millisecond, one time part
    clock[0] += 0.001
    later = new_id("run")
    clock[0] += 3600
    much_later = new_id("run")
    assert max(first) < later < much_later
    assert ids._base36(1_700_000_000_000, 9) == first[0][4:13]  # noqa: SLF001


def test_no_base36_conversion_but_once_a_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    """The random characters come straight from random bytes, and the time part is spelled once
    per millisecond (each id converted two numbers before: ~5 µs an id, ~1 µs now)."""
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)
    spelled: list[int] = []
    real = ids._base36  # noqa: SLF001

    def counting(n: int, width: int) -> str:
        spelled.append(n)
        return real(n, width)

    monkeypatch.setattr(ids, "_base36", counting)
    made = {new_id("snapshot") for _ in range(1000)}
    assert len(made) == 1000 and spelled == [1_800_000_000_000]
