"""A durable call as the runtime names it (engine/durable.py records it, sdk/replay.py walks
the records): its place in the run (`seq`), its kind and name, and the attempt that makes it.
Shared by the daemon and the task side, so both spell a call, and a replay that left the
recorded order, the same way."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ValidationError

PENDING, COMPLETED, FAILED = "pending", "completed", "failed"

#: the record kinds, and how the SDK spells the call (in errors and in the trace)
SPELLING = {"wait.for": "wait.for_", "wait.until": "wait.until", "wait.token": "wait.for_token",
            "token.create": "wait.create_token", "trigger": "trigger",
            "trigger_and_wait": "trigger_and_wait", "batch": "batch_trigger",
            "batch_and_wait": "batch_trigger_and_wait", "step": "step.run",
            "checkpoint": "ctx.checkpoint"}
#: kinds whose result the runtime sends (the others bind what the daemon made)
RESULT_KINDS = ("step", "checkpoint")
MAX_SEQ = 1_000_000
MAX_NAME_CHARS = 256


@dataclass(frozen=True, slots=True)
class Call:
    """A durable call as the runtime names it: its place in the run, its kind and name."""

    seq: int
    kind: str
    name: str | None = None
    attempt: int = 0  # the API sets it from the run token

    @classmethod
    def parse(cls, raw: object, attempt: int) -> Call | None:
        """The `record` object of a worker request (`{"seq", "kind", "name"}`), or None when
        the request has none (an older runtime: nothing is recorded)."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise ValidationError("record must be an object {seq, kind, name}")
        seq, kind, name = raw.get("seq"), raw.get("kind"), raw.get("name")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
            raise ValidationError(f"record.seq must be an integer from 1 to {MAX_SEQ}")
        if kind not in SPELLING:
            raise ValidationError(f"record.kind must be one of {', '.join(SPELLING)}")
        if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_CHARS):
            raise ValidationError(f"record.name must be a string of at most {MAX_NAME_CHARS} "
                                  "characters")
        return cls(seq, kind, name, attempt)


def spelled(kind: str, name: str | None) -> str:
    what = SPELLING.get(kind, kind)
    return f"{what}({name!r})" if name else what


def mismatch(seq: int, recorded: tuple[str, str | None], made: tuple[str, str | None]) -> str:
    """The one message for a replay that left the recorded order (the runtime says it too)."""
    return (f"non-deterministic replay at step {seq}: expected {spelled(*recorded)}, "
            f"got {spelled(*made)}")
