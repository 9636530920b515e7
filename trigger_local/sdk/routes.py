"""The management API's routes, each written once as a `Call` (method, path, params, body and
how to read the answer) that both the async and the blocking client send. Split from
`client.py`, which owns connections, discovery and errors."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar
from urllib.parse import quote

from .. import packets

T = TypeVar("T")
P = ParamSpec("P")
Json = dict[str, Any]

API_VERSION = "2025-07-16"  # selects Trigger.dev's v2 status names
TIMEOUT_S = 30.0  # long-polls add their own wait on top


def _same(body: Any) -> Any:
    return body


@dataclass
class Call(Generic[T]):
    """One request to make and how to read its JSON answer."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    read: Callable[[Any], T] = _same
    wait_s: float = 0.0
    #: sent as x-trigger-request-idempotency-key, so a resent trigger creates no second run
    request_key: str | None = None
    #: tried instead when the daemon answers 404 (a queue name that may be a task's or custom)
    fallback: Call[T] | None = None


def _seg(value: str) -> str:
    return quote(value, safe="")


def _queue_seg(name: str) -> str:
    # Trigger.dev's SDK turns "/" into %2F before encoding; the daemon undoes exactly that.
    return quote(name.replace("/", "%2F"), safe="")


def _csv(value: str | list[str] | tuple[str, ...] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


_OPTION_NAMES = {"concurrency_key": "concurrencyKey", "idempotency_key": "idempotencyKey",
                 "idempotency_key_ttl": "idempotencyKeyTTL", "max_attempts": "maxAttempts",
                 "max_duration": "maxDuration", "payload_type": "payloadType"}


def api_options(options: dict[str, Any] | None) -> Json:
    """Trigger options in Trigger.dev's wire form from the SDK's snake_case (camelCase passes).

    `queue="name"` becomes `{"name": ...}`; a user idempotency key is hashed as the
    TypeScript SDK does outside a task, so both SDKs dedupe on the same key."""
    out: Json = {}
    for key, value in (options or {}).items():
        if value is not None:
            out[_OPTION_NAMES.get(key, key)] = value
    if isinstance(out.get("queue"), str):
        out["queue"] = {"name": out["queue"]}
    if isinstance(out.get("tags"), str):
        out["tags"] = [out["tags"]]
    user_key = out.get("idempotencyKey")
    if isinstance(user_key, list):
        user_key = "-".join(str(part) for part in user_key)
    if isinstance(user_key, str) and len(user_key) != 64:
        out["idempotencyKey"] = hashlib.sha256(user_key.encode()).hexdigest()
        out.setdefault("idempotencyKeyOptions", {"key": user_key, "scope": "global"})
    return out


def _queue_call(name: str, type: str | None, build: Callable[[str, str], Call[Json]]) -> Call[Json]:
    if type is None and name.startswith("queue_"):
        type = "id"
    elif type is None and name.startswith("task/"):
        name, type = name.removeprefix("task/"), "task"
    if type is not None:
        return build(_queue_seg(name), type)
    # A bare name is usually a task's queue (listed without its "task/" prefix); else custom.
    call = build(_queue_seg(name), "task")
    call.fallback = build(_queue_seg(name), "custom")
    return call


def _batch_answer(body: Json) -> Json:
    runs = [r["id"] if isinstance(r, dict) else r for r in body.get("runs", [])]
    return {"batchId": body.get("batchId") or body.get("id"), "runs": runs}


class Routes:
    """Builders for every management route, in Trigger.dev's paths and shapes."""

    @staticmethod
    def trigger(task_id: str, payload: str | None = None, payload_type: str = packets.JSON,
                options: dict[str, Any] | None = None) -> Call[Json]:
        """Trigger `task_id` with an encoded payload; answers {"id", "isCached"}."""
        body: Json = {"options": {**api_options(options), "payloadType": payload_type}}
        if payload is not None:
            body["payload"] = payload
        return Call("POST", f"/api/v1/tasks/{_seg(task_id)}/trigger", body=body,
                    request_key=str(uuid.uuid4()))

    @staticmethod
    def batch_trigger(items: list[Json]) -> Call[Json]:
        """Items {"task", "payload", "payloadType"?, "options"?}; answers
        {"batchId", "runs": [ids]}."""
        wire = [_drop_none({"task": i["task"], "payload": i.get("payload"),
                            "options": {**api_options(i.get("options")),
                                        "payloadType": i.get("payloadType") or i.get("payload_type")
                                        or packets.JSON}}) for i in items]
        return Call("POST", "/api/v1/tasks/batch", body={"items": wire}, read=_batch_answer,
                    request_key=str(uuid.uuid4()))

    @staticmethod
    def retrieve_run(run_id: str) -> Call[Json]:
        return Call("GET", f"/api/v3/runs/{_seg(run_id)}")

    @staticmethod
    def list_runs(*, status: str | list[str] | None = None, task: str | list[str] | None = None,
                  tag: str | list[str] | None = None, version: str | None = None,
                  batch: str | None = None, queue: str | None = None, period: str | None = None,
                  schedule: str | None = None, limit: int | None = None,
                  after: str | None = None, before: str | None = None,
                  project: str | list[str] | None = None) -> Call[Json]:
        """A cursor page {"data": [runs], "pagination": {"next"?, "previous"?}}, newest first:
        older than `after`, or the newer ones just before `before`. `project`: only runs of
        these projects (default: every project's)."""
        params = _drop_none({"filter[status]": _csv(status), "filter[taskIdentifier]": _csv(task),
                             "filter[project]": _csv(project),
                             "filter[tag]": _csv(tag), "filter[version]": version,
                             "filter[batch]": batch, "filter[queue]": queue,
                             "filter[schedule]": schedule,
                             "filter[createdAt][period]": period, "page[size]": limit,
                             "page[after]": after, "page[before]": before})
        return Call("GET", "/api/v1/runs", params=params)

    @staticmethod
    def cancel_run(run_id: str) -> Call[Json]:
        return Call("POST", f"/api/v2/runs/{_seg(run_id)}/cancel")

    @staticmethod
    def replay_run(run_id: str) -> Call[Json]:
        return Call("POST", f"/api/v1/runs/{_seg(run_id)}/replay")

    @staticmethod
    def reschedule_run(run_id: str, delay: str) -> Call[Json]:
        return Call("POST", f"/api/v1/runs/{_seg(run_id)}/reschedule", body={"delay": delay})

    @staticmethod
    def update_metadata(run_id: str, metadata: Json | None = None,
                        operations: list[Json] | None = None) -> Call[Json]:
        body = _drop_none({"metadata": metadata, "operations": operations})
        return Call("PUT", f"/api/v1/runs/{_seg(run_id)}/metadata", body=body)

    @staticmethod
    def run_logs(run_id: str, after: int | None = None) -> Call[Json]:
        """{"data": [log entries], "next": cursor to pass as `after`}."""
        return Call("GET", f"/api/v1/runs/{_seg(run_id)}/logs", params=_drop_none({"after": after}))

    @staticmethod
    def run_streams(run_id: str) -> Call[Json]:
        """{"streams": [{"key", "length"}]} in creation order."""
        return Call("GET", f"/api/v1/local/runs/{_seg(run_id)}/streams")

    @staticmethod
    def stream_chunks(run_id: str, key: str, after: int = -1, limit: int = 1000) -> Call[Json]:
        """{"chunks": [{"index", "value"}], "length", "final"}: chunks after index `after`."""
        return Call("GET", f"/api/v1/local/runs/{_seg(run_id)}/streams/{_seg(key)}",
                    params={"after": after, "limit": limit})

    @staticmethod
    def run_trace(run_id: str) -> Call[Json]:
        return Call("GET", f"/api/v1/runs/{_seg(run_id)}/trace")

    @staticmethod
    def events(after: int | None = None, wait_s: float = 0.0, run_id: str | None = None,
               limit: int | None = None) -> Call[Json]:
        """Events with a seq above `after`, waiting up to `wait_s` for the first one:
        {"data": [{"seq", "runId", "type", "at", "data"}], "next": seq to pass as `after`}."""
        params = _drop_none({"after": after, "wait_s": wait_s or None, "run_id": run_id,
                             "limit": limit})
        return Call("GET", "/api/v1/local/events", params=params, wait_s=wait_s)

    @staticmethod
    def create_token(timeout: str | None = None, idempotency_key: str | None = None,
                     idempotency_key_ttl: str | None = None,
                     tags: list[str] | None = None) -> Call[Json]:
        """{"id", "isCached", "url"}; token keys are sent raw (Trigger.dev does not hash them)."""
        body = _drop_none({"timeout": timeout, "idempotencyKey": idempotency_key,
                           "idempotencyKeyTTL": idempotency_key_ttl, "tags": tags})
        return Call("POST", "/api/v1/waitpoints/tokens", body=body)

    @staticmethod
    def complete_token(token_id: str, data: Any = None) -> Call[Json]:
        return Call("POST", f"/api/v1/waitpoints/tokens/{_seg(token_id)}/complete",
                    body={"data": data})

    @staticmethod
    def timeout_token(token_id: str) -> Call[Json]:
        return Call("POST", f"/api/v1/waitpoints/tokens/{_seg(token_id)}/timeout")

    @staticmethod
    def retrieve_token(token_id: str) -> Call[Json]:
        return Call("GET", f"/api/v1/waitpoints/tokens/{_seg(token_id)}")

    @staticmethod
    def list_tokens(status: str | list[str] | None = None, tags: str | list[str] | None = None,
                    limit: int | None = None, after: str | None = None,
                    idempotency_key: str | None = None) -> Call[Json]:
        params = _drop_none({"filter[status]": _csv(status), "filter[tags]": _csv(tags),
                             "filter[idempotencyKey]": idempotency_key, "page[size]": limit,
                             "page[after]": after})
        return Call("GET", "/api/v1/waitpoints/tokens", params=params)

    @staticmethod
    def list_queues(page: int = 1, per_page: int = 25) -> Call[Json]:
        return Call("GET", "/api/v1/queues", params={"page": page, "perPage": per_page})

    @staticmethod
    def retrieve_queue(name: str, type: str | None = None) -> Call[Json]:
        """`type`: "task" (name = task id), "custom", "id" (queue_…), or None to find out."""
        return _queue_call(name, type, lambda seg, t: Call("GET", f"/api/v1/queues/{seg}",
                                                           params={"type": t}))

    @staticmethod
    def pause_queue(name: str, type: str | None = None) -> Call[Json]:
        return _queue_call(name, type, lambda seg, t: Call("POST", f"/api/v1/queues/{seg}/pause",
                                                           body={"type": t, "action": "pause"}))

    @staticmethod
    def resume_queue(name: str, type: str | None = None) -> Call[Json]:
        return _queue_call(name, type, lambda seg, t: Call("POST", f"/api/v1/queues/{seg}/pause",
                                                           body={"type": t, "action": "resume"}))

    @staticmethod
    def override_queue_concurrency(name: str, limit: int, type: str | None = None) -> Call[Json]:
        return _queue_call(name, type, lambda seg, t: Call(
            "POST", f"/api/v1/queues/{seg}/concurrency/override",
            body={"type": t, "concurrencyLimit": limit}))

    @staticmethod
    def reset_queue_concurrency(name: str, type: str | None = None) -> Call[Json]:
        return _queue_call(name, type, lambda seg, t: Call(
            "POST", f"/api/v1/queues/{seg}/concurrency/reset", body={"type": t}))

    @staticmethod
    def register_version(project_dir: str, dirs: list[str], python: str | None = None,
                         env: dict[str, str] | None = None, image: str | None = None,
                         project: str | None = None, dev: bool | None = None,
                         defaults: Json | None = None) -> Call[Json]:
        """Index the project and make it its project's current version; the answer lists its
        tasks. `image`: a deployed image; the version's tasks are indexed in it and run from it.
        `project`: its ref (default: the one projectDir's trigger.toml names); `dev`: a dev
        session (the event stream with `session=1`) will keep the project online. `defaults`:
        trigger.toml's `{"retry", "machine", "maxDuration"}` for tasks that set none."""
        body = _drop_none({"projectDir": project_dir, "dirs": dirs, "python": python, "env": env,
                           "image": image, "project": project, "dev": dev, "defaults": defaults})
        return Call("POST", "/api/v1/local/versions", body=body)

    @staticmethod
    def list_tasks() -> Call[Json]:
        return Call("GET", "/api/v1/local/tasks")

    @staticmethod
    def status() -> Call[Json]:
        return Call("GET", "/api/v1/local/status")

    @staticmethod
    def list_projects() -> Call[Json]:
        """`{"data": [...]}`: each project the daemon serves, with its own key."""
        return Call("GET", "/api/v1/local/projects")

    @staticmethod
    def healthz() -> Call[Json]:
        return Call("GET", "/healthz")


# --- finding the daemon ---------------------------------------------------------------------
