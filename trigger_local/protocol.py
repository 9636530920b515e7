"""Every message between the daemon and a task process, in one place (docs/worker-protocol.md
lists them from here): the names, the shapes, and the builders and parsers both sides use — the
daemon's executors and API (executors/sharing.py, executors/adoption.py, executors/eviction.py,
api/worker.py, api/channel.py) and the task process's runtime (runtime/worker.py,
runtime/channel.py, runtime/completions.py, sdk/context.py).

Three families:
- the daemon's word to a shared process, `Message`s, carried by a poll's answer (`messages`);
- a poll's answer itself (`next`, or the channel's answer to a `poll` frame);
- what a process sends: completions, the runs it lost, and the frames of its channel (polls,
  completions, waits, wait reads, its runs' own timers that fired, and the run calls — logs,
  metadata, child triggers, batches, steps — that go over the channel when it is open and over
  their HTTP route otherwise).

Nothing here imports the daemon's store or engine: the task side imports it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# -- the daemon's word to a shared process ----------------------------------------------------
ASSIGN = "assign"  # {"assignment": Assignment}: start this run as its own asyncio task
RESUME = "resume"  # {"runId"}: the run's wait is over (or the run ended while it waited)
ABORT = "abort"  # {"runId", "reason"}: the engine ended the attempt: cancel its coroutine
EVICT = "evict"  # {"runId"}: the daemon let go of the waiting run: drop its coroutine at once
RECONCILE = "reconcile"  # {"runs": {run id: attempt}}: an adopting daemon's view of the runs
MESSAGE_TYPES = (ASSIGN, RESUME, ABORT, EVICT, RECONCILE)


def assign(assignment: dict[str, Any]) -> dict[str, Any]:
    return {"type": ASSIGN, "assignment": assignment}


def resume(run_id: str, waitpoint_id: str | None = None,
           result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's wait is over; with the result of the waitpoint that unblocked it when the
    daemon has it at hand (the run then reads nothing)."""
    message: dict[str, Any] = {"type": RESUME, "runId": run_id}
    if waitpoint_id is not None and result is not None:
        message.update(waitpointId=waitpoint_id, result=result)
    return message


def abort(run_id: str, reason: str) -> dict[str, Any]:
    return {"type": ABORT, "runId": run_id, "reason": reason}


def evict(run_id: str) -> dict[str, Any]:
    return {"type": EVICT, "runId": run_id}


def reconcile(runs: dict[str, int]) -> dict[str, Any]:
    return {"type": RECONCILE, "runs": dict(runs)}


def numbered(message: dict[str, Any], seq: int) -> dict[str, Any]:
    """`message` as it is queued for a process: with its number (acknowledged by a later poll)."""
    return {**message, "seq": seq}


@dataclass(frozen=True)
class Message:
    """A message as the runtime reads it. An unknown `type` (a newer daemon) is kept, and
    ignored by the runtime."""

    type: str
    seq: int = 0
    run_id: str = ""
    assignment: dict[str, Any] | None = None
    reason: str = ""
    runs: dict[str, int] = field(default_factory=dict)
    waitpoint_id: str = ""  # a resume's: the waitpoint whose `result` it carries
    result: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Message:
        assignment = raw.get("assignment") if isinstance(raw.get("assignment"), dict) else None
        run_id = str(raw.get("runId") or (assignment or {}).get("run_id") or "")
        given = raw.get("runs")
        runs: dict[str, Any] = given if isinstance(given, dict) else {}
        result = raw.get("result") if isinstance(raw.get("result"), dict) else None
        return cls(type=str(raw.get("type") or ""), seq=int(raw.get("seq") or 0), run_id=run_id,
                   assignment=assignment, reason=str(raw.get("reason") or ""),
                   runs={str(k): int(v) for k, v in runs.items() if isinstance(v, int)},
                   waitpoint_id=str(raw.get("waitpointId") or ""), result=result)


# -- a poll's answer -----------------------------------------------------------------------------
def retire_answer() -> dict[str, Any]:
    """Exit now (a process that holds no run; after it the daemon closes the channel)."""
    return {"retire": True}


def nothing_answer() -> dict[str, Any]:
    """Nothing came in time: poll again."""
    return {"assignment": None}


def assignment_answer(assignment: dict[str, Any]) -> dict[str, Any]:
    """An exclusive process's next run."""
    return {"assignment": assignment}


