"""Shell completion of task ids, run ids, token ids and queue names, from the daemon's lists.

The shell calls these on every Tab, so each asks the daemon once with a short timeout and
returns [] on any problem (no daemon, a stale daemon.json, an old daemon): completion must
never print, hang or fail. `trigger-local --install-completion` installs it for the shell."""

from __future__ import annotations

from typing import Any

import httpx

from ..sdk.client import _headers, current_project, resolve_endpoint

#: a Tab that waits longer than this feels broken; a local daemon answers in a few ms
TIMEOUT_S = 0.3
#: how many of the newest runs and tokens are offered
LISTED = 50

Choice = tuple[str, str]


def _get(path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The `data` list of a GET on the daemon, or [] whatever goes wrong."""
    try:
        endpoint = resolve_endpoint()
        response = httpx.get(endpoint.base_url + path, params=params, headers=_headers(endpoint),
                             timeout=TIMEOUT_S)
        if response.status_code != 200:
            return []
        data = response.json().get("data")
    except Exception:  # noqa: BLE001 - completion stays silent, whatever the cause
        return []
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _matching(choices: list[Choice], incomplete: str) -> list[Choice]:
    return [(value, help_) for value, help_ in choices if value.startswith(incomplete)]


def complete_task(incomplete: str) -> list[Choice]:
    """The current version's task ids."""
    tasks = _get("/api/v1/local/tasks")
    return _matching([(str(t.get("id")), str(t.get("file") or "")) for t in tasks if t.get("id")],
                     incomplete)


def complete_run_id(incomplete: str) -> list[Choice]:
    """The newest runs' ids, with their task and status as the hint."""
    runs = _get("/api/v1/runs", {"page[size]": LISTED})
    return _matching([(str(r.get("id")), f"{r.get('taskIdentifier', '')} {r.get('status', '')}")
                      for r in runs if r.get("id")], incomplete)


def complete_token_id(incomplete: str) -> list[Choice]:
    """The newest waitpoint tokens' ids, with their status as the hint."""
    tokens = _get("/api/v1/waitpoints/tokens", {"page[size]": LISTED})
    return _matching([(str(t.get("id")), str(t.get("status", ""))) for t in tokens if t.get("id")],
                     incomplete)


def complete_queue(incomplete: str) -> list[Choice]:
    """Queue names (a task's queue is named after the task): this project's (the one the
    command means), else every project's; each name once, its projects in the hint."""
    queues = [q for q in _get("/api/v1/queues", {"perPage": 100}) if q.get("name")]
    project = current_project()
    mine = [q for q in queues if q.get("project") == project]
    projects: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for q in mine or queues:
        name = str(q.get("name"))
        kinds.setdefault(name, str(q.get("type", "")))
        projects.setdefault(name, []).append(str(q.get("project") or ""))
    return _matching([(name, f"{kinds[name]} ({', '.join(sorted(set(refs)))})" if any(refs)
                       else kinds[name]) for name, refs in projects.items()], incomplete)
