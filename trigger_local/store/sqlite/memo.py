"""What every dequeue reads of the queues and rate_limits tables, kept on the writer between
transactions (issue #13).

The dispatcher's dequeue — in each round, in a group commit's hand-over, and in a trigger that
starts its own run (engine/starting.py) — reads the paused queues, the queues' concurrency
limits and the rate limits, and a trigger reads its queue's row (`queues.ensure`): four
statements of a single-triggered run's 39 without the memo (35 with it), for tables that
change only when a version is registered, a queue is made, paused or given a limit. One daemon
writes the file (daemon_lock.py), and every write to those tables goes through the writer's
areas, which tell the memo (`changed`); so the writer's areas answer from it.

A value is kept only when read by a transaction that has not written those tables: it is then
what the last commit left. A transaction that wrote them reads through until it ends, committed
or rolled back (`ended`: the store's `tx`), and the memo is then empty — a savepoint rolled back
or a transaction undone never leaves a value it read. The reader's areas have a `NoMemo`: it
keeps nothing (the writer's commits change the file under them).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class CatalogMemo:
    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._wrote = False  # the open transaction wrote the tables

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        if key in self._values:
            return cast(T, self._values[key])
        value = load()
        if not self._wrote:
            self._values[key] = value
        return value

    def changed(self) -> None:
        """The open transaction writes the tables: read through until it ends."""
        self._values.clear()
        self._wrote = True

    def ended(self) -> None:
        """The transaction committed or rolled back."""
        if self._wrote:
            self._values.clear()
            self._wrote = False


class NoMemo(CatalogMemo):
    """The reader's: every read loads (the writer's commits change the file under it)."""

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        return load()

    def changed(self) -> None:
        pass

    def ended(self) -> None:
        pass