def messages_answer(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A shared process's messages."""
    return {"assignment": None, "messages": messages}


@dataclass(frozen=True)
class PollAnswer:
    retire: bool = False
    assignment: dict[str, Any] | None = None
    messages: tuple[Message, ...] = ()

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> PollAnswer:
        assignment = raw.get("assignment")
        messages = raw.get("messages") or []
        return cls(retire=bool(raw.get("retire")),
                   assignment=assignment if isinstance(assignment, dict) and assignment else None,
                   messages=tuple(Message.parse(m) for m in messages if isinstance(m, dict)))


# -- what a process sends ------------------------------------------------------------------------
def completion_item(assignment: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """One item of `…/workers/{wid}/complete` (and of a `completions` frame): the body of
    `…/attempts/{n}/complete` plus whose it is."""
    return {**body, "runId": assignment["run_id"], "attempt": int(assignment["attempt"]),
            "runToken": assignment["run_token"]}


def completions_body(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"completions": items}


def lost_body(runs: dict[str, int]) -> dict[str, Any]:
    """`POST …/workers/{wid}/lost`: runs a reconcile listed that the process never got."""
    return {"runs": runs}


# -- the channel's frames --------------------------------------------------------------------
POLL = "poll"  # {"poll": ack}: a poll, answered with a poll answer (no id)
COMPLETIONS = "completions"  # {"id", "completions": [item, …]} → {"id", "results"}
WAIT = "wait"  # {"id", "wait": wait body + runId, attempt, runToken} → the …/wait answer
READ_WAIT = "readWait"  # {"id", "readWait": {runId, runToken, waitpointId}} → {done, result?}
CALL = "call"  # {"id", "call": {name, runId, attempt, runToken, body}} → the route's answer
#: {"id", "timerDue": {runId, attempt, runToken, waitpointId}} → {"resumed": bool}: the process's
#: own timer of a run's duration wait fired and the run went on (sdk/local_timers.py)
TIMER_DUE = "timerDue"
FRAME_KINDS = (COMPLETIONS, WAIT, READ_WAIT, CALL, TIMER_DUE)

# the run calls a channel carries, each with the HTTP route it stands for (the fallback)
LOGS = "logs"  # POST …/runs/{rid}/logs
METADATA = "metadata"  # PUT …/runs/{rid}/metadata
TRIGGER = "trigger"  # POST …/runs/{rid}/trigger
BATCH = "batch"  # POST …/runs/{rid}/batch
STEPS = "steps"  # POST …/runs/{rid}/attempts/{n}/steps
RUN_CALLS: dict[str, tuple[str, str]] = {
    LOGS: ("POST", "logs"), METADATA: ("PUT", "metadata"), TRIGGER: ("POST", "trigger"),
    BATCH: ("POST", "batch"), STEPS: ("POST", "attempts/{attempt}/steps")}


def http_route(name: str, attempt: int) -> tuple[str, str]:
    """The method and run route (under `/engine/v1/runs/{rid}/`) of run call `name`."""
    method, route = RUN_CALLS[name]
    return method, route.format(attempt=attempt)


def poll_frame(ack: int) -> dict[str, Any]:
    return {POLL: ack}


def wait_frame(run_id: str, attempt: int, token: str, body: dict[str, Any]) -> dict[str, Any]:
    return {WAIT: {**body, "runId": run_id, "attempt": attempt, "runToken": token}}


def read_wait_frame(run_id: str, token: str, waitpoint_id: str) -> dict[str, Any]:
    return {READ_WAIT: {"runId": run_id, "runToken": token, "waitpointId": waitpoint_id}}


def timer_due_frame(run_id: str, attempt: int, token: str, waitpoint_id: str) -> dict[str, Any]:
    return {TIMER_DUE: {"runId": run_id, "attempt": attempt, "runToken": token,
                        "waitpointId": waitpoint_id}}


def call_frame(name: str, run_id: str, attempt: int, token: str,
               body: dict[str, Any]) -> dict[str, Any]:
    return {CALL: {"name": name, "runId": run_id, "attempt": attempt, "runToken": token,
                   "body": body}}


@dataclass(frozen=True)
class Frame:
    """A frame from a process as the daemon reads it: `kind` is POLL (then `ack`, None when it
    is not a whole number ≥ 0) or one of FRAME_KINDS (then `id` and `body`); None for a frame
    of no known kind (ignored)."""

    kind: str
    id: Any = None
    ack: int | None = None
    body: Any = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Frame | None:
        if POLL in raw:
            ack = raw[POLL]
            return cls(POLL, ack=ack if isinstance(ack, int) and ack >= 0 else None)
        for kind in FRAME_KINDS:
            if kind in raw:
                return cls(kind, id=raw.get("id"), body=raw[kind])
        return None


@dataclass(frozen=True)
class RunCall:
    """A `call` frame's body, checked for shape (the daemon checks the token)."""

    name: str
    run_id: str
    attempt: int
    token: str
    body: dict[str, Any]

    @classmethod
    def parse(cls, raw: Any) -> RunCall:
        """Raises ValueError with what is wrong."""
        if not isinstance(raw, dict) or raw.get("name") not in RUN_CALLS:
            raise ValueError(f"call must be {{name, runId, attempt, runToken, body}} with name "
                             f"one of {', '.join(RUN_CALLS)}")
        attempt, body = raw.get("attempt"), raw.get("body")
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise ValueError("call.attempt must be the attempt number")
        if not isinstance(body, dict):
            raise ValueError("call.body must be the JSON body of the call's route")
        return cls(name=str(raw["name"]), run_id=str(raw.get("runId")), attempt=attempt,
                   token=str(raw.get("runToken") or ""), body=body)


def call_answer(route_answer: dict[str, Any]) -> dict[str, Any]:
    """A `call` frame's answer: the route's answer under `answer` (it may have an `id` of its
    own — a child run's — which must not stand for the frame's)."""
    return {"answer": route_answer}


def call_result(answer: dict[str, Any]) -> dict[str, Any]:
    """The route's answer out of a `call` frame's answer."""
    result = answer.get("answer")
    if not isinstance(result, dict):
        raise ValueError(f"the daemon answered a call with {answer!r}")
    return result


def answer_frame(frame_id: Any, out: dict[str, Any]) -> dict[str, Any]:
    """The daemon's answer to frame `frame_id`: what the route answers, once it is committed;
    or, refused, `{"status", "error", "code"}`."""
    return {"id": frame_id, **out}


#: the status of the answer to a frame of a kind the daemon does not know (a newer runtime's):
#: the process makes that call over HTTP instead
UNKNOWN_FRAME = 501


def unknown_frame(frame_id: Any) -> dict[str, Any]:
    return {"id": frame_id, "status": UNKNOWN_FRAME, "code": "unknown_frame",
            "error": "This daemon does not know this kind of frame: make the call over HTTP"}


def is_answer(frame: dict[str, Any]) -> bool:
    """A frame from the daemon that answers a numbered frame (not a poll's answer)."""
    return "id" in frame and "messages" not in frame
