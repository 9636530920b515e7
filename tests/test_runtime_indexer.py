"""`python -m trigger_local.runtime index` on real project dirs, in a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

GOOD = """
    from pydantic import BaseModel
    from trigger_local.sdk.options import queue
    from trigger_local.sdk.retry import Retry
    from trigger_local.sdk.registry import schema_task, task

    videos = queue("videos", concurrency_limit=2)

    class Resize(BaseModel):
        width: int

    @task(id="convert", queue=videos, retry=Retry(max_attempts=4), max_duration=600,
          machine="small-2x")
    async def convert_video(payload, ctx):
        return payload

    @schema_task(id="resize", schema=Resize)
    def resize(payload):
        return payload.width
"""

SHARES_QUEUE = """
    from trigger.videos import videos
    from trigger_local.sdk.registry import task

    @task(id="thumbnail", queue=videos)
    def thumbnail(payload, ctx):
        pass
"""


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def index(project: Path,
          dirs: list[str] | None = None) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = project / "manifest.json"
    env = {**os.environ, "TRIGGER_LOCAL_PROJECT_DIR": str(project),
           "TRIGGER_LOCAL_TASK_DIRS": json.dumps(dirs or ["trigger"])}
    proc = subprocess.run([sys.executable, "-m", "trigger_local.runtime", "index", "--out",
                           str(out)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=60)
    return proc, json.loads(out.read_text())


def test_index_writes_the_manifest_of_every_task(tmp_path: Path) -> None:
    write(tmp_path, "trigger/videos.py", GOOD)
    write(tmp_path, "trigger/media/thumbs.py", SHARES_QUEUE)
    write(tmp_path, "trigger/_private.py", "raise RuntimeError('skipped: starts with _')")
    write(tmp_path, "trigger/.hidden/x.py", "raise RuntimeError('skipped: hidden dir')")
    proc, manifest = index(tmp_path)
    assert proc.returncode == 0, proc.stderr
    tasks = {t["id"]: t for t in manifest["tasks"]}
    assert set(tasks) == {"convert", "resize", "thumbnail"}
    convert = tasks["convert"]
    assert convert == {"id": "convert", "queue": "videos", "queue_concurrency_limit": 2,
                       "queue_is_custom": True,
                       "retry": {"max_attempts": 4, "factor": 2, "min_timeout_s": 1,
                                 "max_timeout_s": 60, "randomize": True},
                       "max_duration_s": 600.0, "machine": "small-2x", "schema": None,
                       "file": "trigger/videos.py", "export_name": "convert_video",
                       "shared": True}
    assert (tasks["thumbnail"]["queue"] == "videos"
            and tasks["thumbnail"]["queue_concurrency_limit"] == 2)
    assert tasks["thumbnail"]["file"] == "trigger/media/thumbs.py"
    resize = tasks["resize"]
    assert resize["queue"] == "task/resize" and not resize["queue_is_custom"]
    assert resize["schema"]["properties"]["width"]["type"] == "integer"


def test_a_broken_module_fails_the_index_with_its_traceback(tmp_path: Path) -> None:
    write(tmp_path, "trigger/good.py", GOOD)
    write(tmp_path, "trigger/broken.py", """
        import trigger_local

        def helper():
            raise KeyError("missing-setting")

        helper()
    """)
    proc, manifest = index(tmp_path)
    assert proc.returncode == 1
    error = manifest["error"]
    assert error["file"] == "trigger/broken.py"
    assert "KeyError" in error["message"] and "missing-setting" in error["message"]
    assert "helper()" in error["traceback"] and "broken.py" in error["traceback"]
    assert "missing-setting" in proc.stderr


def test_duplicate_task_ids_are_an_index_error(tmp_path: Path) -> None:
    write(tmp_path, "trigger/a.py", """
        from trigger_local.sdk.registry import task

        @task(id="same")
        def first(payload):
            pass
    """)
    write(tmp_path, "trigger/b.py", """
        from trigger_local.sdk.registry import task

        @task(id="same")
        def second(payload):
            pass
    """)
    proc, manifest = index(tmp_path)
    assert proc.returncode == 1
    assert "'same' is defined twice" in manifest["error"]["message"]
    assert manifest["error"]["file"] == "trigger/b.py"


def test_one_queue_name_with_two_limits_is_an_index_error(tmp_path: Path) -> None:
    write(tmp_path, "trigger/a.py", """
        from trigger_local.sdk.options import queue
        from trigger_local.sdk.registry import task

        @task(id="one", queue=queue("shared", concurrency_limit=1))
        def one(payload):
            pass

        @task(id="two", queue=queue("shared", concurrency_limit=5))
        def two(payload):
            pass
    """)
    proc, manifest = index(tmp_path)
    assert proc.returncode == 1 and "define the queue once" in manifest["error"]["message"]


def test_dirs_that_are_not_identifiers_are_still_imported(tmp_path: Path) -> None:
    write(tmp_path, "my-tasks/hello.py", """
        from trigger_local.sdk.registry import task

        @task(id="hello")
        def hello(payload):
            pass
    """)
    proc, manifest = index(tmp_path, ["my-tasks"])
    assert proc.returncode == 0, proc.stderr
    assert [t["file"] for t in manifest["tasks"]] == ["my-tasks/hello.py"]
